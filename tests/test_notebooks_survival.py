"""The notebooks' survival helpers on real cohorts we did not write (scikit-survival datasets).

Anchors: R's `survival` package on the same data (survdiff / survfit output as printed in its
documentation and countless tutorials, rounded as R prints it) and lifelines, an independent
Python implementation, to full precision.
"""

from __future__ import annotations

import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index

from pipelines.analytics.survival import (
    at_risk_at,
    harrell_c,
    kaplan_meier,
    km_by_group,
    logrank,
    median_survival,
    survival_at,
    survival_table,
)


@pytest.fixture(scope="module")
def veterans() -> pd.DataFrame:
    from sksurv.datasets import load_veterans_lung_cancer

    x, y = load_veterans_lung_cancer()
    return x.assign(days=y["Survival_in_days"], died=y["Status"].astype(int))


@pytest.fixture(scope="module")
def gbsg2() -> pd.DataFrame:
    from sksurv.datasets import load_gbsg2

    x, y = load_gbsg2()
    return x.assign(days=y["time"], event=y["cens"].astype(int))


@pytest.mark.parametrize("group, r_chisq, r_df", [("Celltype", 25.4, 3), ("Treatment", 0.0, 1)])
def test_logrank_on_the_veterans_trial_matches_r_and_lifelines(veterans, group, r_chisq, r_df):
    ours = logrank(veterans, "days", "died", group)
    ref = multivariate_logrank_test(veterans["days"], veterans[group], veterans["died"])
    assert ours["chisq"] == pytest.approx(ref.test_statistic, rel=1e-8)
    assert ours["p_value"] == pytest.approx(ref.p_value, rel=1e-6)
    assert round(ours["chisq"], 1) == r_chisq and ours["df"] == r_df
    assert ours["groups"]["observed"].sum() == veterans["died"].sum()


def test_logrank_on_gbsg2_hormonal_therapy_matches_r(gbsg2):
    ours = logrank(gbsg2, "days", "event", "horTh")
    # R: survdiff(Surv(time, cens) ~ horTh, data = GBSG2) -> Chisq= 8.6 on 1 df, p= 0.003
    assert round(ours["chisq"], 1) == 8.6 and round(ours["p_value"], 3) == 0.003


def test_kaplan_meier_matches_lifelines_and_r_median(veterans):
    km = kaplan_meier(veterans["days"], veterans["died"])
    kmf = KaplanMeierFitter().fit(veterans["days"], veterans["died"])
    for t in (30, 100, 200, 365):
        assert survival_at(km, t) == pytest.approx(
            float(kmf.survival_function_at_times(t).iloc[0]), abs=1e-12)
    assert median_survival(km) == 80.0  # R: survfit(Surv(time, status) ~ 1, veteran) median 80
    ci = kmf.confidence_interval_survival_function_
    row = km.set_index("time").loc[100.0]
    assert row["lower"] == pytest.approx(ci.loc[100.0].iloc[0], abs=1e-3)  # both log-log
    assert row["upper"] == pytest.approx(ci.loc[100.0].iloc[1], abs=1e-3)
    assert km["at_risk"].iloc[0] == len(veterans)


def test_number_at_risk_under_the_curve(veterans):
    """The row printed under a Kaplan-Meier figure, against a direct count of the patients
    still followed and lifelines' event table, at ticks on, between and beyond observed
    times."""
    km = kaplan_meier(veterans["days"], veterans["died"])
    kmf = KaplanMeierFitter().fit(veterans["days"], veterans["died"])
    ticks = [0, 30, 100, 101, 250, 587, 999, 1000]
    expected = [int((veterans["days"] >= t).sum()) for t in ticks]
    assert at_risk_at(km, ticks) == expected
    table = kmf.event_table
    assert [int(table.loc[table.index >= t, "at_risk"].iloc[0]) if (table.index >= t).any()
            else 0 for t in ticks] == expected
    assert expected[0] == len(veterans) and expected[-1] == 0


def test_survival_table_and_c_index(veterans):
    curves = km_by_group(veterans, "days", "died", "Celltype")
    table = survival_table(curves, at=(90.0,)).set_index("group")
    assert table["patients"].sum() == len(veterans)
    assert table.loc["large", "median_months"] > table.loc["smallcell", "median_months"]
    c = harrell_c(veterans["days"], veterans["died"], veterans["Karnofsky_score"])
    assert c == pytest.approx(concordance_index(veterans["days"], veterans["Karnofsky_score"],
                                                veterans["died"]), abs=1e-12)
    assert 0.65 < c < 0.75  # Karnofsky score is the classic strong prognostic factor here


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="negative time"):
        kaplan_meier([1.0, -2.0], [1, 0])
    with pytest.raises(ValueError, match="0 \\(censored\\) or 1"):
        kaplan_meier([1.0, 2.0], [1, 2])
    with pytest.raises(ValueError, match="two groups"):
        logrank(pd.DataFrame({"t": [1, 2], "e": [1, 1], "g": ["a", "a"]}), "t", "e", "g")

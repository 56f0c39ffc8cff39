"""Pure-pandas helpers behind the notebooks: audit, cohort and monitoring summaries."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipelines.analytics.cohort import biomarker_flags, biomarker_prevalence, reconciliation
from pipelines.analytics.monitoring import realised_c_index
from pipelines.analytics.ranking_audit import (
    agreement,
    agreement_rate,
    latest_board,
    top_choice_share,
    top_choices,
)

RANKINGS = pd.DataFrame({
    "patient_key": list("aabbccdd"),
    "treatment": ["osimertinib", "platinum_pemetrexed"] * 3 + ["folfox", "folfox_cetuximab"],
    "rank": [1, 2, 2, 1, 1, 2, 1, 2],
    # The score stage writes cancer_type too: the audit must not trip over the duplicate.
    "cancer_type": ["NSCLC"] * 6 + ["COADREAD"] * 2,
    "board_date": [dt.date(2026, 11, 5)] * 8,
})
FEATURES = pd.DataFrame({"patient_key": list("abcd"),
                         "cancer_type": ["NSCLC", "NSCLC", "NSCLC", "COADREAD"],
                         "treatment": ["osimertinib", "osimertinib", None, "folfox"],
                         "egfr_mut": pd.array([True, False, None, False], dtype="boolean")})


def test_top_choice_share_and_agreement():
    top = top_choices(RANKINGS)
    shares = top_choice_share(top, FEATURES, "cancer_type").set_index(
        ["cancer_type", "top_treatment"])
    assert shares.loc[("NSCLC", "osimertinib"), "patients"] == 2
    assert shares.loc[("NSCLC", "platinum_pemetrexed"), "share"] == pytest.approx(1 / 3)
    agree = agreement(top, FEATURES[["patient_key", "treatment"]])
    assert agree.set_index("patient_key")["agrees"].to_dict() == {
        "a": True, "b": False, "d": True}  # c received nothing known: left out
    assert agreement_rate(agree)["rate"].iloc[0] == pytest.approx(2 / 3)


def test_latest_board_keeps_only_the_last_date():
    older = RANKINGS.assign(board_date=dt.date(2026, 10, 1), rank=RANKINGS["rank"][::-1].values)
    both = pd.concat([older, RANKINGS])
    assert latest_board(both)["board_date"].unique().tolist() == [dt.date(2026, 11, 5)]


def test_prevalence_counts_only_known_status():
    table = biomarker_prevalence(FEATURES, ["egfr_mut"], by="cancer_type").set_index(
        "cancer_type")
    assert table.loc["NSCLC", "known"] == 2 and table.loc["NSCLC", "prevalence"] == 0.5
    assert biomarker_flags(["egfr_mut", "kras_g12c", "age_at_diagnosis", "egfr_mut_source"]) \
        == ["egfr_mut", "kras_g12c"]


def test_reconciliation_flags_a_job_that_lost_rows():
    runs = pd.DataFrame({"job": ["score", "score", "train"],
                         "started_at": pd.to_datetime(["2026-11-01", "2026-11-02",
                                                       "2026-11-02"]),
                         "status": "succeeded", "rows_in": [10, 12, 5],
                         "rows_written": [10, 11, 5], "rows_quarantined": [0, 0, 0]})
    out = reconciliation(runs).set_index("job")
    assert not out.loc["score", "reconciled"] and out.loc["train", "reconciled"]
    assert out.loc["score", "rows_in"] == 12  # the latest run


def test_realised_c_index_needs_enough_patients_and_events():
    outcomes = pd.DataFrame({"patient_key": list("abcd"), "treatment": ["x"] * 4,
                             "os_months": [5.0, 10.0, 20.0, 30.0], "os_event": [1, 1, 1, 0]})
    rankings = outcomes[["patient_key", "treatment"]].assign(
        predicted_rmst=[4.0, 9.0, 15.0, 22.0], board_date="2026-11-05")
    perfect = realised_c_index(rankings, outcomes, min_patients=2)
    assert perfect["harrell_c"].iloc[0] == 1.0
    assert realised_c_index(rankings, outcomes)["harrell_c"].isna().all()  # < 10 patients

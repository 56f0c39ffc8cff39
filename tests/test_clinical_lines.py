"""Lines of therapy and outcome labels on hand-built timelines (edge cases first)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.clinical.dates import parse_date_str
from pipelines.clinical.therapy_lines import Exposure, LineRule, derive_lines, match_treatment

D = dt.date


def _summary(lines):
    return [(ln.line_number, ln.drugs, ln.start, ln.end, ln.treatment) for ln in lines]


def test_drugs_started_within_the_window_form_one_regimen():
    ex = [Exposure("pemetrexed", D(2021, 1, 20), D(2021, 6, 1)),
          Exposure("carboplatin", D(2021, 1, 1), D(2021, 3, 1))]
    assert _summary(derive_lines(ex, cancer_type="NSCLC")) == [
        (1, ("carboplatin", "pemetrexed"), D(2021, 1, 1), D(2021, 6, 1), "platinum_pemetrexed")]


def test_window_boundary_is_inclusive_and_parameterised():
    ex = [Exposure("oxaliplatin", D(2021, 1, 1), D(2021, 2, 1)),
          Exposure("fluorouracil", D(2021, 1, 29), D(2021, 3, 1)),   # day 28: inside
          Exposure("leucovorin", D(2021, 1, 30), D(2021, 3, 1))]     # day 29: add-on, same line
    lines = derive_lines(ex, cancer_type="COADREAD")
    assert len(lines) == 1 and lines[0].treatment == "folfox"
    # With a 7-day window leucovorin and fluorouracil are still add-ons (no gap, no progression).
    narrow = derive_lines(ex, cancer_type="COADREAD", rule=LineRule(regimen_window_days=7))
    assert [ln.drugs for ln in narrow] == [("oxaliplatin", "fluorouracil", "leucovorin")]


def test_new_drug_after_a_gap_starts_a_new_line_and_overlap_is_cut():
    ex = [Exposure("carboplatin", D(2020, 1, 1), D(2020, 4, 1)),
          Exposure("pemetrexed", D(2020, 1, 1), D(2020, 4, 1)),
          Exposure("osimertinib", D(2020, 7, 1), None)]             # 91 days after last activity
    lines = derive_lines(ex, cancer_type="NSCLC")
    assert _summary(lines) == [
        (1, ("carboplatin", "pemetrexed"), D(2020, 1, 1), D(2020, 4, 1), "platinum_pemetrexed"),
        (2, ("osimertinib",), D(2020, 7, 1), D(2020, 7, 1), "osimertinib")]
    # A 90-day gap exactly is not "more than" line_gap_days, but the chemotherapy had stopped:
    # a new drug after the regimen stopped is a switch, a new line all the same.
    ex[2] = Exposure("osimertinib", D(2020, 6, 30), None)
    assert len(derive_lines(ex, cancer_type="NSCLC")) == 2
    # While a drug of the line still runs (end unknown), it is an add-on.
    ex[1] = Exposure("pemetrexed", D(2020, 1, 1), None)
    assert len(derive_lines(ex, cancer_type="NSCLC")) == 1


def test_a_switch_without_gap_or_documented_progression_is_a_new_line():
    """Second lines start days after the first stops, with progression often undocumented in
    structured data: the stop of every drug and the start of another is the switch."""
    ex = [Exposure("pembrolizumab", D(2018, 9, 13), D(2020, 1, 28)),
          Exposure("carboplatin", D(2020, 1, 31), D(2020, 4, 11)),
          Exposure("pemetrexed", D(2020, 1, 31), D(2020, 4, 11))]
    assert [ln.treatment for ln in derive_lines(ex, cancer_type="NSCLC")] == [
        "pembrolizumab", "platinum_pemetrexed"]
    # A restart that brings a new drug is a new line even though FOLFOX's drugs come back.
    folfox = [Exposure(d, D(2019, 6, 12), D(2019, 10, 10))
              for d in ("oxaliplatin", "fluorouracil", "leucovorin")]
    restart = [Exposure(d, D(2019, 10, 16), D(2020, 2, 8))
               for d in ("oxaliplatin", "fluorouracil", "leucovorin")]
    lines = derive_lines([*folfox, *restart, Exposure("bevacizumab", D(2019, 10, 18),
                                                      D(2020, 2, 8))], cancer_type="COADREAD")
    assert [(ln.treatment, ln.start) for ln in lines] == [
        ("folfox", D(2019, 6, 12)), ("folfox_bevacizumab", D(2019, 10, 16))]
    # The same drugs resumed after a break stay one line (a treatment holiday).
    assert len(derive_lines([*folfox, *restart], cancer_type="COADREAD")) == 1


def test_a_planned_sequence_is_one_line():
    """AC then paclitaxel (AC-T) completes one catalog regimen: not a switch."""
    ac_t = [Exposure("doxorubicin", D(2021, 2, 1), D(2021, 4, 1)),
            Exposure("cyclophosphamide", D(2021, 2, 1), D(2021, 4, 1)),
            Exposure("paclitaxel", D(2021, 4, 15), D(2021, 7, 1))]
    assert [(ln.treatment, ln.drugs) for ln in derive_lines(ac_t, cancer_type="BRCA")] == [
        ("anthracycline_taxane", ("cyclophosphamide", "doxorubicin", "paclitaxel"))]
    # A drug that completes no regimen with the stopped ones is a new line.
    ac_letrozole = [*ac_t[:2], Exposure("letrozole", D(2021, 4, 15), D(2021, 7, 1))]
    assert len(derive_lines(ac_letrozole, cancer_type="BRCA")) == 2


def test_new_drug_after_progression_starts_a_new_line_even_without_gap():
    ex = [Exposure("pembrolizumab", D(2022, 1, 1), D(2022, 9, 1)),   # still running
          Exposure("carboplatin", D(2022, 6, 1), D(2022, 9, 1)),
          Exposure("pemetrexed", D(2022, 6, 1), D(2022, 12, 1))]
    no_prog = derive_lines(ex, cancer_type="NSCLC")
    assert len(no_prog) == 1 and no_prog[0].drugs == ("pembrolizumab", "carboplatin",
                                                      "pemetrexed")
    lines = derive_lines(ex, progression_dates=[D(2022, 5, 20)], cancer_type="NSCLC")
    assert _summary(lines) == [
        (1, ("pembrolizumab",), D(2022, 1, 1), D(2022, 5, 31), "pembrolizumab"),  # cut at switch
        (2, ("carboplatin", "pemetrexed"), D(2022, 6, 1), D(2022, 12, 1), "platinum_pemetrexed")]
    # A progression recorded before line 1 started does not split anything.
    assert len(derive_lines(ex, progression_dates=[D(2021, 12, 1)], cancer_type="NSCLC")) == 1


def test_same_drug_resumed_after_a_break_continues_the_line():
    ex = [Exposure("osimertinib", D(2020, 1, 1), D(2020, 3, 1)),
          Exposure("osimertinib", D(2020, 12, 1), D(2021, 3, 1))]
    lines = derive_lines(ex, cancer_type="NSCLC")
    assert _summary(lines) == [(1, ("osimertinib",), D(2020, 1, 1), D(2021, 3, 1), "osimertinib")]


def test_missing_end_dates_use_the_start_as_last_activity():
    ex = [Exposure("dacarbazine", D(2019, 1, 1), None),
          Exposure("dabrafenib", D(2019, 4, 15), None),    # 104 days after: new line
          Exposure("trametinib", D(2019, 4, 20), None)]
    lines = derive_lines(ex, cancer_type="MEL")
    assert [(ln.drugs, ln.treatment, ln.end) for ln in lines] == [
        (("dacarbazine",), "dacarbazine", D(2019, 1, 1)),
        (("dabrafenib", "trametinib"), "dabrafenib_trametinib", D(2019, 4, 20))]


def test_no_exposures_and_undated_exposures_give_no_lines():
    assert derive_lines([]) == []
    assert derive_lines([Exposure("osimertinib", None, None)]) == []


def test_regimen_mapping_rules():
    rule = LineRule()
    # partial overlap within the patient's cancer type (Synthea records FOLFOX without 5-FU)
    assert match_treatment(["leucovorin", "oxaliplatin"], "COADREAD", rule) == "folfox"
    # the best overlap wins: FOLFOX + bevacizumab is its own regimen
    assert match_treatment(["oxaliplatin", "fluorouracil", "leucovorin", "bevacizumab"],
                           "COADREAD", rule) == "folfox_bevacizumab"
    # too little overlap: kept unmapped rather than mislabelled
    assert match_treatment(["docetaxel"], "BRCA", rule) is None
    # a regimen of another cancer type is never used
    assert match_treatment(["osimertinib"], "BRCA", rule) is None
    # unknown cancer type: only an exact, unambiguous drug set counts
    assert match_treatment(["dabrafenib", "trametinib"], None, rule) == "dabrafenib_trametinib"
    assert match_treatment(["pembrolizumab"], None, rule) is None   # three regimens
    assert match_treatment(["docetaxel", "leuprolide"], "PRAD", rule) is None


def test_line_rule_from_settings_validates(settings):
    s = settings.replace(sections={"clinical": {"regimen_window_days": 14, "line_gap_days": 60}})
    assert LineRule.from_settings(s) == LineRule(14, 60, 0.5)
    from pipelines.lakehouse.errors import ConfigError

    with pytest.raises(ConfigError, match="regimen_window_days"):
        LineRule.from_settings(settings.replace(sections={"clinical": {"line_gap_days": "x"}}))


@pytest.mark.parametrize("raw, expected", [
    ("2019", D(2019, 1, 1)), ("2019-03", D(2019, 3, 1)), ("2019-03-07", D(2019, 3, 7)),
    ("2016-12-10T02:39:21+00:00", D(2016, 12, 10)), ("2020-02-29", D(2020, 2, 29)),
    ("2019-02-29", None), ("2019-13", None), ("03/07/2019", None), ("", None), (None, None),
])
def test_partial_and_invalid_dates(raw, expected, spark):
    assert parse_date_str(raw) == expected
    from pyspark.sql import functions as F

    from pipelines.clinical.dates import invalid_date, parse_date

    row = spark.createDataFrame([(raw,)], "d string").select(
        parse_date(F.col("d")).alias("p"), invalid_date(F.col("d")).alias("bad")).first()
    assert row["p"] == expected
    assert row["bad"] == (raw not in ("", None) and expected is None)


def test_outcome_labels_on_hand_built_timelines(spark):
    from pipelines.clinical.silver import with_outcomes

    rows = [
        # pid, index, line1 start, line2 start, death, deceased, follow-up
        ("alive", D(2020, 1, 1), D(2020, 1, 1), None, None, False, D(2021, 1, 1)),
        ("died", D(2020, 1, 1), D(2020, 1, 1), None, D(2020, 7, 1), True, D(2021, 6, 1)),
        ("next_line", D(2020, 1, 1), D(2020, 1, 1), D(2020, 4, 1), None, False, D(2021, 1, 1)),
        ("died_before_next", D(2020, 1, 1), D(2020, 1, 1), D(2020, 9, 1), D(2020, 5, 1), True,
         D(2020, 5, 1)),
        ("untreated", D(2020, 1, 1), None, None, None, False, D(2020, 3, 1)),
        ("deceased_no_date", D(2020, 1, 1), D(2020, 1, 1), None, None, True, D(2020, 2, 1)),
    ]
    df = spark.createDataFrame(rows, "pid string, index_date date, first_line_start date, "
                                     "line2_start date, death_date date, deceased boolean, "
                                     "followup_date date")
    out = {r["pid"]: r for r in df.transform(with_outcomes).collect()}
    m = 365.25 / 12
    assert (out["alive"]["os_months"], out["alive"]["os_event"]) == (round(366 / m, 2), 0)
    assert (out["alive"]["ttnt_months"], out["alive"]["ttnt_event"]) == (round(366 / m, 2), 0)
    # death before the recorded follow-up end: follow-up ends at death
    died = out["died"]
    assert (died["os_months"], died["os_event"]) == (round(182 / m, 2), 1)
    assert died["last_followup_date_out"] == D(2020, 7, 1)
    assert (died["ttnt_months"], died["ttnt_event"]) == (round(182 / m, 2), 1)
    nl = out["next_line"]
    assert (nl["ttnt_months"], nl["ttnt_event"], nl["os_event"]) == (round(91 / m, 2), 1, 0)
    dbn = out["died_before_next"]
    assert (dbn["ttnt_months"], dbn["ttnt_event"]) == (round(121 / m, 2), 1)
    un = out["untreated"]
    assert (un["ttnt_months"], un["ttnt_event"], un["os_months"]) == (None, None, round(60 / m, 2))
    dnd = out["deceased_no_date"]
    assert (dnd["os_event"], dnd["os_months"]) == (1, round(31 / m, 2))

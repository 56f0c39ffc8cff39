"""The biomarker rule of build-features on small DataFrames (no JobRun): a sequenced position
decides its own variant, conflicting sources are kept with both values, notes after the index
date never count, and PD-L1 comparators are read as stated."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.features import steps

D = dt.date
FINDINGS = ("patient_key string, note_date date, concept string, value string, "
            "comparator string, context string")


@pytest.fixture(scope="module")
def merged(spark):
    spine = spark.createDataFrame([
        ("seq_wt_note_pos", D(2024, 3, 1)), ("seq_mut_note_neg", D(2024, 3, 1)),
        ("notes_disagree", D(2024, 3, 1)), ("notes_neg", D(2024, 3, 1)),
        ("after_index", D(2024, 3, 1)), ("untreated", None),
        ("tps_below", D(2024, 3, 1)), ("tps_range", D(2024, 3, 1)),
        ("tps_at_least", D(2024, 3, 1)), ("tps_exact", D(2024, 3, 1)),
        ("fhir_vs_note", D(2024, 3, 1)), ("fhir_only", D(2024, 3, 1)),
    ], "patient_key string, index_date date")
    vcf = spark.createDataFrame([
        ("seq_wt_note_pos", False, False), ("seq_mut_note_neg", True, True),
    ], "patient_key string, egfr_l858r boolean, egfr_mut boolean")
    findings = spark.createDataFrame([
        ("seq_wt_note_pos", D(2024, 2, 1), "EGFR L858R", None, None, "affirmed"),
        ("seq_mut_note_neg", D(2024, 2, 1), "EGFR L858R", None, None, "negated"),
        ("notes_disagree", D(2024, 1, 5), "KRAS G12C", None, None, "affirmed"),
        ("notes_disagree", D(2024, 2, 5), "KRAS G12C", None, None, "negated"),
        ("notes_neg", D(2024, 2, 5), "KRAS G12C", None, None, "negated"),
        ("notes_neg", D(2024, 2, 6), "KRAS G12C", None, None, "pending"),
        ("after_index", D(2024, 4, 1), "KRAS G12C", None, None, "affirmed"),
        ("after_index", D(2024, 4, 1), "PD-L1 TPS", "80", None, "affirmed"),
        ("untreated", D(2024, 4, 1), "KRAS G12C", None, None, "affirmed"),
        ("tps_below", D(2024, 2, 1), "PD-L1 TPS", "50", "<", "affirmed"),
        ("tps_range", D(2024, 2, 1), "PD-L1 TPS", "1-49", "range", "affirmed"),
        ("tps_at_least", D(2024, 2, 1), "PD-L1 TPS", "50", ">=", "affirmed"),
        ("tps_exact", D(2024, 2, 1), "PD-L1 TPS", "49", None, "affirmed"),
        ("fhir_vs_note", D(2024, 2, 1), "ER positive", None, None, "negated"),
    ], FINDINGS)
    observations = spark.createDataFrame([
        ("fhir_vs_note", D(2024, 2, 2), "ER positive", None, None, "affirmed"),
        ("fhir_only", D(2024, 2, 2), "ERBB2 amplification", "3", None, "affirmed"),
        ("fhir_only", D(2024, 2, 2), "PD-L1 TPS", "60", None, "affirmed"),
        ("fhir_only", D(2024, 5, 2), "MSI-H", None, None, "affirmed"),  # after the index
    ], "patient_key string, obs_date date, concept string, value string, comparator string, "
       "context string")
    vcf_flags = steps.biomarker_flags_from_vcf(vcf, steps.concept_map())
    out = steps.with_biomarkers(spine, vcf_flags, findings, steps.concept_map(),
                                observations=observations)
    return {r["patient_key"]: r.asDict() for r in out.collect()}


def test_a_sequenced_position_decides_and_the_note_is_a_conflict(merged):
    wt, mut = merged["seq_wt_note_pos"], merged["seq_mut_note_neg"]
    assert wt["egfr_l858r"] is False and mut["egfr_l858r"] is True
    assert wt["biomarker_conflicts"].startswith(
        "egfr_l858r: VCF not detected; note affirmed (kept: VCF)")
    assert "egfr_l858r: VCF detected; note negated (kept: VCF)" in mut["biomarker_conflicts"]
    assert mut["egfr_l858r_source"] == "vcf"


def test_notes_that_disagree_leave_the_biomarker_unknown(merged):
    row = merged["notes_disagree"]
    assert row["kras_g12c"] is None and row["kras_g12c_source"] is None
    assert "kras_g12c: notes both affirm and negate (kept: unknown)" in row[
        "biomarker_conflicts"]
    # a negative and a pending result: the negative stands, no conflict
    assert merged["notes_neg"]["kras_g12c"] is False
    assert merged["notes_neg"]["biomarker_conflicts"] is None


def test_facts_after_the_index_date_never_reach_the_features(merged):
    late = merged["after_index"]
    assert late["kras_g12c"] is None and late["pdl1_tps"] is None and late["pdl1_high"] is None
    # a patient not treated yet is scored as of now: every fact counts
    assert merged["untreated"]["kras_g12c"] is True


@pytest.mark.parametrize("key, tps, high", [
    ("tps_below", None, False), ("tps_range", None, False), ("tps_at_least", None, True),
    ("tps_exact", 49.0, False)])
def test_pdl1_comparators_are_read_as_stated(merged, key, tps, high):
    assert (merged[key]["pdl1_tps"], merged[key]["pdl1_high"]) == (tps, high)


def test_fhir_observations_are_the_third_source(merged):
    both, fhir = merged["fhir_vs_note"], merged["fhir_only"]
    assert both["er_pos"] is None
    assert both["biomarker_conflicts"] == (
        "er_pos: FHIR Observation affirmed; note negated (kept: unknown)")
    assert fhir["erbb2_amp"] is True and fhir["erbb2_amp_source"] == "fhir"
    assert fhir["pdl1_tps"] == 60.0 and fhir["pdl1_high"] is True
    assert fhir["msi_h"] is None   # dated after the index date

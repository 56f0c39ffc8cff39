"""build-features on tiny silver tables: notes-only biomarkers with their source, affirmed-only
findings, absent inputs as nulls, quarantined duplicates, reconciled counts, idempotent re-run,
and a documented column for every feature."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import types as T

from pipelines.features.dictionary import FEATURES_MD, describe, render_markdown
from pipelines.features.stage import build_features
from pipelines.lakehouse import delta
from pipelines.lakehouse.privacy import pseudonymise

D = dt.date
# patient keys look like the pipeline's (HMAC pseudonyms): the gold suite stops on anything else
PA, PB, PC, PX, PY = (pseudonymise(f"PT{i}", b"test-key") for i in range(5))


def _write(spark, settings, name, rows, schema):
    df = spark.createDataFrame(rows, schema)
    delta.write_table(spark, df, settings.table("silver", name), mode="overwrite")


PATIENTS = T.StructType([
    T.StructField("patient_key", T.StringType()), T.StructField("sex", T.StringType()),
    T.StructField("birth_year", T.IntegerType()), T.StructField("age_at_diagnosis", T.DoubleType()),
    T.StructField("cancer_type", T.StringType()), T.StructField("stage", T.StringType()),
    T.StructField("diagnosis_date", T.DateType()), T.StructField("index_date", T.DateType()),
    T.StructField("ecog", T.IntegerType()), T.StructField("source", T.StringType()),
])
OUTCOMES = ("patient_key string, index_date date, os_months double, os_event int, "
            "ttnt_months double, ttnt_event int, last_followup_date date, death_date date, "
            "first_line_treatment string")
FINDINGS = ("finding_id string, patient_key string, note_id string, note_type string, "
            "note_date date, concept string, category string, value string, context string")


def _silver(spark, settings, with_notes=True):
    _write(spark, settings, "patients", [
        (PA, "F", 1960, 63.0, "NSCLC", "IVB", D(2023, 1, 5), D(2023, 2, 1), None, "csv"),
        (PB, "F", 1970, 53.0, "BRCA", "III", D(2023, 3, 1), D(2023, 3, 20), 1, "csv"),
        # an older registration of pB: quarantined, the latest diagnosis is kept
        (PB, "F", 1970, 52.0, "BRCA", "II", D(2022, 3, 1), None, 0, "fhir"),
        (None, "M", 1950, 73.0, "MEL", "IV", D(2023, 1, 1), None, 2, "csv"),
        (PC, "M", 1950, 73.0, "MEL", "IV", D(2023, 4, 1), D(2023, 4, 10), None, "csv"),
    ], PATIENTS)
    _write(spark, settings, "outcomes", [
        (PA, D(2023, 2, 1), 10.5, 1, 6.0, 1, None, D(2023, 12, 15), "osimertinib"),
        (PB, D(2023, 3, 20), 20.0, 0, 20.0, 0, D(2024, 11, 20), None, None),
    ], OUTCOMES)
    _write(spark, settings, "treatment_lines", [
        (PB, 1, "trastuzumab_pertuzumab_docetaxel", ["trastuzumab"], D(2023, 3, 20), None),
        (PB, 0, None, ["letrozole"], D(2022, 4, 1), D(2022, 12, 1)),
    ], "patient_key string, line_number int, treatment string, drugs array<string>, "
       "start_date date, end_date date")
    _write(spark, settings, "biomarkers", [
        (PA, 12.0, True, False, False, False, False, True),
        (PB, 3.0, False, False, False, False, True, False),
    ], "patient_key string, tmb double, tmb_high boolean, egfr_l858r boolean, egfr_mut boolean, "
       "kras_mut boolean, erbb2_amp boolean, stk11_mut boolean")
    _write(spark, settings, "actionable_alterations", [
        (PB, "ERBB2", "amplification", "BRCA", "trastuzumab", "trastuzumab_pertuzumab_docetaxel",
         "A", "sensitivity", True, "FDA label", "civic-2024-08", 0.4),
    ], "patient_key string, gene string, alteration string, disease string, therapy string, "
       "regimen string, evidence_level string, direction string, on_label boolean, "
       "citation string, kb_version string, vaf double")
    _write(spark, settings, "comorbidities", [
        (PA, D(2023, 2, 1), True, False, 2, 5.0, False),
    ], "patient_key string, index_date date, cci_chf boolean, cci_rend boolean, "
       "charlson_index int, elixhauser_vw double, ci_renal boolean")
    if with_notes:
        _write(spark, settings, "note_findings", [
            ("f1", PA, "n1", "pathology", D(2023, 1, 20), "EGFR L858R", "biomarker", None,
             "affirmed"),
            ("f2", PA, "n1", "pathology", D(2023, 1, 20), "PD-L1 TPS", "biomarker", "60%",
             "affirmed"),
            ("f3", PA, "n2", "imaging", D(2023, 1, 25), "brain metastasis", "site", None,
             "negated"),
            ("f4", PA, "n3", "progress", D(2023, 1, 10), "ECOG", "performance_status", "2",
             "affirmed"),
            ("f5", PA, "n4", "progress", D(2023, 1, 30), "ECOG", "performance_status", "1",
             "affirmed"),
            ("f6", PB, "n5", "pathology", D(2023, 3, 2), "ERBB2 amplification", "biomarker",
             None, "affirmed"),
            ("f7", PB, "n6", "progress", D(2023, 3, 5), "current smoker", "smoking", None,
             "hypothetical"),
            ("f8", PB, "n6", "progress", D(2023, 3, 5), "former smoker", "smoking", None,
             "affirmed"),
            ("f9", PC, "n7", "progress", D(2023, 4, 5), "BRAF V600E", "biomarker", None,
             "family"),
            ("f10", PC, "n7", "progress", D(2023, 4, 5), "liver metastasis", "site", None,
             "affirmed"),
            ("f11", PC, "n7", "progress", D(2023, 4, 5), "EGFR L858R", "biomarker", None,
             "affirmed"),
            # after pC's index date (10 Apr): never a feature
            ("f12", PC, "n8", "progress", D(2023, 6, 1), "KRAS G12C", "biomarker", None,
             "affirmed"),
            ("f13", PC, "n8", "progress", D(2023, 6, 1), "brain metastasis", "site", None,
             "affirmed"),
            # a pending result sets nothing
            ("f14", PC, "n7", "progress", D(2023, 4, 5), "BRAF V600E", "biomarker", None,
             "pending"),
        ], FINDINGS)


def _rows(spark, settings):
    df = delta.read_table(spark, settings.table("gold", "patient_features"))
    return {r["patient_key"]: r.asDict() for r in df.collect()}, df


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """One lakehouse with every silver input, built once for the tests of this module."""
    from pipelines.lakehouse.settings import Settings

    settings = Settings(lakehouse=tmp_path_factory.mktemp("features") / "lakehouse",
                        shuffle_partitions=2, spark_master="local[2]")
    _silver(spark, settings)
    run = build_features(spark, settings)
    rows, df = _rows(spark, settings)
    return settings, run, rows, df


def test_features_merge_sources_and_keep_only_affirmed_findings(spark, built):
    settings, run, rows, _ = built
    assert (run.rows_in, run.rows_written, run.rows_quarantined) == (5, 3, 2)
    a, b, c = rows[PA], rows[PB], rows[PC]
    # EGFR L858R only in the notes of an unsequenced tumour: reaches the features, with its
    # source; in pA's notes while the VCF covered the position and found nothing: the VCF
    # decides and the conflict is kept with both sources
    assert c["egfr_l858r"] is True and c["egfr_l858r_source"] == "notes"
    assert a["egfr_l858r"] is False and a["egfr_l858r_source"] is None
    assert "egfr_l858r: VCF not detected; note affirmed (kept: VCF)" in a["biomarker_conflicts"]
    assert b["biomarker_conflicts"] is None
    # time zero: a KRAS G12C and a brain metastasis noted after the index date are not used
    assert c["kras_g12c"] is None and c["met_brain"] is None
    # ERBB2 in both the VCF and a note
    assert b["erbb2_amp"] is True and b["erbb2_amp_source"] == "vcf+notes"
    # sequenced, nothing found → false (not unknown); no source
    assert b["egfr_mut"] is False and b["egfr_mut_source"] is None
    # pC has no sequencing: markers stay unknown; the family-history and pending BRAF are
    # ignored
    assert c["kras_mut"] is None and c["braf_v600e"] is None and c["braf_v600e_source"] is None
    # a negated brain metastasis is a known absence; an affirmed liver one is present;
    # silence in the notes is unknown
    assert a["met_brain"] is False and c["met_liver"] is True and c["met_liver_source"] == "notes"
    assert a["pdl1_tps"] == 60.0 and a["pdl1_high"] is True and b["pdl1_high"] is None
    # ECOG: structured wins (pB); otherwise the latest affirmed note (pA: 1 on 30 Jan, not 2)
    assert (a["ecog"], a["ecog_source"]) == (1.0, "notes")
    assert (b["ecog"], b["ecog_source"]) == (1.0, "structured")
    # smoking: the hypothetical "current smoker" does not count
    assert (b["smoking_status"], b["smoking_source"]) == ("former", "notes")
    # treatment: outcomes first, else line 1; prior lines before the index date
    assert a["treatment"] == "osimertinib" and b["treatment"] == "trastuzumab_pertuzumab_docetaxel"
    assert b["n_prior_lines"] == 1.0 and a["n_prior_lines"] == 0.0
    assert c["treatment"] is None and c["os_months"] is None
    assert a["stage_num"] == 4.0 and b["stage"] == "III"
    assert a["tmb"] == 12.0 and a["tmb_high"] is True and a["tmb_high_source"] == "vcf"
    # knowledge base matches per regimen; sequenced tumour without a match = false
    assert b["kb_sensitive_trastuzumab_pertuzumab_docetaxel"] is True
    assert a["kb_sensitive_trastuzumab_pertuzumab_docetaxel"] is False
    assert c["kb_sensitive_osimertinib"] is None and b["n_actionable_sensitive"] == 1.0
    # comorbidities and pass-through gene flags
    assert a["charlson_index"] == 2.0 and a["cci_chf"] is True and b["charlson_index"] is None
    assert b["stk11_mut"] is False and a["stk11_mut"] is True and a["stk11_mut_source"] == "vcf"
    assert a["index_date"] == D(2023, 2, 1) and c["index_date"] == D(2023, 4, 10)
    q = delta.read_table(spark, settings.table("gold", "quarantine_patient_features"))
    assert sorted(r["rule"] for r in q.collect()) == ["one_row_per_patient",
                                                       "patient_key_not_null"]


def test_every_feature_column_is_documented(built):
    _, _, _, df = built
    passthrough = {"stk11_mut"}  # gene flags the VCF stage adds are covered by "<gene flag>"
    undocumented = [c for c in df.columns if describe(c) is None and c not in passthrough]
    assert undocumented == []
    comment = df.schema["egfr_mut"].metadata.get("comment", "")
    assert "EGFR" in comment and "silver.biomarkers" in comment


@pytest.mark.slow  # a whole re-run of build-features (about 40 s), like the other re-runs
def test_features_rerun_leaves_table_unchanged(spark, built):
    settings, _, _, first = built
    before = sorted(map(str, first.collect()))
    run = build_features(spark, settings)
    _, second = _rows(spark, settings)
    assert sorted(map(str, second.collect())) == before
    assert run.status == "succeeded" and run.rows_written == 3


@pytest.mark.slow  # two whole build-features runs (about 40 s), like the other re-runs
def test_features_with_absent_inputs_then_a_new_input(spark, settings):
    """Only genomics ingested: the spine comes from silver.biomarkers, the rest is typed null;
    when the comorbidity table appears, the table is rewritten with its columns."""
    _write(spark, settings, "biomarkers", [(PX, 4.0, True), (PY, None, False)],
           "patient_key string, tmb double, egfr_mut boolean")
    run = build_features(spark, settings)
    assert run.rows_written == 2
    rows, df = _rows(spark, settings)
    assert rows[PX]["egfr_mut"] is True and rows[PX]["egfr_mut_source"] == "vcf"
    assert rows[PX]["cancer_type"] is None and rows[PX]["os_months"] is None
    assert rows[PX]["pdl1_tps"] is None and rows[PY]["met_brain"] is None
    types = dict(df.dtypes)
    assert types["os_months"] == "double" and types["charlson_index"] == "double"
    assert types["kb_sensitive_osimertinib"] == "boolean"
    _write(spark, settings, "comorbidities", [(PX, D(2023, 2, 1), True, 3)],
           "patient_key string, index_date date, elix_chf boolean, charlson_index int")
    build_features(spark, settings)
    rows, df = _rows(spark, settings)
    assert rows[PX]["elix_chf"] is True and rows[PX]["charlson_index"] == 3.0


def test_no_silver_input_builds_nothing(spark, settings):
    run = build_features(spark, settings)
    assert (run.rows_in, run.rows_written) == (0, 0)
    assert not delta.table_exists(spark, settings.table("gold", "patient_features"))


def test_features_md_is_rendered_from_the_dictionary():
    assert FEATURES_MD.read_text(encoding="utf-8") == render_markdown(), (
        "FEATURES.md is stale: run `python -m pipelines.features.dictionary`")


@pytest.mark.parametrize("stage,num", [("IIIB", 3.0), ("IV", 4.0), ("I", 1.0), ("x", None)])
def test_stage_number(spark, stage, num):
    from pipelines.features.steps import with_stage_number

    df = spark.createDataFrame([(stage,), (None,)], "stage string")
    got = [r["stage_num"] for r in df.transform(with_stage_number).collect()]
    assert got == [num, None]


def test_metastatic_sites_also_come_from_codes_dated_by_the_index(spark):
    """A coded metastasis (dots or not) on or before the index date sets the site flag; a code
    after the index date is not known at time zero; codes never make a flag false."""
    from pipelines.features.steps import with_metastases_from_codes

    d = dt.date
    df = spark.createDataFrame(
        [("a", d(2021, 3, 1), None, None, None, None, None, None),
         ("b", d(2021, 3, 1), True, "notes", None, None, False, None),
         ("c", d(2021, 3, 1), None, None, None, None, None, None),
         ("d", d(2021, 3, 1), None, None, None, None, None, None)],
        "patient_key string, index_date date, met_brain boolean, met_brain_source string, "
        "met_liver boolean, met_liver_source string, met_bone boolean, met_bone_source string")
    dx = spark.createDataFrame(
        [("a", "C79.31", d(2021, 2, 1)), ("a", "C787", d(2021, 3, 1)),
         ("b", "C79.31", d(2021, 1, 5)), ("c", "C79.51", d(2021, 3, 2)),
         ("d", "I10", d(2020, 1, 1)), ("d", "C7952", None)],
        "patient_key string, code string, onset_date date")
    got = {r.patient_key: r for r in with_metastases_from_codes(df, dx).collect()}
    assert (got["a"].met_brain, got["a"].met_brain_source) == (True, "codes")
    assert (got["a"].met_liver, got["a"].met_liver_source) == (True, "codes")
    assert got["a"].met_bone is None
    assert (got["b"].met_brain, got["b"].met_brain_source) == (True, "notes+codes")
    assert got["b"].met_bone is False                        # a note's negation stands
    assert got["c"].met_bone is None                          # coded after the index date
    assert (got["d"].met_bone, got["d"].met_bone_source) == (True, "codes")   # undated code
    assert with_metastases_from_codes(df, None).collect() == df.collect()

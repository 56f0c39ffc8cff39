"""Table and column comments: the registry covers the contracts, Delta keeps what writers pass."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.lakehouse import delta
from pipelines.lakehouse.comments import (
    column_comments,
    comments_for,
    table_comment,
    tables,
)
from pipelines.lakehouse.settings import SCHEMAS

# The table contracts of the product brief: the columns other components rely on.
CONTRACTS = {
    "bronze.notes_raw": "note_id patient_id note_type note_date text source_file",
    "silver.notes_deid": "note_id patient_key note_type note_date text_deid",
    "silver.note_findings": ("finding_id patient_key note_id note_type note_date concept "
                             "category value context section start end snippet"),
    "silver.patients": ("patient_key sex age_at_diagnosis zip3 cancer_type stage "
                        "diagnosis_date index_date ecog source"),
    "restricted.patient_identity": "patient_key source_patient_id name mrn birth_date source",
    "silver.diagnoses": "patient_key code code_system onset_date",
    "silver.treatment_lines": "patient_key line_number treatment drugs start_date end_date",
    "silver.outcomes": ("patient_key index_date os_months os_event ttnt_months ttnt_event "
                        "last_followup_date death_date first_line_treatment"),
    "silver.comorbidities": "patient_key index_date charlson_index elixhauser_vw",
    "silver.variants": ("variant_key patient_key sample chrom pos ref alt filter gt vaf dp gene "
                        "consequence hgvsc hgvsp transcript source_file"),
    "silver.biomarkers": "patient_key tmb",
    "silver.actionable_alterations": ("patient_key gene alteration disease therapy regimen "
                                      "evidence_level direction on_label citation kb_version vaf"),
    "gold.patient_features": "patient_key index_date cancer_type treatment os_months os_event",
    "gold.treatment_rankings": (
        "patient_key treatment rank predicted_rmst rmst_lower rmst_upper surv_12 surv_12_lower "
        "surv_12_upper surv_24 surv_24_lower surv_24_upper benefit_vs_soc evidence_level "
        "evidence_citation contraindications overlap_warning model_name model_version "
        "mlflow_run_id scored_at board_date"),
    "ops.job_runs": ("run_id parent_run_id job started_at ended_at status rows_in rows_written "
                     "rows_quarantined tables_read tables_written git_sha config_hash"),
}


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_every_contract_column_has_a_comment(table):
    assert len(table_comment(table) or "") > 20
    comments = column_comments(table)
    missing = set(CONTRACTS[table].split()) - set(comments)
    assert not missing, f"{table}: no comment for {sorted(missing)}"
    assert all(len(text) > 5 for text in comments.values())


def test_registry_keys_name_real_schemas():
    for key, entry in tables().items():
        schema, _, name = key.partition(".")
        assert schema in SCHEMAS and name, key
        assert len(entry["comment"]) > 20, key
        assert set(entry) <= {"comment", "columns", "prefixes", "columns_from"}, key


def test_identifier_columns_say_so_and_pseudonyms_say_how():
    for column in ("source_patient_id", "name", "mrn", "birth_date"):
        assert "identifier" in column_comments("restricted.patient_identity")[column]
    assert "HMAC" in column_comments("silver.patients")["patient_key"]
    assert table_comment("restricted.patient_identity").startswith("RESTRICTED")


def test_column_families_are_described_by_prefix():
    comments = column_comments("silver.comorbidities",
                               ["patient_key", "cci_chf", "elix_renal_failure", "ci_pneumonitis",
                                "unlisted"])
    assert comments["cci_chf"].startswith("Charlson") and comments["cci_chf"].endswith("chf")
    assert comments["elix_renal_failure"].endswith("renal failure")
    assert comments["ci_pneumonitis"].startswith("Contraindication")
    assert "unlisted" not in comments


def test_quarantine_tables_share_one_description():
    from pipelines.lakehouse.audit import QUARANTINE_SCHEMA

    assert "silver.variants" in table_comment("silver.quarantine_variants")
    assert set(column_comments("bronze.quarantine_notes_raw")) == set(QUARANTINE_SCHEMA.names)


def test_a_table_written_with_the_registry_shows_them_in_describe(spark, settings):
    ref = settings.table("silver", "outcomes")
    rows = [("a" * 20, dt.date(2021, 3, 1), 14.5, 1), ("b" * 20, dt.date(2022, 6, 1), 30.0, 0)]
    df = spark.createDataFrame(rows, "patient_key string, index_date date, os_months double, "
                                     "os_event int")
    delta.write_table(spark, df, ref, keys=["patient_key"], **comments_for(ref, df.columns))

    described = {r["col_name"]: r["comment"]
                 for r in spark.sql(f"DESCRIBE TABLE delta.`{ref.path}`").collect()}
    for column in df.columns:
        assert described[column] == column_comments(ref)[column]
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{ref.path}`").first()
    assert detail["description"] == table_comment(ref)

    # A later merge keeps them (the comments live in the Delta schema, not in the writer).
    delta.write_table(spark, df.limit(1), ref, keys=["patient_key"])
    again = {r["col_name"]: r["comment"]
             for r in spark.sql(f"DESCRIBE TABLE delta.`{ref.path}`").collect()}
    assert again["os_months"] == column_comments(ref)["os_months"]

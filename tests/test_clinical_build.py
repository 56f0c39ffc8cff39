"""The pure builder of ingest-clinical (``build_clinical_silver``) on small frames, without a
JobRun or a table: what each silver table would hold, which records are rejected and where
they would go. The stage's I/O around it is tested in tests/test_clinical_ingest.py."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipelines.clinical import csv_input
from pipelines.clinical.stage import build_clinical_silver
from pipelines.clinical.therapy_lines import LineRule
from pipelines.lakehouse.privacy import patient_shift_days, pseudonymise

KEY = b"build-test-key"
CSV = {
    "patients.csv": (
        "patient_id,name,mrn,birth_date,sex,cancer_type,stage,ecog,diagnosis_date,"
        "smoking_status\n"
        "P1,Ann A,M1,1950-01-01,F,NSCLC,,1,2020-01-01,never\n"     # no stage: the note has it
        "P2,Bob B,M2,1960-01-01,M,BRCA,II,0,2021-01-01,former\n"
        "P3,too,few\n"                                              # malformed
    ),
    "diagnoses.csv": (
        "patient_id,code,code_system,onset_date\n"
        "P1,C34.90,ICD-10-CM,2020-01-01\n"
        "P9,C50.9,ICD-10-CM,2020-01-01\n"                           # unknown patient
    ),
    "treatments.csv": (
        "patient_id,drug,rxcui,start_date,end_date\n"
        "P1,carboplatin,,2020-01-10,2020-04-01\n"
        "P1,pemetrexed,,2020-01-10,2020-04-01\n"
    ),
    "outcomes.csv": (
        "patient_id,death_date,last_followup_date\n"
        "P1,2019-12-01,\n"                                          # died before index
        "P2,,2022-01-01\n"
    ),
}


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("build-csv")
    for name, text in CSV.items():
        (folder / name).write_text(text)
    cbr = {}
    for table, path in csv_input.csv_files(str(folder)).items():
        rows = csv_input.read_csv_table(spark, table, path)
        cbr[table] = rows.where(F.col(csv_input.CORRUPT).isNull()).select(
            *csv_input.bronze_columns(table))
    k1 = pseudonymise("P1", KEY)
    shifted = dt.date(2020, 1, 5) + dt.timedelta(days=patient_shift_days(k1, KEY))
    findings = spark.createDataFrame(
        [("f1", k1, "n1", shifted, "stage", "stage", "IIIB", "affirmed", 0)],
        "finding_id string, patient_key string, note_id string, note_date date, "
        "concept string, category string, value string, context string, start int")
    return build_clinical_silver(spark, None, cbr, LineRule(), KEY, findings)


def test_patients_stage_and_its_source(built):
    rows = {r["pid"]: r for r in built.patients.collect()}
    assert set(rows) == {"P1", "P2"}
    assert (rows["P1"]["_stage"], rows["P1"]["stage_source"]) == ("III", "note")
    assert (rows["P2"]["_stage"], rows["P2"]["stage_source"]) == ("II", "csv")
    assert rows["P1"]["index_date"] == dt.date(2020, 1, 10)     # first line, source calendar


def test_lines_and_outcomes(built):
    lines = [(r["pid"], r["line_number"], r["treatment"]) for r in built.lines.collect()]
    assert [(p, n) for p, n, _ in lines] == [("P1", 1)]
    assert {r["pid"] for r in built.outcomes.collect()} == {"P2"}
    bad = built.outcome_rejects.collect()
    assert [(r["patient_key"], r["_rule"]) for r in bad] == [
        (pseudonymise("P1", KEY), "death_before_index")]


def test_rejects_name_their_target_and_reason(built):
    got = {(r.schema, r.table, row["_rule"])
           for r in built.rejects for row in r.parsed.where(F.col("_rule").isNotNull())
           .select("_rule").collect()}
    assert ("silver", "diagnoses", "unknown_subject") in got
    assert all(schema in ("silver", "restricted") for schema, _, _ in got)
    assert built.biomarker_observations is None                 # no FHIR input

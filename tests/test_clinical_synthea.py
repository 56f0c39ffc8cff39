"""ingest-clinical + comorbidities on the real Synthea R4 bundles in shared/data/fhir.

Expected values are read from the bundle JSON with plain Python here (an independent parse),
not typed in: counts per resource type, demographics, death dates, onset and medication dates.
"""

from __future__ import annotations

import collections
import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from pipelines.lakehouse.delta import read_table
from pipelines.lakehouse.privacy import patient_shift_days, pseudonymise
from pipelines.lakehouse.settings import Inputs, Settings

KEY = Settings().pseudonym_key  # the suite's key (tests/conftest.py)


def shift(patient_key: str) -> dt.timedelta:
    """The patient's date shift: every analyst date is the source date moved by it."""
    return dt.timedelta(days=patient_shift_days(patient_key, KEY))

M = 365.25 / 12


def _date(s: str) -> dt.date:
    return dt.date.fromisoformat(s[:10])


@pytest.fixture(scope="module")
def synthea(spark, shared_data, tmp_path_factory):
    from pipelines.clinical.stage import compute_comorbidities, ingest_clinical

    folder = shared_data / "fhir"
    settings = Settings(lakehouse=tmp_path_factory.mktemp("synthea") / "lakehouse",
                        shuffle_partitions=2, spark_master="local[2]",
                        inputs=Inputs(fhir=str(folder)))
    run = ingest_clinical(spark, settings)
    crun = compute_comorbidities(spark, settings)
    patients = {}
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text())
        res = [e["resource"] for e in bundle["entry"]]
        patient = next(r for r in res if r["resourceType"] == "Patient")
        patients[patient["id"]] = {
            "patient": patient, "types": collections.Counter(r["resourceType"] for r in res),
            "conditions": [r for r in res if r["resourceType"] == "Condition"],
            "meds": [r for r in res if r["resourceType"] == "MedicationRequest"],
        }
    return settings, run, crun, patients


def _by_key(spark, settings, schema, name):
    return {r["patient_key"]: r for r in read_table(spark, settings.table(schema, name)).collect()}


def _with_condition(patients, snomed):
    return [pid for pid, p in patients.items()
            if any(c["code"] == snomed for cond in p["conditions"]
                   for c in cond["code"]["coding"])]


def test_every_resource_lands_in_bronze(spark, synthea):
    settings, run, _, patients = synthea
    expected = sum((p["types"] for p in patients.values()), collections.Counter())
    assert (run.rows_in, run.rows_written, run.rows_quarantined) == (
        sum(expected.values()), sum(expected.values()), 0)
    got = {r["resource_type"]: r["count"] for r in read_table(
        spark, settings.table("bronze", "fhir_resources")).groupBy("resource_type").count()
        .collect()}
    assert got == dict(expected)


def test_demographics_identity_and_deaths(spark, synthea):
    settings, _, _, patients = synthea
    key = settings.pseudonym_key
    silver = _by_key(spark, settings, "silver", "patients")
    identity = _by_key(spark, settings, "restricted", "patient_identity")
    outcomes = _by_key(spark, settings, "silver", "outcomes")
    assert set(silver) == {pseudonymise(pid, key) for pid in patients}
    for pid, p in patients.items():
        k, res = pseudonymise(pid, key), p["patient"]
        assert silver[k]["sex"] == res["gender"]
        assert "birth_year" not in silver[k]
        assert identity[k]["birth_date"] == _date(res["birthDate"])
        assert identity[k]["source_patient_id"] == pid
        official = next(n for n in res["name"] if n.get("use") == "official")
        assert identity[k]["name"] == " ".join(official["given"] + [official["family"]])
        mrn = next(i["value"] for i in res["identifier"]
                   if any(c.get("code") == "MR" for c in i.get("type", {}).get("coding", [])))
        assert identity[k]["mrn"] == mrn
        if k in outcomes and "deceasedDateTime" in res:
            assert outcomes[k]["death_date"] == _date(res["deceasedDateTime"]) + shift(k)
            assert outcomes[k]["os_event"] == 1


def test_snomed_conditions_are_kept_and_all_mapped(spark, synthea):
    settings, _, _, patients = synthea
    diagnoses = read_table(spark, settings.table("silver", "diagnoses"))
    codings = [c["code"] for p in patients.values() for cond in p["conditions"]
               for c in cond["code"]["coding"]]
    snomed = diagnoses.where(F.col("code_system") == "SNOMED-CT")
    assert snomed.count() == len(codings)
    mapped = {r["mapped_from"] for r in diagnoses.where(F.col("mapped_from").isNotNull())
              .select("mapped_from").distinct().collect()}
    assert mapped == set(codings), "a Synthea SNOMED code lacks an ICD-10-CM mapping"


def test_colorectal_patient_with_folfox(spark, synthea):
    settings, _, _, patients = synthea
    key = settings.pseudonym_key
    (pid,) = _with_condition(patients, "363406005")          # malignant tumour of colon
    p = patients[pid]
    onset = min(_date(c["onsetDateTime"]) for c in p["conditions"]
                if c["code"]["coding"][0]["code"] == "363406005")
    chemo = [m for m in p["meds"] if "oxaliplatin" in m["medicationCodeableConcept"]
             ["coding"][0]["display"].lower()]
    start = min(_date(m["authoredOn"]) for m in chemo)
    k = pseudonymise(pid, key)
    patient = _by_key(spark, settings, "silver", "patients")[k]
    assert (patient["cancer_type"], patient["diagnosis_date"], patient["index_date"]) == (
        "COADREAD", onset + shift(k), start + shift(k))   # dates as analysts see them
    line = read_table(spark, settings.table("silver", "treatment_lines")).where(
        (F.col("patient_key") == k) & (F.col("line_number") == 1)).first()
    assert (line["treatment"], sorted(line["drugs"])) == ("folfox", ["leucovorin", "oxaliplatin"])
    death = _date(p["patient"]["deceasedDateTime"])
    outcome = _by_key(spark, settings, "silver", "outcomes")[k]
    assert (outcome["os_months"], outcome["first_line_treatment"]) == (
        round((death - start).days / M, 2), "folfox")


def test_metastatic_stage_and_comorbidity_window(spark, synthea):
    settings, _, crun, patients = synthea
    key = settings.pseudonym_key
    silver = _by_key(spark, settings, "silver", "patients")
    comorb = _by_key(spark, settings, "silver", "comorbidities")
    assert crun.rows_written == len(patients)
    (meta,) = _with_condition(patients, "94260004")          # secondary neoplasm of colon
    mk = pseudonymise(meta, key)
    assert silver[mk]["stage"] == "IV"                        # C78.5 dated before index
    assert (comorb[mk]["cci_metacanc"], comorb[mk]["cci_canc"]) == (1, 0)
    (chf,) = _with_condition(patients, "88805009")           # chronic CHF, decades after index
    ck = pseudonymise(chf, key)
    chf_onset = min(_date(c["onsetDateTime"]) for c in patients[chf]["conditions"]
                    if c["code"]["coding"][0]["code"] == "88805009")
    assert silver[ck]["index_date"] < chf_onset + shift(ck)
    assert (comorb[ck]["cci_chf"], comorb[ck]["ci_chf"]) == (0, 1)

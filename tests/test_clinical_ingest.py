"""ingest-clinical + comorbidities on small, deliberately messy FHIR NDJSON and CSV inputs.

One ingestion (both inputs configured) is shared by the tests of this module; each test reads
the tables it checks. Expected values come from the fixture timelines written below.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from pipelines.lakehouse.delta import read_table, table_exists, write_table
from pipelines.lakehouse.privacy import patient_shift_days, pseudonymise
from pipelines.lakehouse.settings import Inputs, Settings

D = dt.date
M = 365.25 / 12

PA, PB, PC = "fhir-pat-0001", "fhir-pat-0002", "fhir-pat-0003"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"


def _patient(pid, **extra):
    return {"resourceType": "Patient", "id": pid, **extra}


def _fhir_lines() -> dict[str, list[str]]:
    ref_a = {"reference": f"Patient/{PA}"}
    ref_b = {"reference": f"https://ehr.example.org/fhir/Patient/{PB}/_history/3"}
    patients = [
        json.dumps(_patient(
            PA, gender="female", birthDate="1960-05-17", deceasedDateTime="2021-03-01T10:00:00Z",
            name=[{"use": "usual", "given": ["Annie"]},
                  {"use": "official", "family": "Alpha", "given": ["Ann"]}],
            identifier=[{"system": "urn:ssn", "value": "000-00-0000"},
                        {"type": {"coding": [{"code": "MR"}]}, "value": "MRN-A-17"}],
            extension=[{"url": US_CORE_RACE, "extension": [{"url": "text", "valueString": "x"}]}],
            address=[{"use": "work", "postalCode": "10001"},
                     {"use": "home", "postalCode": "02139-4307", "country": "US"}],
        )),
        "",  # blank lines are not records
        json.dumps(_patient(PB, gender="male", birthDate="1950",
                            name=[{"text": "Bob Beta"}], address=[{"postalCode": "05901"}])),
        json.dumps(_patient(PC, gender="female", birthDate="1970-01-01",
                            deceasedDateTime="1969-01-01")),          # death before birth
        json.dumps(_patient(PA, gender="female", birthDate="1960-05-17")),  # duplicate
        '{"resourceType": "Patient", "id": "broken"',                  # truncated JSON
        "[1, 2]",                                                      # not an object
    ]
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    sct = "http://snomed.info/sct"

    def cond(cid, subject, codings, onset, **extra):
        r = {"resourceType": "Condition", "id": cid, "code": {"coding": codings},
             "onsetDateTime": onset, **extra}
        if subject is not None:
            r["subject"] = subject
        return json.dumps(r)

    conditions = [
        cond("c1", ref_a, [{"system": icd, "code": "C34.11"},
                           {"system": sct, "code": "254637007"}], "2020-01-10",
             clinicalStatus={"coding": [{"code": "active"}]}),
        cond("c2", ref_a, [{"system": icd, "code": "N18.4"}], "2019-06"),      # partial date
        cond("c3", ref_a, [{"system": icd, "code": "I50.9"}], "2021-01-01"),  # after index
        cond("c4", ref_b, [{"system": icd, "code": "C18.7"}], "2018-03"),
        cond("c5", None, [{"system": icd, "code": "E11.9"}], "2018-01-01"),   # no subject
        cond("c6", {"reference": f"Patient/{PC}"}, [{"system": icd, "code": "I10"}], "2000"),
        cond("c7", ref_b, [{"system": icd, "code": "I10"}], "2019-02-30"),    # impossible date
    ]
    rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    meds = [
        json.dumps({"resourceType": "MedicationRequest", "id": "m1", "status": "completed",
                    "subject": ref_a, "authoredOn": "2020-01-28",
                    "medicationCodeableConcept": {"coding": [{"system": rx, "code": "40048"}]},
                    "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {
                        "start": "2020-02-01", "end": "2020-05-01"}}}}]}),
        json.dumps({"resourceType": "MedicationRequest", "id": "m2", "status": "active",
                    "subject": ref_a, "authoredOn": "2020-02-01",
                    "medicationCodeableConcept": {"coding": [{"system": rx, "code": "68446",
                                                              "display": "pemetrexed"}]}}),
        json.dumps({"resourceType": "MedicationRequest", "id": "m3", "status": "active",
                    "subject": ref_a, "authoredOn": "2020-01-01",
                    "medicationCodeableConcept": {"text": "Atorvastatin 80 MG Oral Tablet"}}),
        json.dumps({"resourceType": "MedicationRequest", "id": "m4", "status": "active",
                    "subject": ref_b,
                    "medicationCodeableConcept": {"text": "capecitabine 500 MG"}}),  # no date
    ]
    admins = [
        json.dumps({"resourceType": "MedicationAdministration", "id": "a1",
                    "status": "completed", "subject": ref_a,
                    "effectiveDateTime": "2020-07-15T09:00:00+02:00",
                    "medicationCodeableConcept": {"text": "Osimertinib 80 MG Oral Tablet"}}),
    ]
    loinc = "http://loinc.org"

    def obs(oid, subject, code, when, status="final", **value):
        return json.dumps({"resourceType": "Observation", "id": oid, "status": status,
                           "subject": subject, "effectiveDateTime": when,
                           "code": {"coding": [{"system": loinc, "code": code}]}, **value})

    sct = "http://snomed.info/sct"

    observations = [
        obs("o1", ref_a, "89247-1", "2020-01-20", valueInteger=1),
        obs("o2", ref_a, "89247-1", "2020-03-01", valueInteger=2),    # after index: not used
        obs("o3", ref_a, "21908-9", "2020-01-15",
            valueCodeableConcept={"text": "Stage IIIB"}),
        obs("o4", ref_a, "97509-4", "2020-07-01", valueCodeableConcept={
            "coding": [{"system": "http://snomed.info/sct", "code": "271299001"}]}),
        obs("o5", ref_b, "72166-2", "2018-02-01",
            valueCodeableConcept={"coding": [{"display": "Former smoker"}]}),
        obs("o6", ref_b, "89247-1", "2018-02-01", valueInteger=7),    # invalid ECOG
        obs("o7", ref_a, "8302-2", "2020-01-20", valueQuantity={"value": 170}),  # not used
        # biomarker results (mCODE tumour marker tests)
        obs("b1", ref_a, "85337-4", "2020-01-18",
            valueCodeableConcept={"coding": [{"system": sct, "code": "10828004"}]}),  # ER +
        obs("b2", ref_a, "83053-9", "2020-01-18",
            valueQuantity={"value": 1, "comparator": "<", "unit": "%"}),     # TPS <1%
        obs("b3", ref_a, "48676-1", "2020-01-18", status="preliminary"),     # HER2 pending
        obs("b4", ref_a, "81695-9", "2020-01-18", valueCodeableConcept={"text": "MSS"}),
        obs("b5", ref_b, "94076-7", "2018-02-01", valueQuantity={"value": 12.5}),
        obs("b6", ref_a, "85319-2", None, valueCodeableConcept={"text": "positive"}),
        obs("b7", ref_a, "16112-5", "2020-01-18",
            dataAbsentReason={"text": "insufficient tumour cells"}),
        obs("b8", ref_b, "85339-0", "2018-02-01", valueString="see report"),
    ]
    encounters = [
        json.dumps({"resourceType": "Encounter", "id": "e1", "subject": ref_b,
                    "period": {"start": "2019-06-01", "end": "2019-06-01"}}),
    ]
    return {"Patient": patients, "Condition": conditions, "MedicationRequest": meds,
            "MedicationAdministration": admins, "Observation": observations,
            "Encounter": encounters}


CSV = {
    "patients.csv": (
        "patient_id,name,mrn,birth_date,sex,cancer_type,stage,ecog,diagnosis_date,"
        "smoking_status,zip\n"
        'CSV0001,"Doe, Jane",MRN-1,1955-02-03,F,NSCLC,IIIA,1,2019-05-01,never,60614-2201\n'
        "CSV0002,John Roe,MRN-2,1948-13-01,M,NSCLC,II,0,2019-01-01,never,\n"   # invalid date
        "CSV0001,Jane Doe,MRN-1,1955-02-03,F,NSCLC,IIIA,1,2019-05-01,never,\n"  # duplicate
        "CSV0003,Sam Poe,MRN-3,1962-07-07,female,BRCA,stage 2,0,2021-01-15,former smoker,"
        "03601\n"                                                    # a Safe Harbor small area
        "CSV0004,Al Zed,MRN-4,1970-01-01,M,MEL,IV,7,2021-01-01,never,\n"      # ECOG 7
        "CSV0005,too,few\n"                                                     # malformed
        f"{PA},Ann Alpha,MRN-A-17,1960-05-17,F,NSCLC,,,,,99999\n"              # also in FHIR
    ),
    "diagnoses.csv": (
        "patient_id,code,code_system,onset_date\n"
        "CSV0001,C34.90,ICD-10-CM,2019-05-01\n"
        "CSV0001,E11.9,icd10cm,2019-01-10\n"
        "CSV0001,E1122,ICD-10-CM,2019-02-01\n"
        "CSV0009,C50.9,ICD-10-CM,2020-01-01\n"            # unknown patient
        "CSV0003,C50.911,ICD10CM,2021-01-15\n"
        "CSV0001,,ICD-10-CM,2019-01-01\n"                 # no code
    ),
    "treatments.csv": (
        "patient_id,drug,rxcui,start_date,end_date\n"
        "CSV0001,carboplatin,40048,2019-05-10,2019-08-10\n"
        "CSV0001,Pemetrexed,,2019-05-10,2019-10-01\n"
        "CSV0001,pembrolizumab,1547545,2020-03-01,\n"       # 152 days after: line 2
        "CSV0003,doxorubicin,3639,2021-02-01,2021-04-01\n"
        "CSV0003,cyclophosphamide,,2021-02-01,2021-04-01\n"
        "CSV0003,Paclitaxel,,2021-04-15,2021-07-01\n"       # add-on, no gap
        "CSV0001,carboplatin,,2019-13-01,\n"               # invalid date
        "CSV0003,letrozole,,2021-08-01,2021-07-01\n"       # ends before it starts
    ),
    "outcomes.csv": (
        "patient_id,death_date,last_followup_date\n"
        "CSV0001,2020-09-01,2020-10-01\n"                  # follow-up recorded past death
        "CSV0003,,2022-01-01\n"
        "CSV0009,,2022-01-01\n"                            # unknown patient
    ),
}


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    from pipelines.clinical.stage import compute_comorbidities, ingest_clinical

    root = tmp_path_factory.mktemp("clinical")
    fhir_dir, csv_dir = root / "fhir", root / "csv"
    fhir_dir.mkdir()
    csv_dir.mkdir()
    lines = _fhir_lines()
    for rtype, rows in lines.items():
        (fhir_dir / f"{rtype}.ndjson").write_text("\n".join(rows) + "\n")
    for name, text in CSV.items():
        (csv_dir / name).write_text(text)
    settings = Settings(lakehouse=root / "lakehouse", shuffle_partitions=2,
                        spark_master="local[2]",
                        inputs=Inputs(fhir=str(fhir_dir), clinical_csv=str(csv_dir)))
    # silver.note_findings as the notes stage writes it (a real Delta table; note dates
    # shifted like every analyst date). PB has no structured stage: its notes state one.
    # PB's index date is 2018-03-01.
    def note(fid, pid, day, concept, category, context, value=None):
        shifted = None if day is None else _on(settings, pid, day)
        return (fid, pseudonymise(pid, settings.pseudonym_key), f"n-{fid}", shifted, concept,
                category, value, context, 0)

    findings = spark.createDataFrame(
        [note("f1", PA, None, "pneumonitis", "adverse_event", "historical"),
         note("f2", "CSV0001", None, "colitis", "adverse_event", "negated"),
         note("s1", PB, D(2018, 2, 20), "stage", "stage", "affirmed", "IIIB"),
         note("s2", PB, D(2018, 2, 20), "TNM", "stage", "affirmed", "pT3N2M0"),
         note("s3", PB, D(2018, 2, 25), "stage", "stage", "hypothetical", "IV"),
         note("s4", PB, D(2018, 4, 1), "stage", "stage", "affirmed", "IV"),      # after index
         note("c1", PB, D(2018, 1, 5), "diabetes", "comorbidity", "historical"),
         note("c2", PB, D(2018, 2, 1), "congestive heart failure", "comorbidity", "family"),
         note("c3", PB, D(2018, 2, 1), "chronic pulmonary disease", "comorbidity", "negated"),
         note("c4", PB, D(2018, 5, 1), "dementia", "comorbidity", "affirmed"),    # after index
         note("c5", PB, D(2016, 1, 1), "cirrhosis", "comorbidity", "affirmed"),   # > lookback
         note("c6", PA, D(2019, 12, 1), "chronic kidney disease", "comorbidity", "affirmed")],
        "finding_id string, patient_key string, note_id string, note_date date, "
        "concept string, category string, value string, context string, start int")
    write_table(spark, findings, settings.table("silver", "note_findings"), mode="overwrite")
    run = ingest_clinical(spark, settings)
    crun = compute_comorbidities(spark, settings)
    n_fhir = sum(1 for rows in lines.values() for r in rows if r.strip())
    n_csv = sum(len(t.strip().splitlines()) - 1 for t in CSV.values())
    return {"settings": settings, "run": run, "crun": crun, "n_in": n_fhir + n_csv}


def _table(spark, settings, schema, name):
    return read_table(spark, settings.table(schema, name))


def _key(settings, pid):
    return pseudonymise(pid, settings.pseudonym_key)


def _on(settings, pid, day):
    """A source date as every analyst table holds it: moved by the patient's date shift."""
    if day is None:
        return None
    return day + dt.timedelta(days=patient_shift_days(_key(settings, pid), settings.pseudonym_key))


def _rules(spark, settings, schema, name):
    ref = settings.table(schema, f"quarantine_{name}")
    if not table_exists(spark, ref):
        return []
    return sorted(r["rule"] for r in read_table(spark, ref).select("rule").collect())


def test_counts_reconcile_and_unparseable_records_are_quarantined(spark, ingested):
    run, s = ingested["run"], ingested["settings"]
    assert run.status == "succeeded"
    assert run.rows_in == ingested["n_in"]
    assert run.rows_quarantined == 3        # truncated JSON, JSON array, short CSV line
    assert run.rows_written == run.rows_in - 3
    q = read_table(spark, s.table("bronze", "quarantine_fhir_resources")).collect()
    assert sorted(r["record_index"] for r in q) == [6, 7]     # line numbers in Patient.ndjson
    assert all(r["source"] == "Patient.ndjson" for r in q)
    assert _rules(spark, s, "bronze", "clinical_csv_patients") == ["malformed_row"]
    runs = read_table(spark, s.table("ops", "job_runs")).where(
        F.col("run_id") == run.run_id).first()
    assert (runs["rows_in"], runs["status"]) == (run.rows_in, "succeeded")


def test_semantic_rejects_are_quarantined_with_reasons(spark, ingested):
    s = ingested["settings"]
    assert _rules(spark, s, "restricted", "patient_identity") == [
        "death_before_birth", "duplicate_patient", "duplicate_patient", "invalid_date",
        "invalid_value"]
    assert _rules(spark, s, "silver", "diagnoses") == [
        "invalid_date", "missing_code", "unknown_subject", "unknown_subject", "unknown_subject"]
    assert _rules(spark, s, "silver", "medication_exposures") == [
        "end_before_start", "invalid_date", "missing_start_date"]
    assert _rules(spark, s, "silver", "patients") == ["invalid_value"]
    assert _rules(spark, s, "silver", "outcomes") == ["unknown_subject"]
    # ... and each one says why, in words (the rule alone is not a reason).
    for schema, name in (("restricted", "patient_identity"), ("silver", "diagnoses"),
                         ("silver", "medication_exposures"), ("silver", "patients"),
                         ("silver", "outcomes")):
        rows = read_table(spark, s.table(schema, f"quarantine_{name}")).collect()
        assert all(r["reason"] and len(r["reason"]) > 10 for r in rows), (
            name, [(r["rule"], r["reason"]) for r in rows])


def test_no_identifiers_outside_the_restricted_schema(spark, ingested):
    s = ingested["settings"]
    secrets = [PA, PB, PC, "CSV0001", "CSV0003", "Alpha", "Ann", "Doe", "MRN-", "1960-05-17",
               "1955-02-03", "000-00-0000", "02139", "05901", "10001"]
    silver_dir = s.lakehouse / "silver"
    for table in sorted(p.name for p in silver_dir.iterdir() if p.is_dir()):
        df = read_table(spark, s.table("silver", table))
        text = "\n".join(json.dumps(r.asDict(recursive=True), default=str) for r in df.collect())
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into silver.{table}"
    identity = {r["source_patient_id"]: r for r in
                _table(spark, s, "restricted", "patient_identity").collect()}
    assert identity[PA]["name"] == "Ann Alpha" and identity[PA]["mrn"] == "MRN-A-17"
    assert identity[PA]["birth_date"] == D(1960, 5, 17) and identity[PA]["source"] == "fhir,csv"
    assert identity["CSV0001"]["name"] == "Doe, Jane"
    assert identity[PA]["patient_key"] == _key(s, PA)
    assert set(identity) == {PA, PB, "CSV0001", "CSV0003"}


def test_patients_from_fhir_and_csv(spark, ingested):
    s = ingested["settings"]
    p = {r["patient_key"]: r.asDict() for r in _table(spark, s, "silver", "patients").collect()}
    a, b = p[_key(s, PA)], p[_key(s, PB)]
    assert (a["sex"], a["cancer_type"], a["stage"], a["ecog"]) == (
        "female", "NSCLC", "III", 1)                              # ECOG before index only
    assert "birth_year" not in a
    assert (a["diagnosis_date"], a["index_date"], a["age_at_diagnosis"]) == (
        _on(s, PA, D(2020, 1, 10)), _on(s, PA, D(2020, 2, 1)), 59)
    assert (b["age_at_diagnosis"], b["cancer_type"], b["diagnosis_date"], b["index_date"]) == (
        68, "COADREAD", _on(s, PB, D(2018, 3, 1)), _on(s, PB, D(2018, 3, 1)))  # partial dates
    # PB's structured record has no stage: the latest affirmed one its notes state on or
    # before the index date (IIIB -> III), not the hypothetical or the later "stage IV"
    assert (b["smoking_status"], b["ecog"], b["stage"], b["stage_source"]) == (
        "former", None, "III", "note")
    assert (a["stage_source"], p[_key(s, "CSV0003")]["stage_source"]) == (
        "fhir observation", "csv")
    c1 = p[_key(s, "CSV0001")]
    assert (c1["cancer_type"], c1["stage"], c1["ecog"], c1["smoking_status"]) == (
        "NSCLC", "III", 1, "never")
    assert (c1["index_date"], c1["age_at_diagnosis"], c1["source"]) == (
        _on(s, "CSV0001", D(2019, 5, 10)), 64, "csv")
    assert p[_key(s, "CSV0003")]["stage"] == "II"
    assert len(p) == 4


def test_zip_codes_are_cut_to_three_digits(spark, ingested):
    s = ingested["settings"]
    p = {r["patient_key"]: r["zip3"] for r in _table(spark, s, "silver", "patients").collect()}
    # the home address; 059 is one of the small areas HIPAA Safe Harbor turns into 000;
    # patients.csv's optional zip column fills in where FHIR has no address (PA's FHIR home
    # address wins over its CSV zip), 036 is a small area too
    assert (p[_key(s, PA)], p[_key(s, PB)], p[_key(s, "CSV0001")], p[_key(s, "CSV0003")]) == (
        "021", "000", "606", "000")
    silver_text = " ".join(str(r.asDict()) for r in
                           _table(spark, s, "silver", "patients").collect())
    assert "60614" not in silver_text and "03601" not in silver_text


def _source_dates() -> set[dt.date]:
    """Every date written anywhere in the fixture's FHIR and CSV inputs (partial dates on their
    first day, as ingestion reads them)."""
    import re

    from pipelines.clinical.dates import parse_date_str

    text = "\n".join([*(r for rows in _fhir_lines().values() for r in rows), *CSV.values()])
    found = {parse_date_str(m) for m in re.findall(r"(?<![\d-])\d{4}(?:-\d{2}(?:-\d{2})?)?(?![\d-])",
                                                   text)}
    return {d for d in found if d is not None and d.year > 1900}


def test_every_analyst_date_is_its_source_date_moved_by_the_patients_shift(spark, ingested):
    """No silver table (quarantines included) holds a source date as it was: each date, taken
    back by its patient's shift, is a date of the inputs (or the day before one: a line ends
    the day before the next starts), and the shift is never zero."""
    import re

    from pipelines.clinical.dates import parse_date_str

    s = ingested["settings"]
    source = _source_dates()
    allowed = source | {d - dt.timedelta(days=1) for d in source}
    checked = 0
    # (silver.note_findings is this module's fixture, not an output of ingest-clinical)
    for folder in sorted(p for p in (s.lakehouse / "silver").iterdir()
                         if p.is_dir() and p.name != "note_findings"):
        df = read_table(spark, s.table("silver", folder.name))
        for row in df.collect():
            row = row.asDict(recursive=True)
            key = row.get("patient_key")
            # (timestamps such as quarantined_at are the job's clock, not a patient's date)
            dates = [v for v in row.values()
                     if isinstance(v, dt.date) and not isinstance(v, dt.datetime)]
            if "record" in row and row["record"]:               # a quarantined record
                record = json.loads(row["record"])
                key = record.get("patient_key", key)
                # a raw value that is no valid date ("2019-02-30") stays as received
                dates += [d for v in record.values()
                          if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v)
                          and (d := parse_date_str(v)) is not None]
            if not dates:
                continue
            assert key is not None, f"silver.{folder.name}: a dated row without patient_key"
            shift = patient_shift_days(key, s.pseudonym_key)
            assert shift != 0
            for d in dates:
                back = d - dt.timedelta(days=shift)
                assert back in allowed, (folder.name, d, shift)
                checked += 1
    assert checked > 60  # patients, diagnoses, exposures, lines, outcomes, comorbidities, quarantines


def test_diagnoses_keep_every_coding_and_map_snomed(spark, ingested):
    s = ingested["settings"]
    rows = _table(spark, s, "silver", "diagnoses").where(
        F.col("patient_key") == _key(s, PA)).collect()
    codes = sorted((r["code_system"], r["code"], r["mapped_from"]) for r in rows)
    assert codes == [("ICD-10-CM", "C34.11", None), ("ICD-10-CM", "C34.90", "254637007"),
                     ("ICD-10-CM", "I50.9", None), ("ICD-10-CM", "N18.4", None),
                     ("SNOMED-CT", "254637007", None)]
    onset = {r["code"]: r["onset_date"] for r in rows}
    assert onset["N18.4"] == _on(s, PA, D(2019, 6, 1))
    csv_rows = _table(spark, s, "silver", "diagnoses").where(
        F.col("patient_key") == _key(s, "CSV0001")).collect()
    assert sorted(r["code"] for r in csv_rows) == ["C34.90", "E11.9", "E1122"]
    assert {r["code_system"] for r in csv_rows} == {"ICD-10-CM"}


def test_treatment_lines(spark, ingested):
    s = ingested["settings"]
    lines = {(r["patient_key"], r["line_number"]): r for r in
             _table(spark, s, "silver", "treatment_lines").collect()}
    a1, a2 = lines[(_key(s, PA), 1)], lines[(_key(s, PA), 2)]
    assert (a1["treatment"], sorted(a1["drugs"]), a1["start_date"], a1["end_date"]) == (
        "platinum_pemetrexed", ["carboplatin", "pemetrexed"], _on(s, PA, D(2020, 2, 1)),
        _on(s, PA, D(2020, 5, 1)))
    # osimertinib 75 days later: no gap, but a documented progression -> line 2
    assert (a2["treatment"], a2["drugs"], a2["start_date"]) == (
        "osimertinib", ["osimertinib"], _on(s, PA, D(2020, 7, 15)))
    c1, c2 = lines[(_key(s, "CSV0001"), 1)], lines[(_key(s, "CSV0001"), 2)]
    assert (c1["treatment"], c1["end_date"]) == (
        "platinum_pemetrexed", _on(s, "CSV0001", D(2019, 10, 1)))
    assert (c2["treatment"], c2["start_date"]) == (
        "pembrolizumab", _on(s, "CSV0001", D(2020, 3, 1)))
    c3 = lines[(_key(s, "CSV0003"), 1)]
    assert (c3["treatment"], c3["drugs"]) == (
        "anthracycline_taxane", ["cyclophosphamide", "doxorubicin", "paclitaxel"])
    assert (_key(s, "CSV0003"), 2) not in lines and (_key(s, PB), 1) not in lines
    statin = _table(spark, s, "silver", "medication_exposures").where(
        F.col("display").contains("Atorvastatin")).first()
    assert statin["drug"] is None and statin["antineoplastic"] is False


def test_outcomes(spark, ingested):
    s = ingested["settings"]
    o = {r["patient_key"]: r for r in _table(spark, s, "silver", "outcomes").collect()}
    a = o[_key(s, PA)]
    assert (a["os_event"], a["os_months"], a["death_date"]) == (
        1, round((D(2021, 3, 1) - D(2020, 2, 1)).days / M, 2), _on(s, PA, D(2021, 3, 1)))
    assert (a["ttnt_event"], a["ttnt_months"], a["first_line_treatment"]) == (
        1, round((D(2020, 7, 15) - D(2020, 2, 1)).days / M, 2), "platinum_pemetrexed")
    b = o[_key(s, PB)]                                    # untreated, censored at last encounter
    assert (b["os_event"], b["last_followup_date"], b["ttnt_months"]) == (
        0, _on(s, PB, D(2019, 6, 1)), None)
    assert b["os_months"] == round((D(2019, 6, 1) - D(2018, 3, 1)).days / M, 2)
    c1 = o[_key(s, "CSV0001")]                            # death before recorded follow-up end
    assert (c1["os_event"], c1["last_followup_date"]) == (1, _on(s, "CSV0001", D(2020, 9, 1)))
    assert c1["os_months"] == round((D(2020, 9, 1) - D(2019, 5, 10)).days / M, 2)
    c3 = o[_key(s, "CSV0003")]
    assert (c3["os_event"], c3["last_followup_date"], c3["ttnt_event"]) == (
        0, _on(s, "CSV0003", D(2022, 1, 1)), 0)


def test_comorbidities_window_and_contraindications(spark, ingested):
    s, crun = ingested["settings"], ingested["crun"]
    assert (crun.rows_in, crun.rows_written, crun.rows_quarantined) == (4, 4, 0)
    c = {r["patient_key"]: r for r in _table(spark, s, "silver", "comorbidities").collect()}
    a = c[_key(s, PA)]
    # N18.4 (2019-06) and C34 in the year before index; I50.9 is after index -> not counted
    assert (a["cci_rend"], a["cci_canc"], a["cci_chf"], a["charlson_index"]) == (1, 1, 0, 4)
    assert (a["elix_rf"], a["elix_solidtum"], a["elixhauser_vw"]) == (1, 1, 9)
    # contraindications use all history (CHF after index) and notes (historical pneumonitis)
    assert (a["ci_renal"], a["ci_chf"], a["ci_ild"], a["ci_prior_severe_irae"]) == (1, 1, 1, 1)
    c1 = c[_key(s, "CSV0001")]
    assert (c1["cci_diab"], c1["cci_diabwc"], c1["cci_canc"], c1["charlson_index"]) == (
        0, 1, 1, 4)
    assert c1["ci_prior_severe_irae"] == 0                 # negated colitis
    assert list(a["note_components"]) == [] and list(c1["note_components"]) == []  # N18.4 coded
    # PB: no coded comorbidity; a historical note of diabetes before the index date counts,
    # not a relative's heart failure, a negated COPD, dementia after the index date or
    # cirrhosis older than the lookback window
    b = c[_key(s, PB)]
    assert (b["cci_diab"], b["elix_diabunc"], b["cci_chf"], b["cci_copd"], b["cci_dementia"],
            b["cci_mld"]) == (1, 1, 0, 0, 0, 0)
    assert list(b["note_components"]) == ["cci_diab", "elix_diabunc"]
    assert a["index_date"] == _on(s, PA, D(2020, 2, 1)) and a["lookback_days"] == 365


@pytest.mark.slow  # a whole re-run of the stage (about 90 s): with the slow acceptance runs
def test_rerun_leaves_tables_unchanged(spark, ingested):
    from pipelines.clinical.stage import compute_comorbidities, ingest_clinical

    s = ingested["settings"]
    tables = [("silver", "patients"), ("silver", "diagnoses"), ("silver", "treatment_lines"),
              ("silver", "outcomes"), ("silver", "medication_exposures"),
              ("silver", "comorbidities"), ("restricted", "patient_identity"),
              ("bronze", "fhir_resources"), ("silver", "quarantine_diagnoses")]

    def snapshot():
        return {t: sorted(json.dumps(r.asDict(recursive=True), default=str, sort_keys=True)
                          for r in _table(spark, s, *t).collect()) for t in tables}

    before = snapshot()
    run = ingest_clinical(spark, s)
    compute_comorbidities(spark, s)
    assert run.rows_in == ingested["n_in"]
    assert snapshot() == before


def test_biomarker_observations_are_a_source_with_their_status(spark, ingested):
    s = ingested["settings"]
    rows = {r["observation_id"]: (r["concept"], r["context"], r["value"], r["comparator"])
            for r in _table(spark, s, "silver", "biomarker_observations").collect()}
    assert rows == {
        "b1": ("ER positive", "affirmed", None, None),
        "b2": ("PD-L1 TPS", "negated", "1", "<"),
        "b3": ("ERBB2 amplification", "pending", None, None),
        "b4": ("MSI-H", "negated", None, None),
        "b5": ("TMB", "affirmed", "12.5", None),
        "b7": ("ER positive", "indeterminate", None, None),
    }
    assert _rules(spark, s, "silver", "biomarker_observations") == ["invalid_date", "no_result"]
    keys = {r["patient_key"] for r in _table(spark, s, "silver", "biomarker_observations")
            .collect()}
    assert keys == {_key(s, PA), _key(s, PB)}


def test_lakehouse_from_before_the_zip_column_gains_it(spark, tmp_path):
    """A bronze.clinical_csv_patients written before patients.csv had its optional `zip`
    column is migrated (one ADD COLUMNS), not rejected, and the zip reaches silver as ZIP3."""
    from pipelines.clinical import csv_input
    from pipelines.clinical.stage import ingest_clinical

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "patients.csv").write_text(
        "patient_id,name,mrn,birth_date,sex,cancer_type,stage,diagnosis_date,zip\n"
        "Z1,Zoe Zed,MRN-Z1,1950-01-01,F,NSCLC,II,2020-01-01,10027\n"
        "Z2,Yan Yu,MRN-Z2,1952-06-01,M,NSCLC,III,2020-02-01,02139\n")
    settings = Settings(lakehouse=tmp_path / "lakehouse", shuffle_partitions=2,
                        spark_master="local[2]", inputs=Inputs(clinical_csv=str(csv_dir)))
    old_cols = [c for c in csv_input.bronze_columns("patients") if c != "zip"]
    ref = settings.table("bronze", "clinical_csv_patients")
    spark.createDataFrame([], ", ".join(f"{c} string" if c != "record_index" else f"{c} long"
                                        for c in old_cols)) \
        .write.format("delta").save(str(ref.path))
    ingest_clinical(spark, settings)
    assert "zip" in _table(spark, settings, "bronze", "clinical_csv_patients").columns
    rows = _table(spark, settings, "silver", "patients").collect()
    assert sorted(r["zip3"] for r in rows) == ["021", "100"]

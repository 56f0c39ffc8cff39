"""FHIR R4 resources (as plain dicts) for one patient; they validate against ``fhir.resources.R4B``.

Coding systems are the canonical FHIR URIs: ICD-10-CM ``http://hl7.org/fhir/sid/icd-10-cm``,
SNOMED CT ``http://snomed.info/sct``, RxNorm ``http://www.nlm.nih.gov/research/umls/rxnorm``,
LOINC ``http://loinc.org``. ECOG is LOINC 89247-1; ER status LOINC 16112-5 with SNOMED
Positive (10828004) / Negative (260385009). PD-L1 TPS has no single LOINC code in use across
labs, so it carries a local code plus text, as many lab feeds do.

>>> patient_resource("PT000001", "12345678", "Ann", "Lee", "F", "1950-01-02", None)["gender"]
'female'
"""

from __future__ import annotations

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
LOCAL_BIOMARKER = "urn:oncorank:biomarker"
SOURCE_ID_SYSTEM = "urn:oncorank:source-patient-id"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"   # HL7's example OID for an MRN assigner


def _subject(pid: str) -> dict:
    return {"reference": f"Patient/{pid}"}


def patient_resource(pid: str, mrn: str, first: str, last: str, sex: str, birth_date: str,
                     death_date: str | None, address: dict | None = None,
                     phone: str | None = None) -> dict:
    res = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {"use": "official",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                  "code": "MR", "display": "Medical record number"}]},
             "system": MRN_SYSTEM, "value": mrn},
            {"system": SOURCE_ID_SYSTEM, "value": pid},
        ],
        "name": [{"use": "official", "family": last, "given": [first]}],
        "gender": "female" if sex == "F" else "male",
        "birthDate": birth_date,
    }
    if phone:
        res["telecom"] = [{"system": "phone", "value": phone, "use": "home"}]
    if address:
        res["address"] = [address]
    if death_date:
        res["deceasedDateTime"] = death_date
    else:
        res["deceasedBoolean"] = False
    return res


def condition_resource(rid: str, pid: str, icd10: str, onset: str, category: str,
                       snomed: tuple[str, str] | None = None, stage: str | None = None,
                       text: str | None = None) -> dict:
    coding = [{"system": ICD10CM, "code": icd10}]
    if snomed:
        coding.append({"system": SNOMED, "code": snomed[0], "display": snomed[1]})
    code = {"coding": coding}
    if text:
        code["text"] = text
    res = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"}]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": category}]}],
        "code": code,
        "subject": _subject(pid),
        "onsetDateTime": onset,
        "recordedDate": onset,
    }
    if stage:
        res["stage"] = [{"summary": {"text": f"Stage {stage}"}}]
    return res


def _medication(drug: str, rxcui: str) -> dict:
    return {"coding": [{"system": RXNORM, "code": rxcui, "display": drug}], "text": drug}


def medication_request(rid: str, pid: str, drug: str, rxcui: str, authored: str, line: int,
                       active: bool) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active" if active else "completed",
        "intent": "order",
        "medicationCodeableConcept": _medication(drug, rxcui),
        "subject": _subject(pid),
        "authoredOn": authored,
        "groupIdentifier": {"system": "urn:oncorank:treatment-line", "value": f"{pid}-L{line}"},
        "courseOfTherapyType": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
            "code": "continuous"}]},
    }


def medication_administration(rid: str, pid: str, drug: str, rxcui: str, start: str, end: str,
                              request_id: str, active: bool) -> dict:
    return {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": "in-progress" if active else "completed",
        "medicationCodeableConcept": _medication(drug, rxcui),
        "subject": _subject(pid),
        "effectivePeriod": {"start": start, "end": end},
        "request": {"reference": f"MedicationRequest/{request_id}"},
    }


def ecog_observation(rid: str, pid: str, when: str, ecog: int) -> dict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": "89247-1",
                             "display": "ECOG Performance Status score"}]},
        "subject": _subject(pid),
        "effectiveDateTime": when,
        "valueInteger": ecog,
    }


def _lab(rid: str, pid: str, when: str, code: dict) -> dict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}]}],
        "code": code,
        "subject": _subject(pid),
        "effectiveDateTime": when,
    }


def pdl1_observation(rid: str, pid: str, when: str, tps: int) -> dict:
    res = _lab(rid, pid, when, {
        "coding": [{"system": LOCAL_BIOMARKER, "code": "PDL1-TPS",
                    "display": "PD-L1 tumor proportion score (22C3)"}],
        "text": "PD-L1 TPS"})
    res["valueQuantity"] = {"value": tps, "unit": "%", "system": "http://unitsofmeasure.org",
                            "code": "%"}
    return res


def er_observation(rid: str, pid: str, when: str, positive: bool) -> dict:
    res = _lab(rid, pid, when, {
        "coding": [{"system": LOINC, "code": "16112-5",
                    "display": "Estrogen receptor [Interpretation] in Tissue"}],
        "text": "ER status"})
    res["valueCodeableConcept"] = {"coding": [
        {"system": SNOMED, "code": "10828004", "display": "Positive"} if positive else
        {"system": SNOMED, "code": "260385009", "display": "Negative"}]}
    return res

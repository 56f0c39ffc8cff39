"""Stage and comorbidities read from notes (issue: "what is still not read").

The note concepts of category ``stage`` and ``comorbidity`` (pipelines/notes/resources/
concepts.tsv) on sentences as problem lists, consults and pathology reports write them, with
their context; and the ICD-10-CM code each comorbidity concept counts as, checked against an
independent implementation of the Quan 2005 algorithms (pycomorb).
"""

from __future__ import annotations

import pytest

from pipelines.clinical.codes import note_comorbidity_codes
from pipelines.notes import assertion_context as ctx
from pipelines.notes import findings as fnd

# sentence -> expected (concept, context, value) of the stage and comorbidity findings
SENTENCES = {
    "Stage IIIA (pT2N2M0) adenocarcinoma of the right lung.":
        {("stage", "affirmed", "IIIA"), ("TNM", "affirmed", "pT2N2M0")},
    "Pathologic stage: AJCC stage IIB.": {("stage", "affirmed", "IIB")},
    "cT3N1M1a rectal adenocarcinoma.": {("TNM", "affirmed", "cT3N1M1a")},
    "If stage IV, would offer palliative chemotherapy.": {("stage", "hypothetical", "IV")},
    "Her mother had stage II breast cancer.": {("stage", "family", "II")},
    # the stage of another disease is no cancer stage
    "CKD stage 3, stable creatinine.": {("chronic kidney disease", "affirmed", None)},
    "Stage 3 CKD. Stage 2 pressure ulcer on the sacrum.":
        {("chronic kidney disease", "affirmed", None)},
    "PMH: HTN, DM2 w/ nephropathy, CHF (EF 35%), CAD s/p MI, prior CVA, COPD.":
        {("hypertension", "historical", None), ("diabetes with complications", "historical", None),
         ("congestive heart failure", "historical", None),
         ("myocardial infarction", "historical", None),
         ("cerebrovascular disease", "historical", None),
         ("chronic pulmonary disease", "historical", None)},
    "No history of diabetes or heart failure.":
        {("diabetes", "negated", None), ("congestive heart failure", "negated", None)},
    "Mother with dementia and stroke.":
        {("dementia", "family", None), ("cerebrovascular disease", "family", None)},
    "Risk of heart failure with anthracyclines was discussed.":
        {("congestive heart failure", "hypothetical", None)},
    "Pulmonary hypertension on echo; portal hypertension with esophageal varices.":
        {("portal hypertension", "affirmed", None)},
    "Known HIV on ART, afib on apixaban, SLE and rheumatoid arthritis.":
        {("HIV", "affirmed", None), ("atrial fibrillation", "affirmed", None),
         ("systemic lupus erythematosus", "affirmed", None),
         ("rheumatoid arthritis", "affirmed", None)},
    "ESRD on hemodialysis three times weekly.": {("end-stage renal disease", "affirmed", None)},
    "Status post kidney transplant in 2015.": {("organ transplant", "historical", None)},
}


def _read(sentence: str) -> set[tuple]:
    concepts, headers = fnd.find_mentions(sentence)
    return {(f.concept, f.context, f.value)
            for f in fnd.extract(sentence, [ctx.Span(0, len(sentence))], concepts, headers)
            if f.category in ("stage", "comorbidity")}


@pytest.mark.parametrize("sentence", sorted(SENTENCES))
def test_stage_and_comorbidities_are_read_with_their_context(sentence):
    assert _read(sentence) == SENTENCES[sentence]


def test_every_comorbidity_concept_has_a_code_and_every_code_a_concept():
    lexicon = {r.concept.lower() for r in fnd.concept_rows() if r.category == "comorbidity"}
    assert lexicon == set(note_comorbidity_codes())


def test_each_note_comorbidity_counts_in_the_components_pycomorb_gives_its_code():
    """The components listed beside each code (note_comorbidities.tsv) are the ones an
    independent implementation of Quan 2005 assigns to that code."""
    pytest.importorskip("pycomorb")
    import csv
    from importlib import resources

    from test_comorbidity import _reference

    text = resources.files("pipelines.clinical.resources").joinpath(
        "note_comorbidities.tsv").read_text()
    rows = list(csv.DictReader([ln for ln in text.splitlines() if ln and not ln.startswith("#")],
                               delimiter="\t"))
    ref = _reference([(r["concept"], r["icd10"]) for r in rows]).set_index("id")
    for r in rows:
        flags = ref.loc[r["concept"]]
        got = sorted(c for c, v in flags.items() if c.startswith(("cci_", "elix_")) and v == 1)
        assert got == sorted(x for x in r["components"].split(",") if x), r["concept"]


def test_the_quality_gate_accepts_every_category_the_lexicon_writes():
    """A category the gate does not know would send every such finding to quarantine."""
    import json
    from pathlib import Path

    suite = json.loads((Path(__file__).resolve().parent.parent / "expectations"
                        / "silver.note_findings.json").read_text())
    sets = [e["kwargs"]["value_set"] for e in suite["expectations"]
            if e["kwargs"].get("column") == "category" and "value_set" in e["kwargs"]]
    assert sets and set(sets[0]) == set(fnd.CATEGORIES)

"""Surrogate mode of de-identification (pipelines/notes/surrogates.py) through the real stage
function (Spark NLP RegexMatcher + pipelines.notes.deid) and the file command.

Surrogates must hide the same PHI the masks hide, keep a patient's names and dates
consistent across notes, differ between patients, use fictional number ranges, and leave the
clinical text the finding extraction reads untouched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.notes import deid_eval

CORPUS = Path(__file__).parent / "data" / "phi_corpus.tsv"
KEY = b"surrogate-test-key"

NOTE_A1 = ("Seen by Dr. Alvarez on 03/14/2023 with her daughter Mrs. Kowalczyk. "
           "EGFR L858R detected. Call 617-555-0142 or jane.kowalczyk@gmail.com. "
           "SSN 123-45-6789, MRN 0048213, from 10.2.33.4.")
NOTE_A2 = "Follow-up 04/02/2023: Dr. Alvarez reviewed the scan with Mrs. Kowalczyk."
NOTE_B1 = "Seen by Dr. Alvarez on 03/14/2023 with her daughter Mrs. Kowalczyk."


def _frame(spark, rows):
    return spark.createDataFrame(
        rows, "note_id string, patient_id string, note_type string, note_date string, "
              "text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date",
                 "text")


@pytest.fixture(scope="module")
def outputs(spark):
    from pipelines.notes.stage import deidentify_frame

    df = _frame(spark, [("a1", "P-A", "progress", "2023-03-14", NOTE_A1),
                        ("a2", "P-A", "progress", "2023-04-02", NOTE_A2),
                        ("b1", "P-B", "progress", "2023-03-14", NOTE_B1)])
    out = {}
    for mode in ("mask", "surrogate"):
        res = deidentify_frame(spark, df, KEY, mode)
        assert "surrogate_seed" not in res.columns
        out[mode] = {r.note_id: r.text_deid for r in res.collect()}
    return out


def _names(text: str) -> tuple[str, str]:
    m = re.search(r"Dr\. (\w+) .* Mrs\. (\w+)", text)
    assert m, text
    return m[1], m[2]


def test_no_original_phi_and_clinical_text_kept(outputs):
    text = outputs["surrogate"]["a1"]
    for phi in ("Alvarez", "Kowalczyk", "03/14/2023", "617-555-0142", "jane.kowalczyk",
                "gmail.com", "123-45-6789", "0048213", "10.2.33.4"):
        assert phi not in text, (phi, text)
    assert "EGFR L858R detected." in text
    assert "[" not in text  # no masks in surrogate mode


def test_fictional_ranges(outputs):
    text = outputs["surrogate"]["a1"]
    assert re.search(r"Call 555-01\d\d ", text), text
    assert re.search(r"\w+\d*@example\.org", text), text
    assert re.search(r"SSN 987-65-432\d", text), text
    assert re.search(r"from 192\.0\.2\.\d{1,3}\.", text), text
    assert re.search(r"MRN \d{7}\b", text), text


def test_same_patient_same_surrogates_other_patient_other(outputs):
    s = outputs["surrogate"]
    a1, a2, b1 = _names(s["a1"]), _names(s["a2"]), _names(s["b1"])
    assert a1 == a2
    assert a1 != b1
    assert "Alvarez" not in a1 + b1 and "Kowalczyk" not in a1 + b1


def test_surrogate_dates_are_the_masks_shifted_dates(outputs):
    for nid in ("a1", "a2", "b1"):
        masked = re.findall(r"\[DATE:(\d{4}-\d{2}-\d{2})\]", outputs["mask"][nid])
        shown = re.findall(r"\b(\d{4}-\d{2}-\d{2})\b", outputs["surrogate"][nid])
        assert masked and masked == shown, (outputs["mask"][nid], outputs["surrogate"][nid])


def test_corpus_leaks_no_more_than_the_masks(spark):
    """On the development corpus, what the surrogates leave verbatim is what the masks leave
    (the spans the rules miss), never a span a surrogate was meant to replace."""
    from pipelines.notes.stage import deidentify_frame

    notes = deid_eval.load_corpus(CORPUS)
    df = _frame(spark, [(n.note_id, n.note_id, n.note_type, "2023-03-14", n.text)
                        for n in notes])
    leaks = {}
    for mode in ("mask", "surrogate"):
        results = {r.note_id: {"text_deid": r.text_deid,
                               "spans": [(s.begin, s.end, s.type) for s in r.phi_spans]}
                   for r in deidentify_frame(spark, df, KEY, mode).collect()}
        rep = deid_eval.score(notes, results)
        leaks[mode] = {x for x in rep.leaks if x[1] in deid_eval.HIPAA}
    # By design a surrogate may equal its original only where the mask shows the same: an
    # age of 90 ("90", Safe Harbor's cap) and a month alone that the shift keeps ("April";
    # the mask reads [DATE:--04]).
    by_design = {x for x in leaks["surrogate"] - leaks["mask"]
                 if (x[1] == "AGE" and x[2] == "90")
                 or (x[1] == "DATE" and re.fullmatch(r"[A-Z][a-z]+", x[2]))}
    assert leaks["surrogate"] - by_design == leaks["mask"]


def test_file_command_writes_surrogates(spark, settings, tmp_path):
    from pipelines.notes.commands import deidentify_file

    src = tmp_path / "notes.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"note_id": "n1", "patient_id": "P-A", "note_type": "progress",
         "note_date": "2023-03-14", "text": NOTE_A1},
        {"note_id": "n2", "patient_id": "P-A", "note_type": "progress",
         "note_date": "2023-04-02", "text": NOTE_A2}]) + "\n")
    out = tmp_path / "out.jsonl"
    tally = deidentify_file(spark, settings, src, out, surrogate=True)
    assert tally.summary().startswith("read 2 ")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"patient_key"} <= rows[0].keys() and "patient_id" not in rows[0]
    assert _names(rows[0]["text"]) == _names(rows[1]["text"])
    assert "Alvarez" not in out.read_text() and "[NAME]" not in out.read_text()

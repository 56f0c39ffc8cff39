"""Clinical notes: ConText, de-identification, findings, stages and the `notes` commands."""

from __future__ import annotations

import csv
import json
import re

import pytest

from pipelines.notes import assertion_context as ctx
from pipelines.notes import deid

# A realistic note with PHI of every type and findings in several contexts (written for
# these tests; the names are invented).
NOTE = """Patient: Maria Alvarez   MRN: 00482913   DOB: 04/12/1956
Date of service: March 3, 2023. Seen by Dr. Kenji Watanabe. Phone (617) 555-0134, fax 617-555-0199.
Address: 42 Elm Street, Springfield, IL 62704. Email maria.alvarez@example.com, portal www.example-health.org.
HPI: Ms. Alvarez is a 93-year-old never smoker with stage IV lung adenocarcinoma. NGS showed EGFR exon 19 deletion; no KRAS G12C. PD-L1 TPS 60%. ECOG 1.
MRI brain showed no evidence of brain metastases. There are multiple liver metastases. Possible bone metastasis at L3.
FAMILY HISTORY: Mother had breast cancer.
ASSESSMENT/PLAN: Start osimertinib on 03/14/2023. If pneumonitis develops, hold therapy. History of colitis on ipilimumab in 2019.
Electronically signed by Jane Roe, MD"""
NOTE_PHI = ["Maria Alvarez", "00482913", "04/12/1956", "March 3, 2023", "Kenji Watanabe",
            "(617) 555-0134", "617-555-0199", "42 Elm Street", "Springfield", "62704",
            "maria.alvarez@example.com", "www.example-health.org", "Alvarez", "93",
            "03/14/2023", "Jane Roe"]


# ----------------------------------------------------------------------------- pure ConText
def _toks(text):
    return [ctx.Span(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def _classify(text, target, triggers):
    start = text.index(target)
    return ctx.classify(ctx.Span(0, len(text)), _toks(text), triggers,
                        ctx.Span(start, start + len(target)))


def _trig(text, phrase, category, direction="forward", scope=None, applies=()):
    b = text.index(phrase)
    return ctx.Trigger(b, b + len(phrase), category, direction, scope, frozenset(applies))


def test_forward_negation_reaches_a_conjunction_list():
    text = "No fever, chills, or night sweats."
    assert _classify(text, "night sweats", [_trig(text, "No", ctx.NEGATED)]).status == "negated"


def test_termination_ends_the_scope():
    text = "No fever but has a cough."
    trig = [_trig(text, "No", ctx.NEGATED), _trig(text, "but", ctx.TERMINATE, "none")]
    assert _classify(text, "fever", trig).status == "negated"
    assert _classify(text, "cough", trig).status == "affirmed"


def test_pseudo_trigger_cancels_the_trigger_it_overlaps():
    text = "No increase in the pleural effusion."
    trig = [_trig(text, "No", ctx.NEGATED), _trig(text, "No increase", ctx.PSEUDO, "none")]
    assert _classify(text, "pleural effusion", trig).status == "affirmed"


def test_backward_trigger_and_trigger_inside_target():
    text = "Pulmonary embolism was ruled out."
    trig = [_trig(text, "was ruled out", ctx.NEGATED, "backward")]
    assert _classify(text, "Pulmonary embolism", trig).negated
    text = "Extremities without edema."
    trig = [_trig(text, "without", ctx.NEGATED)]
    assert _classify(text, "Extremities without edema", trig).status == "affirmed"


def test_status_precedence():
    both = ctx.ContextResult(frozenset({ctx.NEGATED, ctx.HISTORICAL}))
    assert both.status == "negated" and both.historical
    assert ctx.ContextResult(frozenset({ctx.FAMILY, ctx.HISTORICAL})).status == "family"
    assert ctx.ContextResult().status == "affirmed"


def test_rules_file_is_valid_and_groups_into_matcher_rules():
    rules = ctx.load_rules()
    cats = {r.category for r in rules}
    assert set(ctx.MODIFIERS) | {ctx.PSEUDO, ctx.TERMINATE} <= cats
    groups = ctx.matcher_rules()
    assert len(groups) < len(rules)  # one alternation per attribute group
    for rx, gid in groups:
        re.compile(rx)
        assert ctx.parse_group_id(gid)[0] in ctx.CATEGORIES
    with pytest.raises(ValueError, match="unknown category"):
        ctx.load_rules("pattern\tcategory\tdirection\tmax_scope\tapplies_to\nno\tNEGATIVE\tforward\t\t")


def test_find_target_survives_whitespace_case_and_truncation():
    text = "Neck:  Supple.  No lymphadenopathy"
    span = ctx.find_target(text, "no   LYMPHADENOPATHY")
    assert text[span.begin:span.end] == "No lymphadenopathy"
    # A truncated sentence: the target's leading words are found.
    span = ctx.find_target("NECK:  Supple.", "Neck:  Supple.  No lymphadenopathy")
    assert span is not None and span.begin == 0
    # The upper-case (annotated) occurrence wins over an earlier plain one.
    text = "no chest pain at rest; CHEST PAIN on exertion"
    assert ctx.find_target(text, "chest pain").begin == text.index("CHEST")
    # A whole word wins over the same letters inside a longer word ("PE's").
    text = "History of PE's in the past; no acute PE today."
    assert ctx.find_target(text, "PE").begin == text.index("PE today")


def test_pseudo_trigger_with_applies_to_cancels_only_those_categories():
    text = "The nodules have not changed."
    trig = [_trig(text, "not", ctx.NEGATED),
            _trig(text, "have not changed", ctx.HISTORICAL, "backward"),
            _trig(text, "not changed", ctx.PSEUDO, "none", applies=[ctx.NEGATED])]
    res = _classify(text, "nodules", trig)
    assert res.historical and not res.negated


def _with_rules(text, target):
    """ConText with the real rule file on one sentence (as ``oncorank notes context``)."""
    sent = ctx.Span(0, len(text))
    return ctx.classify(sent, ctx.tokenize(text, sent), ctx.find_triggers(text, sent),
                        ctx.find_target(text, target))


@pytest.mark.parametrize(("text", "target", "historical", "status"), [
    # Compared with an earlier study and found the same: the finding was there before.
    ("Unchanged small left pleural effusion.", "left pleural effusion", True, "historical"),
    ("The 6 mm lung nodule is redemonstrated without change.", "lung nodule", True,
     "historical"),
    ("The renal cysts have not changed in size.", "renal cysts", True, "historical"),
    ("No interval change in the hepatic hemangioma.", "hepatic hemangioma", True,
     "historical"),
    # ... but a negated symptom stays a negated symptom.
    ("No change in vision.", "change in vision", False, "negated"),
    ("Given her breast cancer history, a bone scan was done.", "breast cancer", True,
     "historical"),
    ("No focal deficits on history or examination.", "focal deficits", False, "negated"),
    ("Volume loss, the sequelae of prior radiation pneumonitis.", "radiation pneumonitis",
     True, "historical"),
    ("He is admitted frequently for pancreatitis flares.", "pancreatitis", True, "historical"),
    ("She was admitted for pancreatitis.", "pancreatitis", False, "affirmed"),
])
def test_temporal_triggers_of_the_rule_file(text, target, historical, status):
    res = _with_rules(text, target)
    assert res.historical is historical and res.status == status


@pytest.mark.parametrize(("text", "target", "status"), [
    # A telegraphic verdict after the finding.
    ("- MRI brain: brain mets ruled out.", "brain mets", "negated"),
    # Conditionals: an inverted "should", an option for a case that has not arisen.
    ("Should BRAF V600E be found, dabrafenib would be an option.", "BRAF V600E", "hypothetical"),
    ("Would offer osimertinib if EGFR positive on rebiopsy.", "osimertinib", "hypothetical"),
    ("She should continue osimertinib.", "osimertinib", "affirmed"),
    # "Known" metastases are present disease, not history.
    ("Known hepatic metastases, measurable.", "hepatic metastases", "affirmed"),
    # An inline header ends the reach of what follows it: the past history stays the
    # patient's own.
    ("PMH: hypothyroidism FHx: Maternal aunt w/ prostate cancer.", "hypothyroidism",
     "historical"),
    ("PMH: hypothyroidism FHx: Maternal aunt w/ prostate cancer.", "prostate cancer", "family"),
])
def test_clinical_shorthand_contexts(text, target, status):
    assert _with_rules(text, target).status == status


@pytest.mark.parametrize(("text", "cue", "name"), [
    # A given name the census lists lack, before a lexicon surname.
    ("Patient: Tomasz Kim   MRN: 10962754", "Tomasz Kim", "Tomasz Kim"),
    # ... also when the surname is a clinical stopword ("walker").
    ("Patient: Tomasz Walker   MRN: 10962754", "Tomasz Walker", "Tomasz Walker"),
    # Before a credential, a given name that is also a clinical word ("frank", "mark").
    ("Electronically signed by Frank Takahashi, MD", "Frank Takahashi", "Frank Takahashi"),
    ("Mark Quinn, MD", "Mark Quinn", "Mark Quinn"),
    # A label before ordinary capitalised words is no name.
    ("Contact: Lung Nodule clinic", "Lung Nodule", None),
])
def test_names_after_cues(text, cue, name):
    b = text.index(cue)
    rule = "NAME_CRED" if ", MD" in text else "NAME_CUE"
    spans = deid.find_phi(text, [deid.Candidate(b, b + len(cue), rule)], [])
    assert [text[s.begin:s.end] for s in spans if s.type == "NAME"] == ([name] if name else [])


# ----------------------------------------------------------------------------- pure de-id
def test_date_shift_keeps_intervals_and_precision():
    a, b = deid.shifted_date("03/04/2023", -40), deid.shifted_date("March 14, 2023", -40)
    import datetime as dt

    assert (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days == 10
    assert deid.shifted_date("2023-03-04", 3) == "2023-03-07"
    assert deid.shifted_date("March 2021", 20) == "2021-04"
    assert re.fullmatch(r"--\d\d-\d\d", deid.shifted_date("Mar 3", 5))
    assert deid.parse_date("13/45/2020") is None


def test_lexicon_names_need_first_and_last_name():
    text = "Seen with Linda Nguyen today. Mass Effect noted. Hodgkin Lymphoma."
    toks = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
    found = {text[s.begin:s.end] for s in deid.lexicon_names(text, toks)}
    assert found == {"Linda Nguyen"}


# ----------------------------------------------------------------------------- Spark NLP
@pytest.fixture(scope="module")
def note_frame(spark):
    return spark.createDataFrame(
        [("n1", "PT000001", "progress", "2023-03-03", NOTE),
         ("n2", "PT000001", "progress", "2023-03-13", "Follow-up on 03/24/2023 with Dr. Watanabe."),
         ("n3", "PT000002", "progress", "2023-03-13", "Seen 03/24/2023. No complaints.")],
        "note_id string, patient_id string, note_type string, note_date string, text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date", "text")


@pytest.fixture(scope="module")
def deid_rows(spark, note_frame):
    from pipelines.notes.stage import deidentify_frame

    return {r.note_id: r for r in deidentify_frame(spark, note_frame, b"test-key").collect()}


def test_deidentify_leaves_no_phi_and_types_every_placeholder(deid_rows):
    out = deid_rows["n1"].text_deid
    leftovers = [p for p in NOTE_PHI if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", out)]
    assert leftovers == []
    for typ in ("NAME", "MRN", "PHONE", "FAX", "ADDRESS", "ZIP", "EMAIL", "URL", "AGE"):
        assert f"[{typ}]" in out, typ
    # Clinical content and the year alone survive; the state after "Springfield," is a state.
    assert "EGFR exon 19 deletion" in out and "in 2019" in out and ", [STATE] [ZIP]" in out
    types = {s.type for s in deid_rows["n1"].phi_spans}
    assert types == {"NAME", "MRN", "DATE", "PHONE", "FAX", "ADDRESS", "ZIP", "EMAIL", "URL",
                     "AGE", "STATE"}


def test_dates_shift_by_one_offset_per_patient(deid_rows, note_frame):
    import datetime as dt

    from pipelines.lakehouse.privacy import date_shift_days, pseudonymise

    shift = date_shift_days(pseudonymise("PT000001", b"test-key"), b"test-key")
    n1, n2 = deid_rows["n1"], deid_rows["n2"]
    assert n1.note_date == dt.date(2023, 3, 3) + dt.timedelta(days=shift)
    assert f"[DATE:{(dt.date(2023, 3, 14) + dt.timedelta(days=shift)).isoformat()}]" in n1.text_deid
    # The interval between two notes of one patient survives de-identification.
    assert (n2.note_date - n1.note_date).days == 10
    # The name found in one note is a name in that note only; in n2 the title cue finds it.
    assert n2.text_deid == (f"Follow-up on [DATE:{(dt.date(2023, 3, 24) + dt.timedelta(days=shift)).isoformat()}]"
                            " with Dr. [NAME].")
    other = date_shift_days(pseudonymise("PT000002", b"test-key"), b"test-key")
    assert deid_rows["n3"].note_date == dt.date(2023, 3, 13) + dt.timedelta(days=other)


def test_findings_with_context_section_value(spark, deid_rows):
    from pipelines.notes.stage import findings_frame

    src = spark.createDataFrame([deid_rows["n1"]]).drop("phi_spans")
    got = {(r.concept, r.context): r for r in findings_frame(spark, src).collect()}
    expect = {
        ("EGFR exon 19 deletion", "affirmed"), ("KRAS G12C", "negated"),
        ("PD-L1 TPS", "affirmed"), ("ECOG", "affirmed"), ("never smoker", "affirmed"),
        ("brain metastasis", "negated"), ("liver metastasis", "affirmed"),
        ("bone metastasis", "possible"), ("breast cancer", "family"),
        ("osimertinib", "affirmed"), ("pneumonitis", "hypothetical"),
        ("colitis", "historical"), ("non-small cell lung cancer", "affirmed"),
    }
    assert expect <= set(got)
    assert got[("PD-L1 TPS", "affirmed")].value == "60"
    assert got[("ECOG", "affirmed")].value == "1"
    assert got[("breast cancer", "family")].section == "family_history"
    assert got[("osimertinib", "affirmed")].section == "assessment_plan"
    row = got[("brain metastasis", "negated")]
    assert "no evidence of brain metastases" in row.snippet
    assert deid_rows["n1"].text_deid[row.start:row.end] == "brain metastases"


def test_real_notes_keep_no_titled_name(spark, shared_data):
    """MTSamples notes (names altered by the site, so real-looking): after de-identification
    no "Dr./Mr./Mrs./Ms. Surname" survives, and clinical words are not eaten as names."""
    from pipelines.notes.stage import deidentify_frame

    path = shared_data / "notes" / "mtsamples_oncology_notes.jsonl"
    notes = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:40]]
    df = spark.createDataFrame(
        [(n["note_id"], "mts", "transcription", "2020-01-01", n["transcription"]) for n in notes],
        "note_id string, patient_id string, note_type string, note_date string, text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date", "text")
    out = deidentify_frame(spark, df, b"k").collect()
    titled = re.compile(r"\b(?:Dr|Mr|Mrs|Ms)\.?\s+[A-Z][a-z]{2,}")
    assert [m.group(0) for r in out for m in titled.finditer(r.text_deid)] == []
    joined = " ".join(r.text_deid for r in out)
    for word in ("chemotherapy", "lymph node", "biopsy", "metastatic"):
        assert word in joined.lower()
    # Precision on real text: names are a small share of replaced spans' words.
    names = sum(1 for r in out for s in r.phi_spans if s.type == "NAME")
    assert names < 6 * len(out)


# ----------------------------------------------------------------------------- stages
def _write_notes(path, extra_bad=True, results=False):
    from test_notes_results import REPORTED

    good = [
        {"note_id": "a1", "patient_id": "PT000001", "note_type": "oncology", "note_date": "2023-03-03",
         "text": NOTE},
        {"note_id": "a2", "patient_id": "PT000002", "note_type": "oncology", "note_date": "2023-04-01",
         "text": "Dr. Smith reviewed. KRAS G12C detected. Denies any rash."},
    ] + [  # one-sentence molecular results, each its own note (tests/test_notes_results.py)
        {"note_id": f"r{i}", "patient_id": f"PT1000{i:02d}", "note_type": "molecular pathology",
         "note_date": "2024-02-01", "text": sentence}
        for i, (sentence, _) in enumerate(REPORTED) if results
    ]
    lines = [json.dumps(n).encode() for n in good]
    if extra_bad:
        latin1 = ('{"note_id": "b1", "patient_id": "PT000003", "note_type": "x", '
                  '"note_date": "2023-01-01", "text": "Jos\u00e9 has no brain metastases."}')
        lines.append(latin1.encode("latin-1"))
        lines.append(json.dumps({"note_id": "b2", "patient_id": "PT000003", "note_type": "x",
                                 "note_date": "2023-01-02", "text": "   "}).encode())
        lines.append(json.dumps({"note_id": "b3", "patient_id": "PT000003", "note_type": "x",
                                 "note_date": "2023-01-03", "text": "word " * 400}).encode())
        lines.append(b"{not json")
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_notes_stages_end_to_end_quarantine_and_rerun(spark, settings, tmp_path):
    from test_notes_results import REPORTED

    from pipelines.lakehouse import delta
    from pipelines.notes.stage import (
        deidentify_frame,
        deidentify_notes,
        extract_note_findings,
        ingest_notes,
    )

    notes = tmp_path / "notes.jsonl"
    _write_notes(notes, results=True)
    # NOTE (750 characters) fits, b3 (2,000 characters) is oversized.
    s = settings.replace(inputs=settings.inputs.__class__(notes=str(notes)),
                         sections={"notes": {"max_chars": 1500}})
    run = ingest_notes(spark, s)
    n = 2 + len(REPORTED)
    assert (run.rows_in, run.rows_written, run.rows_quarantined) == (n + 4, n, 4)
    q = delta.read_table(spark, s.quarantine_table(s.table("bronze", "notes_raw"))).collect()
    assert {r.rule for r in q} == {"not_utf8", "empty_note", "oversized_note", "parse_error"}
    assert all(r.reason for r in q)
    assert all("Jos" not in (r.record or "") for r in q)  # no note text kept

    d = deidentify_notes(spark, s)
    assert d.rows_in == d.rows_written == n
    deid = delta.read_table(spark, s.table("silver", "notes_deid"))
    assert set(deid.columns) >= {"note_id", "patient_key", "note_type", "note_date", "text_deid"}
    assert "text" not in deid.columns and "patient_id" not in deid.columns
    joined = " ".join(r.text_deid for r in deid.collect())
    assert "Alvarez" not in joined and "Smith" not in joined and "PT00000" not in joined
    f = extract_note_findings(spark, s)
    assert f.rows_in == f.rows_written > 5
    findings = delta.read_table(spark, s.table("silver", "note_findings"))
    got = {(r.note_id, r.concept, r.context) for r in findings.collect()}
    assert ("a2", "KRAS G12C", "affirmed") in got and ("a2", "rash", "negated") in got
    assert ("a1", "brain metastasis", "negated") in got
    # molecular results come out as the reports state them, through every notes stage
    for i, (sentence, expected) in enumerate(REPORTED):
        assert {(c, x) for note, c, x in got if note == f"r{i}"} == expected, sentence
    tps = next(r for r in findings.collect() if r.concept == "PD-L1 TPS" and r.note_id[0] == "r")
    assert (tps.value, tps.comparator) == ("50", "<")
    # Re-running a stage leaves its table unchanged: the findings stage is re-run through its
    # MERGE (finding ids must be stable); for de-identification, whose key is the note id, a
    # second pass of the same step over bronze must reproduce the stored text exactly.
    before = sorted(map(tuple, findings.collect()))
    extract_note_findings(spark, s)
    after = delta.read_table(spark, s.table("silver", "note_findings")).collect()
    assert sorted(map(tuple, after)) == before
    raw = delta.read_table(spark, s.table("bronze", "notes_raw"))
    again = {r.note_id: r.text_deid
             for r in deidentify_frame(spark, raw, s.pseudonym_key).collect()}
    assert again == {r.note_id: r.text_deid for r in deid.collect()}


def test_unconfigured_input_ingests_nothing_and_missing_file_is_clear(spark, settings, tmp_path):
    from pipelines.lakehouse.errors import InputNotFoundError
    from pipelines.notes.stage import ingest_notes

    assert ingest_notes(spark, settings).rows_in == 0
    s = settings.replace(inputs=settings.inputs.__class__(notes=str(tmp_path / "nope.jsonl")))
    with pytest.raises(InputNotFoundError, match="nope.jsonl"):
        ingest_notes(spark, s)


# ----------------------------------------------------------------------------- CLI
def test_cli_notes_deidentify_and_context(spark, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    notes = tmp_path / "in.jsonl"
    _write_notes(notes, extra_bad=False)
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    res = runner.invoke(app, ["notes", "deidentify", "--input", str(notes), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["note_id"] for r in rows] == ["a1", "a2"]
    assert set(rows[0]) == {"note_id", "patient_key", "note_type", "note_date", "text"}
    assert re.fullmatch(r"[0-9a-f]{20}", rows[0]["patient_key"])
    assert "PT000001" not in out.read_text() and "PT000002" not in out.read_text()
    assert "Alvarez" not in rows[0]["text"] and "[NAME]" in rows[0]["text"]
    assert rows[1]["text"].startswith("Dr. [NAME] reviewed.")
    # Only an explicit flag keeps the source id.
    kept = tmp_path / "kept.jsonl"
    res = runner.invoke(app, ["notes", "deidentify", "--input", str(notes), "--output",
                              str(kept), "--keep-source-ids"])
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["patient_id"] for line in kept.read_text().splitlines()] == [
        "PT000001", "PT000002"]
    assert "read 2 notes: 2 de-identified, 0 skipped" in res.stderr

    # Notes that cannot be de-identified safely: one line each, a summary, and --rejects
    # lists them by record, note_id and reason, never with their text, patient or date.
    bad = tmp_path / "bad.jsonl"
    _write_notes(bad)  # a1, a2; b1 Latin-1, b2 empty, b3 (fits the default size), not JSON
    with bad.open("ab") as fh:
        fh.write(json.dumps({"note_id": "c1", "patient_id": "PT000009", "note_type": "x",
                             "note_date": "03/04/2023", "text": "Seen by Dr. Alvarez."}
                            ).encode() + b"\n")
        fh.write(json.dumps({"note_id": "c2", "patient_id": "", "note_type": "x",
                             "note_date": "2023-04-05", "text": "Alvarez called."}
                            ).encode() + b"\n")
    rejects = tmp_path / "rejects" / "skipped.csv"
    res = runner.invoke(app, ["notes", "deidentify", "--input", str(bad), "--output",
                              str(tmp_path / "bad_out.jsonl"), "--rejects", str(rejects)])
    assert res.exit_code == 0, res.output
    assert ("read 8 notes: 3 de-identified, 5 skipped (bad_note_date: 1; empty_note: 1; "
            "missing_patient_id: 1; not_utf8: 1; parse_error: 1)") in res.stderr
    assert "skipped record 7: note_date is not a date" in res.stderr
    skipped = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert list(skipped[0]) == ["record", "note_id", "rule", "reason"]
    assert [(r["record"], r["note_id"], r["rule"]) for r in skipped] == [
        ("3", "b1", "not_utf8"), ("4", "b2", "empty_note"), ("6", "", "parse_error"),
        ("7", "c1", "bad_note_date"), ("8", "c2", "missing_patient_id")]
    text = rejects.read_text(encoding="utf-8")
    for phi in ("Jos", "Alvarez", "PT00000", "03/04/2023", "2023-04-05", "metastases"):
        assert phi not in text

    tsv = tmp_path / "ctx.tsv"
    tsv.write_text("sentence\ttarget\n"
                   "No evidence of brain metastases.\tbrain metastases\n"
                   "Mother had breast cancer at 50.\tbreast cancer\n"
                   "History of colitis on ipilimumab.\tcolitis\n"
                   "Return if she develops fever.\tfever\n"
                   "Possible pneumonitis on CT.\tpneumonitis\n"
                   "Liver metastases are present.\tLiver metastases\n", encoding="utf-8")
    res = runner.invoke(app, ["notes", "context", "--input", str(tsv)])
    assert res.exit_code == 0, res.output
    statuses = [line.split("\t")[2] for line in res.stdout.strip().splitlines()]
    assert statuses == ["negated", "family", "historical", "hypothetical", "possible",
                        "affirmed"]
    assert "notes context: read 6 rows: 6 classified, 0 skipped" in res.stderr
    res = runner.invoke(app, ["notes", "context", "--input", str(tmp_path / "missing.tsv")])
    # cli.main turns this error into one line on stderr; the Typer app itself raises it.
    assert res.exit_code != 0 and "does not exist" in str(res.exception)

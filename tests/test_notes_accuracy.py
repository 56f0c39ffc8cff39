"""Accuracy of the notes NLP on data we did not write.

* ConText on the NegEx/ConText test set (shared/data/negation, dev part: sentences 1-1600;
  the rest is kept unseen): negated-class and historical-class precision/recall/F1 through the
  same Spark NLP context logic as ``oncorank notes context``.
* De-identification and finding extraction on the synthetic cohort's truth
  (``truth/phi.jsonl``, ``truth/findings.jsonl``) when the generator is available.
"""

from __future__ import annotations

import csv
import json
import re

import pytest

# Goals of issue 10 and what the rules reach on the dev file (see benchmarks/RESULTS.md).
NEGATED_F1_GOAL = 0.97
# The goal is 0.80; the general rules reach 0.802 here, narrowly (benchmarks/RESULTS.md).
# Half of the missed historical labels are bare problem-list lines ("HYPERTENSION.") whose
# section is not in the sentence, while 187 bare lines are labelled recent.
HISTORICAL_F1_FLOOR = 0.80


def prf(pairs):
    tp = sum(1 for g, p in pairs if g and p)
    fp = sum(1 for g, p in pairs if p and not g)
    fn = sum(1 for g, p in pairs if g and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@pytest.fixture(scope="module")
def negex_dev(shared_data):
    path = shared_data / "negation" / "negex_rsAnnotations-1-120-random.dev.tsv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, rows = rows[0], rows[1:]
    assert header[1:3] == ["Condition", "sentence"] and len(rows) == 1600
    return rows


@pytest.fixture(scope="module")
def negex_results(spark, negex_dev):
    from pipelines.notes.commands import context_statuses

    return context_statuses(spark, [(r[2], r[1]) for r in negex_dev])


def test_negation_f1_on_negex_dev_set(negex_dev, negex_results):
    pairs = [(r[3] == "Negated", res.status == "negated")
             for r, res in zip(negex_dev, negex_results, strict=True)]
    precision, recall, f1 = prf(pairs)
    print(f"negated: P={precision:.3f} R={recall:.3f} F1={f1:.3f}")
    assert all(res.target_found for res in negex_results)
    assert f1 >= NEGATED_F1_GOAL


def test_historical_f1_on_negex_dev_set(negex_dev, negex_results):
    pairs = [(r[4] == "Historical", "historical" in res.modifiers)
             for r, res in zip(negex_dev, negex_results, strict=True)]
    precision, recall, f1 = prf(pairs)
    print(f"historical: P={precision:.3f} R={recall:.3f} F1={f1:.3f}")
    assert f1 >= HISTORICAL_F1_FLOOR


# ----------------------------------------------------------------------------- generator truth
def _cohort(tmp_path_factory, seed):
    from pipelines.synth import generate_cohort

    out = tmp_path_factory.mktemp(f"cohort{seed}")
    generate_cohort(out, patients=40, seed=seed)
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """40 generated patients (111 notes): enough for every context status to occur."""
    return _cohort(tmp_path_factory, 7)


@pytest.fixture(scope="module", params=[7, 101])
def phi_cohort(request, cohort, tmp_path_factory):
    """De-identification is measured on two seeds: the rules were reviewed against seeds 7
    and 23, seed 101 was only run after that."""
    return cohort if request.param == 7 else _cohort(tmp_path_factory, request.param)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_deidentification_recall_precision_and_no_leftover_on_generated_notes(spark,
                                                                            phi_cohort):
    from pipelines.notes.stage import deidentify_frame

    cohort = phi_cohort
    notes = _jsonl(cohort / "notes" / "notes.jsonl")
    truth = _jsonl(cohort / "truth" / "phi.jsonl")
    df = spark.createDataFrame(
        [(n["note_id"], n["patient_id"], n.get("note_type"), n["note_date"], n["text"])
         for n in notes],
        "note_id string, patient_id string, note_type string, note_date string, text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date", "text")
    out = {r.note_id: r for r in deidentify_frame(spark, df, b"k").collect()}
    by_type: dict[str, list[bool]] = {}
    leftovers = []
    # Text outside the placeholders must not hold a PHI string. A [DATE:...] placeholder holds
    # a shifted date, never the date it replaced (shifts are never 0); it may by chance land
    # on another date of the note (3 Jan shifted by 69 days is the 12 Mar of a later line).
    outside = {nid: re.sub(r"\[DATE:[^\]]*\]", "[DATE]", r.text_deid) for nid, r in out.items()}
    for t in truth:
        spans = out[t["note_id"]].phi_spans
        covered = any(s.begin < t["end"] and t["start"] < s.end for s in spans)
        by_type.setdefault(t["type"], []).append(covered)
        if t["text"] and t["type"] != "AGE" and t["text"] in outside[t["note_id"]]:
            leftovers.append((t["note_id"], t["type"]))
    truth_by_note: dict[str, list] = {}
    for t in truth:
        truth_by_note.setdefault(t["note_id"], []).append(t)
    predicted = [(nid, s) for nid, r in out.items() for s in r.phi_spans]
    hits = sum(1 for nid, s in predicted
               if any(s.begin < t["end"] and t["start"] < s.end
                      for t in truth_by_note.get(nid, [])))
    recall = {k: sum(v) / len(v) for k, v in by_type.items()}
    overall = sum(sum(v) for v in by_type.values()) / sum(len(v) for v in by_type.values())
    precision = hits / len(predicted) if predicted else 0.0
    print(f"de-id recall {overall:.4f} per type {recall} precision {precision:.4f}")
    assert leftovers == []
    assert overall >= 0.99
    assert all(r >= 0.99 for r in recall.values()), recall
    assert precision >= 0.90


def test_findings_precision_recall_per_category_on_generated_notes(spark, cohort):
    from pipelines.notes.stage import deidentify_frame, findings_frame

    truth_path = cohort / "truth" / "findings.jsonl"
    notes = _jsonl(cohort / "notes" / "notes.jsonl")
    truth = _jsonl(truth_path)
    df = spark.createDataFrame(
        [(n["note_id"], n["patient_id"], n.get("note_type"), n["note_date"], n["text"])
         for n in notes],
        "note_id string, patient_id string, note_type string, note_date string, text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date", "text")
    deid = deidentify_frame(spark, df, b"k").drop("phi_spans")
    found = findings_frame(spark, deid).collect()
    # Spans move with de-identification; match on (note, concept, context).
    gold = {(t["note_id"], t["concept"], t["context"]) for t in truth}
    pred = {(f.note_id, f.concept, f.context) for f in found}
    cats = {t["concept"]: t["category"] for t in truth}
    report = {}
    for cat in sorted(set(cats.values())):
        g = {x for x in gold if cats.get(x[1]) == cat}
        p = {x for x in pred if cats.get(x[1]) == cat}
        tp = len(g & p)
        report[cat] = (tp / len(p) if p else 0.0, tp / len(g) if g else 0.0)
    print("findings precision/recall per category:", report)
    assert all(p >= 0.8 and r >= 0.8 for p, r in report.values()), report
    # The context of each mention the generator planted, per status (issue 10 asks for
    # hypothetical, possible and family on the generator's truth): precision and recall of
    # (note, concept) pairs with that status. Precision counts only pairs the truth annotates:
    # a frame such as "If MSI-H on repeat testing, would consider pembrolizumab" records the
    # drug, not the condition, and an unrecorded mention says nothing about its context.
    annotated = {x[:2] for x in gold}
    by_context = {}
    for status in sorted({t["context"] for t in truth}):
        g = {x for x in gold if x[2] == status}
        p = {x for x in pred if x[2] == status and x[:2] in annotated}
        tp = len(g & p)
        by_context[status] = (round(tp / len(p), 3) if p else 0.0,
                              round(tp / len(g), 3) if g else 0.0, len(g))
    print("findings precision/recall/support per context:", by_context)
    assert {"negated", "historical", "hypothetical", "possible", "family"} <= set(by_context)
    assert all(p >= 0.8 and r >= 0.8 for p, r, _ in by_context.values()), by_context

"""Precision and recall per result status on sentences written from real report phrasing
(``tests/data/biomarker_sentences.tsv``: CAP biomarker templates, ASCO/CAP guidelines,
FDA-reviewed assay labelling; see its README).

The first rules were developed against the ``dev`` split only; the misses of both splits were
read since (benchmarks/RESULTS.md, "Biomarker results as reports state them"), so neither split
is unseen text any more: the k-fold figure of ``benchmarks/notes_kfold.py`` is the estimate of
how the rules generalise. Every sentence of both splits comes out as stated: a rule change that
loses one fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.notes import assertion_context as ctx
from pipelines.notes import findings as fnd
from pipelines.notes import results_eval as ev

SET = Path(__file__).parent / "data" / "biomarker_sentences.tsv"
STATUSES = ev.STATUSES


def load(split: str) -> ev.Sentences:
    return ev.load(SET, split)


def score(split: str) -> dict:
    result = ev.score(load(split))
    return {"per": result.per_status(), "unsafe": result.unsafe, "values": result.values}


def test_the_set_is_large_cites_its_sources_and_covers_every_biomarker_concept():
    rows = [r for split in ("dev", "test") for _, rs in load(split).values() for r in rs]
    ids = {r["id"] for r in rows}
    assert len(ids) >= 250
    assert all(r["source"] for r in rows)
    readme = (SET.parent / "biomarker_sentences.README.md").read_text(encoding="utf-8")
    assert all(r["source"] in readme for r in rows)
    biomarkers = {r.concept for r in fnd.concept_rows() if r.category == "biomarker"}
    assert biomarkers <= {r["concept"] for r in rows}
    assert {r["status"] for r in rows} == set(STATUSES)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_precision_and_recall_per_status(split):
    result = score(split)
    for status, (p, r, n) in result["per"].items():
        print(f"{split} {status}: P={p:.3f} R={r:.3f} n={n}")
        assert p == 1.0 and r == 1.0, (split, status, p, r)
    ok, n = result["values"]
    print(f"{split} values with comparator: {ok}/{n}")
    assert ok == n


@pytest.mark.parametrize("split", ["dev", "test"])
def test_every_sentence_comes_out_as_stated(split):
    """No misread on either split (29 on test and 6 on dev before the bracket, label,
    continuation and own-result rules; RESULTS.md)."""
    misread = []
    for sentence, expected in load(split).values():
        concepts, headers = fnd.find_mentions(sentence)
        found = fnd.extract(sentence, [ctx.Span(0, len(sentence))], concepts, headers)
        for e in expected:
            statuses = [f.context for f in found if f.concept == e["concept"]]
            if e["status"] not in statuses:
                misread.append((sentence, e["concept"], e["status"], statuses))
    assert misread == []


@pytest.mark.parametrize("split, most", [("dev", 0), ("test", 0)])
def test_negative_pending_and_unobtained_results_are_never_read_as_affirmed(split, most):
    """The goal, none, holds on both splits; before this set existed 30 (dev) and 33 (test)
    were, and 1 and 3 before the enumerator, semicolon and verdict rules (RESULTS.md)."""
    unsafe = score(split)["unsafe"]
    assert len(unsafe) <= most, unsafe

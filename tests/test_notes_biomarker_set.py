"""Precision and recall per result status on sentences written from real report phrasing
(``tests/data/biomarker_sentences.tsv``: CAP biomarker templates, ASCO/CAP guidelines,
FDA-reviewed assay labelling; see its README).

The rules were developed against the ``dev`` split only; the ``test`` split is the estimate of
how they generalise. Bounds are the figures measured when the set was added
(benchmarks/RESULTS.md, "Biomarker results in notes"), rounded down: a rule change that loses
ground fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


# (split, status) → (precision, recall) floors; the test split was never read while writing rules
FLOORS = {
    ("dev", "affirmed"): (0.95, 0.95), ("dev", "negated"): (0.98, 0.98),
    ("dev", "pending"): (0.98, 0.98), ("dev", "equivocal"): (0.95, 0.85),
    ("dev", "indeterminate"): (0.95, 0.80),
    ("test", "affirmed"): (0.93, 0.87), ("test", "negated"): (0.97, 0.93),
    ("test", "pending"): (0.95, 0.90), ("test", "equivocal"): (0.75, 0.70),
    ("test", "indeterminate"): (0.90, 0.70),
}


@pytest.mark.parametrize("split", ["dev", "test"])
def test_precision_and_recall_per_status(split):
    result = score(split)
    for status, (p, r, n) in result["per"].items():
        print(f"{split} {status}: P={p:.3f} R={r:.3f} n={n}")
        floor_p, floor_r = FLOORS[(split, status)]
        assert p >= floor_p and r >= floor_r, (split, status, p, r)
    ok, n = result["values"]
    print(f"{split} values with comparator: {ok}/{n}")
    assert ok / n >= 0.75


@pytest.mark.parametrize("split, most", [("dev", 0), ("test", 0)])
def test_negative_pending_and_unobtained_results_are_never_read_as_affirmed(split, most):
    """The goal, none, holds on both splits; before this set existed 30 (dev) and 33 (test)
    were, and 1 and 3 before the enumerator, semicolon and verdict rules (RESULTS.md)."""
    unsafe = score(split)["unsafe"]
    assert len(unsafe) <= most, unsafe

"""De-identification on text our generator did not write: the hand-written PHI corpus
(tests/data/phi_corpus.tsv, provenance in phi_corpus.README.md) through the real stage
function (Spark NLP RegexMatcher + pipelines.notes.deid), scored by pipelines.notes.deid_eval.

The one-line-per-category summary is printed (``pytest -s``); ``benchmarks/deid_corpus.py``
prints the same figures as a markdown table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.notes import deid, deid_eval

CORPUS = Path(__file__).parent / "data" / "phi_corpus.tsv"

# Safe Harbor categories must reach the goal; the others are not HIPAA identifiers and have
# lower bounds a little under what the rules reach today (names of institutions without a
# "Hospital"/"Clinic" head word, occupations without a cue, user names are missed).
GOAL = 0.99
LOWER_BOUNDS = {"STATE": 0.9, "COUNTRY": 0.9, "FACILITY": 0.9, "ORGANIZATION": 0.85,
                "PROFESSION": 0.6, "USERNAME": 0.0}
# Clinical words that must survive wherever they stand in the corpus.
CLINICAL = ("Hodgkin", "Gleason", "Whipple", "Foley", "Bethesda", "Cushing", "KRAS G12C",
            "PD-L1", "T3N1bM0", "Lynch", "Ewing", "Paget", "Barrett", "Pancoast", "Horner",
            "Virchow", "Trousseau", "Merkel", "Kaposi", "Billroth", "Roux-en-Y", "Hartmann",
            "Karnofsky", "Breslow", "Romberg", "Babinski", "Sister Mary Joseph nodule",
            "May continue", "May hold", "IN 2400", "to the OR", "ME notified",
            "Normal saline", "Mobile phone", "Reading glasses", "Indiana pouch",
            "2/15 lymph nodes", "3/12 cores", "0/17", "1/2 tablet", "BP 142/88", "reports 3/10 pain",
            "since 2019", "67-year-old", "87-year-old", "Amsterdam II criteria", "Nottingham grade")


@pytest.fixture(scope="module")
def corpus():
    return deid_eval.load_corpus(CORPUS)


@pytest.fixture(scope="module")
def report(spark, corpus):
    results = deid_eval.run(spark, corpus)
    rep = deid_eval.score(corpus, results)
    print("\n" + "\n".join(deid_eval.summary_lines(rep)))
    return rep, results


def test_corpus_is_large_and_covers_the_categories(corpus):
    spans = [s for n in corpus for s in n.spans]
    assert len(spans) >= 600
    cats = {s.category for s in spans}
    assert set(deid_eval.HIPAA) <= cats
    for n in corpus:
        for s in n.spans:
            assert n.text[s.begin:s.end] == s.text


def test_recall_per_category(report):
    rep, _ = report
    below = {c: round(s.recall, 3) for c, s in rep.categories.items()
             if s.recall < (GOAL if c in deid_eval.HIPAA else LOWER_BOUNDS[c])}
    assert below == {}, {c: rep.categories[c].missed for c in below}


# Misses the rules do not cover yet, so their text survives: staff initials after "tech".
KNOWN_LEAKS = {("r004", "NAME", "LMR")}


def test_no_phi_survives_verbatim(report):
    rep, _ = report
    assert {leak for leak in rep.leaks if leak[1] in deid_eval.HIPAA} <= KNOWN_LEAKS


def test_precision_on_clinical_text(report, corpus):
    rep, results = report
    assert rep.precision >= 0.97
    assert rep.kept_other >= 0.99, rep.other_masked
    by_id = {n.note_id: n for n in corpus}
    for phrase in CLINICAL:
        holders = [nid for nid, n in by_id.items() if phrase in n.text]
        assert holders, phrase
        assert all(phrase in results[nid]["text_deid"] for nid in holders), phrase


def test_every_date_placeholder_holds_a_shifted_date(report):
    rep, results = report
    assert rep.dates_with_value == rep.dates_found
    # a month alone ("in April") keeps month precision
    assert any(re.search(r"\[DATE:--\d\d\]", r["text_deid"]) for r in results.values())


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-03-14T09:30", (2023, 3, 14)),
    ("2023-03-15T08:42:11Z", (2023, 3, 15)),
    ("14Mar2023", (2023, 3, 14)),
    ("20230314", (2023, 3, 14)),
    ("14/03/2023", (2023, 3, 14)),
    ("15-MAR-23", (2023, 3, 15)),
    ("3rd of April 1951", (1951, 4, 3)),
    ("14th of March", (None, 3, 14)),
    ("3/21", (None, 3, 21)),
    ("April", (None, 4, None)),
])
def test_parse_date_new_formats(text, expected):
    assert deid.parse_date(text) == expected
    assert deid.shifted_date(text, 7)


# ---------------------------------------------------------------------------- more text
CORPUS_B = Path(__file__).parent / "data" / "phi_corpus_b.tsv"
CORPUS_H = Path(__file__).parent / "data" / "phi_heldout.tsv"
HELD_OUT = Path(__file__).parent / "data" / "phi_heldout2.tsv"
# phi_corpus_b.tsv was the held-out set of commit 627dc1e (Safe Harbor recall 0.856 there);
# phi_heldout.tsv the held-out set until the word-list rules (pipelines/notes/vocabulary.py)
# were written against its misses (0.752 → 0.946), so both are development data now.
# phi_heldout2.tsv was written after that, by an author who saw neither the rules nor the
# other corpora, and is never used to tune rules (its README): its figures are the honest
# estimate (Safe Harbor recall 0.899, token precision 0.959; 0.725 / 0.971 before the
# word-list rules). The floors sit just under today's figures, so a change that loses recall
# or precision on unseen text fails here; the goal (0.99 for every Safe Harbor category) is
# met on none of them. Recall was bought with some precision: names no word list knows are
# masked, and so are a few product names and eponyms ("Medtronic", "Binet").
FLOORS = {CORPUS_B: {"safe_harbor": 0.95, "precision": 0.965, "dates_valued": 1.0},
          CORPUS_H: {"safe_harbor": 0.94, "precision": 0.93, "dates_valued": 0.95},
          HELD_OUT: {"safe_harbor": 0.89, "precision": 0.95, "dates_valued": 0.95}}


@pytest.mark.parametrize("path", [CORPUS_B, CORPUS_H, HELD_OUT],
                         ids=["corpus_b", "corpus_h", "held_out"])
def test_recall_and_precision_on_more_text(spark, path):
    notes = deid_eval.load_corpus(path)
    rep = deid_eval.score(notes, deid_eval.run(spark, notes))
    print(f"\n{path.name}:\n" + "\n".join(deid_eval.summary_lines(rep)))
    assert sum(len(n.spans) for n in notes) >= 300
    assert rep.total(deid_eval.HIPAA).recall >= FLOORS[path]["safe_harbor"]
    assert rep.precision >= FLOORS[path]["precision"]
    # a date the shift cannot read becomes a bare [DATE]: masked, but without its interval
    assert rep.dates_with_value >= FLOORS[path]["dates_valued"] * rep.dates_found

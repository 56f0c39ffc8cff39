"""Scoring biomarker results read from notes against sentences with the status each report
states (``tests/data/biomarker_sentences.tsv``: CAP biomarker templates, ASCO/CAP guidelines,
FDA-reviewed assay labelling; sources in its README).

:func:`score` reads every sentence as one note through the pure-Python path of
``extract-note-findings`` and compares, per expected (sentence, concept), the status read (the
expected one when any mention of the concept has it, else the first mention's, else
"missing"), and the value and its comparator (stated by any mention read with that status).
*Unsafe* reads are negative, pending, equivocal or indeterminate results read as affirmed:
what can put a targeted drug first.

:func:`kfold` estimates how the rules of one section of ``context_rules.tsv`` generalise: on
each of k folds, a rule of the section is kept only if leaving it out loses correct reads on
the other folds (the folds it is chosen on), in one backward pass in file order so that of
two rules covering the same phrasing one stays; the folds' held-out reads under the rules
kept are the estimate. Rules chosen on one sentence each, that help nowhere else, drop out.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.notes import assertion_context as ctx
from pipelines.notes import findings as fnd

STATUSES = ("affirmed", "negated", "pending", "equivocal", "indeterminate")
Sentences = dict[str, tuple[str, list[dict]]]


def load(path: Path, split: str | None = None) -> Sentences:
    """id -> (sentence, expected rows) of the ``split`` ("dev", "test"; None: both)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    out: Sentences = {}
    for r in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        if split is None or r["split"] == split:
            out.setdefault(r["id"], (r["sentence"], []))[1].append(r)
    return out


@dataclass
class Score:
    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)
    fn: Counter = field(default_factory=Counter)
    unsafe: list[tuple[str, str, str]] = field(default_factory=list)
    values: list[int] = field(default_factory=lambda: [0, 0])   # right, stated

    @property
    def correct(self) -> int:
        return sum(self.tp.values())

    def per_status(self) -> dict[str, tuple[float, float, int]]:
        """status -> (precision, recall, support)."""
        out = {}
        for s in STATUSES:
            p = self.tp[s] / (self.tp[s] + self.fp[s]) if self.tp[s] + self.fp[s] else 0.0
            r = self.tp[s] / (self.tp[s] + self.fn[s]) if self.tp[s] + self.fn[s] else 0.0
            out[s] = (p, r, self.tp[s] + self.fn[s])
        return out

    def add(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                     self.unsafe + other.unsafe,
                     [self.values[0] + other.values[0], self.values[1] + other.values[1]])


def score(sentences: Sentences, rules: tuple[ctx.Rule, ...] | None = None) -> Score:
    """The reads of ``sentences`` under ``rules`` (None: ``context_rules.tsv``)."""
    out = Score()
    for sentence, expected in sentences.values():
        concepts, headers = fnd.find_mentions(sentence)
        got: dict[str, list[fnd.Finding]] = {}
        for f in fnd.extract(sentence, [ctx.Span(0, len(sentence))], concepts, headers, rules):
            got.setdefault(f.concept, []).append(f)
        for e in expected:
            found = got.get(e["concept"], [])
            statuses = [f.context for f in found]
            read = e["status"] if e["status"] in statuses else (
                statuses[0] if statuses else "missing")
            if read == e["status"]:
                out.tp[read] += 1
            else:
                out.fn[e["status"]] += 1
                out.fp[read] += 1
                if read == "affirmed":
                    out.unsafe.append((sentence, e["concept"], e["status"]))
            if e["value"]:
                out.values[1] += 1
                if any((f.value, f.comparator or "") == (e["value"], e["comparator"])
                       for f in found if f.context == read):
                    out.values[0] += 1
    return out


def section_rules(header: str) -> tuple[ctx.Rule, ...]:
    """The rules of ``context_rules.tsv`` between the comment line starting with ``header``
    and the next ``# ----`` line."""
    from importlib import resources

    text = resources.files("pipelines.notes.resources").joinpath(ctx.RULES_FILE).read_text(
        encoding="utf-8")
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# ----")),
               len(lines))
    columns = next(ln for ln in lines if ln.startswith("pattern\t"))
    return ctx.load_rules("\n".join([columns, *lines[start + 1:end]]))


@dataclass
class KFold:
    k: int
    held_out: Score            # every fold's held-out reads, rules selected on the others
    held_out_all_rules: Score  # the same folds read with every rule (no selection)
    kept: Counter              # rule pattern -> folds on which it was kept


def kfold(sentences: Sentences, candidates: tuple[ctx.Rule, ...], k: int = 5,
          seed: int = 0) -> KFold:
    """The k-fold estimate of the rules ``candidates`` (a part of ``context_rules.tsv``)."""
    every = ctx.load_rules()
    ids = sorted(sentences)
    random.Random(seed).shuffle(ids)
    folds = [ids[i::k] for i in range(k)]
    held, held_all, kept = Score(), Score(), Counter()
    for i, fold in enumerate(folds):
        train = {s: sentences[s] for j, f in enumerate(folds) if j != i for s in f}
        test = {s: sentences[s] for s in fold}
        # One backward pass in file order: a candidate goes when the rules left read the
        # other folds as well without it (of two rules that cover the same phrasing, one
        # stays).
        chosen = every
        base = score(train, chosen).correct
        drop = set()
        for r in candidates:
            without = tuple(x for x in chosen if x != r)
            n = score(train, without).correct
            if n >= base:
                chosen, base = without, n
                drop.add(r)
        kept.update(r.pattern for r in candidates if r not in drop)
        held = held.add(score(test, chosen))
        held_all = held_all.add(score(test, every))
    return KFold(k, held, held_all, kept)

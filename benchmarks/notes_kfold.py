"""k-fold estimate of the biomarker-result rules, as markdown tables.

Run from the repository root::

    .venv/bin/python benchmarks/notes_kfold.py [--k 5] [--seeds 0 1 2]

Every sentence of ``tests/data/biomarker_sentences.tsv`` (dev and test splits together) is
read by the pure-Python path of ``extract-note-findings``; the candidate rules are the
"laboratory results" section of ``pipelines/notes/resources/context_rules.tsv`` (the rules
written for results as reports state them). On each fold a candidate is kept only if leaving
it out loses correct reads on the other folds; the held-out folds, read with the rules kept,
give the estimate (:func:`pipelines.notes.results_eval.kfold`). Printed beside it: the same
folds read with every rule, and how many folds kept each candidate.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from pipelines.notes import results_eval as ev

REPO = Path(__file__).resolve().parent.parent
SET = REPO / "tests" / "data" / "biomarker_sentences.tsv"
SECTION = "# ---------------------------------------------------------------- laboratory results"


def table(rows: list[tuple[str, ev.Score]]) -> str:
    out = ["| rules | status | n | P | R |", "|---|---|---|---|---|"]
    for name, s in rows:
        for status, (p, r, n) in s.per_status().items():
            out.append(f"| {name} | {status} | {n} | {p:.3f} | {r:.3f} |")
        out.append(f"| {name} | unsafe reads (not affirmed, read affirmed) | "
                   f"{len(s.unsafe)} | | |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    sentences = ev.load(SET)
    candidates = ev.section_rules(SECTION)
    print(f"{len(sentences)} sentences, {sum(len(e) for _, e in sentences.values())} expected "
          f"reads, {len(candidates)} candidate rules, k={args.k}, seeds {args.seeds}")
    kept, held, held_all = Counter(), ev.Score(), ev.Score()
    t0 = time.perf_counter()
    for seed in args.seeds:
        result = ev.kfold(sentences, candidates, k=args.k, seed=seed)
        kept.update(result.kept)
        held, held_all = held.add(result.held_out), held_all.add(result.held_out_all_rules)
    print(f"({time.perf_counter() - t0:.0f} s)\n")
    print(table([("k-fold, rules selected on the other folds", held),
                 ("k-fold, every rule", held_all)]))
    runs = args.k * len(args.seeds)
    print(f"\nCandidate rules kept (of {runs} fold selections):")
    for r in candidates:
        print(f"- `{r.pattern}` ({r.category}): {kept[r.pattern]}")


if __name__ == "__main__":
    main()

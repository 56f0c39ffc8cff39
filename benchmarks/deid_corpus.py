"""De-identification recall and precision on the hand-written PHI corpus, as a markdown table.

Run from the repository root::

    .venv/bin/python benchmarks/deid_corpus.py [--misses]

The notes of ``tests/data/phi_corpus.tsv`` go through the real de-identification step
(``pipelines.notes.stage.deidentify_frame``: Spark NLP + :mod:`pipelines.notes.deid`) on a
``local[2]`` session; scoring is :mod:`pipelines.notes.deid_eval` (the same code
``tests/test_deid_corpus.py`` asserts on). ``--misses`` also lists every span missed and every
unmarked token masked.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "phi_corpus.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--misses", action="store_true", help="list missed spans and FPs")
    args = parser.parse_args()

    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings
    from pipelines.notes import deid_eval

    notes = deid_eval.load_corpus(args.corpus)
    scratch = Path(tempfile.mkdtemp(prefix="oncorank-deid-"))
    spark = spark_session(Settings(lakehouse=scratch / "lakehouse", spark_master="local[2]",
                                   shuffle_partitions=2), app_name="bench-deid-corpus")
    t0 = time.perf_counter()
    report = deid_eval.score(notes, deid_eval.run(spark, notes))
    seconds = time.perf_counter() - t0
    print(f"{len(notes)} notes, {sum(len(n.spans) for n in notes)} PHI spans "
          f"({seconds:.1f} s incl. pipeline fit)\n")
    print(deid_eval.markdown_table(report))
    if args.misses:
        print("\nMissed spans:")
        for cat, s in report.categories.items():
            for m in s.missed:
                print(f"  {cat:<12} {m}")
        print("\nUnmarked tokens masked:")
        for t in report.other_masked:
            print(f"  {t}")
    spark.stop()


if __name__ == "__main__":
    main()

"""Benchmark: Charlson/Elixhauser computation, oncorank (Spark) vs pycomorb (polars).

Run from the repository root (one Spark session per process)::

    .venv/bin/python benchmarks/comorbidity.py --patients 20000

Both compute every Quan 2005 component, the hierarchy rules, the Charlson index and the van
Walraven score on the same random code sets (the generator of tests/test_comorbidity.py); the
script also reports their agreement. Spark start-up is timed apart; a warm-up pass on a small
input precedes the timed pass. Prints one markdown table row per system.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from tests.test_comorbidity import (
        CHARLSON_NAMES,
        ELIXHAUSER_NAMES,
        _random_code_sets,
        _reference,
    )

    rows = _random_code_sets(args.patients, seed=7)
    random.Random(0).shuffle(rows)

    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings

    t0 = time.perf_counter()
    spark = spark_session(Settings(lakehouse=Path("/tmp/oncorank-bench/lakehouse"),
                                   spark_master=args.master, shuffle_partitions=2,
                                   driver_memory="2g"))
    startup = time.perf_counter() - t0
    from pipelines.clinical.comorbidity import comorbidity_flags

    def ours(data):
        df = spark.createDataFrame(data, "patient_id string, code string")
        return comorbidity_flags(df, id_col="patient_id").toPandas().set_index("patient_id")

    ours(rows[:500])                                   # warm-up (JIT, broadcast, workers)
    t0 = time.perf_counter()
    mine = ours(rows)
    t_ours = time.perf_counter() - t0
    _reference(rows[:500])
    t0 = time.perf_counter()
    ref = _reference(rows).set_index("id")
    t_ref = time.perf_counter() - t0
    cols = [*CHARLSON_NAMES.values(), "charlson_index", *ELIXHAUSER_NAMES.values(),
            "elixhauser_vw"]
    agree = int((mine[cols].astype(int) == ref.loc[mine.index, cols].astype(int)).all(axis=1)
                .sum())
    n = len(mine)
    print(f"| codes rows | {len(rows):,} | patients | {n:,} | Spark start-up | {startup:.1f} s |")
    print("| system | seconds | patients/s | ratio vs pycomorb | patients agreeing |")
    print("|---|---|---|---|---|")
    print(f"| oncorank Spark ({args.master}) | {t_ours:.1f} | {n / t_ours:,.0f} | "
          f"{t_ours / t_ref:.1f}x | {agree:,}/{n:,} |")
    print(f"| pycomorb 1.20261001.1 (polars) | {t_ref:.1f} | {n / t_ref:,.0f} | 1.0x | – |")


if __name__ == "__main__":
    main()

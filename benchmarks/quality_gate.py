"""Benchmark: what the quality gate adds to a table write.

For each size, a frame shaped like ``silver.variants`` is written through
``JobRun.write`` three ways, each into a fresh table, in one Spark session (``local[2]``):

* ``no gate``: ``gate=False`` (the peer: the Delta write alone);
* ``gate, clean``: the packaged ``expectations/silver.variants.json`` suite (15 expectations),
  nothing fails, so the gate is one Great Expectations validation;
* ``gate, 1% bad``: 1% of rows have VAF > 1, so the gate also splits rows with its Spark
  predicates and writes the quarantine.

Also reported: the time the gate itself took (``gate s``), and the once-per-job cost of storing
results (``ops.data_quality`` append + Data Docs build). The first validation of a process
(GX import, context creation, JIT warm-up) is measured separately and excluded.

Usage::

    .venv/bin/python benchmarks/quality_gate.py [--sizes 1000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def variants_frame(spark, n: int, bad_fraction: float = 0.0):
    from pyspark.sql import functions as F

    bad_every = int(1 / bad_fraction) if bad_fraction else 0
    vaf = (F.col("id") % 997) / 1000.0
    if bad_every:
        vaf = F.when(F.col("id") % bad_every == 0, F.lit(1.5)).otherwise(vaf)
    hexkey = F.substring(F.sha2(F.col("id").cast("string"), 256), 1, 20)
    return spark.range(n).select(
        F.sha2(F.col("id").cast("string"), 256).alias("variant_key"),
        F.substring(F.sha2((F.col("id") % 500).cast("string"), 256), 1, 20).alias("patient_key"),
        hexkey.alias("sample"),
        ((F.col("id") % 22) + 1).cast("string").alias("chrom"),
        (F.col("id") * 7 + 1).alias("pos"),
        F.lit("A").alias("ref"), F.lit("T").alias("alt"), F.lit("PASS").alias("filter"),
        F.lit("0/1").alias("gt"), vaf.alias("vaf"), (F.col("id") % 200).cast("int").alias("dp"),
        F.lit("EGFR").alias("gene"), F.lit("missense_variant").alias("consequence"),
        F.lit(None).cast("string").alias("hgvsc"), F.lit(None).cast("string").alias("hgvsp"),
        F.lit("ENST00000275493").alias("transcript"),
        F.lit("vcf-0123456789abcdef0123").alias("source_file"),
        F.col("id").alias("record_index"), F.lit(1).alias("allele_index"),
    )


def timed_write(spark, settings, df, name: str, gate: bool):
    from pipelines.lakehouse.audit import job_run
    from pipelines.quality import results

    closing = {}
    orig = results.flush

    def timed_flush(run):
        t = time.perf_counter()
        orig(run)
        closing["s"] = time.perf_counter() - t

    results.flush = timed_flush
    try:
        t0 = time.perf_counter()
        with job_run(spark, settings, "bench-gate") as run:
            n = df.count()
            run.count_in(n)
            t1 = time.perf_counter()
            buf = results.pending(run) if gate else None
            run.write(df, settings.table("silver", name), keys=["variant_key"], gate=gate)
            write_s = time.perf_counter() - t1
            gate_s = sum(buf.gate_seconds.values()) if buf else 0.0
            if not gate:  # nothing to flush: leave no empty buffer behind
                results._pending.pop(run.run_id, None)
                run.on_close.clear()
        job_s = time.perf_counter() - t0
    finally:
        results.flush = orig
    return {"write_s": write_s, "gate_s": gate_s, "close_s": closing.get("s", 0.0),
            "job_s": job_s, "quarantined": run.rows_quarantined}


def main() -> None:
    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings
    from pipelines.quality import suites

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="oncorank-gate-bench-"))
    settings = Settings(lakehouse=root / "lakehouse", spark_master="local[2]",
                        shuffle_partitions=2, driver_memory="4g")
    # Tables are named silver.variants_<n>_<i>; every one uses the silver.variants suite.
    suite = suites.load_suite("silver.variants")
    suites.load_suite = lambda key, s=None: suite if key.startswith("silver.variants") else None
    spark = spark_session(settings, app_name="bench-quality-gate")
    t = time.perf_counter()
    timed_write(spark, settings, variants_frame(spark, 100), "variants_warmup", True)
    first = time.perf_counter() - t
    print(f"load average {os.getloadavg()[0]:.1f}; first gated write of the process "
          f"(GX import + context + warm-up): {first:.1f} s")
    rows = []
    i = 0
    for n in args.sizes:
        frames = {"no gate": (variants_frame(spark, n), False),
                  "gate, clean": (variants_frame(spark, n), True),
                  "gate, 1% bad": (variants_frame(spark, n, 0.01), True)}
        res: dict[str, list[dict]] = {k: [] for k in frames}
        for _ in range(args.repeat):
            for label, (df, gate) in frames.items():
                i += 1
                res[label].append(timed_write(spark, settings, df, f"variants_{n}_{i}", gate))
        base = statistics.median(r["write_s"] for r in res["no gate"])
        for label, rs in res.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            rows.append((n, label, med, med["write_s"] / base))
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| rows | write | write s | ratio vs no gate | gate s | per-job close s | quarantined |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, label, med, ratio in rows:
        print(f"| {n:,} | {label} | {med['write_s']:.2f} | {ratio:.2f} | {med['gate_s']:.2f} | "
              f"{med['close_s']:.2f} | {int(med['quarantined']):,} |")
    spark.stop()


if __name__ == "__main__":
    main()

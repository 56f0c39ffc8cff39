"""Startup time of a local oncorank Spark session (Delta + Spark NLP jars), cold and warm.

Each measurement runs in a fresh Python process so the JVM starts from nothing.
`cold` empties the jar cache first (downloads from Maven Central); `warm` uses the cache
(the offline path). Peer: a bare `SparkSession` with no extra jars, same process shape.

    .venv/bin/python benchmarks/session_startup.py [--repeats 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time, tempfile, pathlib
t0 = time.perf_counter()
kind = sys.argv[1]
if kind == "oncorank":
    from pipelines.lakehouse.settings import Settings
    from pipelines.lakehouse.session import spark_session
    s = Settings(lakehouse=pathlib.Path(tempfile.mkdtemp()) / "lh", driver_memory="2g")
    spark = spark_session(s)
    spark.range(1).write.format("delta").save(str(s.lakehouse / "t"))
else:
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.range(1).write.parquet(tempfile.mkdtemp() + "/t")
t1 = time.perf_counter()
spark.stop()
print(json.dumps({"kind": kind, "seconds": t1 - t0}))
"""


def measure(kind: str, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also measure a cold jar cache")
    args = ap.parse_args()
    env = dict(os.environ, JAVA_HOME=os.environ.get("JAVA_HOME", ""))
    from pipelines.lakehouse.session import java_home

    env["JAVA_HOME"] = java_home()
    results = {}
    if args.cold:
        cache = Path(tempfile.mkdtemp()) / "jars"
        results["oncorank_cold_cache"] = measure("oncorank", dict(env, ONCORANK_JARS_DIR=str(cache)))
        shutil.rmtree(cache.parent, ignore_errors=True)
    for kind in ("oncorank", "bare"):
        times = [measure(kind, env) for _ in range(args.repeats)]
        results[f"{kind}_warm_median"] = statistics.median(times)
        results[f"{kind}_warm_all"] = times
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

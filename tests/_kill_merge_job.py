"""A job that MERGEs a largish table through the quality gate, for the kill test.

``tests/test_robustness.py`` runs :func:`run_job` uninterrupted in-process (the reference) and
in a child process (``python tests/_kill_merge_job.py LAKEHOUSE SUITES ROWS``) that it kills
with SIGKILL mid-write, then runs again to completion. The data are a pure function of
``ROWS``, so every run writes the same thing: an upsert that updates, inserts and deletes
rows, and quarantines the rows with an impossible VAF.
"""

from __future__ import annotations

import sys
from pathlib import Path

TABLE = ("silver", "kill_test")
SUITE = {
    "table": "silver.kill_test",
    "keys": ["id"],
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"},
         "severity": "stop"},
        {"type": "expect_column_values_to_be_between", "severity": "quarantine",
         "kwargs": {"column": "vaf", "min_value": 0, "max_value": 1}},
    ],
}


def initial_rows(spark, n: int):
    """What the table holds before the job: ids 0..n-1, version 1."""
    from pyspark.sql import functions as F

    return spark.range(n).select(
        F.col("id"), F.lit(1).alias("version"),
        (F.col("id") % 1000 / 1000.0).alias("vaf"),
        F.sha2(F.col("id").cast("string"), 256).alias("payload"))


def job_rows(spark, n: int):
    """What the job writes: every other id updated, a tenth deleted, n/4 new, some bad VAFs."""
    from pyspark.sql import functions as F

    ids = spark.range(n // 10, n + n // 4)  # ids below n/10 disappear (delete_missing)
    return ids.select(
        F.col("id"),
        F.when(F.col("id") % 2 == 0, F.lit(2)).otherwise(F.lit(1)).alias("version"),
        F.when(F.col("id") % 997 == 0, F.lit(1.5))  # impossible VAF -> quarantine
        .otherwise(F.col("id") % 1000 / 1000.0).alias("vaf"),
        F.sha2(F.concat(F.col("id").cast("string"),
                        F.when(F.col("id") % 2 == 0, F.lit("v2")).otherwise(F.lit(""))),
               256).alias("payload"))


def run_job(spark, settings, n: int, announce=None):
    from pipelines.lakehouse.audit import job_run

    ref = settings.table(*TABLE)
    with job_run(spark, settings, "kill-test") as run:
        df = job_rows(spark, n)
        run.count_in(df.count())
        if announce:
            announce()
        run.write(df, ref, keys=["id"], delete_missing=True)
    return run


def main(argv: list[str]) -> None:
    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings

    lakehouse, suites, n = Path(argv[0]), argv[1], int(argv[2])
    settings = Settings(lakehouse=lakehouse, spark_master="local[2]", shuffle_partitions=2,
                        driver_memory="1g", sections={"quality": {"expectations_dir": suites}})
    spark = spark_session(settings, app_name="oncorank-kill-test")
    run_job(spark, settings, n, announce=lambda: print("MERGE-START", flush=True))
    print("DONE", flush=True)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

"""Progress inside a stage: the Spark status tracker of a real local session."""

from __future__ import annotations

import re
import time

from pipelines.lakehouse.progress import SparkProgress, Throttled


def test_a_running_job_reports_its_tasks(spark):
    lines: list[str] = []

    def slow(rows):
        time.sleep(0.3)
        return rows

    with SparkProgress(spark, lines.append, interval=0.2):
        spark.sparkContext.parallelize(range(24), 24).mapPartitions(slow).count()
    counts = [tuple(map(int, m.groups())) for m in
              (re.match(r"(\d+)/(\d+) tasks", ln) for ln in lines) if m]
    assert counts, lines
    assert all(total == 24 and 0 <= done <= 24 for done, total in counts)
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)  # only ever goes forward


def test_nothing_is_reported_when_spark_is_idle(spark):
    lines: list[str] = []
    with SparkProgress(spark, lines.append, interval=0.1):
        time.sleep(0.5)
    assert lines == []


def test_a_log_gets_one_line_per_period():
    got: list[str] = []
    emit = Throttled(got.append, every=60.0)
    for i in range(5):
        emit(f"{i}/5 tasks")
    assert got == ["0/5 tasks"]

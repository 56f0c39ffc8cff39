"""The quality status of the data, per table, for reports and the command line.

``quality_status(spark, settings)`` reads ``ops.data_quality`` and the quarantine tables and
returns, for every table that has a suite result, its latest validation: how many
expectations passed, failed (and what that did), were skipped, and how many of its rows sit
in quarantine. The tumor-board report shows it next to the rankings.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from pipelines.lakehouse import delta
from pipelines.lakehouse.settings import Settings

# Worst first: a table's status is the worst action any of its expectations took.
STATUS_ORDER = ("fail", "quarantined", "warn", "pass")
_ACTION_STATUS = {"stopped": "fail", "quarantined": "quarantined", "warned": "warn"}


def quality_status(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Latest validation per table, e.g. ``{"status": "quarantined", "tables": {...}}``.

    Returns ``{"status": "unknown", "tables": {}, ...}`` when no gate has run yet. Each table
    entry holds ``run_id``, ``job``, ``validated_at``, ``status`` (fail | quarantined | warn |
    pass), ``passed``, ``failed``, ``skipped``, ``failures`` (expectation, severity, action,
    unexpected_count), ``quarantined_rows`` (all rows in its quarantine) and ``data_docs``.
    """
    from pipelines.quality.engine import data_docs_index
    from pipelines.quality.quarantine import quarantine_tables

    index = data_docs_index(settings)
    out: dict[str, Any] = {"status": "unknown", "tables": {},
                           "data_docs": index.as_uri() if index.is_file() else None}
    dq_ref = settings.table("ops", "data_quality")
    dq = delta.read_optional(spark, dq_ref)
    if dq is None:
        return out
    latest = Window.partitionBy("table")
    rows = (
        dq.withColumn("_key", F.struct("validated_at", "run_id"))
        .withColumn("_latest", F.max("_key").over(latest))
        .filter(F.col("_key") == F.col("_latest"))
        .orderBy("table", "expectation")
        .collect()
    )
    quarantined: dict[str, int] = {}
    for qref in quarantine_tables(spark, settings):
        for r in delta.read_table(spark, qref).groupBy("target_table").count().collect():
            quarantined[r["target_table"]] = quarantined.get(r["target_table"], 0) + r["count"]
    tables: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = tables.setdefault(r["table"], {
            "run_id": r["run_id"], "job": r["job"], "validated_at": r["validated_at"],
            "status": "pass", "passed": 0, "failed": 0, "skipped": 0, "failures": [],
            "quarantined_rows": quarantined.get(r["table"], 0), "data_docs": r["data_docs"],
        })
        if r["status"] == "passed":
            t["passed"] += 1
        elif r["status"] == "skipped":
            t["skipped"] += 1
        else:
            t["failed"] += 1
            t["failures"].append({"expectation": r["expectation"], "severity": r["severity"],
                                  "action": r["action"],
                                  "unexpected_count": r["unexpected_count"]})
            status = _ACTION_STATUS.get(r["action"], "pass")
            if STATUS_ORDER.index(status) < STATUS_ORDER.index(t["status"]):
                t["status"] = status
    out["tables"] = tables
    if tables:
        out["status"] = min((t["status"] for t in tables.values()), key=STATUS_ORDER.index)
    return out

"""Validation results are kept: ``ops.data_quality`` rows and Great Expectations Data Docs.

The gate buffers one row per expectation it evaluated (or skipped) during a job; when the job
ends, succeeded or failed, :func:`flush` appends them to ``ops.data_quality`` in one Delta
commit and renders the job's Data Docs pages once, instead of paying both on every write.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import types as T

from pipelines.lakehouse import delta
from pipelines.lakehouse.comments import comments_for

log = logging.getLogger("oncorank.quality")

DATA_QUALITY_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField("table", T.StringType(), False),
    T.StructField("expectation", T.StringType(), False),
    T.StructField("expectation_type", T.StringType(), False),
    T.StructField("column", T.StringType(), True),
    T.StructField("severity", T.StringType(), False),
    T.StructField("success", T.BooleanType(), True),
    T.StructField("status", T.StringType(), False),
    T.StructField("action", T.StringType(), False),
    T.StructField("observed_value", T.StringType(), True),
    T.StructField("unexpected_count", T.LongType(), True),
    T.StructField("rows_validated", T.LongType(), True),
    T.StructField("details", T.StringType(), True),
    T.StructField("suite", T.StringType(), True),
    T.StructField("data_docs", T.StringType(), True),
    T.StructField("validated_at", T.TimestampType(), False),
])



@dataclass
class Outcome:
    """One expectation's result for one validated write."""

    table: str
    expectation: str
    expectation_type: str
    column: str | None
    severity: str
    success: bool | None
    status: str
    action: str
    observed_value: Any = None
    unexpected_count: int | None = None
    rows_validated: int | None = None
    details: str | None = None
    suite: str | None = None
    data_docs: str | None = None


@dataclass
class _Pending:
    outcomes: list[tuple[Outcome, dt.datetime]] = field(default_factory=list)
    identifiers: list[Any] = field(default_factory=list)
    cached: list[Any] = field(default_factory=list)
    gate_seconds: dict[str, float] = field(default_factory=dict)


_pending: dict[str, _Pending] = {}


def pending(run) -> _Pending:
    """The run's buffer; registers :func:`flush` to run when the job ends."""
    if run.run_id not in _pending:
        _pending[run.run_id] = _Pending()
        if flush not in run.on_close:
            run.on_close.append(flush)
    return _pending[run.run_id]


def _json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=str, sort_keys=True)[:2000]
    except (TypeError, ValueError):
        return str(value)[:2000]


def flush(run) -> None:
    """Store the job's outcomes in ``ops.data_quality`` and render its Data Docs pages."""
    from pipelines.quality import engine

    buf = _pending.pop(run.run_id, None)
    if buf is None:
        return
    for df in buf.cached:
        df.unpersist()
    docs_index = None
    if buf.identifiers:
        try:
            docs_index = engine.build_docs(run.settings, buf.identifiers)
        except Exception:  # Data Docs are a view of the results; never fail the job on them
            log.exception("could not build Data Docs for run %s", run.run_id)
    if not buf.outcomes:
        return
    rows = [
        (run.run_id, run.job, o.table, o.expectation, o.expectation_type, o.column, o.severity,
         o.success, o.status, o.action, _json(o.observed_value),
         None if o.unexpected_count is None else int(o.unexpected_count),
         None if o.rows_validated is None else int(o.rows_validated), o.details, o.suite,
         o.data_docs, at.replace(tzinfo=None))
        for o, at in buf.outcomes
    ]
    ref = run.settings.table("ops", "data_quality")
    delta.append_rows(run.spark, ref, rows, DATA_QUALITY_SCHEMA,
                      **comments_for(ref, DATA_QUALITY_SCHEMA.names))
    for table, seconds in sorted(buf.gate_seconds.items()):
        log.info("%s: quality gate on %s took %.2f s", run.job, table, seconds)
    if docs_index is not None:
        log.info("%s: data quality results in %s", run.job, docs_index.as_uri())

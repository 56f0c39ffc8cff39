"""Job audit: every job run is a row in ``ops.job_runs`` and its counts must reconcile.

A job opens a :func:`job_run` and does all its table I/O through the :class:`JobRun`:

* ``run.read(ref)`` pins and records the Delta version it read; ``run.read_optional(ref)``
  does the same for an input the job can do without, and returns None (logged once) when
  the table does not exist yet;
* ``run.count_in(n)`` adds to the rows the job took in; ``run.count_written(n)`` adds to
  the rows of a primary output that is not a Delta table (reports, trained models);
* ``run.write(df, ref, ...)`` passes the rows through the table's data-quality gate, moves
  rejected rows to the quarantine, writes the rest idempotently, and records the version;
* ``run.quarantine(bad_df, target)`` quarantines rows the job itself rejected (parse errors).

When the block ends, rows in must equal rows written + rows quarantined for the job's
*primary* output (``primary=True`` writes, the default); otherwise the run is recorded as
failed and :class:`ReconciliationError` is raised.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import OncorankError, ReconciliationError
from pipelines.lakehouse.settings import Settings, TableRef, git_sha

log = logging.getLogger("oncorank")

JOB_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("parent_run_id", T.StringType(), True),
        T.StructField("job", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("rows_in", T.LongType(), False),
        T.StructField("rows_written", T.LongType(), False),
        T.StructField("rows_quarantined", T.LongType(), False),
        T.StructField("tables_read", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("tables_written", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("git_sha", T.StringType(), True),
        T.StructField("config_hash", T.StringType(), True),
        T.StructField("environment", T.StringType(), True),
        T.StructField("message", T.StringType(), True),
    ]
)


QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("quarantine_id", T.StringType(), False),
        T.StructField("target_table", T.StringType(), False),
        T.StructField("source", T.StringType(), True),
        T.StructField("record_index", T.LongType(), True),
        T.StructField("record", T.StringType(), True),
        T.StructField("rule", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)

# Columns a job may add to rows it quarantines, to say where they came from and why.
SOURCE_COL, INDEX_COL, RULE_COL, REASON_COL = "_source", "_record_index", "_rule", "_reason"


@dataclass
class JobRun:
    spark: SparkSession
    settings: Settings
    job: str
    parent_run_id: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    tables_read: dict[str, int] = field(default_factory=dict)
    tables_written: dict[str, int] = field(default_factory=dict)
    status: str = "running"
    message: str | None = None
    # Called with the run when the job ends (succeeded or failed), before it is recorded: the
    # quality gate stores its validation results and builds Data Docs once per job this way.
    on_close: list[Callable[[JobRun], None]] = field(default_factory=list)
    # Optional inputs found absent (each is logged once per run).
    absent: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ reading
    def table(self, schema: str, name: str) -> TableRef:
        return self.settings.table(schema, name)

    def read(self, ref: TableRef) -> DataFrame:
        """Read a table at its current version and record that version."""
        version = delta.current_version(self.spark, ref)
        df = delta.read_table(self.spark, ref, version)
        if version is not None:
            self.tables_read[ref.key] = version
        return df

    def read_optional(self, ref: TableRef, *, consequence: str = "",
                      level: int = logging.INFO) -> DataFrame | None:
        """:meth:`read` for an input the job can do without: None when ``ref`` does not
        exist yet, logged once per table and run (at ``level``, with ``consequence``, e.g.
        "its features are null"). A caller that needs a typed empty frame instead applies
        that fallback to the None.
        """
        version = delta.current_version(self.spark, ref)
        df = delta.read_optional(self.spark, ref, version)
        if df is None:
            if ref.key not in self.absent:
                self.absent.add(ref.key)
                log.log(level, "%s: optional input %s is absent%s", self.job, ref.key,
                        f"; {consequence}" if consequence else "")
            return None
        if version is not None:
            self.tables_read[ref.key] = version
        return df

    def count_in(self, n: int) -> None:
        self.rows_in += int(n)

    def count_written(self, n: int) -> None:
        """Rows of a primary output that is not a Delta table (a report per patient, the
        training rows of the models): they reconcile with ``rows_in`` like written rows."""
        self.rows_written += int(n)

    # ------------------------------------------------------------------ writing
    def write(
        self,
        df: DataFrame,
        ref: TableRef,
        *,
        mode: str = "merge",
        keys: list[str] | None = None,
        primary: bool = True,
        gate: bool = True,
        cache: bool = True,
        **options,
    ) -> delta.WriteResult:
        """Gate, quarantine the rejected rows, write the rest; returns rows and version.

        ``primary=False`` marks a derived output (e.g. a per-patient summary) whose rows do
        not enter the job's reconciliation. ``cache=False`` when ``df`` is a cheap filter or
        projection of a frame the caller already cached: the gate, the count and the write
        then scan that cache instead of building a second copy (bronze variants: the copy
        costs more than the scans).
        """
        if cache:
            df = df.persist()
        try:
            if gate:
                from pipelines.quality.gate import apply_gate

                good, bad = apply_gate(self, df, ref)
            else:
                good, bad = df, None
            quarantined = self.quarantine(bad, ref, primary=primary) if bad is not None else 0
            if cache or bad is not None:
                good = good.persist()
            rows = good.count()
            options = {**_registered_comments(ref, good.columns, options), **options}
            version = delta.write_table(self.spark, good, ref, mode=mode, keys=keys, **options)
            good.unpersist()
        finally:
            if cache:
                df.unpersist()
        return self.wrote(ref, rows, version, quarantined, primary=primary)

    def wrote(self, ref: TableRef, rows: int, version: int | None, quarantined: int = 0, *,
              primary: bool = True) -> delta.WriteResult:
        """Record a write done outside :meth:`write` (its rows, the table version)."""
        if version is not None:
            self.tables_written[ref.key] = version
        if primary:
            self.rows_written += rows
        log.info("%s: wrote %d rows to %s (v%s), quarantined %d", self.job, rows, ref.key,
                 version, quarantined)
        return delta.WriteResult(ref.key, rows, version)

    def quarantine(self, bad: DataFrame | None, target: TableRef, *, primary: bool = True) -> int:
        """Store rejected rows in ``<schema>.quarantine_<table>`` (idempotent by content).

        ``bad`` holds the rows as received plus ``_rule`` and ``_reason`` (and optionally
        ``_source`` and ``_record_index``). Returns the number of rows quarantined.
        """
        if bad is None:
            return 0
        bad = bad.persist()
        n = bad.count()
        if n:
            meta = {SOURCE_COL, INDEX_COL, RULE_COL, REASON_COL}
            record_cols = [c for c in bad.columns if c not in meta]
            record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in record_cols]))

            def opt(col: str, typ: str):
                return F.col(col).cast(typ) if col in bad.columns else F.lit(None).cast(typ)

            rows = bad.select(
                F.lit(target.key).alias("target_table"),
                opt(SOURCE_COL, "string").alias("source"),
                opt(INDEX_COL, "long").alias("record_index"),
                record.alias("record"),
                F.col(RULE_COL).cast("string").alias("rule"),
                F.col(REASON_COL).cast("string").alias("reason"),
            )
            rows = rows.select(
                F.sha2(
                    F.concat_ws(
                        "\u241f", "target_table", F.coalesce("source", F.lit("")),
                        F.coalesce(F.col("record_index").cast("string"), F.lit("")),
                        F.coalesce("record", F.lit("")), "rule",
                    ),
                    256,
                ).alias("quarantine_id"),
                "*",
                F.lit(self.run_id).alias("run_id"),
                F.lit(self.started_at.replace(tzinfo=None)).cast("timestamp").alias(
                    "quarantined_at"),
            ).dropDuplicates(["quarantine_id"])
            qref = self.settings.quarantine_table(target)
            _insert_new(self.spark, rows, qref)
            self.tables_written[qref.key] = delta.current_version(self.spark, qref)
        bad.unpersist()
        if primary:
            self.rows_quarantined += n
        return n

    # ------------------------------------------------------------------ closing
    def reconcile(self) -> None:
        if self.rows_in != self.rows_written + self.rows_quarantined:
            raise ReconciliationError(
                f"Job {self.job} does not reconcile: {self.rows_in} rows in, "
                f"{self.rows_written} written + {self.rows_quarantined} quarantined "
                f"= {self.rows_written + self.rows_quarantined}. The run is marked failed."
            )

    def _record(self) -> None:
        row = (
            self.run_id,
            self.parent_run_id,
            self.job,
            self.started_at.replace(tzinfo=None),
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
            self.status,
            self.rows_in,
            self.rows_written,
            self.rows_quarantined,
            {k: int(v) for k, v in self.tables_read.items()},
            {k: int(v) for k, v in self.tables_written.items() if v is not None},
            git_sha(),
            self.settings.config_hash,
            self.settings.env,
            self.message,
        )
        from pipelines.lakehouse.comments import comments_for

        ref = self.settings.table("ops", "job_runs")
        delta.append_rows(self.spark, ref, [row], JOB_RUNS_SCHEMA,
                          **comments_for(ref, JOB_RUNS_SCHEMA.names))


def _insert_new(spark: SparkSession, rows: DataFrame, ref: TableRef) -> None:
    """Insert quarantine rows not already present (a re-run adds nothing)."""
    if not delta.table_exists(spark, ref):
        delta.write_table(spark, rows, ref, mode="overwrite",
                          table_comment="Rows rejected on the way into " + ref.name[11:])
        return
    (
        delta._delta_table(spark, ref)
        .alias("t")
        .merge(rows.alias("s"), "t.quarantine_id = s.quarantine_id")
        .whenNotMatchedInsertAll()
        .execute()
    )


@contextmanager
def job_run(
    spark: SparkSession, settings: Settings, job: str, parent_run_id: str | None = None
) -> Iterator[JobRun]:
    """Run a job under audit; see the module docstring.

    >>> with job_run(spark, settings, "ingest-notes") as run:  # doctest: +SKIP
    ...     run.count_in(10); run.write(df, settings.table("bronze", "notes_raw"), keys=["note_id"])
    """
    run = JobRun(spark, settings, job, parent_run_id)
    try:
        yield run
        run.reconcile()
        run.status = "succeeded"
    except BaseException as exc:
        run.status = "failed"
        run.message = str(exc)[:2000] if isinstance(exc, OncorankError) else (
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:500] if str(exc) else ''}"
        )
        if not isinstance(exc, OncorankError):
            log.debug("job %s failed:\n%s", job, traceback.format_exc())
        raise
    finally:
        for hook in run.on_close:
            try:
                hook(run)
            except Exception:  # a failing hook must never hide the job's own error
                log.exception("job %s: closing hook %r failed", job, hook)
        try:
            run._record()
        except Exception:  # recording must never hide the job's own error
            log.exception("could not record job run %s", run.run_id)


def _registered_comments(ref: TableRef, columns: list[str], options: dict) -> dict:
    """Comments from the registry (pipelines/lakehouse/comments.py) for what the writer left out."""
    from pipelines.lakehouse.comments import comments_for

    registered = comments_for(ref, columns)
    given = options.get("comments") or {}
    merged = {**registered["comments"], **given}
    out: dict = {"comments": merged} if merged else {}
    if registered["table_comment"] and not options.get("table_comment"):
        out["table_comment"] = registered["table_comment"]
    return out

"""Delta I/O: read with the version pinned, write idempotently.

Three write modes, all safe to re-run:

* ``merge`` — upsert by natural key (Delta MERGE). Rows whose values did not change are not
  rewritten; with ``delete_missing=True`` target rows absent from the source are deleted (the
  source is then a complete snapshot of the table, or of ``scope`` of it).
* ``replace`` — replace one partition/slice atomically (``replaceWhere``).
* ``overwrite`` — replace the whole table atomically.
* ``append`` — only for logs (``ops.*``), whose rows are events. The job records are a
  few rows each: :func:`append_rows` writes them with Arrow and a blind-append commit, no
  Spark job.

Every write is one Delta commit: a crash before it leaves the table at its previous version;
a crash after it leaves the finished write, which a re-run reproduces.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.lakehouse.errors import DataQualityError, SchemaMismatchError
from pipelines.lakehouse.settings import TableRef

log = logging.getLogger("oncorank.lakehouse")

WRITE_MODES = ("merge", "replace", "overwrite", "append")


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    version: int | None


def _delta_table(spark: SparkSession, ref: TableRef):
    from delta.tables import DeltaTable

    if ref.path:
        return DeltaTable.forPath(spark, ref.path)
    return DeltaTable.forName(spark, ref.identifier)


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    from delta.tables import DeltaTable

    if ref.path:
        return DeltaTable.isDeltaTable(spark, ref.path)
    return spark.catalog.tableExists(ref.identifier.replace("`", ""))


def current_version(spark: SparkSession, ref: TableRef) -> int | None:
    """The table's latest version, or None when it does not exist.

    For a path-based table, read from the Delta log's snapshot (a listing of ``_delta_log``,
    ~20 ms); ``DeltaTable.history`` runs a Spark job (~0.4 s on one core) and is used only
    for catalog tables or without JVM access (Spark Connect).
    """
    if not table_exists(spark, ref):
        return None
    jvm = getattr(spark, "_jvm", None)
    if ref.path and jvm is not None:
        none = jvm.scala.Option.empty()
        return int(_delta_log(spark, ref).update(False, none, none).version())
    row = _delta_table(spark, ref).history(1).select("version").first()
    return int(row["version"]) if row else None


def read_optional(spark: SparkSession, ref: TableRef,
                  version: int | None = None) -> DataFrame | None:
    """:func:`read_table` for a table that may not exist yet: ``None`` when it does not.

    The one way to read an optional table; inside a job, ``JobRun.read_optional`` adds the
    version record and a log line.
    """
    if not table_exists(spark, ref):
        return None
    return read_table(spark, ref, version)


def read_table(spark: SparkSession, ref: TableRef, version: int | None = None) -> DataFrame:
    """Read a table (at ``version`` when given). A missing table is a clear error."""
    from pipelines.lakehouse.errors import InputNotFoundError

    if not table_exists(spark, ref):
        raise InputNotFoundError(
            f"Table {ref.key} does not exist yet ({ref}); run the stage that writes it first."
        )
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref.path) if ref.path else reader.table(ref.identifier)


def with_comments(df: DataFrame, comments: dict[str, str] | None) -> DataFrame:
    """Attach column comments as field metadata; Delta keeps them in the table schema."""
    for column, text in (comments or {}).items():
        if column in df.columns:
            df = df.withMetadata(column, {**df.schema[column].metadata, "comment": text})
    return df


def write_table(
    spark: SparkSession,
    df: DataFrame,
    ref: TableRef,
    *,
    mode: str = "merge",
    keys: list[str] | None = None,
    delete_missing: bool = False,
    replace_where: str | None = None,
    partition_by: list[str] | None = None,
    comments: dict[str, str] | None = None,
    table_comment: str | None = None,
    allow_schema_change: bool = False,
) -> int | None:
    """Write ``df`` to ``ref`` in one commit and return the new table version.

    >>> write_table(spark, df, settings.table("silver", "variants"),
    ...             keys=["variant_key"])  # doctest: +SKIP
    """
    if mode not in WRITE_MODES:
        raise ValueError(f"mode must be one of {WRITE_MODES}, got {mode!r}")
    if mode == "merge" and not keys:
        raise ValueError("merge needs the natural key columns (keys=[...])")
    if mode == "replace" and not replace_where:
        raise ValueError("replace needs a replace_where predicate")
    missing = [k for k in keys or [] if k not in df.columns]
    if missing:
        raise SchemaMismatchError(f"Key column(s) {missing} are not in the data for {ref.key}.")
    df = with_comments(df, comments)

    if not table_exists(spark, ref):
        _create(df, ref, partition_by, table_comment)
        return current_version(spark, ref)

    target_cols = _delta_table(spark, ref).toDF().columns
    if mode != "append" and not allow_schema_change:
        _check_schema(ref, target_cols, df.columns)
    if mode == "merge":
        _merge(spark, df, ref, keys, delete_missing)
    elif mode == "append":
        _save(_writer(df.select(*target_cols), ref, "append", partition_by), ref)
    else:
        writer = _writer(df, ref, "overwrite", partition_by)
        if mode == "replace":
            writer = writer.option("replaceWhere", replace_where)
        if allow_schema_change:
            writer = writer.option("overwriteSchema", "true")
        _save(writer, ref)
    return current_version(spark, ref)


def append_rows(spark: SparkSession, ref: TableRef, rows: list[tuple], schema, *,
                comments: dict[str, str] | None = None, table_comment: str | None = None
                ) -> int | None:
    """Append a few rows (tuples in ``schema``, a Spark ``StructType``) in one commit.

    For an existing path-based table in a local folder whose schema is ``schema``, the rows
    are written as one Parquet file by Arrow and published with a blind-append Delta commit
    (:func:`commit_files`' route): no Spark job. A one-row ``ops`` record through Spark's
    writer costs ~0.9 s on one core (a write job, then the commit), and every job writes
    two. Anything else (a new table, a catalog table, partitions, constraints, column
    mapping, another schema, a null in a NOT NULL column) goes through :func:`write_table`.
    """
    if not rows:
        return None
    if ref.path and os.path.isdir(os.path.join(str(ref.path), "_delta_log")):
        version = _append_direct(spark, ref, rows, schema)
        if version is not None:
            return version
    df = spark.createDataFrame(rows, schema)
    return write_table(spark, df, ref, mode="append", comments=comments,
                       table_comment=table_comment)


def _append_direct(spark: SparkSession, ref: TableRef, rows: list[tuple], schema
                   ) -> int | None:
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    jvm = spark._jvm
    if jvm is None:
        return None
    txn = _delta_log(spark, ref).startTransaction()
    meta = json.loads(txn.metadata().json())["metaData"]
    config = meta.get("configuration") or {}
    if (meta.get("partitionColumns")
            or any(k.startswith("delta.constraints.") for k in config)
            or config.get("delta.columnMapping.mode", "none") != "none"):
        return None
    table = T.StructType.fromJson(json.loads(meta["schemaString"]))
    if ([(f.name, f.dataType.simpleString()) for f in table.fields]
            != [(f.name, f.dataType.simpleString()) for f in schema.fields]):
        return None
    names = [f.name for f in schema.fields]
    required = [i for i, f in enumerate(table.fields) if not f.nullable]
    if any(r[i] is None for r in rows for i in required):
        return None  # Spark's writer raises Delta's own NOT NULL error
    data = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows],
                                schema=to_arrow_schema(schema))
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    path = os.path.join(str(ref.path), name)
    pq.write_table(data, path, compression="snappy")
    add = {"add": {"path": name, "partitionValues": {}, "size": os.path.getsize(path),
                   "modificationTime": int(os.path.getmtime(path) * 1000),
                   "dataChange": True, "stats": json.dumps({"numRecords": len(rows)})}}
    action = jvm.org.apache.spark.sql.delta.actions.Action.fromJson(json.dumps(add))
    try:
        return _commit(spark, txn, [action], "Append")
    except Exception:
        os.remove(path)
        raise


def _writer(df: DataFrame, ref: TableRef, mode: str, partition_by):
    writer = df.write.format("delta").mode(mode)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return writer


def _create(df: DataFrame, ref: TableRef, partition_by, table_comment) -> None:
    # DataFrameWriterV2 so the table comment lands in the Delta metadata (DESCRIBE DETAIL
    # ``description``, Unity Catalog's table comment); the v1 writer drops it silently.
    writer = df.writeTo(ref.identifier).using("delta")
    if partition_by:
        writer = writer.partitionedBy(*(F.col(c) for c in partition_by))
    if table_comment:
        writer = writer.tableProperty("comment", table_comment)
    writer.create()


def _save(writer, ref: TableRef) -> None:
    if ref.path:
        writer.save(ref.path)
    else:
        writer.saveAsTable(ref.identifier)


def add_columns(spark: SparkSession, ref: TableRef, df: DataFrame,
                comments: dict[str, str] | None = None) -> list[str]:
    """Add to an existing table the columns of ``df`` it lacks (null in its earlier rows);
    return their names. The deliberate migration a stage runs when a new version of oncorank
    adds output columns: one ``ALTER TABLE ... ADD COLUMNS`` commit, never a silent schema
    merge, and nothing is ever dropped or retyped."""
    if not table_exists(spark, ref):
        return []
    have = set(_delta_table(spark, ref).toDF().columns)
    new = [f for f in df.schema.fields if f.name not in have]
    if not new:
        return []
    target = f"delta.`{ref.path}`" if ref.path else ref.identifier
    comments = comments or {}

    def spec(f) -> str:
        text = comments.get(f.name) or f.metadata.get("comment", "")
        note = " COMMENT '" + text.replace("'", "''") + "'" if text else ""
        return f"`{f.name}` {f.dataType.simpleString()}{note}"

    spark.sql(f"ALTER TABLE {target} ADD COLUMNS ({', '.join(spec(f) for f in new)})")
    return [f.name for f in new]


def drop_columns(spark: SparkSession, ref: TableRef, columns: list[str]) -> list[str]:
    """Rewrite an existing table without ``columns`` (the ones it has); return their names.

    The deliberate migration when a new version of oncorank stops writing a column that must
    not stay readable (an identifier): one overwrite commit with the remaining columns and
    their comments. The table's earlier versions still hold the column until
    ``oncorank vacuum`` purges them."""
    if not table_exists(spark, ref):
        return []
    current = _delta_table(spark, ref).toDF()
    gone = [c for c in columns if c in current.columns]
    if not gone:
        return []
    _save(_writer(current.drop(*gone), ref, "overwrite", None)
          .option("overwriteSchema", "true"), ref)
    return gone


def _check_schema(ref: TableRef, target_cols: list[str], source_cols: list[str]) -> None:
    added = [c for c in source_cols if c not in target_cols]
    removed = [c for c in target_cols if c not in source_cols]
    if added or removed:
        raise SchemaMismatchError(
            f"Schema drift for {ref.key}: the data has new column(s) {added} and lacks "
            f"column(s) {removed} compared with the table; nothing was written. Fix the "
            "upstream change, or migrate the table deliberately."
        )


def _merge(spark, df: DataFrame, ref: TableRef, keys: list[str], delete_missing: bool) -> None:
    dup = df.groupBy(*keys).count().filter(F.col("count") > 1).limit(3).collect()
    if dup:
        examples = ", ".join(str({k: r[k] for k in keys}) for r in dup)
        raise DataQualityError(
            f"Duplicate natural keys {keys} in the data for {ref.key} (e.g. {examples}); "
            "nothing was written."
        )
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    value_cols = [c for c in df.columns if c not in keys]
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in value_cols) or "false"
    builder = (
        _delta_table(spark, ref)
        .alias("t")
        .merge(df.alias("s"), on)
        .whenMatchedUpdateAll(condition=changed)
        .whenNotMatchedInsertAll()
    )
    if delete_missing:
        builder = builder.whenNotMatchedBySourceDelete()
    builder.execute()


# ---------------------------------------------------------------------------- staged files
def commit_files(spark: SparkSession, ref: TableRef, adds: list[dict], *, column: str,
                 tag: str, replaced: list[str], predicate: str) -> int | None:
    """Publish Parquet files already written in ``ref``'s folder, in one Delta commit.

    ``adds`` are Delta ``add`` actions (JSON-ready dicts) whose ``tags[tag]`` names the one
    value of ``column`` their rows hold (their statistics say so too); the commit also
    removes the table's files of the values in ``replaced`` — the files holding only one of
    them (:func:`_replaced_files`) — so it is a ``replaceWhere predicate`` (``column IN
    replaced``) whose rows were written outside Spark's writer (recorded in the history as a
    WRITE with that predicate). The transaction reads the whole table, so a concurrent writer
    makes one of the two commits fail instead of both succeeding.

    Returns the new version, or ``None`` (nothing committed) when a file of the table may
    hold rows of a replaced slice and other rows: only a Spark ``replaceWhere`` write can
    replace part of such a file, which the caller then does. Only for path-based tables
    (``ref.path``).
    """
    jvm = spark._jvm
    txn = _delta_log(spark, ref).startTransaction()
    removes = _replaced_files(spark, txn, ref, column, tag, set(replaced))
    if removes is None:
        return None
    actions = removes + [jvm.org.apache.spark.sql.delta.actions.Action.fromJson(json.dumps(a))
                         for a in adds]
    return _commit(spark, txn, actions, "Overwrite", predicate)


def _replaced_files(spark: SparkSession, txn, ref: TableRef, column: str, tag: str,
                    wanted: set[str]) -> list | None:
    """``remove`` actions (JVM objects) for the table's files of the ``wanted`` values of
    ``column``, with the whole table recorded as read by ``txn``; None when a file may hold
    wanted and other values alike.

    The file list of the transaction's snapshot is read from the Delta log by ``deltalake``
    (~40 ms) instead of Delta's own state reconstruction (``filterFiles``: three Spark jobs,
    ~1 s on one core whenever the table has a new version), and the whole table is marked
    read (``readWholeTable``), so a concurrent writer still makes one commit fail. A file
    belongs to a value when its statistics say every row holds it (min = max, no nulls), as
    for the files :mod:`pipelines.genomics.staging` writes (which also carry ``tag``).
    Partitioned tables, protocols that allow deletion vectors and tables ``deltalake``
    cannot read take Delta's route.
    """
    import time

    import pyarrow as pa
    from deltalake import DeltaTable

    try:
        table = DeltaTable(str(ref.path), version=int(txn.snapshot().version()))
        if ("deletionVectors" in (table.protocol().writer_features or [])
                or table.metadata().partition_columns):
            return _replaced_files_jvm(txn, column, tag, wanted)
        files = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    except Exception as exc:  # a table feature deltalake cannot read: Delta's own listing
        log.info("deltalake cannot list %s (%s); using Delta's listing", ref.key, exc)
        return _replaced_files_jvm(txn, column, tag, wanted)
    txn.readWholeTable()
    lo, hi, nulls = f"min.{column}", f"max.{column}", f"null_count.{column}"
    now = int(time.time() * 1000)
    removes = []
    for f in files:
        if f.get(lo) is not None and f.get(lo) == f.get(hi) and f.get(nulls) == 0:
            if f[lo] in wanted:
                removes.append({"remove": {
                    "path": f["path"], "deletionTimestamp": now, "dataChange": True,
                    "extendedFileMetadata": True, "partitionValues": {},
                    "size": f["size_bytes"]}})
            continue
        if not _outside_bounds(f.get("num_records"), f.get(lo), f.get(hi), f.get(nulls),
                               wanted):
            return None
    action = spark._jvm.org.apache.spark.sql.delta.actions.Action
    return [action.fromJson(json.dumps(r)) for r in removes]


def _replaced_files_jvm(txn, column: str, tag: str, wanted: set[str]) -> list | None:
    """:func:`_replaced_files` through Delta's own file listing (the tag decides)."""
    actions = []
    files = txn.filterFiles().iterator()  # the whole table, recorded as read by this commit
    while files.hasNext():
        f = files.next()
        add = json.loads(f.json())["add"]
        owner = (add.get("tags") or {}).get(tag)
        if owner is None:
            if add.get("deletionVector") or not _outside(add.get("stats"), column, wanted):
                return None
            continue
        if owner in wanted:
            actions.append(f.remove())
    return actions


def _commit(spark: SparkSession, txn, actions: list, save_mode: str,
            predicate: str | None = None) -> int:
    """Commit Delta ``actions`` (JVM objects) in ``txn``, recorded in the history as a WRITE
    in ``save_mode`` ("Append", "Overwrite") with ``predicate`` (a replaceWhere)."""
    jvm = spark._jvm
    jlist = jvm.java.util.ArrayList()
    for action in actions:
        jlist.add(action)
    seq = jvm.scala.collection.JavaConverters.asScalaBufferConverter(jlist).asScala().toSeq()
    option = jvm.scala.Option
    operation = jvm.org.apache.spark.sql.delta.DeltaOperations.Write(
        getattr(jvm.org.apache.spark.sql.SaveMode, save_mode), option.empty(),
        option.empty() if predicate is None else option.apply(predicate), option.empty())
    return int(txn.commit(seq, operation))


def _delta_log(spark: SparkSession, ref: TableRef):
    """Delta's own ``DeltaLog`` of a path-based table (JVM object, through py4j)."""
    return spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession,
                                                                   str(ref.path))


def _outside(stats: str | None, column: str, values: set[str]) -> bool:
    """True when a file's Delta statistics prove none of its rows has ``column`` in
    ``values`` (Delta truncates long strings in statistics, keeping min/max as bounds)."""
    if not stats:
        return False
    s = json.loads(stats)
    return _outside_bounds(s.get("numRecords"), (s.get("minValues") or {}).get(column),
                           (s.get("maxValues") or {}).get(column),
                           (s.get("nullCount") or {}).get(column), values)


def _outside_bounds(n: int | None, lo, hi, nulls: int | None, values: set[str]) -> bool:
    """:func:`_outside` on a file's row count and one column's min, max and null count."""
    if n == 0:
        return True
    if lo is None or hi is None:
        # no bounds: outside only when every value is null
        return nulls is not None and nulls == n
    return not any(lo <= v <= hi for v in values)


DEFAULT_RETAIN_HOURS = 168  # Delta's own default (7 days): concurrent readers stay safe


def vacuum(spark: SparkSession | None, ref: TableRef,
           retain_hours: float = DEFAULT_RETAIN_HOURS) -> int:
    """Delete the data files of ``ref`` that no version younger than ``retain_hours`` needs;
    returns how many were deleted (-1 when the catalog's VACUUM does not say).

    After it, time travel reaches only versions within the retention: the way to purge what
    earlier versions held (text before a de-identification fix, a column dropped for privacy).
    A retention under Delta's 7-day default can break a query or job reading the table at the
    same time, so run it when nothing else runs. The transaction log keeps per-file statistics
    (min/max of the first columns) of removed files until its own retention
    (``delta.logRetentionDuration``, 30 days by default) expires them.

    A local table is vacuumed by ``deltalake`` (the Delta log read in-process: ~0.1 s a table,
    where Delta's Spark VACUUM runs listing and join jobs of tens of seconds even for a small
    table); a catalog table by ``VACUUM … RETAIN n HOURS`` in Spark SQL (``spark`` is needed
    only then).
    """
    if ref.path:
        from deltalake import DeltaTable

        deleted = DeltaTable(str(ref.path)).vacuum(
            retention_hours=math.ceil(retain_hours), enforce_retention_duration=False,
            dry_run=False)
        return len(deleted)
    key = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(key, "true")
    if retain_hours < DEFAULT_RETAIN_HOURS:
        spark.conf.set(key, "false")
    try:
        spark.sql(f"VACUUM {ref.identifier} RETAIN {retain_hours:g} HOURS")
    finally:
        spark.conf.set(key, before)
    return -1

"""``oncorank quarantine list|show|replay``: why rows were rejected, and taking them back.

Every table ``schema.t`` has its rejected rows in ``schema.quarantine_t`` (one row per
rejected record: the record as received, as JSON, the rule and a readable reason).

* :func:`list_quarantines`: each quarantine with its row counts by rule.
* :func:`show_quarantine`: the rejected rows of one table, record truncated, with the reason.
* :func:`replay_quarantine`: re-validate the rows against the *current* suite (and re-parse
  rows a stage rejected, through the stage's replay function); rows now accepted are written
  to the table and removed from the quarantine, the others stay with their current reason.
  The replay is a job (``quarantine-replay``) under audit, so its counts reconcile:
  rows considered = rows written + rows still quarantined.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rich.console import Console

from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError
from pipelines.lakehouse.settings import SCHEMAS, Settings, TableRef

REPLAY_JOB = "quarantine-replay"
RECORD_WIDTH = 120


def quarantine_tables(spark: SparkSession, settings: Settings) -> list[TableRef]:
    """Every quarantine table in the lakehouse."""
    refs: list[TableRef] = []
    for schema in SCHEMAS:
        if settings.is_local:
            folder = settings.lakehouse / schema
            names = sorted(p.name for p in folder.glob("quarantine_*")
                           if (p / "_delta_log").is_dir()) if folder.is_dir() else []
        else:
            rows = spark.sql(f"SHOW TABLES IN `{settings.catalog}`."
                             f"`{settings.schema_name(schema)}` LIKE 'quarantine_*'").collect()
            names = sorted(r["tableName"] for r in rows)
        refs.extend(settings.table(schema, n) for n in names)
    return refs


def target_ref(settings: Settings, table: str) -> TableRef:
    """``schema.table`` (or its quarantine's name) as the target table's reference."""
    parts = table.strip().split(".")
    if len(parts) != 2 or parts[0] not in SCHEMAS or not parts[1]:
        raise ConfigError(f"Table {table!r} is not schema.table (e.g. silver.patients); "
                          f"schemas are {', '.join(SCHEMAS)}.")
    schema, name = parts
    if name.startswith("quarantine_"):
        name = name[len("quarantine_"):]
    return settings.table(schema, name)


def _quarantine_of(spark, settings, table: str) -> tuple[TableRef, TableRef]:
    target = target_ref(settings, table)
    qref = settings.quarantine_table(target)
    if not delta.table_exists(spark, qref):
        raise InputNotFoundError(
            f"No rows were ever quarantined on the way into {target.key} ({qref.key} does not "
            "exist); `oncorank quarantine list` shows the tables that have quarantined rows.")
    return target, qref


def list_quarantines(spark: SparkSession, settings: Settings,
                     console: Console | None = None) -> list[dict[str, Any]]:
    """Print (and return) each quarantine's row counts by rule, with an example reason."""
    from pipelines.quality.engine import data_docs_index

    console = console or Console()
    summary: list[dict[str, Any]] = []
    for qref in quarantine_tables(spark, settings):
        rows = (
            delta.read_table(spark, qref)
            .groupBy("target_table", "rule")
            .agg(F.count(F.lit(1)).alias("rows"), F.min("reason").alias("example_reason"),
                 F.max("quarantined_at").alias("last_quarantined_at"))
            .orderBy("target_table", "rule")
            .collect()
        )
        summary.extend({"table": r["target_table"], "quarantine": qref.key, "rule": r["rule"],
                        "rows": int(r["rows"]), "example_reason": r["example_reason"],
                        "last_quarantined_at": r["last_quarantined_at"]} for r in rows)
    if not summary:
        console.print("No quarantined rows.")
    else:
        # Plain lines, not a table: rules and reasons are long and must stay greppable.
        for s in summary:
            _say(console, f"{s['table']}  {s['rows']:>7} row(s)  rule {s['rule']}  "
                          f"(e.g. {_cut(s['example_reason'], 100)}; last "
                          f"{str(s['last_quarantined_at'])[:19]})")
        _say(console, "Show the rows of one table with `oncorank quarantine show TABLE`.")
    index = data_docs_index(settings)
    if index.is_file():
        _say(console, f"Validation results (Data Docs): {index.as_uri()}")
    return summary


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _cut(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def show_quarantine(spark: SparkSession, settings: Settings, table: str, limit: int = 20,
                    console: Console | None = None) -> list[dict[str, Any]]:
    """Print (and return) up to ``limit`` quarantined rows of ``table`` with their reason."""
    console = console or Console()
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}.")
    target, qref = _quarantine_of(spark, settings, table)
    q = delta.read_table(spark, qref).filter(F.col("target_table") == target.key)
    total = q.count()
    rows = (q.orderBy("quarantined_at", "source", "record_index", "quarantine_id")
            .limit(limit).collect())
    shown = [{"quarantine_id": r["quarantine_id"], "source": r["source"],
              "record_index": r["record_index"], "rule": r["rule"], "reason": r["reason"],
              "record": r["record"], "quarantined_at": r["quarantined_at"]} for r in rows]
    _say(console, f"{target.key}: {total} quarantined row(s)"
                  + (f", first {len(shown)} shown" if total > len(shown) else ""))
    for s in shown:
        where = s["source"] or "-"
        if s["record_index"] is not None:
            where += f"#{s['record_index']}"
        _say(console, f"- {s['quarantine_id'][:12]}  {where}  rule {s['rule']}")
        _say(console, f"    reason: {s['reason']}")
        _say(console, f"    record: {_cut(s['record'], RECORD_WIDTH)}")
    return shown


# ---------------------------------------------------------------------------- replay
def _gate_rows(q: DataFrame, target_schema) -> DataFrame:
    """Gate-quarantined rows parsed back into the target's columns (+ ``_qid``)."""
    parsed = q.select(F.col("quarantine_id").alias("_qid"),
                      F.from_json("record", target_schema).alias("_row"))
    return parsed.filter(F.col("_row").isNotNull()).select(
        "_qid", *[F.col("_row").getField(f.name).alias(f.name) for f in target_schema.fields])


def replay_quarantine(spark: SparkSession, settings: Settings, table: str,
                      console: Console | None = None) -> dict[str, Any]:
    """Re-run the quarantined rows of ``table``; write those now accepted. Returns counts."""
    from pipelines.lakehouse.audit import job_run
    from pipelines.quality import replay, suites
    from pipelines.quality.gate import GATE_RULE_PREFIX, WITHHELD, validate_and_split

    console = console or Console()
    target, qref = _quarantine_of(spark, settings, table)
    if not delta.table_exists(spark, target):
        raise InputNotFoundError(f"Table {target.key} does not exist; run the stage that "
                                 "writes it before replaying its quarantine.")
    replay.discover()
    entry = replay.get_replay(target.key)
    suite = suites.load_suite(target.key, settings)
    keys = list((entry.keys if entry and entry.keys else ()) or (suite.keys if suite else ()))
    if not keys:
        raise ConfigError(
            f"Cannot replay into {target.key}: its natural key is unknown; add \"keys\" to "
            f"expectations/{target.key}.json.")

    with job_run(spark, settings, REPLAY_JOB) as run:
        q = run.read(qref).filter(F.col("target_table") == target.key).persist()
        considered = q.count()
        run.count_in(considered)
        target_cols = delta.read_table(spark, target).schema
        is_gate = F.col("rule").startswith(GATE_RULE_PREFIX)
        gate_rows = q.filter(is_gate)
        for c in (suite.quarantine_withhold if suite else ()):
            # The value was never stored: only a re-run of the stage can bring the row back.
            gate_rows = gate_rows.filter(~F.col("record").contains(f'"{c}":"{WITHHELD}'))
        candidates = _gate_rows(gate_rows, target_cols)
        if entry is not None:
            stage_rows = q.filter(~is_gate)
            if entry.rules is not None:
                stage_rows = stage_rows.filter(F.col("rule").isin(list(entry.rules)))
            reparsed = entry.fn(spark, settings, stage_rows)
            if "quarantine_id" not in reparsed.columns:
                raise ConfigError(f"The replay function for {target.key} must return a "
                                  "quarantine_id column with the target's columns.")
            reparsed = reparsed.withColumnRenamed("quarantine_id", "_qid").select(
                "_qid", *[F.col(f"`{f.name}`").cast(f.dataType).alias(f.name)
                          for f in target_cols.fields])
            candidates = candidates.unionByName(reparsed)
        candidates = candidates.persist()
        if candidates.isEmpty():  # nothing can be re-read: every row stays as it is
            good, bad = None, None
        elif suite is not None:
            good, bad = validate_and_split(run, candidates, target, suite)
        else:
            good, bad = candidates, None
        if good is not None:
            good = good.persist()
            run.write(good.drop("_qid"), target, mode="merge", keys=keys, gate=False)
            changes = good.select("_qid", F.lit("delete").alias("_action"),
                                  F.lit(None).cast("string").alias("_rule"),
                                  F.lit(None).cast("string").alias("_reason"))
            if bad is not None:
                changes = changes.unionByName(bad.select(
                    "_qid", F.lit("update").alias("_action"), "_rule", "_reason"))
            _apply_changes(spark, qref, changes, run.run_id)
            good.unpersist()
        accepted = run.rows_written
        run.rows_quarantined += considered - accepted
        candidates.unpersist()
        q.unpersist()
    summary = {"table": target.key, "considered": considered, "accepted": accepted,
               "still_quarantined": considered - accepted, "run_id": run.run_id}
    _say(console, f"{target.key}: replayed {considered} quarantined row(s): {accepted} now "
                  f"accepted and written, {considered - accepted} still quarantined.")
    return summary


def _apply_changes(spark, qref: TableRef, changes: DataFrame, run_id: str) -> None:
    """One MERGE: drop accepted rows, refresh the rule and reason of the rejected ones."""
    (
        delta._delta_table(spark, qref).alias("t")
        .merge(changes.alias("s"), "t.quarantine_id = s._qid")
        .whenMatchedDelete(condition="s._action = 'delete'")
        .whenMatchedUpdate(
            condition="s._action = 'update' AND NOT (t.rule <=> s._rule AND t.reason <=> s._reason)",
            set={"rule": "s._rule", "reason": "s._reason", "run_id": F.lit(run_id)})
        .execute()
    )

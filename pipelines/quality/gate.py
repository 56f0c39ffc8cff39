"""The data-quality gate every ``JobRun.write`` passes through.

``apply_gate(run, df, ref)`` returns ``(good, bad)``: ``bad`` holds rows that failed a
row-level expectation of severity ``quarantine``, with ``_rule`` and ``_reason`` columns, or is
``None``. Table-level failures (severity ``stop``) raise
:class:`~pipelines.lakehouse.errors.DataQualityError` before anything is written. Tables
without a suite in ``expectations/`` pass unchanged.

How one write is validated (see ``pipelines/quality/README.md``):

1. decide which of the suite's expectations apply: an expectation on a column the frame lacks
   is skipped (the suite's schema expectation, severity ``stop``, says which columns must
   exist), and so is a cross-table check whose referenced table does not exist yet; an
   expectation the writer has already checked exactly on every row (a :class:`Verified`
   passed by the caller, e.g. key uniqueness proven while the rows were written in key order)
   is recorded as passed with how it was checked, and not run again; so is one that exact
   column facts counted while writing (:class:`ColumnFacts`: nulls, min/max, patterns
   matched) show every row passes (:func:`settle`);
2. run those expectations with Great Expectations on the Spark frame (one validation);
3. stop if a ``stop`` expectation failed, naming the table, the expectation and examples;
4. only if a ``quarantine`` expectation failed, evaluate the failing ones as Spark predicates
   in one pass to split the rows, giving each bad row its rule(s) and reason(s).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import ConfigError, DataQualityError
from pipelines.lakehouse.settings import TableRef
from pipelines.quality.predicates import COLUMN_PREDICATES, row_check
from pipelines.quality.suites import REF_PATTERN, ExpectationSpec, Suite

log = logging.getLogger("oncorank.quality")

ROW_ID = "_gate_row_id"
BATCH_VIEW = "_gate_batch"
# Quarantine rules written by the gate start with this, so a replay knows it can re-validate
# those rows against the current suite (other rules belong to the stage that wrote them).
GATE_RULE_PREFIX = "gx:"
UNIQUE_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


@dataclass(frozen=True)
class Verified:
    """An expectation the producer of a frame has checked exactly, on every row, by other
    means: ``type`` on ``columns`` (any order), with ``how`` saying how (the outcome's
    details). Only :data:`VERIFIABLE` types qualify: for them a check of all rows settles
    the expectation whatever its other arguments."""

    type: str
    columns: tuple[str, ...]
    how: str

    def covers(self, spec: ExpectationSpec) -> bool:
        return (spec.type == self.type and spec.type in VERIFIABLE
                and sorted(spec.columns) == sorted(self.columns))


# Uniqueness of every row's key implies uniqueness of any subset of rows (row_condition,
# ignore_row_if) and satisfies any ``mostly``.
VERIFIABLE = frozenset(UNIQUE_TYPES)


@dataclass(frozen=True)
class ColumnFacts:
    """Exact facts about one column over every row of a frame, counted by its producer
    while it wrote the rows: the null count out of ``rows``, the smallest and largest
    non-null value (None when not measured), and the regular expressions every non-null
    value was checked to match. ``how`` says where they were counted.

    Unlike a :class:`Verified`, facts claim no verdict: the gate itself decides from them,
    and only in the one direction they can settle (:func:`settle`): every row passes. An
    expectation they cannot settle — a bound the facts cross, a pattern not checked, a
    parameter — runs in Great Expectations as usual, which also finds the rows to
    quarantine.
    """

    column: str
    nulls: int
    rows: int
    min: Any = None
    max: Any = None
    matches: tuple[str, ...] = ()
    how: str = ""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def settle(spec: ExpectationSpec, facts: ColumnFacts) -> str | None:
    """Why ``facts`` prove that every row passes ``spec`` (the outcome's details), or None.

    Decided types: ``not_be_null`` (no nulls), ``be_between`` with numeric bounds (the
    observed min and max inside them, strictness honoured; GX ignores nulls here), and
    ``match_regex`` with a pattern the producer checked on every non-null value (the same
    pattern string). Every row passing settles any ``mostly`` and any ``row_condition``.
    """
    kw = spec.kwargs
    if spec.columns != (facts.column,):
        return None
    if spec.type == "expect_column_values_to_not_be_null":
        return f"{facts.how}: no null in {facts.column}" if facts.nulls == 0 else None
    if spec.type == "expect_column_values_to_match_regex":
        pattern = kw.get("regex")
        return (f"{facts.how}: every value of {facts.column} matches {pattern}"
                if pattern in facts.matches else None)
    if spec.type != "expect_column_values_to_be_between":
        return None
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if (lo is None and hi is None) or not all(v is None or _number(v) for v in (lo, hi)):
        return None  # GX's own error for no bounds; dates and parameters: GX decides
    if facts.nulls == facts.rows:
        return f"{facts.how}: every value of {facts.column} is null"
    if facts.min is None or facts.max is None:
        return None
    if lo is not None and not (facts.min > lo if kw.get("strict_min") else facts.min >= lo):
        return None
    if hi is not None and not (facts.max < hi if kw.get("strict_max") else facts.max <= hi):
        return None
    return f"{facts.how}: {facts.column} ranges over [{facts.min}, {facts.max}]"


def apply_gate(run, df: DataFrame, ref: TableRef,
               verified: tuple[Verified | ColumnFacts, ...] = (),
               n_rows: int | None = None) -> tuple[DataFrame, DataFrame | None]:
    """Validate ``df`` against ``ref``'s suite; returns (rows that pass, quarantined rows).

    ``verified``: what the producer checked on every row — proofs (:class:`Verified`) and
    column facts (:class:`ColumnFacts`); expectations they settle are recorded as passed
    with how, and not run again.

    ``n_rows``: ``df``'s row count when the producer knows it exactly (files it wrote and
    counted), which spares a Spark job over every row; else the gate counts.
    """
    from pipelines.quality import suites

    suite = suites.load_suite(ref.key, run.settings)
    if suite is None:
        return df, None
    return suites.run_suite(run, df, ref, suite, verified, n_rows)


def parameters(run) -> dict[str, Any]:
    """Values of ``{"$PARAMETER": name}`` placeholders for this run.

    ``today`` is the job's start date (UTC); ``today_plus_max_shift`` is the latest date a
    de-identified (shifted) date can take, since shifts go up to the privacy module's maximum;
    ``catalog_regimens`` and ``catalog_cancer_types`` come from the regimen catalog, so the
    suites never hold a copy that could drift from it.
    """
    from pipelines.catalog import regimen_catalog
    from pipelines.lakehouse.privacy import MAX_SHIFT_DAYS as max_shift

    today = run.started_at.date()
    catalog = regimen_catalog()
    return {"today": today.isoformat(),
            "today_plus_max_shift": (today + dt.timedelta(days=max_shift)).isoformat(),
            "catalog_regimens": sorted(r.name for r in catalog.regimens),
            "catalog_cancer_types": sorted(catalog.cancer_types)}


def resolve(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        name = value["$PARAMETER"]
        if name not in params:
            raise ConfigError(f"Unknown suite parameter {name!r}; known: {sorted(params)}.")
        return params[name]
    return value


def _view_name(table_key: str) -> str:
    return "_gate_ref_" + table_key.replace(".", "__")


# Expectations about a share or a statistic of the rows: an empty batch has none to measure
# (GX reports them failed), so they are skipped there instead of stopping an empty write.
STATISTIC_PREFIXES = ("expect_column_proportion_of_", "expect_column_mean_",
                      "expect_column_median_", "expect_column_stdev_", "expect_column_sum_",
                      "expect_column_min_", "expect_column_max_", "expect_column_quantile_")


def _plan(run, df: DataFrame, suite: Suite, n_rows: int,
          verified: tuple[Verified | ColumnFacts, ...] = ()):
    """Split the suite into applicable expectations (with GX kwargs), skipped ones and ones
    the producer's proofs or column facts settle (with how)."""
    columns = set(df.columns)
    facts = {v.column: v for v in verified if isinstance(v, ColumnFacts) and v.column in columns}
    proofs = [v for v in verified if isinstance(v, Verified)]
    active: list[tuple[ExpectationSpec, dict]] = []
    skipped: list[tuple[ExpectationSpec, str]] = []
    proven: list[tuple[ExpectationSpec, str]] = []
    for spec in suite.expectations:
        proof = next((v for v in proofs if v.covers(spec)), None)
        how = proof.how if proof is not None else (
            settle(spec, facts[spec.columns[0]])
            if len(spec.columns) == 1 and spec.columns[0] in facts else None)
        if how is not None:
            proven.append((spec, how))
            continue
        if n_rows == 0 and spec.type.startswith(STATISTIC_PREFIXES):
            skipped.append((spec, "no rows to measure"))
            continue
        missing = [c for c in spec.columns if c not in columns]
        if missing and not spec.is_schema:
            skipped.append((spec, f"column(s) {missing} not in the data; the schema "
                                  "expectation decides whether that is an error"))
            continue
        kwargs = dict(spec.kwargs)
        if spec.references:
            absent = []
            for key in spec.references:
                schema, name = key.split(".")
                ref = run.settings.table(schema, name)
                version = delta.current_version(run.spark, ref)
                if version is None:
                    absent.append(key)
                    continue
                # Pin the referenced table at the version we check against, and record it.
                delta.read_table(run.spark, ref, version).createOrReplaceTempView(
                    _view_name(key))
                run.tables_read.setdefault(key, version)
            if absent:
                skipped.append((spec, f"referenced table(s) {absent} do not exist yet"))
                continue
            kwargs["unexpected_rows_query"] = REF_PATTERN.sub(
                lambda m: _view_name(f"{m.group(1)}.{m.group(2)}"), kwargs["unexpected_rows_query"])
        active.append((spec, kwargs))
    return active, skipped, proven


def validate_and_split(run, df: DataFrame, ref: TableRef, suite: Suite,
                       verified: tuple[Verified | ColumnFacts, ...] = (),
                       n_rows: int | None = None
                       ) -> tuple[DataFrame, DataFrame | None]:
    """Validate ``df`` (about to be written to ``ref``) and split off quarantined rows."""
    from pipelines.quality import engine, results

    t0 = time.perf_counter()
    validated_at = dt.datetime.now(dt.UTC)
    if n_rows is None:
        # Materialise the (cached) frame first: an error in the producing step then surfaces
        # as the step's own error, not as every expectation failing inside GX.
        n_rows = df.count()
    params = parameters(run)
    active, skipped, proven = _plan(run, df, suite, n_rows, verified)
    gx, identifier = engine.validate(run.settings, ref.key, active, df, params, run.run_id)
    page = str(engine.page_for(run.settings, identifier)) if identifier is not None else None
    buf = results.pending(run)
    if identifier is not None:
        buf.identifiers.append(identifier)

    rows = n_rows
    outcomes: list[results.Outcome] = []
    stops: list[tuple[ExpectationSpec, dict, Any]] = []
    quarantines: list[tuple[ExpectationSpec, dict]] = []
    suite_label = f"{suite.source.rsplit('/', 1)[-1]}@{suite.digest}"
    for spec, kwargs in active:
        r = gx[spec.name]
        if r.success:
            status, action = "passed", "none"
        elif r.error is not None:
            status = "error"
            action = "warned" if spec.severity == "warn" else "stopped"
        else:
            status = "failed"
            action = {"warn": "warned", "quarantine": "quarantined", "stop": "stopped"}[
                spec.severity]
        if action == "stopped":
            stops.append((spec, kwargs, r))
        elif action == "quarantined":
            quarantines.append((spec, kwargs))
        elif action == "warned":
            what = r.error or (f"{r.unexpected_count} rows" if r.unexpected_count
                               else f"observed {r.observed_value!r}")
            log.warning("%s: %s on %s failed (%s)", run.job, spec.name, ref.key, what)
        outcomes.append(results.Outcome(
            ref.key, spec.name, spec.type, ",".join(spec.columns) or None, spec.severity,
            r.success, status, action, r.observed_value, r.unexpected_count,
            rows, r.error, suite_label, page))
    for spec, why in skipped:
        outcomes.append(results.Outcome(
            ref.key, spec.name, spec.type, ",".join(spec.columns) or None, spec.severity,
            None, "skipped", "skipped", rows_validated=rows, details=why, suite=suite_label,
            data_docs=page))
    for spec, how in proven:
        outcomes.append(results.Outcome(
            ref.key, spec.name, spec.type, ",".join(spec.columns) or None, spec.severity,
            True, "passed", "none", unexpected_count=0, rows_validated=rows, details=how,
            suite=suite_label, data_docs=page))

    def record() -> None:
        seconds = time.perf_counter() - t0
        buf.gate_seconds[ref.key] = buf.gate_seconds.get(ref.key, 0) + seconds
        buf.outcomes.extend((o, validated_at) for o in outcomes)

    if stops:
        message = _stop_message(run, df, ref, suite, stops, params, rows)
        record()
        raise DataQualityError(message)
    good, bad = (df, None) if not quarantines else _split(run, df, suite, quarantines, params,
                                                            buf)
    record()
    return good, bad


# ---------------------------------------------------------------------------- row split
def _unique_check(spec: ExpectationSpec, df_columns: list[str], sensitive) -> tuple[Column, Column]:
    """Rows whose key is shared by another row.

    When every row sharing the key is identical, one copy is kept and the others are
    quarantined as exact duplicates; when they differ, nobody can tell which is right, so all
    of them are quarantined.
    """
    cols = list(spec.columns)
    w = Window.partitionBy(*[F.col(f"`{c}`") for c in cols])
    content = F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in df_columns])), 256)
    n = F.count(F.lit(1)).over(w)
    distinct = F.size(F.collect_set(content).over(w))
    first = F.row_number().over(w.orderBy(content)) == 1
    if spec.type == "expect_column_values_to_be_unique":
        ignored = F.col(f"`{cols[0]}`").isNull()
    else:
        how = spec.kwargs.get("ignore_row_if", "all_values_are_missing")
        nulls = [F.col(f"`{c}`").isNull() for c in cols]
        if how == "any_value_is_missing":
            ignored = _any(nulls)
        elif how == "never":
            ignored = F.lit(False)
        else:
            ignored = _all(nulls)
    fails = ~ignored & (n > 1) & ~((distinct == 1) & first)
    shown = F.concat_ws(", ", *[F.concat(F.lit(f"{c}="), F.lit("<redacted>") if c in sensitive
                                         else F.coalesce(F.col(f"`{c}`").cast("string"),
                                                         F.lit("null"))) for c in cols])
    reason = F.when(
        distinct == 1,
        F.concat(F.lit("exact duplicate of another row with the same key ("), shown, F.lit(")")),
    ).otherwise(F.concat(F.lit("key ("), shown, F.lit(") is shared by "), n.cast("string"),
                         F.lit(" rows with different values")))
    return fails, reason


def _any(conds: list[Column]) -> Column:
    out = conds[0]
    for c in conds[1:]:
        out = out | c
    return out


def _all(conds: list[Column]) -> Column:
    out = conds[0]
    for c in conds[1:]:
        out = out & c
    return out


def _split(run, df: DataFrame, suite: Suite, quarantines, params, buf):
    spark = run.spark
    base = df
    checks: list[tuple[str, Column, Column]] = []
    needs_ids = any(s.type == "unexpected_rows_expectation" for s, _ in quarantines)
    if needs_ids:
        base = df.withColumn(ROW_ID, F.monotonically_increasing_id()).persist()
        buf.cached.append(base)
        base.createOrReplaceTempView(BATCH_VIEW)
    for spec, kwargs in quarantines:
        if spec.type in COLUMN_PREDICATES:
            resolved = {k: resolve(v, params) for k, v in kwargs.items()}
            fails, reason = row_check(spec.type, resolved, suite.sensitive_columns)
        elif spec.type in UNIQUE_TYPES:
            fails, reason = _unique_check(spec, df.columns, suite.sensitive_columns)
        else:  # unexpected_rows_expectation: the rows its query returns
            query = kwargs["unexpected_rows_query"].replace("{batch}", BATCH_VIEW)
            hits = spark.sql(query)
            if ROW_ID not in hits.columns:
                raise ConfigError(
                    f"{spec.name} in {suite.source} has severity quarantine, so its query must "
                    "return the batch's rows (SELECT b.* FROM {batch} b ...); it returns "
                    f"{hits.columns}.")
            flag = f"_gate_hit_{len(checks)}"
            hits = hits.select(F.col(ROW_ID), F.lit(True).alias(flag)).distinct()
            base = base.join(hits, on=ROW_ID, how="left")
            fails = F.coalesce(F.col(flag), F.lit(False))
            reason = F.lit(spec.notes or f"row returned by {spec.name}")
        checks.append((GATE_RULE_PREFIX + spec.name, fails, reason))

    failures = F.filter(
        F.array(*[F.when(fails, F.struct(F.lit(name).alias("rule"), reason.alias("reason")))
                  for name, fails, reason in checks]),
        lambda x: x.isNotNull(),
    )
    annotated = base.withColumn("_gate_failures", failures)
    if not needs_ids:
        annotated = annotated.persist()
        buf.cached.append(annotated)
    data_cols = [F.col(f"`{c}`") for c in df.columns]
    good = annotated.filter(F.size("_gate_failures") == 0).select(*data_cols)
    kept = [_withheld(c) if c in suite.quarantine_withhold else F.col(f"`{c}`")
            for c in df.columns]
    bad = annotated.filter(F.size("_gate_failures") > 0).select(
        *kept,
        F.array_join(F.transform("_gate_failures", lambda x: x["rule"]), ", ").alias("_rule"),
        F.array_join(F.transform("_gate_failures", lambda x: x["reason"]), "; ").alias("_reason"),
    )
    return good, bad


WITHHELD = "<withheld"


def _withheld(c: str) -> Column:
    """A withheld value in a quarantined record: its length only, never the content."""
    col = F.col(f"`{c}`")
    return F.when(col.isNull(), F.lit(None).cast("string")).otherwise(
        F.concat(F.lit(WITHHELD + ": "), F.length(col.cast("string")).cast("string"),
                 F.lit(" chars>"))).alias(c)


# ---------------------------------------------------------------------------- stop message
def _examples(run, df: DataFrame, suite: Suite, spec: ExpectationSpec, kwargs, r,
              params) -> str:
    """A few offending values (sensitive columns redacted), or what GX observed."""
    try:
        if spec.type in COLUMN_PREDICATES:
            resolved = {k: resolve(v, params) for k, v in kwargs.items()}
            fails, reason = row_check(spec.type, resolved, suite.sensitive_columns)
            found = [row[0] for row in df.filter(fails).select(reason).limit(3).collect()]
            if found:
                return "e.g. " + "; ".join(found)
        elif spec.type in UNIQUE_TYPES:
            cols = list(spec.columns)
            dup = (df.dropna(how="all", subset=cols).groupBy(*cols).count()
                   .filter("count > 1").limit(3).collect())
            if dup:
                return "e.g. " + "; ".join(
                    ", ".join(f"{c}=" + ("<redacted>" if c in suite.sensitive_columns
                                         else str(row[c])) for c in cols)
                    + f" ({row['count']} rows)" for row in dup)
    except Exception as exc:  # examples are a courtesy; the failure itself is what matters
        log.debug("could not collect examples for %s: %s", spec.name, exc)
    if spec.type == "expect_table_columns_to_match_set" and isinstance(r.observed_value, list):
        expected = set(kwargs.get("column_set") or [])
        missing = sorted(expected - set(r.observed_value))
        extra = sorted(set(r.observed_value) - expected)
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra and kwargs.get("exact_match", True):
            parts.append(f"unexpected column(s) {extra}")
        return "; ".join(parts) or f"observed {r.observed_value}"
    if r.error:
        return f"error: {r.error[:300]}"
    if r.observed_value is not None:
        return f"observed {r.observed_value!r}"[:300]
    return f"{r.unexpected_count} unexpected row(s)"


def _stop_message(run, df, ref: TableRef, suite: Suite, stops, params, rows: int) -> str:
    parts = []
    for spec, kwargs, r in stops:
        count = (f" for {r.unexpected_count} of {rows} rows"
                 if r.unexpected_count and rows is not None else "")
        parts.append(f"{spec.name} failed{count} ({_examples(run, df, suite, spec, kwargs, r, params)})")
    return (
        f"Data quality gate stopped the write to {ref.key}: {'; '.join(parts)}. Nothing was "
        f"written to {ref.key}; fix the input or the stage that produces it (rules: "
        f"{suite.source})."
    )

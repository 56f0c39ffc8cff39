"""``oncorank sql``: read-only analyst queries over the local lakehouse.

Every Delta table of the lakehouse is registered under its ``schema.table`` name (Spark
databases ``silver``, ``gold``, ``ops``; external tables pointing at the Delta folders, so
``DESCRIBE`` shows the column comments and ``DESCRIBE HISTORY`` the table's versions), then
one statement runs:

* only a single ``SELECT`` / ``WITH`` / ``VALUES`` / ``TABLE`` query, or ``SHOW`` /
  ``DESCRIBE`` — anything that could change a table is refused before it runs, by
  inspecting the plan Spark's own parser builds (so ``WITH … INSERT`` is caught too);
* tables are named ``schema.table``; reading files by path (``delta.`/…```) is refused;
* ``bronze`` (data as received, with source ids and raw note text) and ``restricted`` (the
  identity map) are not registered unless ``allow_restricted=True``: analysts never see
  identifiers, mirroring the Unity Catalog grants in ``jobs/resources/unity_catalog.yml``;
* every function the query calls must be on the allow-list of
  ``resources/sql_functions.yaml`` (pure functions over values): ``reflect`` and
  ``java_method`` (any static Java method, the environment and the pseudonym key with them),
  functions that reveal the server or its files, UDFs and anything unknown are refused, and
  so are ``TRANSFORM … USING`` scripts;
* time travel (``VERSION AS OF`` / ``TIMESTAMP AS OF``) reads analyst tables only, and only
  the versions ``oncorank vacuum`` kept (its retention is documented there).

>>> check_statement("DELETE FROM silver.patients")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
ReadOnlyQueryError: oncorank sql runs read-only queries ...
>>> function_refusal("reflect").split(":")[0]
'reflect is refused'
>>> function_refusal("upper") is None
True
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines.lakehouse.errors import ConfigError, OncorankError
from pipelines.lakehouse.settings import SCHEMAS, Settings, TableRef

ANALYST_SCHEMAS = ("silver", "gold", "ops")
IDENTIFIABLE_SCHEMAS = ("bronze", "restricted")
FORMATS = ("table", "csv", "json")
# A terminal table is for reading; more rows belong in --format csv/json.
MAX_TABLE_ROWS = 200

_QUERY_KEYWORDS = {"SELECT", "WITH", "VALUES", "TABLE", "FROM"}
_METADATA_KEYWORDS = {"SHOW", "DESCRIBE", "DESC"}
# Plan nodes that SHOW / DESCRIBE may produce: they read metadata and change nothing.
_METADATA_PLANS = {
    "ShowTables", "ShowTableExtended", "ShowNamespaces", "ShowColumns", "ShowViews",
    "ShowFunctions", "ShowTableProperties", "ShowCreateTable", "ShowPartitions",
    "DescribeRelation", "DescribeColumn", "DescribeNamespace", "DescribeFunction",
    "DescribeDeltaHistory", "DescribeDeltaDetailCommand",
}
# Plan nodes that name a table or schema.
_NAMED_PLANS = {"UnresolvedRelation", "UnresolvedTable", "UnresolvedTableOrView",
                "UnresolvedNamespace", "UnresolvedIdentifier", "UnresolvedView"}
# Data source names Spark accepts as `format`.`path` table identifiers.
_FILE_SOURCES = {"delta", "parquet", "csv", "json", "orc", "text", "avro", "binaryfile"}
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ReadOnlyQueryError(OncorankError):
    """The statement is not a read-only query, or reads what the user may not read."""


# ---------------------------------------------------------------------------- functions
@cache
def sql_functions() -> dict:
    """``resources/sql_functions.yaml``: ``allowed`` (a set) and ``refused`` (name -> why)."""
    data = yaml.safe_load(resources.files("pipelines.analytics.resources")
                          .joinpath("sql_functions.yaml").read_text())
    return {"allowed": frozenset(data["allowed"]), "refused": dict(data["refused"])}


def function_refusal(name: str) -> str | None:
    """Why a function may not be called from ``oncorank sql``; None when it may."""
    lists = sql_functions()
    key = name.lower()
    if key in lists["allowed"]:
        return None
    why = lists["refused"].get(key, "it is not on the allow-list of pure functions "
                                    "(pipelines/analytics/resources/sql_functions.yaml)")
    return f"{key} is refused: {why}."


def _expressions(node) -> list:
    """Every expression of a plan node, nested ones (arguments, lambda bodies) included."""
    out, stack = [], list(_seq(node.expressions()))
    while stack:
        e = stack.pop()
        out.append(e)
        stack.extend(_seq(e.children()))
    return out


def _called_functions(nodes) -> list[str]:
    """Names of the functions and table-valued functions a parsed plan calls."""
    names = []
    for node in nodes:
        kind = node.getClass().getSimpleName()
        if kind == "UnresolvedTableValuedFunction":
            names.append(str(_seq(node.name())[-1]))
        for e in _expressions(node):
            ekind = e.getClass().getSimpleName()
            if ekind == "UnresolvedFunction":
                names.append(str(_seq(e.nameParts())[-1]))
            elif ekind == "UnresolvedGenerator":
                names.append(str(e.name().funcName()))
    return names


# ---------------------------------------------------------------------------- discovery
def discover_tables(settings: Settings, schemas=SCHEMAS) -> list[TableRef]:
    """Every Delta table of the local lakehouse in ``schemas`` (folders with a ``_delta_log``).

    >>> discover_tables(Settings(lakehouse=Path("/nonexistent")))
    []
    """
    if not settings.is_local:
        raise ConfigError(
            f"oncorank sql and the notebooks' table discovery read the local lakehouse; in "
            f"environment {settings.env!r} query Unity Catalog directly (catalog "
            f"{settings.catalog!r}, schemas {settings.schema_prefix}silver/gold/ops) from a "
            "Databricks SQL warehouse or notebook, where the catalog grants apply.")
    refs = []
    for schema in schemas:
        folder = Path(settings.lakehouse) / schema
        if not folder.is_dir():
            continue
        for table_dir in sorted(folder.iterdir()):
            if (table_dir / "_delta_log").is_dir() and _TABLE_NAME.match(table_dir.name):
                refs.append(settings.table(schema, table_dir.name))
    return refs


# ---------------------------------------------------------------------------- statement check
def _strip_literals_and_comments(sql: str) -> str:
    """The statement with comments removed and string/identifier literals blanked."""
    out, i, n = [], 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c in "'\"`":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_statement(query: str) -> str:
    """Lexical check: one statement whose first keyword is a query or SHOW/DESCRIBE.

    Returns the statement without a trailing semicolon; raises :class:`ReadOnlyQueryError`.
    """
    bare = _strip_literals_and_comments(query)
    parts = [p for p in bare.split(";") if p.strip()]
    if not parts:
        raise ReadOnlyQueryError("The query is empty; pass one SELECT statement, e.g. "
                                 "oncorank sql \"SELECT count(*) FROM silver.patients\".")
    if len(parts) > 1:
        raise ReadOnlyQueryError(
            f"oncorank sql runs one statement at a time; the query has {len(parts)} "
            "statements separated by ';'.")
    keyword = parts[0].split(None, 1)[0].lstrip("(").upper()
    if keyword not in _QUERY_KEYWORDS | _METADATA_KEYWORDS:
        raise ReadOnlyQueryError(
            f"oncorank sql runs read-only queries (SELECT, WITH, SHOW, DESCRIBE); {keyword} "
            "statements are refused because the lakehouse is written only by the pipeline's "
            "jobs (see `oncorank run`).")
    return query.strip().rstrip(";").strip()


def _seq(scala_seq) -> list:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _plan_nodes(plan) -> list:
    """Every node of a parsed plan, including CTE definitions and subqueries."""
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for method in ("children", "innerChildren", "subqueries"):
            stack.extend(_seq(getattr(node, method)()))
        if node.getClass().getSimpleName() == "RelationTimeTravel":
            stack.append(node.relation())  # a leaf that holds the table it travels in
    return nodes


def check_plan(spark, statement: str, allow_restricted: bool = False) -> None:
    """Parse with Spark's own parser and refuse writes, commands, paths and hidden schemas."""
    from py4j.protocol import Py4JJavaError

    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    except Py4JJavaError as exc:
        detail = str(exc.java_exception.getMessage()).strip().splitlines()[0]
        raise ReadOnlyQueryError(f"The query is not valid Spark SQL: {detail}") from None
    command = spark._jvm.java.lang.Class.forName(
        "org.apache.spark.sql.catalyst.plans.logical.Command")
    nodes = _plan_nodes(plan)
    top = plan.getClass().getSimpleName()
    metadata = top in _METADATA_PLANS
    for node in nodes[1:] if metadata else nodes:
        name = node.getClass().getSimpleName()
        if command.isInstance(node) or "Insert" in name or "Overwrite" in name:
            raise ReadOnlyQueryError(
                f"oncorank sql runs read-only queries; this statement is a {name}, which is "
                "refused because the lakehouse is written only by the pipeline's jobs.")
    for node in nodes:
        if node.getClass().getSimpleName() == "ScriptTransformation":
            raise ReadOnlyQueryError(
                "TRANSFORM … USING is refused: it runs a program on the server.")
    for name in _called_functions(nodes):
        why = function_refusal(name)
        if why:
            raise ReadOnlyQueryError(
                f"oncorank sql calls only pure functions over values; {why} Ask a data "
                "engineer if an analysis needs something else.")
    for node in nodes:
        if node.getClass().getSimpleName() == "RelationTimeTravel":
            names = {str(p).lower() for sub in _plan_nodes(node)
                     if sub.getClass().getSimpleName() in _NAMED_PLANS
                     for p in _seq(sub.multipartIdentifier())[:-1]}
            if names - set(ANALYST_SCHEMAS):
                raise ReadOnlyQueryError(
                    "Time travel (VERSION/TIMESTAMP AS OF) reads only silver, gold and ops "
                    "tables: earlier versions of bronze and restricted may hold identifiers "
                    "that were since corrected or purged.")
    hidden = set() if allow_restricted else set(IDENTIFIABLE_SCHEMAS)
    for node in nodes:
        if node.getClass().getSimpleName() not in _NAMED_PLANS:
            continue
        parts = [str(p) for p in _seq(node.multipartIdentifier())]
        if len(parts) >= 2 and parts[0].lower() in _FILE_SOURCES:
            raise ReadOnlyQueryError(
                f"Reading files by path ({parts[0]}.`…`) is refused; name tables as "
                "schema.table, e.g. silver.variants (SHOW TABLES IN silver lists them).")
        named = {p.lower() for p in parts[:-1]} if len(parts) > 1 else set()
        if node.getClass().getSimpleName() == "UnresolvedNamespace":
            named = {p.lower() for p in parts}
        if named & hidden:
            schema = sorted(named & hidden)[0]
            raise ReadOnlyQueryError(
                f"The {schema} schema holds patient identifiers "
                f"({'source ids and raw note text' if schema == 'bronze' else 'the identity map'})"
                " and is not available to analysts; query silver, gold and ops, which are "
                "keyed by the pseudonymised patient_key. Data engineers entitled to it can "
                "pass --allow-restricted.")


# ---------------------------------------------------------------------------- registration
def register_tables(spark, settings: Settings, allow_restricted: bool = False) -> list[TableRef]:
    """Register the lakehouse's tables as ``schema.table`` in this Spark session.

    Tables are external (they point at the Delta folders): dropping a registration never
    touches data. Schemas the caller may not read are unregistered.
    """
    visible = SCHEMAS if allow_restricted else ANALYST_SCHEMAS
    refs = discover_tables(settings, visible)
    for schema in SCHEMAS:
        _unregister(spark, schema, drop_schema=schema not in visible)
    for schema in visible:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
    for ref in refs:
        spark.catalog.createTable(f"{ref.schema}.{ref.name}", path=ref.path, source="delta")
    return refs


def _unregister(spark, schema: str, drop_schema: bool) -> None:
    if not spark.catalog.databaseExists(schema):
        return
    for table in spark.catalog.listTables(schema):
        if table.isTemporary:
            continue
        if table.tableType != "EXTERNAL":
            raise OncorankError(
                f"This Spark session has a {table.tableType.lower()} table "
                f"{schema}.{table.name} that oncorank did not register; oncorank sql will not "
                "drop it. Run oncorank sql in its own session.")
        spark.sql(f"DROP TABLE IF EXISTS `{schema}`.`{table.name}`")
    if drop_schema:
        spark.sql(f"DROP DATABASE IF EXISTS `{schema}` RESTRICT")


# ---------------------------------------------------------------------------- run and print
def run_query(spark, settings: Settings, query: str, fmt: str = "table",
              console: Console | None = None, *, allow_restricted: bool = False,
              max_table_rows: int = MAX_TABLE_ROWS) -> int:
    """Run one read-only query over the lakehouse and print it; returns the row count.

    >>> run_query(spark, settings, "SELECT cancer_type, count(*) AS n FROM silver.patients "
    ...           "GROUP BY cancer_type", "csv", console)  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    console = console or Console()
    statement = check_statement(query)
    check_plan(spark, statement, allow_restricted)
    register_tables(spark, settings, allow_restricted)
    previous = spark.conf.get("spark.sql.runSQLOnFiles", "true")
    # Belt and braces with check_plan: no `format`.`path` reads while the query runs.
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    try:
        df = spark.sql(statement)
        columns = df.columns
        if fmt == "table":
            rows = df.limit(max_table_rows + 1).collect()
            total = df.count() if len(rows) > max_table_rows else len(rows)
            _print_table(console, columns, rows[:max_table_rows], total)
            return total
        writer = _write_csv if fmt == "csv" else _write_json
        return writer(console.file, columns, df.toLocalIterator())
    except OncorankError:
        raise
    except Exception as exc:  # analysis errors: name the problem in one sentence
        from pyspark.errors import PySparkException

        if isinstance(exc, PySparkException):
            raise ReadOnlyQueryError(_analysis_message(exc)) from None
        raise
    finally:
        spark.conf.set("spark.sql.runSQLOnFiles", previous)


def _analysis_message(exc) -> str:
    text = str(exc).strip().splitlines()[0]
    if "TABLE_OR_VIEW_NOT_FOUND" in text or "SCHEMA_NOT_FOUND" in text:
        return (f"{text} — the lakehouse has no such table yet (SHOW TABLES IN silver lists "
                "what exists; run the stage that writes it).")
    return f"The query failed: {text}"


def _plain(value):
    """A JSON/CSV-ready value: dates as ISO strings, decimals as floats, rows as dicts."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "asDict"):
        return _plain(value.asDict(recursive=True))
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _cell(value) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _print_table(console: Console, columns, rows, total: int) -> None:
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not markup: cell values such as JSON arrays contain square brackets.
        table.add_row(*[Text(_cell(v)) if v is not None else Text("null", style="dim")
                        for v in row])
    console.print(table)
    console.print(f"{total} rows" if total <= len(rows) else
                  f"first {len(rows)} of {total} rows; use --format csv or json for all",
                  style="dim", highlight=False, soft_wrap=True)


def _write_csv(out, columns, rows) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        n += 1
        if buffer.tell() > 1 << 20:
            out.write(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
    out.write(buffer.getvalue())
    out.flush()
    return n


def _write_json(out, columns, rows) -> int:
    """A JSON array of objects, written row by row (large results never sit in memory)."""
    n = 0
    out.write("[")
    for row in rows:
        record = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        out.write(("," if n else "") + "\n" + json.dumps(record, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    out.flush()
    return n

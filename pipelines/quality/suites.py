"""Expectation suites as data: ``expectations/<schema>.<table>.json``.

A suite file names the table, its natural key (``keys``, used by replay), the columns whose values
never appear in messages or reasons (``sensitive_columns``), the columns whose values are not
copied into quarantined records (``quarantine_withhold``), and a list of expectations. Each expectation is a Great Expectations 1.x
expectation type with its keyword arguments, plus our own ``severity``:

``stop``
    A failure stops the job before anything is written to the table
    (:class:`~pipelines.lakehouse.errors.DataQualityError`).
``quarantine``
    Rows that fail are moved to the table's quarantine with the expectation as the rule and a
    readable reason; the other rows are written. Only row-level expectation types
    (:data:`pipelines.quality.predicates.ROW_LEVEL`) may carry it.
``warn``
    The result is recorded (``ops.data_quality``, Data Docs); nothing else happens.

Two placeholders are resolved when the gate runs: ``{"$PARAMETER": "today"}`` (the job's
start date, UTC: "not in the future") and ``{ref:schema.table}`` inside an
``unexpected_rows_expectation`` query (another table, pinned at its current Delta version; the
expectation is skipped while that table does not exist yet).

>>> suite = parse_suite({"table": "silver.example", "keys": ["id"], "expectations": [
...     {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"},
...      "severity": "stop"}]})
>>> suite.expectations[0].name
'expect_column_values_to_not_be_null(id)'
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pipelines.lakehouse.errors import ConfigError

SEVERITIES = ("warn", "quarantine", "stop")
REF_PATTERN = re.compile(r"\{ref:([a-z_]+)\.([A-Za-z0-9_]+)\}")
# GX's own severity field, shown in Data Docs; ours decides what the gate does.
GX_SEVERITY = {"stop": "critical", "quarantine": "warning", "warn": "info"}
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)
_SUITE_KEYS = {"table", "description", "keys", "sensitive_columns", "quarantine_withhold",
               "expectations", "source", "contract"}
_EXPECTATION_KEYS = {"type", "kwargs", "severity", "name", "notes"}


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite, as written in the suite file."""

    type: str
    kwargs: dict[str, Any]
    severity: str
    name: str
    notes: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the expectation reads (empty for table-level and query expectations)."""
        cols = [self.kwargs[k] for k in _COLUMN_KWARGS if k in self.kwargs]
        for k in _COLUMN_LIST_KWARGS:
            cols.extend(self.kwargs.get(k, []))
        return tuple(cols)

    @property
    def references(self) -> tuple[str, ...]:
        """Other tables (``schema.table``) an ``unexpected_rows_expectation`` query joins."""
        query = self.kwargs.get("unexpected_rows_query", "")
        return tuple(dict.fromkeys(f"{s}.{t}" for s, t in REF_PATTERN.findall(query)))

    @property
    def is_schema(self) -> bool:
        """Schema expectations decide which columns must exist; they always run."""
        return self.type in SCHEMA_TYPES


SCHEMA_TYPES = frozenset({
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_column_to_exist",
})


@dataclass(frozen=True)
class Suite:
    """A table's expectation suite (see the module docstring for the file format)."""

    table: str
    expectations: tuple[ExpectationSpec, ...]
    keys: tuple[str, ...] = ()
    sensitive_columns: frozenset[str] = field(default_factory=frozenset)
    # Columns whose value is not copied into quarantined records (e.g. a note's raw text):
    # only its length is kept, and such rows come back by re-running the stage, not by replay.
    quarantine_withhold: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    source: str = ""
    digest: str = ""

    def get(self, name: str) -> ExpectationSpec:
        for e in self.expectations:
            if e.name == name:
                return e
        raise KeyError(name)


def _default_name(etype: str, kwargs: dict[str, Any]) -> str:
    cols = [str(kwargs[k]) for k in _COLUMN_KWARGS if k in kwargs]
    for k in _COLUMN_LIST_KWARGS:
        cols.extend(str(c) for c in kwargs.get(k, []))
    return f"{etype}({', '.join(cols)})" if cols else etype


def parse_suite(data: dict[str, Any], source: str = "<suite>") -> Suite:
    """Check a suite's structure and return it; every problem is a :class:`ConfigError`.

    The expectation types and keyword arguments are checked against Great Expectations
    itself, so a typo fails when the suite is loaded, not in the middle of a job.
    """
    from pipelines.quality.predicates import MULTI_ROW, ROW_LEVEL

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"Expectation suite {source}: {msg}")

    if not isinstance(data, dict):
        raise fail("the file must hold a JSON object")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise fail(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_SUITE_KEYS)}")
    table = data.get("table")
    if not isinstance(table, str) or table.count(".") != 1:
        raise fail(f"'table' must be 'schema.table', got {table!r}")
    specs: list[ExpectationSpec] = []
    for i, raw in enumerate(data.get("expectations", [])):
        where = f"expectation #{i + 1}"
        if not isinstance(raw, dict) or "type" not in raw:
            raise fail(f"{where} must be an object with a 'type'")
        extra = set(raw) - _EXPECTATION_KEYS
        if extra:
            raise fail(f"{where} has unknown key(s) {sorted(extra)}")
        etype, kwargs = raw["type"], dict(raw.get("kwargs", {}))
        severity = raw.get("severity")
        if severity not in SEVERITIES:
            raise fail(f"{where} ({etype}) needs a severity of {'|'.join(SEVERITIES)}, "
                       f"got {severity!r}")
        if severity == "quarantine" and etype not in ROW_LEVEL:
            raise fail(f"{where} ({etype}) is not a row-level expectation, so it cannot "
                       f"quarantine rows; use stop or warn (row-level: {sorted(ROW_LEVEL)})")
        if severity == "quarantine" and "row_condition" in kwargs and etype in MULTI_ROW:
            raise fail(f"{where} ({etype}): row_condition is supported for quarantine only on "
                       "single-row expectation types")
        if severity == "quarantine" and "mostly" in kwargs:
            raise fail(f"{where} ({etype}): 'mostly' lets failing rows pass, which cannot go "
                       "with severity quarantine; drop it or use stop/warn")
        _check_gx(etype, kwargs, fail, where)
        specs.append(ExpectationSpec(etype, kwargs, severity,
                                     raw.get("name") or _default_name(etype, kwargs),
                                     raw.get("notes", "")))
    names = [s.name for s in specs]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise fail(f"expectation names must be unique; give these a 'name': {dups}")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return Suite(
        table=table,
        expectations=tuple(specs),
        keys=tuple(data.get("keys", ())),
        sensitive_columns=frozenset(data.get("sensitive_columns", ())),
        quarantine_withhold=frozenset(data.get("quarantine_withhold", ())),
        description=data.get("description", ""),
        source=source,
        digest=digest,
    )


def _check_gx(etype: str, kwargs: dict[str, Any], fail, where: str) -> None:
    """Build the GX expectation once to check type and kwargs (placeholders substituted)."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    probe = {k: _probe_value(v) for k, v in kwargs.items()}
    try:
        ExpectationConfiguration(type=etype, kwargs=probe).to_domain_obj()
    except Exception as exc:  # GX raises several types (pydantic, its own, KeyError)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"{where}: Great Expectations rejects {etype} with {kwargs}: {first}") from None


def _probe_value(value: Any) -> Any:
    if isinstance(value, str):
        return REF_PATTERN.sub("ref_table", value)
    return value


def suite_dirs(settings=None) -> list[Path]:
    """Where suites are looked up: ``[quality] expectations_dir`` first, then the package's."""
    dirs: list[Path] = []
    if settings is not None:
        custom = settings.section("quality").get("expectations_dir")
        if custom:
            dirs.append(Path(custom))
    dirs.append(Path(str(resources.files("expectations"))))
    return dirs


@lru_cache(maxsize=256)
def _load_file(path: str, mtime: float) -> Suite:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Expectation suite {path} is not valid JSON: {exc}.") from None
    suite = parse_suite(data, path)
    expected = Path(path).stem
    if suite.table != expected:
        raise ConfigError(f"Expectation suite {path} declares table {suite.table!r}; the file "
                          f"must be named after its table ({suite.table}.json).")
    return suite


def load_suite(table_key: str, settings=None) -> Suite | None:
    """The suite for ``schema.table``, or ``None`` when the table has none."""
    for d in suite_dirs(settings):
        path = d / f"{table_key}.json"
        if path.is_file():
            return _load_file(str(path), path.stat().st_mtime)
    return None


def all_suites(settings=None) -> dict[str, Suite]:
    """Every suite that applies, by table key (a custom directory overrides the package)."""
    found: dict[str, Suite] = {}
    for d in reversed(suite_dirs(settings)):
        for path in sorted(d.glob("*.*.json")):
            suite = _load_file(str(path), path.stat().st_mtime)
            found[suite.table] = suite
    return found


def run_suite(run, df, ref, suite: Suite, verified: tuple = (), n_rows: int | None = None):
    """Validate ``df`` against ``suite`` for ``run``; see :mod:`pipelines.quality.gate`."""
    from pipelines.quality.gate import validate_and_split

    return validate_and_split(run, df, ref, suite, verified, n_rows)

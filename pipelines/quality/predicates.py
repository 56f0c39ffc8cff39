"""Row-level expectations as Spark column predicates.

Great Expectations tells us *how many* rows fail an expectation; to quarantine them we need
the rows themselves. For every row-level expectation type we support, :func:`row_check`
returns the Spark condition that is true exactly for the rows GX counts as unexpected, and a
readable reason for each such row. The conditions mirror GX's own Spark metrics (GX 1.24):

* column-map types ignore null values (GX filters them out before testing), except
  ``expect_column_values_to_not_be_null`` / ``..._to_be_null``;
* ``expect_column_pair_values_a_to_be_greater_than_b`` never counts a row with a null operand
  (GX's comparison is null there and it keeps only rows where "unexpected" is true), while
  ``expect_column_pair_values_to_be_equal`` compares null-safely (one null = a difference);
  both drop the rows ``ignore_row_if`` names first;
* uniqueness and ``unexpected_rows_expectation`` need more than one row to decide, so the gate
  evaluates them with a window / a join (:mod:`pipelines.quality.gate`).

``tests/test_quality.py`` checks, type by type, that these predicates flag exactly as many rows
as GX reports on frames with nulls and edge values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

# Types evaluated by a per-row Column predicate.
COLUMN_PREDICATES: dict[str, Callable[..., Column]] = {}
# Types that need several rows (window or join); the gate handles them.
MULTI_ROW = frozenset({
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "unexpected_rows_expectation",
})


def _register(name: str):
    def deco(fn):
        COLUMN_PREDICATES[name] = fn
        return fn
    return deco


def _shown(c: str, sensitive: frozenset[str]) -> Column:
    """A value as text for a reason; sensitive columns (identifiers, names) are not echoed."""
    if c in sensitive:
        return F.lit("<redacted>")
    return F.coalesce(F.col(f"`{c}`").cast("string"), F.lit("null"))


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_fmt(v) for v in value]
        more = f", … ({len(items)} values)" if len(items) > 8 else ""
        return "{" + ", ".join(items[:8]) + more + "}"
    return repr(value) if isinstance(value, str) else str(value)


def _lit(value: Any) -> Column:
    return F.lit(value)


@_register("expect_column_values_to_not_be_null")
def _not_null(kw, sensitive):
    c = kw["column"]
    return F.col(f"`{c}`").isNull(), F.lit(f"{c} is missing")


@_register("expect_column_values_to_be_null")
def _null(kw, sensitive):
    c = kw["column"]
    return (F.col(f"`{c}`").isNotNull(),
            F.concat(F.lit(f"{c} should be empty but is "), _shown(c, sensitive)))


@_register("expect_column_values_to_be_between")
def _between(kw, sensitive):
    c = kw["column"]
    col = F.col(f"`{c}`")
    lo, hi = kw.get("min_value"), kw.get("max_value")
    ok = F.lit(True)
    if lo is not None:
        ok = ok & ((col > _lit(lo)) if kw.get("strict_min") else (col >= _lit(lo)))
    if hi is not None:
        ok = ok & ((col < _lit(hi)) if kw.get("strict_max") else (col <= _lit(hi)))
    if lo is None:
        span = f"above the maximum {hi}" if not kw.get("strict_max") else f"not below {hi}"
    elif hi is None:
        span = f"below the minimum {lo}" if not kw.get("strict_min") else f"not above {lo}"
    else:
        left = "(" if kw.get("strict_min") else "["
        right = ")" if kw.get("strict_max") else "]"
        span = f"outside {left}{lo}, {hi}{right}"
    return (col.isNotNull() & ~ok,
            F.concat(F.lit(f"{c} = "), _shown(c, sensitive), F.lit(f" is {span}")))


@_register("expect_column_values_to_be_in_set")
def _in_set(kw, sensitive):
    c, values = kw["column"], list(kw.get("value_set") or [])
    col = F.col(f"`{c}`")
    if kw.get("value_set") is None:  # GX: vacuously true
        return F.lit(False), F.lit("")
    return (col.isNotNull() & ~col.isin(values),
            F.concat(F.lit(f"{c} = "), _shown(c, sensitive),
                     F.lit(f" is not one of {_fmt(values)}")))


@_register("expect_column_values_to_not_be_in_set")
def _not_in_set(kw, sensitive):
    c, values = kw["column"], list(kw.get("value_set") or [])
    col = F.col(f"`{c}`")
    return (col.isNotNull() & col.isin(values),
            F.concat(F.lit(f"{c} = "), _shown(c, sensitive), F.lit(" is a forbidden value")))


@_register("expect_column_values_to_match_regex")
def _regex(kw, sensitive):
    c, rx = kw["column"], kw["regex"]
    col = F.col(f"`{c}`")
    return (col.isNotNull() & ~col.rlike(rx),
            F.concat(F.lit(f"{c} = "), _shown(c, sensitive), F.lit(f" does not match /{rx}/")))


@_register("expect_column_values_to_not_match_regex")
def _not_regex(kw, sensitive):
    c, rx = kw["column"], kw["regex"]
    col = F.col(f"`{c}`")
    return (col.isNotNull() & col.rlike(rx),
            F.concat(F.lit(f"{c} = "), _shown(c, sensitive), F.lit(f" matches /{rx}/")))


@_register("expect_column_value_lengths_to_be_between")
def _lengths(kw, sensitive):
    c = kw["column"]
    col = F.col(f"`{c}`")
    n = F.length(col)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    ok = F.lit(True)
    if lo is not None:
        ok = ok & ((n > lo) if kw.get("strict_min") else (n >= lo))
    if hi is not None:
        ok = ok & ((n < hi) if kw.get("strict_max") else (n <= hi))
    return (col.isNotNull() & ~ok,
            F.concat(F.lit(f"{c} has length "), n.cast("string"),
                     F.lit(f", expected {lo if lo is not None else 0}..{hi if hi is not None else ''}")))


def _pair_ignored(kw) -> Column:
    """GX drops these rows from a column-pair domain before testing (``ignore_row_if``)."""
    ca, cb = F.col(f"`{kw['column_A']}`"), F.col(f"`{kw['column_B']}`")
    how = kw.get("ignore_row_if", "both_values_are_missing")
    if how == "either_value_is_missing":
        return ca.isNull() | cb.isNull()
    if how == "neither":
        return F.lit(False)
    return ca.isNull() & cb.isNull()


@_register("expect_column_pair_values_a_to_be_greater_than_b")
def _a_gt_b(kw, sensitive):
    a, b = kw["column_A"], kw["column_B"]
    ca, cb = F.col(f"`{a}`"), F.col(f"`{b}`")
    if kw.get("or_equal"):
        ok = (ca >= cb) | ca.eqNullSafe(cb)
        op = "before"
    else:
        ok = ca > cb
        op = "not after"
    return (F.coalesce(~ok, F.lit(False)) & ~_pair_ignored(kw),
            F.concat(F.lit(f"{a} = "), _shown(a, sensitive), F.lit(f" is {op} {b} = "),
                     _shown(b, sensitive)))


@_register("expect_column_pair_values_to_be_equal")
def _pair_equal(kw, sensitive):
    a, b = kw["column_A"], kw["column_B"]
    # GX compares null-safely here: one missing value is a difference.
    ok = F.col(f"`{a}`").eqNullSafe(F.col(f"`{b}`"))
    return (~ok & ~_pair_ignored(kw),
            F.concat(F.lit(f"{a} = "), _shown(a, sensitive), F.lit(f" differs from {b} = "),
                     _shown(b, sensitive)))


ROW_LEVEL = frozenset(COLUMN_PREDICATES) | MULTI_ROW


def row_check(etype: str, kwargs: dict[str, Any], sensitive: frozenset[str] = frozenset()
              ) -> tuple[Column, Column]:
    """``(fails, reason)`` Spark columns for a per-row expectation type.

    Spark columns need a running session, so this example is not run:

    >>> fails, reason = row_check(  # doctest: +SKIP
    ...     "expect_column_values_to_be_between", {"column": "vaf", "min_value": 0, "max_value": 1})
    """
    if etype not in COLUMN_PREDICATES:
        raise KeyError(f"{etype} has no row predicate; row-level types: {sorted(ROW_LEVEL)}")
    fails, reason = COLUMN_PREDICATES[etype](kwargs, frozenset(sensitive))
    condition = kwargs.get("row_condition")
    if condition:
        # GX validates only the rows the condition selects (e.g. the ECOG findings).
        if kwargs.get("condition_parser") != "spark":
            raise ValueError("row_condition needs condition_parser 'spark' on Spark frames")
        fails = fails & F.coalesce(F.expr(condition), F.lit(False))
    return fails, reason

"""Table and column comments: what every oncorank table and column means, in one place.

The comments are data, ``resources/comments.yaml`` (per table: its comment, its columns'
comments, families of columns by prefix; one set shared by the quarantine tables), read once
here. Writers pass them with the write, so Delta stores them in the table's schema and
analysts see them in ``DESCRIBE``, the Unity Catalog explorer, ``deltalake`` and DuckDB;
:meth:`JobRun.write <pipelines.lakehouse.audit.JobRun.write>` does it for every table it
writes, and a direct Delta write passes them itself::

    delta.write_table(spark, df, ref, keys=["variant_key"], **comments_for(ref, df.columns))

``comments_for`` returns ``{"comments": {column: text}, "table_comment": text}`` (the
keyword arguments of ``JobRun.write`` / ``delta.write_table``). The columns of
``gold.patient_features`` are described by the feature dictionary
(:mod:`pipelines.features.dictionary`).

>>> comments_for("silver.outcomes", ["os_months"])["comments"]["os_months"][:31]
'Overall survival: months (days '
>>> comments_for("silver.quarantine_variants")["table_comment"][:40]
'Rows rejected on the way into silver.var'
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

import yaml


@cache
def registry() -> dict:
    """The parsed ``resources/comments.yaml``: ``{"tables": {...}, "quarantine": {...}}``."""
    text = resources.files("pipelines.lakehouse.resources").joinpath("comments.yaml").read_text()
    return yaml.safe_load(text)


def tables() -> dict[str, dict]:
    """Every registered table (``"schema.table"``) and its entry."""
    return registry()["tables"]


def _key(table) -> str:
    return table if isinstance(table, str) else table.key


def _quarantine_target(key: str) -> str | None:
    schema, _, name = key.partition(".")
    return f"{schema}.{name[len('quarantine_'):]}" if name.startswith("quarantine_") else None


def table_comment(table) -> str | None:
    """The comment of ``table`` (a ``TableRef`` or ``"schema.table"``), or ``None``."""
    key = _key(table)
    target = _quarantine_target(key)
    if target is not None:
        return registry()["quarantine"]["comment"].format(target=target)
    return tables().get(key, {}).get("comment")


def column_comments(table, columns: Iterable[str] | None = None) -> dict[str, str]:
    """Column comments of ``table``; with ``columns``, also the prefix families among them."""
    key = _key(table)
    if _quarantine_target(key) is not None:
        return dict(registry()["quarantine"]["columns"])
    entry = tables().get(key, {})
    if "columns_from" in entry:
        return _feature_comments(columns)
    out = dict(entry.get("columns") or {})
    for column in () if columns is None else columns:
        if column in out:
            continue
        for prefix, text in (entry.get("prefixes") or {}).items():
            if column.startswith(prefix):
                out[column] = text + column[len(prefix):].replace("_", " ")
                break
    return out


def _feature_comments(columns: Iterable[str] | None) -> dict[str, str]:
    from pipelines.features import dictionary

    if columns is None:
        columns = [e["name"] for e in dictionary.dictionary()["columns"] if "<" not in e["name"]]
    return dictionary.comments(list(columns))


def comments_for(table, columns: Iterable[str] | None = None) -> dict:
    """Keyword arguments for ``JobRun.write`` / ``write_table``: comments and table comment.

    >>> sorted(comments_for("gold.treatment_rankings"))
    ['comments', 'table_comment']
    """
    return {"comments": column_comments(table, columns), "table_comment": table_comment(table)}

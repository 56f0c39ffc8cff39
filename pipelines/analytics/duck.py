"""The lakehouse in DuckDB, without Spark: every Delta table as a ``schema.table`` view.

The Delta folders are read with the ``deltalake`` package (the Delta log decides which
Parquet files make up the current version) and handed to DuckDB as Arrow datasets, so filters
and projections are pushed down and nothing is copied up front. This works offline; DuckDB's
own ``delta`` extension (``delta_scan``) needs a download from extensions.duckdb.org.

Only the analyst schemas (silver, gold, ops) are attached unless asked otherwise, as with
``oncorank sql``.

>>> con = connect(".oncorank/lakehouse")  # doctest: +SKIP
>>> con.sql("SELECT cancer_type, count(*) FROM silver.patients GROUP BY 1").fetchall()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.analytics.sql import ANALYST_SCHEMAS

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def delta_tables(lakehouse: str | Path, schemas=ANALYST_SCHEMAS) -> dict[str, Path]:
    """``{"schema.table": folder}`` for every Delta table under ``lakehouse``."""
    found = {}
    for schema in schemas:
        folder = Path(lakehouse) / schema
        if folder.is_dir():
            for table in sorted(folder.iterdir()):
                if (table / "_delta_log").is_dir() and _NAME.match(table.name):
                    found[f"{schema}.{table.name}"] = table
    return found


def connect(lakehouse: str | Path, schemas=ANALYST_SCHEMAS, versions: dict | None = None):
    """A DuckDB connection with a view ``schema.table`` per Delta table of ``lakehouse``.

    ``versions`` pins tables to a Delta version (time travel), e.g.
    ``{"gold.treatment_rankings": 3}``; every other table is read at its latest version.
    """
    import duckdb
    from deltalake import DeltaTable

    versions = dict(versions or {})
    con = duckdb.connect()
    tables = delta_tables(lakehouse, schemas)
    unknown = set(versions) - set(tables)
    if unknown:
        raise KeyError(f"No Delta table {sorted(unknown)} under {lakehouse}.")
    for schema in {key.split(".")[0] for key in tables}:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for key, folder in tables.items():
        schema, name = key.split(".")
        table = DeltaTable(str(folder), version=versions.get(key))
        # A registered Arrow dataset is scanned lazily, with DuckDB's filters pushed down.
        arrow_name = f"__delta_{schema}_{name}"
        con.register(arrow_name, table.to_pyarrow_dataset())
        con.execute(f'CREATE VIEW "{schema}"."{name}" AS SELECT * FROM "{arrow_name}"')
    return con

"""``bronze.variants_raw``: the typed rows of :mod:`pipelines.genomics.rows`, split into
the rows that pass (written) and the rows to quarantine.

INFO and FORMAT are kept whole as ``map<string,string>`` (every key, value verbatim — so a
field pysam cannot decode, like gnomAD's ``Number=G`` INFO, is still there), plus typed
columns for the fields every consumer needs: ``gt``, ``ad``, ``dp``, ``gq``, ``af`` per sample
and ``info_af``, ``info_dp``, ``info_end``, ``info_svtype`` per site.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.genomics import rows

BRONZE_COLUMNS = (
    "source_file", "record_index", "sample", "sample_index", "chrom", "pos", "id", "ref",
    "alts", "qual", "filters", "info", "format", "gt", "ad", "dp", "gq", "af", "info_af",
    "info_dp", "info_end", "info_svtype",
)
BRONZE_SCHEMA = pa.schema([rows.ROW_SCHEMA.field(n) for n in BRONZE_COLUMNS])
BRONZE_DDL = ", ".join(f"`{n}` {ddl}" for n, _, ddl in rows.ROW_FIELDS if n in BRONZE_COLUMNS)
# Delta statistics cover these first columns (table property
# delta.dataSkippingNumIndexedCols): what replaceWhere and silver filter bronze on.
STATS_COLUMNS = ("source_file", "record_index", "sample", "sample_index")


def select_bronze(rows: DataFrame) -> DataFrame:
    """The rows that passed, in the bronze.variants_raw layout."""
    return rows.filter(F.col("_rule").isNull()).select(*BRONZE_COLUMNS)


def select_quarantine(rows: DataFrame) -> DataFrame:
    """The rejected rows: where they came from and the line as received, with the quarantine
    meta columns (``_source``, ``_record_index``, ``_rule``, ``_reason``)."""
    return rows.filter(F.col("_rule").isNotNull()).select(
        "source_file", "record_index", "sample", "sample_index",
        F.col("_raw").alias("raw_line"),
        F.col("source_file").alias("_source"),
        F.col("record_index").alias("_record_index"),
        "_rule", "_reason",
    )

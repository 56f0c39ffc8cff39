"""Library side of ``oncorank comorbidity --input FILE.csv [--output FILE]``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from pyspark.sql import functions as F

from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError

REQUIRED_COLUMNS = ("patient_id", "code")


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file (first line), or a clear error if it cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise SchemaMismatchError(
            f"{path} is not a UTF-8 text CSV file; export it as CSV (UTF-8) and retry.") from None
    if not header:
        raise SchemaMismatchError(f"{path} is empty; expected a header line "
                                  f"{','.join(REQUIRED_COLUMNS)} followed by rows.")
    return [h.strip() for h in header]


def comorbidity_file(spark, settings, input_path, output_path=None) -> int:
    """Charlson/Elixhauser components and scores per patient from ``patient_id,code`` rows.

    Writes one CSV row per patient (every component flag after the hierarchy rules,
    ``charlson_index``, ``elixhauser_vw``) to ``output_path``, or to stdout when it is None.
    Codes are ICD-10 / ICD-10-CM, with or without dots; every code of a patient counts (no
    lookback window: the file has no dates). Returns the number of patients written.

    >>> comorbidity_file(spark, settings, Path("codes.csv"), Path("scores.csv"))  # doctest: +SKIP
    3
    """
    from pipelines.clinical.comorbidity import comorbidity_flags

    path = Path(input_path)
    if not path.is_file():
        raise InputNotFoundError(f"Input file {path} does not exist; check the path.")
    header = read_header(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SchemaMismatchError(
            f"{path} has no {' or '.join(repr(m) for m in missing)} column: expected a header "
            f"with {','.join(REQUIRED_COLUMNS)}, found {','.join(header) or 'nothing'}; "
            "rename the columns and retry."
        )
    schema = ", ".join(f"`{h}` string" for h in header)
    rows = (
        spark.read.csv(str(path), header=True, schema=schema, encoding="UTF-8")
        .select(F.trim("patient_id").alias("patient_id"), F.trim("code").alias("code"))
        .where(F.col("patient_id").isNotNull() & (F.col("patient_id") != ""))
    )
    result = comorbidity_flags(rows, id_col="patient_id", code_col="code")
    ordered = ["patient_id", *_output_columns()]
    frame = result.select(*ordered).orderBy("patient_id").toPandas()
    if output_path is None:
        frame.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        out = Path(output_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, lineterminator="\n")
    return len(frame)


def _output_columns() -> list[str]:
    from pipelines.clinical.codes import charlson_components, elixhauser_components

    return ([c.column for c in charlson_components()] + ["charlson_index"]
            + [c.column for c in elixhauser_components()] + ["elixhauser_vw"])

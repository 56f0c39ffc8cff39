"""Library side of ``oncorank comorbidity --input FILE.csv [--output FILE] [--rejects FILE]``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from pyspark.sql import functions as F

from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError
from pipelines.tally import Tally, write_rejects

REQUIRED_COLUMNS = ("patient_id", "code")
# ICD-10 / ICD-10-CM once dots and spaces are removed: a letter, a digit, a digit or letter
# (C4A, Z3A), then up to four more characters (E1122, T360X1A). A SNOMED CT number or free
# text is not one; a valid code outside every component is (it scores no comorbidity).
ICD10_PATTERN = r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}$"
EMPTY_PATIENT_ID = "patient_id is empty"
EMPTY_CODE = "code is empty"
NOT_ICD10 = "code is not an ICD-10 code"
SKIP = "_skip_reason"


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


def comorbidity_file(spark, settings, input_path, output_path=None, rejects_path=None
                     ) -> Tally:
    """Charlson/Elixhauser components and scores per patient from ``patient_id,code`` rows.

    Writes one CSV row per patient (every component flag after the hierarchy rules,
    ``charlson_index``, ``elixhauser_vw``) to ``output_path``, or to stdout when it is None.
    Codes are ICD-10 / ICD-10-CM, with or without dots; every code of a patient counts (no
    lookback window: the file has no dates). A row is skipped when its patient_id or its code
    is empty, or its code is not an ICD-10 code (:data:`ICD10_PATTERN`); a patient with no
    row left is not written. ``rejects_path`` receives the skipped rows as read, with a
    ``reason`` column. Returns the tally (rows read, used, skipped by reason).

    >>> comorbidity_file(spark, settings, Path("codes.csv"), Path("scores.csv")).summary()
    ... # doctest: +SKIP
    'read 7 rows: 6 used, 1 skipped (code is not an ICD-10 code: 1); 3 patients written'
    """
    from pipelines.clinical.comorbidity import comorbidity_flags, normalised_code

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
    pid, code = F.trim("patient_id"), F.trim("code")
    reason = (F.when(F.coalesce(pid, F.lit("")) == "", F.lit(EMPTY_PATIENT_ID))
              .when(F.coalesce(code, F.lit("")) == "", F.lit(EMPTY_CODE))
              .when(~normalised_code(code).rlike(ICD10_PATTERN), F.lit(NOT_ICD10)))
    read = (spark.read.csv(str(path), header=True, schema=schema, encoding="UTF-8")
            .withColumn(SKIP, reason).persist())
    try:
        tally = Tally(read=read.count())
        skipped = read.where(F.col(SKIP).isNotNull())
        tally.skipped.update({r[SKIP]: r["n"] for r in skipped.groupBy(SKIP).agg(
            F.count("*").alias("n")).collect()})
        tally.used = tally.read - tally.n_skipped
        if rejects_path is not None:
            name = "reason" if "reason" not in header else "skip_reason"
            rejected = skipped.withColumnRenamed(SKIP, name).toPandas()
            write_rejects(rejects_path, [*header, name], rejected.to_dict("records"))
        rows = read.where(F.col(SKIP).isNull()).select(pid.alias("patient_id"),
                                                       code.alias("code"))
        result = comorbidity_flags(rows, id_col="patient_id", code_col="code")
        ordered = ["patient_id", *_output_columns()]
        frame = result.select(*ordered).orderBy("patient_id").toPandas()
        tally.written = f"{len(frame)} patient{'' if len(frame) == 1 else 's'}"
    finally:
        read.unpersist()
    if output_path is None:
        frame.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        out = Path(output_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, lineterminator="\n")
    return tally


def _output_columns() -> list[str]:
    from pipelines.clinical.codes import charlson_components, elixhauser_components

    return ([c.column for c in charlson_components()] + ["charlson_index"]
            + [c.column for c in elixhauser_components()] + ["elixhauser_vw"])

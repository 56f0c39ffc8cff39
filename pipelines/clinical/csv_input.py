"""The flat CSV layout of ``oncorank synth`` (``DIR/csv/*.csv``), read as strings.

Layout (header names; extra columns are ignored, missing optional ones are null):

* ``patients.csv``: patient_id, name, mrn, birth_date, sex, cancer_type, stage, ecog,
  diagnosis_date, smoking_status (optional: zip, the home ZIP code; silver keeps only its
  first three digits)
* ``diagnoses.csv``: patient_id, code, code_system, onset_date
* ``treatments.csv``: patient_id, drug, rxcui, start_date, end_date
* ``outcomes.csv``: patient_id, death_date, last_followup_date (optional: progression_date)

Bronze keeps every value as received (strings); rows Spark cannot split into the header's
fields are quarantined with the raw line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.clinical.columns import (
    blank_to_null,
    ecog_value,
    invalid_ecog,
    invalid_stage,
    sex_label,
    smoking_label,
    stage_group,
    with_rules,
)
from pipelines.clinical.dates import invalid_date, parse_date
from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError

LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (required columns, optional columns)
    "patients": (("patient_id",), ("name", "mrn", "birth_date", "sex", "cancer_type", "stage",
                                   "ecog", "diagnosis_date", "smoking_status", "zip")),
    "diagnoses": (("patient_id", "code"), ("code_system", "onset_date")),
    "treatments": (("patient_id", "drug", "start_date"), ("rxcui", "end_date")),
    "outcomes": (("patient_id",), ("death_date", "last_followup_date", "progression_date")),
}
CORRUPT = "_corrupt_record"


def csv_files(folder: str) -> dict[str, Path]:
    """The layout's files present in ``folder`` (at least one must be)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputNotFoundError(
            f"The clinical CSV folder {root} does not exist; set [inputs] clinical_csv to the "
            "folder holding patients.csv, diagnoses.csv, treatments.csv and outcomes.csv, or "
            "leave it empty.")
    found = {t: root / f"{t}.csv" for t in LAYOUT if (root / f"{t}.csv").is_file()}
    if not found:
        raise InputNotFoundError(
            f"The clinical CSV folder {root} has none of patients.csv, diagnoses.csv, "
            "treatments.csv, outcomes.csv; check [inputs] clinical_csv.")
    return found


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise SchemaMismatchError(f"{path} is not UTF-8 text; export it as CSV (UTF-8).") from None
    if not header:
        raise SchemaMismatchError(f"{path} is empty; expected a header line and rows.")
    return [h.strip().lstrip("\ufeff") for h in header]


def read_csv_table(spark: SparkSession, table: str, path: Path) -> DataFrame:
    """Rows of one layout file: ``record_id, source_file, record_index``, the layout columns
    (strings, null when the file lacks an optional column) and ``_corrupt_record``."""
    required, optional = LAYOUT[table]
    header = _header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise SchemaMismatchError(
            f"{path} lacks required column(s) {', '.join(missing)}: expected "
            f"{', '.join(required + optional)} (optional: {', '.join(optional)}), found "
            f"{', '.join(header)}; fix the export's header.")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SchemaMismatchError(f"{path} repeats column(s) {', '.join(dupes)} in its header.")
    schema = ", ".join([f"`{h}` string" for h in header] + [f"{CORRUPT} string"])
    df = spark.read.csv(str(path), header=True, schema=schema, mode="PERMISSIVE",
                        columnNameOfCorruptRecord=CORRUPT, multiLine=True, encoding="UTF-8")
    # zipWithIndex over the single file keeps row order: record_index is the data row number.
    indexed = spark.createDataFrame(
        df.rdd.zipWithIndex().map(lambda t: (*t[0], t[1] + 1)),
        schema=f"{schema}, record_index long")
    name = path.name
    cols = [F.col(f"`{c}`") if c in header else F.lit(None).cast("string").alias(c)
            for c in required + optional]
    return indexed.select(
        F.substring(F.sha2(F.concat_ws("#", F.lit(name), F.col("record_index").cast("string")),
                           256), 1, 20).alias("record_id"),
        F.lit(name).alias("source_file"), "record_index", *cols, CORRUPT)


def bronze_columns(table: str) -> list[str]:
    required, optional = LAYOUT[table]
    return ["record_id", "source_file", "record_index", *required, *optional]


# ============================================================================ parsing to silver
def parse_patients(rows: DataFrame) -> DataFrame:
    """patients.csv rows with the checks of silver.patients (``_rule`` null when accepted)."""
    out = rows.select(
        "record_id", "source_file", "record_index",
        blank_to_null(F.col("patient_id")).alias("pid"),
        blank_to_null(F.col("name")).alias("name"), blank_to_null(F.col("mrn")).alias("mrn"),
        F.col("birth_date").alias("birth_raw"), parse_date(F.col("birth_date")).alias("birth_date"),
        sex_label(F.col("sex")).alias("sex"),
        F.upper(blank_to_null(F.col("cancer_type"))).alias("cancer_type"),
        F.col("stage").alias("stage_raw"), stage_group(F.col("stage")).alias("stage"),
        F.col("ecog").alias("ecog_raw"), ecog_value(F.col("ecog")).alias("ecog"),
        F.col("diagnosis_date").alias("diagnosis_raw"),
        parse_date(F.col("diagnosis_date")).alias("diagnosis_date"),
        smoking_label(F.col("smoking_status")).alias("smoking_status"),
        blank_to_null(F.col("zip")).alias("postal_code"),
    )
    return with_rules(
        out,
        (F.col("pid").isNull(), "missing_id", "patient_id is empty"),
        (invalid_date(F.col("birth_raw"), F.col("birth_date")), "invalid_date", "birth_date is not a date"),
        (invalid_date(F.col("diagnosis_raw"), F.col("diagnosis_date")), "invalid_date", "diagnosis_date is not a date"),
        (F.col("diagnosis_date") < F.col("birth_date"), "diagnosis_before_birth",
         "diagnosis_date is before birth_date"),
        (invalid_stage(F.col("stage_raw")), "invalid_value", "stage is not I-IV"),
        (invalid_ecog(F.col("ecog_raw")), "invalid_value", "ecog is not 0-4"),
    )


def parse_diagnoses(rows: DataFrame) -> DataFrame:
    from pipelines.clinical.columns import code_system_label

    out = rows.select(
        "record_id", "source_file", "record_index",
        blank_to_null(F.col("patient_id")).alias("pid"),
        F.upper(blank_to_null(F.col("code"))).alias("code"),
        F.coalesce(code_system_label(blank_to_null(F.col("code_system"))), F.lit("ICD-10-CM"))
        .alias("code_system"),
        F.col("onset_date").alias("onset_raw"), parse_date(F.col("onset_date")).alias("onset_date"),
    )
    return with_rules(
        out,
        (F.col("pid").isNull(), "missing_id", "patient_id is empty"),
        (F.col("code").isNull(), "missing_code", "code is empty"),
        (invalid_date(F.col("onset_raw"), F.col("onset_date")), "invalid_date", "onset_date is not a date"),
    )


def parse_treatments(rows: DataFrame) -> DataFrame:
    out = rows.select(
        "record_id", "source_file", "record_index",
        blank_to_null(F.col("patient_id")).alias("pid"),
        blank_to_null(F.col("drug")).alias("display"),
        blank_to_null(F.col("rxcui")).alias("rxcui"),
        F.col("start_date").alias("start_raw"), parse_date(F.col("start_date")).alias("start_date"),
        F.col("end_date").alias("end_raw"), parse_date(F.col("end_date")).alias("end_date"),
        F.lit(None).cast("string").alias("status"),
    )
    return with_rules(
        out,
        (F.col("pid").isNull(), "missing_id", "patient_id is empty"),
        (F.col("display").isNull() & F.col("rxcui").isNull(), "missing_medication",
         "drug is empty"),
        (invalid_date(F.col("start_raw"), F.col("start_date")), "invalid_date", "start_date is not a date"),
        (invalid_date(F.col("end_raw"), F.col("end_date")), "invalid_date", "end_date is not a date"),
        (F.col("start_date").isNull(), "missing_start_date", "start_date is empty"),
        (F.col("end_date") < F.col("start_date"), "end_before_start",
         "end_date is before start_date"),
    )


def parse_outcomes(rows: DataFrame) -> DataFrame:
    out = rows.select(
        "record_id", "source_file", "record_index",
        blank_to_null(F.col("patient_id")).alias("pid"),
        F.col("death_date").alias("death_raw"), parse_date(F.col("death_date")).alias("death_date"),
        F.col("last_followup_date").alias("followup_raw"),
        parse_date(F.col("last_followup_date")).alias("last_followup_date"),
        F.col("progression_date").alias("progression_raw"),
        parse_date(F.col("progression_date")).alias("progression_date"),
    )
    return with_rules(
        out,
        (F.col("pid").isNull(), "missing_id", "patient_id is empty"),
        (invalid_date(F.col("death_raw"), F.col("death_date")), "invalid_date", "death_date is not a date"),
        (invalid_date(F.col("followup_raw"), F.col("last_followup_date")), "invalid_date", "last_followup_date is not a date"),
        (invalid_date(F.col("progression_raw"), F.col("progression_date")), "invalid_date",
         "progression_date is not a date"),
    )


def corrupt_rows(rows: DataFrame) -> DataFrame:
    """Rows whose line did not split into the header's fields (wrong count, bad quoting)."""
    return rows.where(F.col(CORRUPT).isNotNull())

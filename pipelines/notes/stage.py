"""The three notes stages: ingest-notes, deidentify-notes, extract-note-findings.

* ``ingest-notes``: notes JSONL or CSV (``note_id, patient_id, note_type, note_date, text``)
  → ``bronze.notes_raw``, text as received. A note whose bytes are not UTF-8, whose text is
  empty, longer than ``[notes] max_chars`` (default 100000), or which lacks an id, a patient or
  a readable date goes to ``bronze.quarantine_notes_raw`` with the reason.
* ``deidentify-notes``: ``bronze.notes_raw`` → ``silver.notes_deid`` (Spark NLP, see
  :mod:`pipelines.notes.deid`); dates, including ``note_date``, move by the patient's offset.
* ``extract-note-findings``: ``silver.notes_deid`` → ``silver.note_findings``, one row per
  concept mention with its ConText status. Reads only de-identified text.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError, SchemaMismatchError
from pipelines.lakehouse.privacy import (
    hmac_sha256_col,
    patient_shift_days_col,
    pseudonymise_col,
)
from pipelines.lakehouse.session import require_spark_nlp
from pipelines.lakehouse.settings import Settings
from pipelines.notes import nlp

NOTE_FIELDS = ("note_id", "patient_id", "note_type", "note_date", "text")
DEFAULT_MAX_CHARS = 100_000

RAW_SCHEMA = T.StructType([
    T.StructField("note_id", T.StringType()),
    T.StructField("patient_id", T.StringType()),
    T.StructField("note_type", T.StringType()),
    T.StructField("note_date", T.DateType()),
    T.StructField("text", T.StringType()),
    T.StructField("source_file", T.StringType()),
])


# ----------------------------------------------------------------------------- ingest
def max_chars(settings: Settings) -> int:
    return int(settings.section("notes").get("max_chars", DEFAULT_MAX_CHARS))


def read_note_lines(path: Path) -> list[dict]:
    """Raw records of a notes file: one dict per note with the raw field values plus
    ``_record_index`` and, when the bytes of that note are not UTF-8, ``_bad_bytes``.

    Read in Python because each note must be checked byte by byte: Spark's text readers
    silently replace invalid UTF-8 with U+FFFD and the quarantine could not say why. Bytes are
    decoded with ``surrogateescape``, so an invalid byte survives as a lone surrogate that
    marks exactly the note it belongs to.
    """
    import csv
    import io

    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    records: list[dict] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [f for f in NOTE_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise SchemaMismatchError(
                f"Notes file {path} lacks the column(s) {missing}; expected the header "
                f"{', '.join(NOTE_FIELDS)} (found {reader.fieldnames})."
            )
        for i, row in enumerate(reader):
            rec = {k: row.get(k) for k in NOTE_FIELDS}
            rec["_record_index"] = i
            records.append(_mark_bad_bytes(rec))
        return records
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        rec: dict = {"_record_index": i}
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            rec["_parse_error"] = f"line {i + 1} is not a JSON object ({str(exc)[:80]})"
            rec["_bad_bytes"] = _has_surrogates(line)
            records.append(rec)
            continue
        for k in NOTE_FIELDS:
            v = obj.get(k)
            rec[k] = None if v is None else str(v)
        records.append(_mark_bad_bytes(rec))
    return records


def _has_surrogates(s: str | None) -> bool:
    return bool(s) and any("\udc80" <= ch <= "\udcff" for ch in s)


def _mark_bad_bytes(rec: dict) -> dict:
    if any(_has_surrogates(rec.get(k)) for k in NOTE_FIELDS):
        rec["_bad_bytes"] = True
        # Keep only what can be written: the raw bytes are reported, not stored.
        for k in NOTE_FIELDS:
            if rec.get(k) is not None:
                rec[k] = rec[k].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return rec


def classify_records(records: list[dict], limit: int) -> list[dict]:
    """Add ``_rule`` and ``_reason`` to every record that must be quarantined."""
    for r in records:
        text = r.get("text")
        if r.get("_bad_bytes"):
            r["_rule"] = "not_utf8"
            r["_reason"] = ("the note's bytes are not valid UTF-8 (e.g. Latin-1); re-export "
                            "it as UTF-8")
        elif r.get("_parse_error"):
            r["_rule"], r["_reason"] = "parse_error", r["_parse_error"]
        elif not r.get("note_id"):
            r["_rule"], r["_reason"] = "missing_note_id", "note_id is empty"
        elif not r.get("patient_id"):
            r["_rule"], r["_reason"] = "missing_patient_id", "patient_id is empty"
        elif text is None or not text.strip():
            r["_rule"], r["_reason"] = "empty_note", "the note text is empty"
        elif len(text) > limit:
            r["_rule"] = "oversized_note"
            r["_reason"] = (f"the note has {len(text)} characters, more than [notes] "
                            f"max_chars = {limit}")
        elif not _parse_note_date(r.get("note_date")):
            # The value stays out of the reason (a date is PHI); the quarantine keeps the row.
            r["_rule"] = "bad_note_date"
            r["_reason"] = "note_date is not a date (yyyy-mm-dd)"
    return records


def _parse_note_date(value: str | None):
    import datetime as dt

    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def ingest_notes(spark: SparkSession, settings: Settings, parent_run_id: str | None = None
                 ) -> JobRun:
    """notes JSONL/CSV (``settings.inputs.notes``) → ``bronze.notes_raw``."""
    target = settings.table("bronze", "notes_raw")
    with job_run(spark, settings, "ingest-notes", parent_run_id) as run:
        source = settings.inputs.notes
        if not source:
            return run
        path = Path(source)
        if not path.is_file():
            raise InputNotFoundError(
                f"Notes file {path} (inputs.notes) does not exist; check the config or run "
                "`oncorank synth` to generate one."
            )
        records = classify_records(read_note_lines(path), max_chars(settings))
        run.count_in(len(records))
        good = [r for r in records if not r.get("_rule")]
        bad = [r for r in records if r.get("_rule")]
        rows = [(r["note_id"], r["patient_id"], r.get("note_type"),
                 _parse_note_date(r["note_date"]), r["text"], str(path)) for r in good]
        df = spark.createDataFrame(rows, RAW_SCHEMA)
        if bad:
            bad_schema = ("note_id string, patient_id string, note_type string, "
                          "note_date string, text_chars int, _source string, "
                          "_record_index long, _rule string, _reason string")
            # The quarantine keeps what identifies the row, never the note text itself: a
            # bronze quarantine is readable by engineers who must not see PHI in clear.
            bad_rows = [(r.get("note_id"), r.get("patient_id"), r.get("note_type"),
                         r.get("note_date"), len(r["text"]) if r.get("text") else 0,
                         str(path), r["_record_index"], r["_rule"], r["_reason"]) for r in bad]
            run.quarantine(spark.createDataFrame(bad_rows, bad_schema), target)
        dup = df.groupBy("note_id").count().filter("count > 1").select("note_id")
        if dup.limit(1).count():
            # Two notes with one id: keep neither silently; both go to quarantine.
            dups = df.join(dup, "note_id", "left_semi")
            run.quarantine(
                dups.select("note_id", "patient_id", "note_type",
                            F.col("note_date").cast("string").alias("note_date"),
                            F.length("text").alias("text_chars"),
                            F.lit(str(path)).alias("_source"),
                            F.lit("duplicate_note_id").alias("_rule"),
                            F.lit("another note in the file has the same note_id").alias(
                                "_reason")),
                target)
            df = df.join(dup, "note_id", "left_anti")
        run.write(df, target, keys=["note_id"])
    return run


# ----------------------------------------------------------------------------- de-identify
def with_shift_days(notes: DataFrame, key: bytes) -> DataFrame:
    """Add the patient's date-shift offset (days), keyed by the patient's pseudonym
    (:func:`pipelines.lakehouse.privacy.patient_shift_days_col`)."""
    return notes.withColumn("shift_days", patient_shift_days_col(
        pseudonymise_col(F.col("patient_id"), key), key))


DEID_MODES = ("mask", "surrogate")


def deid_mode(settings: Settings) -> str:
    """``[notes] deid_mode``: "mask" (typed placeholders, the default) or "surrogate"
    (realistic consistent replacements, :mod:`pipelines.notes.surrogates`)."""
    mode = str(settings.section("notes").get("deid_mode", "mask"))
    if mode not in DEID_MODES:
        raise ConfigError(f"[notes] deid_mode is {mode!r}; use one of {', '.join(DEID_MODES)}.")
    return mode


def with_surrogate_seed(notes: DataFrame, key: bytes) -> DataFrame:
    """The patient's secret surrogate seed: HMAC of the patient id under the lakehouse key.
    It lives only while the notes are de-identified and is never written."""
    return notes.withColumn("surrogate_seed", hmac_sha256_col(
        F.concat(F.lit("surrogate:"), F.col("patient_id").cast("string")), key))


def deidentify_frame(spark: SparkSession, notes: DataFrame, key: bytes,
                     mode: str = "mask") -> DataFrame:
    """``note_id, patient_id, note_type, note_date, text`` → ``silver.notes_deid`` columns
    plus ``phi_spans`` (offsets and types in the raw text, for measuring; no text).
    ``mode="surrogate"`` writes surrogates instead of masks."""
    require_spark_nlp(spark)
    prepared = (
        notes.transform(lambda d: with_shift_days(d, key))
        .withColumn("patient_key", pseudonymise_col(F.col("patient_id"), key))
        .withColumn("note_date", F.date_add(F.col("note_date"), F.col("shift_days")))
    )
    if mode == "surrogate":
        prepared = with_surrogate_seed(prepared, key)
    out = nlp.deidentify(spark, prepared, ["note_id", "patient_key", "note_type", "note_date"])
    return out.withColumn("phi_count", F.size("phi_spans"))


def deidentify_notes(spark: SparkSession, settings: Settings, parent_run_id: str | None = None
                     ) -> JobRun:
    source = settings.table("bronze", "notes_raw")
    target = settings.table("silver", "notes_deid")
    with job_run(spark, settings, "deidentify-notes", parent_run_id) as run:
        raw = run.read(source).persist()
        run.count_in(raw.count())
        deid = deidentify_frame(spark, raw, settings.pseudonym_key,
                                deid_mode(settings)).drop("phi_spans")
        out = deid.select("note_id", "patient_key", "note_type", "note_date", "text_deid",
                          "phi_count")
        run.write(out, target, keys=["note_id"], delete_missing=True)
        raw.unpersist()
    return run


# ----------------------------------------------------------------------------- findings
def findings_frame(spark: SparkSession, notes_deid: DataFrame) -> DataFrame:
    """``silver.notes_deid`` rows → one row per finding (the ``silver.note_findings`` columns)."""
    require_spark_nlp(spark)
    src = notes_deid.select("note_id", "patient_key", "note_type", "note_date",
                            F.col("text_deid").alias("text"))
    out = nlp.extract_findings(spark, src, ["note_id", "patient_key", "note_type", "note_date"])
    return out.select("note_id", "patient_key", "note_type", "note_date",
                      F.explode("findings").alias("f")).select(
        "f.finding_id", "patient_key", "note_id", "note_type", "note_date", "f.concept",
        "f.category", "f.value", "f.comparator", "f.context", "f.section", "f.start", "f.end", "f.snippet")


def extract_note_findings(spark: SparkSession, settings: Settings,
                          parent_run_id: str | None = None) -> JobRun:
    """``silver.notes_deid`` → ``silver.note_findings``.

    Rows in are mentions (the audit reconciles findings written + quarantined against the
    mentions found), so a note without findings adds nothing.
    """
    source = settings.table("silver", "notes_deid")
    target = settings.table("silver", "note_findings")
    with job_run(spark, settings, "extract-note-findings", parent_run_id) as run:
        notes = run.read(source)
        found = findings_frame(spark, notes).persist()
        run.count_in(found.count())
        run.write(found, target, keys=["finding_id"], delete_missing=True)
        found.unpersist()
    return run

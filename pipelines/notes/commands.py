"""``oncorank notes deidentify`` and ``oncorank notes context``: the pipeline's own Spark NLP
de-identification and ConText logic on a file, for sharing notes and for benchmarking."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.session import require_spark_nlp
from pipelines.lakehouse.settings import Settings
from pipelines.notes import nlp
from pipelines.notes.stage import (
    classify_records,
    deid_mode,
    max_chars,
    read_note_lines,
    with_shift_days,
    with_surrogate_seed,
)
from pipelines.tally import Tally, write_rejects

REJECT_FIELDS = ["record", "note_id", "rule", "reason"]


def deidentify_file(spark: SparkSession, settings: Settings, input_path, output_path,
                    keep_source_ids: bool = False, rejects_path=None,
                    surrogate: bool | None = None) -> Tally:
    """De-identify a notes JSONL export; returns the tally (notes read, written, skipped).

    Every input field is kept except ``text``, which is replaced by the de-identified text,
    ``note_date``, which moves by the patient's offset like every date in the text, and
    ``patient_id``, which becomes ``patient_key`` (the pseudonym every oncorank table uses);
    ``keep_source_ids`` (``--keep-source-ids``, for a data engineer linking back inside the
    hospital) keeps the source ``patient_id`` instead.
    Notes that cannot be de-identified safely (bytes that are not UTF-8, no patient id, empty
    or longer than ``[notes] max_chars``) are left out and reported on stderr by record number
    (the line of a JSONL file, the row after the header of a CSV file), never copied through;
    ``rejects_path`` receives them as CSV rows ``record, note_id, rule, reason`` — never the
    text, the patient id or the date, since a note that was not de-identified may hold PHI.
    ``surrogate`` (``--surrogate``; default ``[notes] deid_mode``) writes realistic consistent
    surrogates instead of typed masks (:mod:`pipelines.notes.surrogates`).
    """
    require_spark_nlp(spark)
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise InputNotFoundError(f"Notes file {input_path} does not exist; check the path.")
    records = classify_records(read_note_lines(input_path), max_chars(settings))
    skipped = [r for r in records if r.get("_rule")]
    good = [r for r in records if not r.get("_rule")]
    originals = {}
    if input_path.suffix.lower() != ".csv":
        lines = input_path.read_bytes().split(b"\n")
        originals = {r["_record_index"]: json.loads(lines[r["_record_index"]]) for r in good}
    rows = [(r["_record_index"], r["patient_id"], r["note_date"], r["text"]) for r in good]
    df = spark.createDataFrame(
        rows, "idx long, patient_id string, note_date string, text string")
    df = (df.transform(lambda d: with_shift_days(d, settings.pseudonym_key))
          .withColumn("note_date",
                      F.date_format(F.date_add(F.to_date(F.substring("note_date", 1, 10)),
                                               F.col("shift_days")), "yyyy-MM-dd")))
    if surrogate if surrogate is not None else deid_mode(settings) == "surrogate":
        df = with_surrogate_seed(df, settings.pseudonym_key)
    out = nlp.deidentify(spark, df, ["idx", "note_date"]).select(
        "idx", "note_date", "text_deid").collect()
    by_idx = {r.idx: r for r in out}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", encoding="utf-8") as fh:
        for rec in good:
            res = by_idx[rec["_record_index"]]
            obj = dict(originals.get(rec["_record_index"]) or
                       {k: rec[k] for k in ("note_id", "patient_id", "note_type")})
            obj["note_date"] = res.note_date
            obj["text"] = res.text_deid
            if not keep_source_ids:
                obj = {("patient_key" if k == "patient_id" else k):
                       (pseudonymise(str(v), settings.pseudonym_key) if k == "patient_id" else v)
                       for k, v in obj.items()}
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    for r in skipped:
        print(f"skipped record {r['_record_index'] + 1}: {r['_reason']}", file=sys.stderr)
    if rejects_path is not None:
        write_rejects(rejects_path, REJECT_FIELDS, [
            {"record": r["_record_index"] + 1, "note_id": r.get("note_id"), "rule": r["_rule"],
             "reason": r["_reason"]} for r in skipped])
    tally = Tally(read=len(records), used=len(good), unit="notes", verb="de-identified")
    tally.skipped.update(r["_rule"] for r in skipped)
    return tally


def read_context_rows(path: Path) -> list[tuple[str, str]]:
    """``sentence<TAB>target`` rows (a header line ``sentence<TAB>target`` is skipped)."""
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        for n, parts in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not parts or not any(p.strip() for p in parts):
                continue
            if len(parts) < 2:
                raise SchemaMismatchError(
                    f"Line {n} of {path} has {len(parts)} column(s); expected "
                    "sentence<TAB>target.")
            if n == 1 and [p.strip().lower() for p in parts[:2]] == ["sentence", "target"]:
                continue
            rows.append((parts[0], parts[1]))
    return rows


def context_statuses(spark: SparkSession, rows: list[tuple[str, str]]) -> list:
    """ConText result per ``(sentence, target)``: Row(idx, status, modifiers, target_found)."""
    require_spark_nlp(spark)
    df = spark.createDataFrame([(i, s, t) for i, (s, t) in enumerate(rows)],
                               "idx long, text string, target string")
    out = nlp.context_status(spark, df, ["idx"]).collect()
    return sorted(out, key=lambda r: r.idx)


def context_file(spark: SparkSession, settings: Settings, input_path, output_path=None
                 ) -> Tally:
    """Write ``sentence<TAB>target<TAB>status`` for each input row (stdout without output).

    Every row is classified (blank lines and a ``sentence<TAB>target`` header are not rows);
    the tally also says in how many sentences the target was not found, which get the
    default status ``affirmed``."""
    input_path = Path(input_path)
    if not input_path.is_file():
        raise InputNotFoundError(f"Input file {input_path} does not exist; check the path.")
    try:
        rows = read_context_rows(input_path)
    except UnicodeDecodeError:
        raise SchemaMismatchError(
            f"{input_path} is not UTF-8 text; expected sentence<TAB>target rows.") from None
    results = context_statuses(spark, rows)
    lines = [f"{sentence}\t{target}\t{res.status}\n"
             for (sentence, target), res in zip(rows, results, strict=True)]
    if output_path:
        Path(output_path).write_text("".join(lines), encoding="utf-8")
    else:
        sys.stdout.write("".join(lines))
    tally = Tally(read=len(rows), used=len(results), verb="classified")
    not_found = sum(1 for r in results if not r.target_found)
    if not_found:
        tally.remarks.append(f"target not found in {not_found} sentence(s): status affirmed "
                             "by default")
    return tally

"""Write bronze variant rows as Parquet from the Spark tasks that read them.

The rows of ``bronze.variants_raw`` are produced as Arrow batches inside Python tasks
(:mod:`pipelines.genomics.reader`). Handing them to the JVM to be written costs several times
more than reading the file: Spark converts every Arrow value into its row format, then
re-encodes it as Parquet, and the counts, the gate and the quarantine would each need the
rows again (a cache that grows with the file). Here each task writes its own Arrow batches
straight to Parquet with Arrow's C++ writer instead:

* rows that passed every reader rule go to data files inside the bronze table's folder,
  not yet part of the table: they are published afterwards in one Delta commit
  (:func:`pipelines.lakehouse.delta.commit_files`) once the data-quality gate has passed them;
* rows that broke a rule go to a staging folder, read back for the quarantine table;
* the task returns one small row per file written (path, size, row count, Delta statistics,
  first and last key, whether keys strictly increase) and per (file, sample, passed) count,
  so the driver receives counts, never records.

Rows are written in key order — record by record, sample by sample within a record — and the
writer checks it: every file's keys strictly increase. With the files of one source covering
disjoint key ranges and the header's sample names distinct, that proves bronze's key
(source_file, record_index, sample) unique on every row (:func:`key_proof`), so the gate need
not re-check it with a shuffle of all rows (``pipelines.quality.gate.Verified``).

Memory is one Parquet row group of Arrow batches per task whatever the file size.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.genomics import rows
from pipelines.genomics.bronze import BRONZE_COLUMNS, BRONZE_SCHEMA, STATS_COLUMNS
from pipelines.genomics.reader import TARGET_ROWS, read_piece, read_tasks, task_pieces
from pipelines.genomics.sources import Piece, VcfSource

# The tag naming the one source file whose rows a data file holds: a re-ingest of that file
# replaces exactly the files carrying its tag (pipelines.lakehouse.delta.commit_files).
SOURCE_TAG = "oncorank.source_file"
ROWS_PER_FILE = 4_000_000
# Rows per Parquet row group: batches are held until this many (~60 MB of Arrow rows on the
# benchmark file) and written as one group. Against a group per ~23k-row batch, one core:
# the write ~4% and the gate's Spark scan ~10% faster per row.
GROUP_ROWS = 131_072
# Columns with few distinct values per file get Parquet dictionary encoding; for the others
# (INFO/FORMAT values, positions, depths) trying it costs ~20% of the write for no gain.
DICTIONARY_COLUMNS = ("source_file", "sample", "chrom", "id", "ref", "alts", "filters", "gt",
                      "info_svtype", "_rule", "_reason")
# Parquet min/max statistics only where a reader filters: the key columns (re-ingest,
# silver) and the position (region queries); on INFO/FORMAT maps they cost ~14% of the write.
STATISTICS_COLUMNS = (*STATS_COLUMNS, "chrom", "pos")
# Facts for the bronze gate, counted on every row a task writes (``_Facts``): nulls of every
# column, min/max of these, and these columns' values checked against the reader's own
# pattern (the suite checks REF with the same one: the gate then need not scan the rows).
# Arrow checks it with RE2, GX with Java's regex (Spark's rlike); on this pattern they differ
# only in that Java's `$` also matches before a final line terminator, so an RE2 match is a
# Java match.
FACT_RANGE_COLUMNS = ("record_index", "pos", "qual", "dp", "gq", "info_dp", "info_end")
FACT_PATTERNS = {"ref": rows.REF_RE}
# What a task returns: one row per file written (kind "data" or "rejected": path, bytes,
# rows, stats, first/last key, keys increasing, gate facts) and one per (source_file,
# sample, sample_index, ok) count (kind "count": n).
STAGED_FIELDS = (("kind", pa.string(), "string"), ("path", pa.string(), "string"),
                 ("bytes", pa.int64(), "bigint"), ("rows", pa.int64(), "bigint"),
                 ("stats", pa.string(), "string"), ("source_file", pa.string(), "string"),
                 ("first_key", pa.int64(), "bigint"), ("last_key", pa.int64(), "bigint"),
                 ("keys_increasing", pa.bool_(), "boolean"),
                 ("sample", pa.string(), "string"), ("sample_index", pa.int32(), "int"),
                 ("ok", pa.bool_(), "boolean"), ("n", pa.int64(), "bigint"),
                 ("facts", pa.string(), "string"))
STAGED_SCHEMA = pa.schema([(n, t) for n, t, _ in STAGED_FIELDS])
STAGED_DDL = ", ".join(f"`{n}` {ddl}" for n, _, ddl in STAGED_FIELDS)


@dataclass(frozen=True)
class StagedFile:
    """A Parquet file a task wrote: absolute path, size, rows, Delta statistics JSON, and its
    first and last row key (:func:`row_keys`) and whether its keys strictly increase, and
    the gate's column facts counted on its rows (``_Facts.json``; data files only)."""

    path: str
    bytes: int
    rows: int
    stats: str | None
    source_file: str | None
    first_key: int | None = None
    last_key: int | None = None
    keys_increasing: bool = False
    facts: str | None = None


@dataclass(frozen=True)
class Staged:
    data: list[StagedFile]      # passed rows, inside the table folder, not yet committed
    rejected: list[StagedFile]  # rows that broke a reader rule (rows.ROW_SCHEMA)
    counts: list[dict]          # source_file, sample, sample_index, ok, count


# ---------------------------------------------------------------------------- task side
class _FileStats:
    """Running Delta statistics (numRecords, min/max, null counts) of the key columns."""

    def __init__(self):
        self.rows = 0
        self.min: dict = {}
        self.max: dict = {}
        self.nulls = Counter()

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name in STATS_COLUMNS:
            col = batch.column(name)
            self.nulls[name] += col.null_count
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is None:
                continue
            self.min[name] = lo if name not in self.min else min(self.min[name], lo)
            self.max[name] = hi if name not in self.max else max(self.max[name], hi)

    def json(self) -> str:
        return json.dumps({"numRecords": self.rows, "minValues": self.min,
                           "maxValues": self.max,
                           "nullCount": {n: self.nulls[n] for n in STATS_COLUMNS}})


class _Facts:
    """Exact facts of the rows of one file for the bronze gate (:func:`column_facts`): each
    column's null count, the min and max of :data:`FACT_RANGE_COLUMNS` (a float column
    holding NaN gets none: Spark orders NaN above every number, Arrow skips it), and how
    many values of each :data:`FACT_PATTERNS` column miss its pattern. ~0.07 s per million
    rows, against ~0.45 s for the gate's Spark scan of the same rows."""

    def __init__(self):
        self.nulls: Counter = Counter()
        self.min: dict = {}
        self.max: dict = {}
        self.nan: set[str] = set()
        self.misses: Counter = Counter()

    def add(self, batch: pa.RecordBatch) -> None:
        for name in batch.schema.names:
            self.nulls[name] += batch.column(name).null_count
        for name in FACT_RANGE_COLUMNS:
            col = batch.column(name)
            if pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
                self.nan.add(name)
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self.min[name] = lo if name not in self.min else min(self.min[name], lo)
                self.max[name] = hi if name not in self.max else max(self.max[name], hi)
        for name, pattern in FACT_PATTERNS.items():
            col = batch.column(name)
            matched = pc.sum(pc.match_substring_regex(col, pattern)).as_py() or 0
            self.misses[name] += len(col) - col.null_count - matched

    def json(self) -> str:
        return json.dumps({"nulls": dict(self.nulls),
                           "min": {k: v for k, v in self.min.items() if k not in self.nan},
                           "max": {k: v for k, v in self.max.items() if k not in self.nan},
                           "misses": dict(self.misses)})


def column_facts(files: list[StagedFile]) -> tuple:
    """The gate's :class:`~pipelines.quality.gate.ColumnFacts` over every row of ``files``
    (data files a task wrote with facts), or () when a file has none."""
    from pipelines.quality.gate import ColumnFacts

    per_file = [json.loads(f.facts) if f.facts else None for f in files]
    if not files or any(p is None for p in per_file):
        return ()
    how = f"counted while writing, on every row of the {len(files)} staged file(s)"
    rows = sum(f.rows for f in files)
    out = []
    for name in BRONZE_COLUMNS:
        lo = [p["min"][name] for p in per_file if name in p["min"]]
        hi = [p["max"][name] for p in per_file if name in p["max"]]
        ranged = name in FACT_RANGE_COLUMNS and all(
            name in p["min"] or p["nulls"].get(name) == f.rows
            for p, f in zip(per_file, files, strict=True))  # a file without: all null or NaN
        matched = name in FACT_PATTERNS and all(p["misses"].get(name) == 0 for p in per_file)
        out.append(ColumnFacts(
            name, sum(p["nulls"].get(name, 0) for p in per_file), rows,
            min(lo) if ranged and lo else None, max(hi) if ranged and hi else None,
            (FACT_PATTERNS[name],) if matched else (), how))
    return tuple(out)


def row_keys(batch: pa.RecordBatch, n_samples: int) -> np.ndarray:
    """Each row's (record_index, sample_index) as one int64 that sorts the same way:
    ``record_index * (n_samples + 1) + sample_index + 1`` (a sites-only row: sample_index 0)."""
    record = batch.column("record_index").to_numpy(zero_copy_only=False).astype(np.int64)
    sample = pc.fill_null(batch.column("sample_index"), -1).to_numpy(zero_copy_only=False)
    return record * (n_samples + 1) + sample.astype(np.int64) + 1


class _KeyOrder:
    """First and last key of a file, and whether its keys strictly increase."""

    def __init__(self):
        self.first: int | None = None
        self.last: int | None = None
        self.increasing = True

    def add(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        if self.first is None:
            self.first = int(keys[0])
        elif keys[0] <= self.last:
            self.increasing = False
        if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            self.increasing = False
        self.last = int(keys[-1])


class _RollingWriter:
    """Parquet files of at most ``max_rows`` rows in ``folder``, opened on first write,
    in row groups of about :data:`GROUP_ROWS` rows."""

    def __init__(self, folder: str, schema: pa.Schema, prefix: str, max_rows: int,
                 n_samples: int = 0, facts: bool = False):
        self.folder, self.schema, self.prefix, self.max_rows = folder, schema, prefix, max_rows
        self.n_samples = n_samples
        self.with_facts = facts  # count the gate's facts (data files only)
        self.facts: _Facts | None = None
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.path = ""
        self.stats = _FileStats()
        self.keys = _KeyOrder()
        # path, bytes, rows, stats, first key, last key, keys increasing, facts
        self.done: list[tuple[str, int, int, str, int | None, int | None, bool,
                              str | None]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self.writer is None:
            os.makedirs(self.folder, exist_ok=True)
            self.path = os.path.join(
                self.folder, f"part-{self.prefix}-{uuid.uuid4()}.c000.snappy.parquet")
            self.writer = pq.ParquetWriter(
                self.path, self.schema, compression="snappy",
                use_dictionary=[n for n in DICTIONARY_COLUMNS if n in self.schema.names],
                write_statistics=[n for n in STATISTICS_COLUMNS if n in self.schema.names])
            self.stats = _FileStats()
            self.keys = _KeyOrder()
            self.facts = _Facts() if self.with_facts else None
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= GROUP_ROWS:
            self._flush()
        self.stats.add(batch)
        self.keys.add(row_keys(batch, self.n_samples))
        if self.facts is not None:
            self.facts.add(batch)
        if self.stats.rows >= self.max_rows:
            self.close()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending),
                                    row_group_size=self.pending_rows)
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        if self.writer is None:
            return
        self._flush()
        self.writer.close()
        self.done.append((self.path, os.path.getsize(self.path), self.stats.rows,
                          self.stats.json(), self.keys.first, self.keys.last,
                          self.keys.increasing,
                          self.facts.json() if self.facts is not None else None))
        self.writer = None


def _counts(batch: pa.RecordBatch, ok: np.ndarray, counter: Counter) -> None:
    """Add the batch's rows to ``counter[(sample_index or -1, ok)]``."""
    idx = pc.fill_null(batch.column("sample_index"), -1).to_numpy(zero_copy_only=False)
    values, n = np.unique(idx.astype(np.int64) * 2 + ok, return_counts=True)
    for v, k in zip(values.tolist(), n.tolist(), strict=True):
        counter[(v // 2, bool(v % 2))] += k


def stage_piece(src: VcfSource, piece: Piece, data_dir: str, reject_dir: str,
                target_rows: int = TARGET_ROWS,
                max_rows: int = ROWS_PER_FILE) -> Iterator[tuple]:
    """Read one piece, write its rows, and describe what was written (``STAGED_DDL`` rows)."""
    prefix = f"{piece.piece:05d}"
    ns = len(src.samples)
    data = _RollingWriter(data_dir, BRONZE_SCHEMA, prefix, max_rows, ns, facts=True)
    rejected = _RollingWriter(reject_dir, rows.ROW_SCHEMA, prefix, max_rows, ns)
    counter: Counter = Counter()
    for batch in read_piece(src, piece, target_rows):
        ok = batch.column("_rule").is_null().to_numpy(zero_copy_only=False)
        _counts(batch, ok, counter)
        if ok.all():
            data.write(batch.select(list(BRONZE_COLUMNS)))
        else:
            mask = pa.array(ok)
            data.write(batch.filter(mask).select(list(BRONZE_COLUMNS)))
            rejected.write(batch.filter(pc.invert(mask)))
    data.close()
    rejected.close()
    for kind, writer in (("data", data), ("rejected", rejected)):
        for path, size, n, stats, first, last, increasing, facts in writer.done:
            yield (kind, path, size, n, stats, src.path, first, last, increasing,
                   None, None, None, None, facts)
    for (sample_index, ok), n in sorted(counter.items()):
        sample = src.samples[sample_index] if sample_index >= 0 else None
        yield ("count", None, None, None, None, src.path, None, None, None, sample,
               sample_index if sample_index >= 0 else None, ok, n, None)


def _stage_partition(batches: Iterator[pa.RecordBatch], data_dir: str, reject_dir: str,
                     max_rows: int) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: each input row is one task's pieces; write each, describe the
    files."""
    schema = STAGED_SCHEMA
    for batch in batches:
        for row in batch.to_pylist():
            out = [r for src, piece in task_pieces(row)
                   for r in stage_piece(src, piece, data_dir, reject_dir, row["target_rows"],
                                        max_rows)]
            yield pa.RecordBatch.from_pylist(
                [dict(zip(schema.names, r, strict=True)) for r in out], schema=schema)


# ---------------------------------------------------------------------------- driver side
def stage(spark, sources: list[VcfSource], tasks: list[tuple[Piece, ...]], data_dir: Path,
          reject_dir: Path, target_rows: int, max_rows: int = ROWS_PER_FILE) -> Staged:
    """Read and write every piece in Spark tasks (one per entry of ``tasks``); return the
    files written and the counts."""
    if not tasks:
        return Staged([], [], [])
    tasks_df = read_tasks(spark, sources, tasks, target_rows)
    body = partial(_stage_partition, data_dir=str(data_dir), reject_dir=str(reject_dir),
                   max_rows=max_rows)
    out = tasks_df.mapInArrow(body, STAGED_DDL).collect()
    data, rejected, counts = [], [], []
    for r in out:
        if r["kind"] == "count":
            counts.append({"source_file": r["source_file"], "sample": r["sample"],
                           "sample_index": r["sample_index"], "ok": r["ok"],
                           "count": r["n"]})
            continue
        f = StagedFile(r["path"], r["bytes"], r["rows"], r["stats"], r["source_file"],
                       r["first_key"], r["last_key"], bool(r["keys_increasing"]),
                       r["facts"])
        (data if r["kind"] == "data" else rejected).append(f)
    return Staged(data, rejected, counts)


def key_proof(files: list[StagedFile], sources: list[VcfSource]):
    """A :class:`~pipelines.quality.gate.Verified` for bronze's key uniqueness over ``files``,
    or None when the writer's checks do not prove it (the gate then runs the expectation).

    Proven when every file's keys strictly increase, the files of each source cover disjoint
    key ranges, and each source's header names every sample once: then no two rows share
    (source_file, record_index, sample).
    """
    from pipelines.quality.gate import Verified

    samples = {s.path: s.samples for s in sources}
    by_source: dict[str | None, list[StagedFile]] = {}
    for f in files:
        if not f.keys_increasing or f.first_key is None or f.source_file not in samples:
            return None
        by_source.setdefault(f.source_file, []).append(f)
    for path, group in by_source.items():
        if len(set(samples[path])) != len(samples[path]):
            return None
        group.sort(key=lambda f: f.first_key)
        if any(a.last_key >= b.first_key for a, b in pairwise(group)):
            return None
    return Verified(
        "expect_compound_columns_to_be_unique", ("source_file", "record_index", "sample"),
        f"verified while writing, on every row of the {len(files)} staged file(s): keys "
        "strictly increasing within each file, files of a source covering disjoint key "
        "ranges, sample names distinct in each header")


def add_action(table_dir: Path, f: StagedFile) -> dict:
    """The Delta ``add`` action publishing a data file written inside ``table_dir``."""
    from urllib.parse import quote

    rel = os.path.relpath(f.path, table_dir)
    return {"add": {"path": quote(rel), "partitionValues": {}, "size": f.bytes,
                    "modificationTime": int(os.path.getmtime(f.path) * 1000),
                    "dataChange": True, "stats": f.stats,
                    "tags": {SOURCE_TAG: f.source_file}}}


def discard(files: list[StagedFile]) -> None:
    """Delete staged files that will not be published."""
    for f in files:
        Path(f.path).unlink(missing_ok=True)

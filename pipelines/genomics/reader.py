"""Stream VCF/BCF records into Arrow batches inside Spark tasks (``mapInArrow``).

Per-record Python is the bottleneck of VCF ingestion (FINDINGS.md, "pysam inside Spark"),
so records are never turned into Python objects here. BGZF blocks are inflated by
libdeflate (:mod:`pipelines.genomics.bgzf`, htslib taking over at any block it cannot vouch
for), other files by htslib (through pysam), which also seeks with the index for contig
pieces; each decompressed block is cut into lines in
place (:class:`pipelines.genomics.line_spans.Lines`), which are then cut into columns and typed
batch by batch (:mod:`pipelines.genomics.rows`: compiled code for clean batches, vectorised
Arrow kernels for the rest), so the JVM only receives Arrow batches.

Each output row is one (record, sample), plus ``_rule``/``_reason`` when the row must be
quarantined. A line whose column count is wrong becomes one row with the raw line in
``_raw``; an unreadable stretch of a file (a truncated bgzip block) becomes one row saying
where reading stopped. So for every piece: rows out = one per (record, sample) of
well-formed lines + one per malformed line + one per read failure.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.genomics import rows
from pipelines.genomics.bgzf import BgzfReader
from pipelines.genomics.line_spans import Lines
from pipelines.genomics.rows import conventions  # noqa: F401 - re-exported
from pipelines.genomics.sources import Piece, VcfSource

TARGET_ROWS = 65_536  # rows per Arrow batch: bounds worker memory whatever the sample count
CHUNK_BYTES = 4 << 20  # decompressed bytes per read


@dataclass(frozen=True)
class ReadFailure:
    """Reading stopped: everything before ``record_index`` was emitted."""

    record_index: int
    rule: str
    reason: str
    raw: str | None = None


# ---------------------------------------------------------------------------- line sources
def _split_block(block) -> Lines:
    """Cut a block of complete lines (no trailing newline) into lines: spans of the block
    itself, or for a block with CRLF ends or bad UTF-8, a cleaned copy."""
    lines = Lines.of_block(block)
    return lines if lines is not None else Lines.of_arrow(_split_careful(bytes(block)))


def _split_careful(block: bytes) -> pa.Array:
    arr = pc.split_pattern(pa.array([block], pa.large_binary()), b"\n").flatten()
    try:
        lines = arr.cast(pa.large_string())
    except pa.ArrowInvalid:
        # Invalid UTF-8 somewhere: decode line by line so only the bad lines are marked.
        lines = pa.array([b.decode("utf-8", "replace") for b in arr.to_pylist()],
                         pa.large_string())
    if pc.any(pc.ends_with(lines, "\r")).as_py():
        lines = pc.utf8_rtrim(lines, "\r")  # CRLF files
    return lines


def _read_on(fh, carry: bytes, kind: str) -> tuple[bytes, bool]:
    """``carry`` (the unfinished last line so far) followed by the next chunk of the file,
    and whether the file has ended. A BGZF reader joins them in its one copy of the data."""
    if kind == "bgzf":
        buf = fh.read(CHUNK_BYTES, carry)
        return buf, len(buf) == len(carry)
    data = fh.read(CHUNK_BYTES)
    return (carry + data if carry else data), not data


def _cut_lines(buf: bytes) -> tuple[memoryview | bytes, bytes]:
    """``buf`` cut after its last newline: (complete lines without the last newline, as a
    view of the buffer, and the unfinished rest). No newline yet: (b"", everything)."""
    cut = buf.rfind(b"\n")
    return (b"", buf) if cut < 0 else (memoryview(buf)[:cut], buf[cut + 1:])


def _drop_header_and_blank(lines: Lines, in_header: bool) -> tuple[Lines, bool]:
    if in_header and len(lines):
        is_meta = lines.starts_with("#")
        first_data = int(np.argmin(is_meta)) if not is_meta.all() else len(lines)
        lines = lines.slice(first_data)
        in_header = first_data == len(is_meta)
    if len(lines):
        blank = lines.ends == lines.starts
        if blank.any():
            lines = lines.select(~blank)
    return lines, in_header


def iter_text_lines(path: str, kind: str) -> Iterator[Lines | ReadFailure]:
    """Data lines of a whole text VCF (plain, gzip or bgzip), in order, block by block.

    A read error (truncated or corrupt bgzip) ends the stream with a :class:`ReadFailure`
    whose ``raw`` holds the incomplete last line; for BGZF the blocks before the bad one are
    recovered by re-reading block by block from the last good virtual offset.
    """
    import pysam

    carry = b""
    in_header = True
    emitted = 0
    failure: str | None = None
    fh = BgzfReader(path) if kind == "bgzf" else (
        pysam.BGZFile(path, "rb") if kind == "gzip" else open(path, "rb"))  # noqa: SIM115
    try:
        while True:
            last_good = fh.tell() if kind == "bgzf" else None
            try:
                buf, at_end = _read_on(fh, carry, kind)
            except OSError as exc:
                failure = str(exc) or type(exc).__name__
                buf = carry + (_recover_blocks(path, last_good) if last_good is not None
                               else b"")
                at_end = True
            block, carry = _cut_lines(buf)
            if block:
                lines, in_header = _drop_header_and_blank(_split_block(block), in_header)
                if len(lines):
                    emitted += len(lines)
                    yield lines
            if at_end:
                break
    finally:
        try:
            fh.close()
        except OSError as exc:  # pysam reports some corrupt streams only when closing
            failure = failure or str(exc)
    if failure is not None:
        yield ReadFailure(
            emitted, "truncated_file",
            f"the compressed stream is damaged or truncated ({failure}); {emitted} records "
            "before that point were read, the rest of the file could not be",
            carry.decode("utf-8", "replace")[:10_000] if carry else None)
        return
    if carry.strip():
        lines, _ = _drop_header_and_blank(_split_block(carry), in_header)
        if len(lines):
            yield lines


def _recover_blocks(path: str, offset: int) -> bytes:
    """Re-read from a good virtual offset line by line until the damaged block.

    A big read that touches a damaged block returns nothing of that read; line reads lose
    only the line that crosses into the damaged block (what htslib's own reader keeps).
    """
    import pysam

    parts = []
    try:
        with pysam.BGZFile(path, "rb") as fh:
            fh.seek(offset)
            while True:
                before = fh.tell()
                line = fh.readline()  # pysam returns the line without its newline
                if not line and fh.tell() == before:
                    break
                parts.append(line + b"\n")
    except OSError:
        pass
    return b"".join(parts)


def iter_contig_lines(path: str, contig: str, max_lines: int) -> Iterator[Lines]:
    """Data lines of one contig of an indexed bgzipped VCF, through the tabix index."""
    import pysam

    with pysam.TabixFile(path) as tbx:
        buf: list[str] = []
        for line in tbx.fetch(contig):
            buf.append(line)
            if len(buf) >= max_lines:
                yield Lines.of_arrow(pa.array(buf, pa.large_string()))
                buf = []
        if buf:
            yield Lines.of_arrow(pa.array(buf, pa.large_string()))


def iter_range_lines(path: str, offset: int, n_lines: int, max_lines: int
                     ) -> Iterator[Lines]:
    """``n_lines`` data lines of a bgzipped VCF from a virtual offset, read in bulk (arrays of
    at most ``max_lines``), then the next line, if any, as a last one-line array so the
    caller can check where the range ends. Blank lines are skipped, as the whole-file reader
    does."""
    emitted = 0
    carry = b""
    with BgzfReader(path) as fh:
        fh.seek(offset)
        while emitted <= n_lines:
            buf, at_end = _read_on(fh, carry, "bgzf")
            block, carry = (buf, b"") if at_end else _cut_lines(buf)
            if block:
                lines, _ = _drop_header_and_blank(_split_block(block), False)
                take = min(len(lines), n_lines + 1 - emitted)
                main = min(take, n_lines - emitted)
                for start in range(0, main, max_lines):
                    yield lines.slice(start, min(max_lines, main - start))
                if take > main:
                    yield lines.slice(main, 1)
                emitted += take
            if at_end:
                break


def iter_bcf_lines(path: str, contig: str | None, max_lines: int) -> Iterator[Lines]:
    """BCF records rendered as VCF text by htslib (``vcf_format``), whole file or one contig."""
    import warnings

    import pysam

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = pysam.VariantFile(path, ignore_truncation=True)
    with vf:
        it = vf.fetch(contig) if contig is not None else vf
        buf: list[str] = []
        for rec in it:
            buf.append(str(rec).rstrip("\n"))
            if len(buf) >= max_lines:
                yield Lines.of_arrow(pa.array(buf, pa.large_string()))
                buf = []
        if buf:
            yield Lines.of_arrow(pa.array(buf, pa.large_string()))


def _rechunk(arrays: Iterator[Lines | ReadFailure], max_lines: int
             ) -> Iterator[Lines | ReadFailure]:
    for arr in arrays:
        if isinstance(arr, ReadFailure):
            yield arr
            continue
        for start in range(0, len(arr), max_lines):
            yield arr.slice(start, max_lines)


# ---------------------------------------------------------------------------- one piece
def read_piece(src: VcfSource, piece: Piece, target_rows: int = TARGET_ROWS
               ) -> Iterator[pa.RecordBatch]:
    """Every row of one piece, as Arrow batches of at most ~``target_rows`` rows.

    A whole file is streamed in order; the contigs of a piece of a bgzipped VCF are read as
    one run of lines from the first contig's virtual offset (checked against the index
    counts); BCF and indexes without offsets go through htslib's region iterator.
    """
    max_lines = max(1, target_rows // max(1, len(src.samples)))
    at = _Position(piece.first_index)
    try:
        if piece.contigs is None:
            failure = yield from _read_whole(src, piece, max_lines, at)
        elif src.kind == "bgzf" and piece.contigs[0][0] in src.contig_offsets:
            failure = yield from _read_range(src, piece, max_lines, at)
        else:
            failure = yield from _read_contigs(src, piece, max_lines, at)
    except (OSError, ValueError) as exc:
        # htslib reports damaged data as OSError/ValueError with its own message.
        failure = ReadFailure(at.index, "unreadable_data",
                              f"reading stopped after {at.index - piece.first_index} records of "
                              f"this {'piece' if piece.contigs else 'file'} "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if failure is not None:
        yield failure_batch(src.path, failure)


@dataclass
class _Position:
    index: int  # ordinal of the next record to emit


def _emit(src: VcfSource, lines: Lines, at: _Position) -> pa.RecordBatch:
    batch = rows.lines_to_batch(src, lines, at.index)
    at.index += len(lines)
    return batch


def _mismatch(at: _Position, what: str) -> ReadFailure:
    return ReadFailure(at.index, "index_mismatch",
                       f"{what}; re-index the file (bcftools index) and re-ingest it")


def _read_whole(src: VcfSource, piece: Piece, max_lines: int, at: _Position):
    stream = (iter_bcf_lines(src.path, None, max_lines) if src.kind == "bcf"
              else _rechunk(iter_text_lines(src.path, src.kind), max_lines))
    for item in stream:
        if isinstance(item, ReadFailure):
            return ReadFailure(at.index, item.rule, item.reason, item.raw)
        yield _emit(src, item, at)
    read = at.index - piece.first_index
    if piece.expected_records is not None and read != piece.expected_records:
        return _mismatch(at, f"the index lists {piece.expected_records} records but {read} "
                             "were read")
    return None


def _read_contigs(src: VcfSource, piece: Piece, max_lines: int, at: _Position):
    for contig, expected in piece.contigs:
        start = at.index
        lines = (iter_bcf_lines if src.kind == "bcf" else iter_contig_lines)(
            src.path, contig, max_lines)
        for item in lines:
            yield _emit(src, item, at)
        if at.index - start != expected:
            return _mismatch(at, f"the index lists {expected} records on contig {contig} "
                                 f"but {at.index - start} were read")
    return None


def _read_range(src: VcfSource, piece: Piece, max_lines: int, at: _Position):
    """Every line must be on the contig the index counts place it on, and the line after
    the range must not be on the last contig."""
    names = [c for c, _ in piece.contigs]
    ends = np.cumsum([n for _, n in piece.contigs])
    starts = ends - np.array([n for _, n in piece.contigs])
    total = int(ends[-1])
    for lines in iter_range_lines(src.path, src.contig_offsets[names[0]], total, max_lines):
        done = at.index - piece.first_index
        if done >= total:  # the line after the range
            if lines.text(0).startswith(names[-1] + "\t"):
                return _mismatch(at, f"the index lists {int(piece.contigs[-1][1])} records "
                                     f"on contig {names[-1]} but the file has more")
            return None
        # Each contig's run of lines in this batch must start with "<contig>\t": a prefix
        # comparison per line, no copy of the lines.
        bad = None
        for name, lo, hi in zip(names, starts, ends, strict=True):
            a, b = max(int(lo), done) - done, min(int(hi), done + len(lines)) - done
            if a >= b:
                continue
            same = lines.slice(a, b - a).starts_with(name + "\t")
            if not same.all():
                bad = a + int(np.argmin(same))
                expected_name = name
                break
        if bad is not None:
            if bad:
                yield _emit(src, lines.slice(0, bad), at)
            found = lines.text(bad).split("\t", 1)[0]
            return _mismatch(at, f"record {at.index} is on contig {found} where the index "
                                 f"counts place contig {expected_name}")
        yield _emit(src, lines, at)
    done = at.index - piece.first_index
    if done < total:
        return _mismatch(at, f"the index lists {total} records on contigs "
                             f"{', '.join(names)} but the file ends after {done}")
    return None


def failure_batch(path: str, failure: ReadFailure) -> pa.RecordBatch:
    return rows.failure_batch(path, failure.record_index, failure.rule, failure.reason,
                              failure.raw)


def unreadable_file_batch(src: VcfSource) -> pa.RecordBatch:
    return rows.failure_batch(src.path, 0, "unreadable_file", src.problem)


# ---------------------------------------------------------------------------- Spark
# One row per read task: its pieces (JSON, see task_pieces) and the rows per Arrow batch.
TASKS_DDL = "pieces_json string, target_rows int"


def _read_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: each input row is one task's pieces; stream their rows out."""
    for batch in batches:
        for row in batch.to_pylist():
            for src, piece in task_pieces(row):
                yield from read_piece(src, piece, row["target_rows"])


def task_pieces(row: dict) -> list[tuple[VcfSource, Piece]]:
    """The (source, piece) pairs a ``TASKS_DDL`` row names, in order."""
    task = json.loads(row["pieces_json"])
    sources = {path: VcfSource.from_json(text) for path, text in task["sources"].items()}
    out = []
    for p in task["pieces"]:
        contigs = None if p["contigs"] is None else tuple(map(tuple, p["contigs"]))
        out.append((sources[p["path"]], Piece(p["path"], p["piece"], contigs, p["first_index"],
                                              p["expected_records"], p["weight"])))
    return out


def raw_frame(spark, sources: list[VcfSource], tasks: list[tuple[Piece, ...]],
              target_rows: int = TARGET_ROWS):
    """All rows of ``sources`` as one DataFrame (``rows.ROW_DDL``), one Spark task per
    entry of ``tasks`` (:func:`pipelines.genomics.sources.plan_tasks`).

    Files that could not be opened contribute their one ``unreadable_file`` row.
    """
    bad = unreadable_frame(spark, sources)
    if not tasks:
        return bad
    good = read_tasks(spark, sources, tasks, target_rows).mapInArrow(_read_partition,
                                                                     rows.ROW_DDL)
    return good.unionByName(bad) if any(s.problem for s in sources) else good


def unreadable_frame(spark, sources: list[VcfSource]):
    """The one ``unreadable_file`` row (``rows.ROW_DDL``) of each file that could not be
    opened."""
    unreadable = [unreadable_file_batch(s).to_pylist()[0] for s in sources if s.problem]
    return spark.createDataFrame(
        [tuple(r[n] for n, _, _ in rows.ROW_FIELDS) for r in unreadable], rows.ROW_DDL)


def read_tasks(spark, sources: list[VcfSource], tasks: list[tuple[Piece, ...]],
               target_rows: int):
    """One row (``TASKS_DDL``) per task, one partition each: the input of the read tasks."""
    by_path = {s.path: s for s in sources}
    rows_ = [(json.dumps({"sources": {p.path: by_path[p.path].to_json() for p in task},
                          "pieces": [dataclasses.asdict(p) for p in task]}), int(target_rows))
             for task in tasks]
    try:
        # One partition per task, in the planned (largest first) order.
        rdd = spark.sparkContext.parallelize(rows_, len(rows_))
        return spark.createDataFrame(rdd, TASKS_DDL)
    except Exception:  # Spark Connect has no RDDs: spread the rows round-robin instead
        return spark.createDataFrame(rows_, TASKS_DDL).repartition(len(rows_))

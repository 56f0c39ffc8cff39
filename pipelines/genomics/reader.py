"""Stream VCF/BCF records into Arrow batches inside Spark tasks (``mapInArrow``).

Per-record Python is the bottleneck of VCF ingestion (FINDINGS.md, "pysam inside Spark"),
so records are never turned into Python objects here. htslib (through pysam) decompresses
and, for contig pieces, seeks with the index; the text lines are then cut into columns with
vectorised Arrow kernels. What needs the file's header — declared INFO/FORMAT keys, declared
contigs, sample names — is checked here; what does not (numbers, genotypes) is typed in
Spark by :mod:`pipelines.genomics.bronze`.

Each output row is one (record, sample) as received, all strings, plus ``_rule``/``_reason``
when the row must be quarantined. A line whose column count is wrong becomes one row with
the raw line in ``_raw``; an unreadable stretch of a file (a truncated bgzip block) becomes
one row saying where reading stopped. So for every piece: rows out = one per (record, sample)
of well-formed lines + one per malformed line + one per read failure.

The pure part, :func:`lines_to_batch`, runs without Spark (see the tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from pipelines.genomics.sources import Piece, VcfSource

RAW_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("source_file", pa.string(), "string"),
    ("record_index", pa.int64(), "bigint"),
    ("sample", pa.string(), "string"),
    ("sample_index", pa.int32(), "int"),
    ("chrom", pa.string(), "string"),
    ("pos", pa.string(), "string"),
    ("id", pa.string(), "string"),
    ("ref", pa.string(), "string"),
    ("alt", pa.string(), "string"),
    ("qual", pa.string(), "string"),
    ("filter", pa.string(), "string"),
    ("info", pa.string(), "string"),
    ("format", pa.string(), "string"),
    ("sample_data", pa.string(), "string"),
    ("_raw", pa.string(), "string"),
    ("_rule", pa.string(), "string"),
    ("_reason", pa.string(), "string"),
)
RAW_ARROW_SCHEMA = pa.schema([(n, t) for n, t, _ in RAW_FIELDS])
RAW_DDL = ", ".join(f"`{n}` {ddl}" for n, _, ddl in RAW_FIELDS)
FIXED = ("chrom", "pos", "id", "ref", "alt", "qual", "filter", "info")

TARGET_ROWS = 65_536  # rows per Arrow batch: bounds worker memory whatever the sample count
CHUNK_BYTES = 4 << 20  # decompressed bytes per read


@cache
def conventions() -> dict:
    text = resources.files("pipelines.genomics.resources").joinpath(
        "vcf_conventions.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class ReadFailure:
    """Reading stopped: everything before ``record_index`` was emitted."""

    record_index: int
    rule: str
    reason: str
    raw: str | None = None


# ---------------------------------------------------------------------------- line sources
def _split_block(block: bytes) -> pa.Array:
    """Cut a block of complete lines (no trailing newline) into a string array."""
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


def _drop_header_and_blank(lines: pa.Array, in_header: bool) -> tuple[pa.Array, bool]:
    if in_header and len(lines):
        is_meta = pc.starts_with(lines, "#").to_numpy(zero_copy_only=False)
        first_data = int(np.argmin(is_meta)) if not is_meta.all() else len(lines)
        lines = lines.slice(first_data)
        in_header = first_data == len(is_meta)
    if len(lines):
        lines = lines.filter(pc.not_equal(pc.utf8_length(lines), 0))
    return lines, in_header


def iter_text_lines(path: str, kind: str) -> Iterator[pa.Array | ReadFailure]:
    """Data lines of a whole text VCF (plain, gzip or bgzip), in order, as Arrow arrays.

    A read error (truncated or corrupt bgzip) ends the stream with a :class:`ReadFailure`
    whose ``raw`` holds the incomplete last line; for BGZF the blocks before the bad one are
    recovered by re-reading block by block from the last good virtual offset.
    """
    import pysam

    opener = pysam.BGZFile if kind in ("bgzf", "gzip") else open
    carry = b""
    in_header = True
    emitted = 0
    failure: str | None = None
    fh = opener(path, "rb")
    try:
        while True:
            last_good = fh.tell() if kind == "bgzf" else None
            try:
                data = fh.read(CHUNK_BYTES)
            except OSError as exc:
                failure = str(exc) or type(exc).__name__
                data = _recover_blocks(path, last_good) if last_good is not None else b""
            if data:
                buf = carry + data
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                else:
                    block, carry = buf[:cut], buf[cut + 1:]
                    lines, in_header = _drop_header_and_blank(_split_block(block), in_header)
                    if len(lines):
                        emitted += len(lines)
                        yield lines
            if failure is not None or not data:
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


def iter_contig_lines(path: str, contig: str, max_lines: int) -> Iterator[pa.Array]:
    """Data lines of one contig of an indexed bgzipped VCF, through the tabix index."""
    import pysam

    with pysam.TabixFile(path) as tbx:
        buf: list[str] = []
        for line in tbx.fetch(contig):
            buf.append(line)
            if len(buf) >= max_lines:
                yield pa.array(buf, pa.large_string())
                buf = []
        if buf:
            yield pa.array(buf, pa.large_string())


def iter_bcf_lines(path: str, contig: str | None, max_lines: int) -> Iterator[pa.Array]:
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
                yield pa.array(buf, pa.large_string())
                buf = []
        if buf:
            yield pa.array(buf, pa.large_string())


def _rechunk(arrays: Iterator[pa.Array | ReadFailure], max_lines: int
             ) -> Iterator[pa.Array | ReadFailure]:
    for arr in arrays:
        if isinstance(arr, ReadFailure):
            yield arr
            continue
        for start in range(0, len(arr), max_lines):
            yield arr.slice(start, max_lines)


# ---------------------------------------------------------------------------- one piece
def read_piece(src: VcfSource, piece: Piece, target_rows: int = TARGET_ROWS
               ) -> Iterator[pa.RecordBatch]:
    """Every row of one piece, as Arrow batches of at most ~``target_rows`` rows."""
    max_lines = max(1, target_rows // max(1, len(src.samples)))
    index = piece.first_index
    failure: ReadFailure | None = None
    try:
        if src.kind == "bcf":
            stream = iter_bcf_lines(src.path, piece.contig, max_lines)
        elif piece.contig is not None:
            stream = iter_contig_lines(src.path, piece.contig, max_lines)
        else:
            stream = _rechunk(iter_text_lines(src.path, src.kind), max_lines)
        for item in stream:
            if isinstance(item, ReadFailure):
                failure = ReadFailure(index, item.rule, item.reason, item.raw)
                break
            yield lines_to_batch(src, item, index)
            index += len(item)
    except (OSError, ValueError) as exc:
        # htslib reports damaged data as OSError/ValueError with its own message.
        failure = ReadFailure(index, "unreadable_data",
                              f"reading stopped after {index - piece.first_index} records of "
                              f"this {'contig' if piece.contig else 'file'} "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if failure is None and piece.expected_records is not None:
        read = index - piece.first_index
        if read != piece.expected_records:
            failure = ReadFailure(
                index, "index_mismatch",
                f"the index lists {piece.expected_records} records on contig {piece.contig} "
                f"but {read} were read; re-index the file (bcftools index) and re-ingest it")
    if failure is not None:
        yield failure_batch(src.path, failure)


def failure_batch(path: str, failure: ReadFailure) -> pa.RecordBatch:
    row = {name: [None] for name, _, _ in RAW_FIELDS}
    row.update(source_file=[path], record_index=[failure.record_index], _raw=[failure.raw],
               _rule=[failure.rule], _reason=[failure.reason])
    return pa.RecordBatch.from_pydict(row, schema=RAW_ARROW_SCHEMA)


def unreadable_file_batch(src: VcfSource) -> pa.RecordBatch:
    return failure_batch(src.path, ReadFailure(0, "unreadable_file", src.problem))


# ---------------------------------------------------------------------------- lines -> rows
def lines_to_batch(src: VcfSource, lines: pa.Array, first_index: int) -> pa.RecordBatch:
    """Cut VCF data lines into one row per (record, sample), with header-dependent checks.

    >>> from pipelines.genomics.sources import FieldDef
    >>> src = VcfSource("/f.vcf", samples=("S1",), contigs_declared=("1",),
    ...                 info={"DP": FieldDef("1", "Integer")},
    ...                 formats={"GT": FieldDef("1", "String")})
    >>> b = lines_to_batch(src, pa.array(["1\\t5\\t.\\tA\\tG\\t50\\tPASS\\tDP=3\\tGT\\t0/1"]), 7)
    >>> b.column("record_index").to_pylist(), b.column("sample_data").to_pylist()
    ([7], ['0/1'])
    """
    n = len(lines)
    lines = lines.cast(pa.large_string())
    parts = pc.split_pattern(lines, "\t")
    ncols = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    ns = len(src.samples)
    ok = (ncols == 8) | (ncols == 9) if ns == 0 else ncols == 9 + ns
    rec_index = np.arange(first_index, first_index + n, dtype=np.int64)

    batches = []
    if not ok.all():
        bad = np.nonzero(~ok)[0]
        expected = "8 (or 9)" if ns == 0 else str(9 + ns)
        reasons = [f"expected {expected} tab-separated columns (8 fixed, FORMAT and {ns} "
                   f"samples), found {int(ncols[i])}" for i in bad]
        bad_lines = lines.take(pa.array(bad))
        row = {name: pa.nulls(len(bad), t) for name, t, _ in RAW_FIELDS}
        row.update(source_file=pa.array([src.path] * len(bad), pa.string()),
                   record_index=pa.array(rec_index[bad]),
                   _raw=pc.utf8_slice_codeunits(bad_lines, 0, 10_000).cast(pa.string()),
                   _rule=pa.array(["malformed_line"] * len(bad), pa.string()),
                   _reason=pa.array(reasons, pa.string()))
        batches.append(pa.RecordBatch.from_pydict(row, schema=RAW_ARROW_SCHEMA))
        keep = np.nonzero(ok)[0]
        parts = parts.take(pa.array(keep))
        rec_index = rec_index[keep]
    m = len(parts)
    if m:
        batches.append(_good_rows(src, parts, rec_index, ns))
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches, schema=RAW_ARROW_SCHEMA).combine_chunks()
    return table.to_batches()[0] if table.num_rows else batches[0]


def _good_rows(src: VcfSource, parts: pa.Array, rec_index: np.ndarray, ns: int
               ) -> pa.RecordBatch:
    m = len(parts)
    cols = {name: pc.list_element(parts, i) for i, name in enumerate(FIXED)}
    # A sites-only file may still carry a FORMAT column; without samples it describes nothing.
    fmt = pc.list_element(parts, 8) if ns > 0 else None
    rule, reason = record_checks(src, cols, fmt)

    if ns == 0:
        take = None
        sample = pa.nulls(m, pa.string())
        sample_index = pa.nulls(m, pa.int32())
        sample_data = pa.nulls(m, pa.string())
        fmt_col = pa.nulls(m, pa.string())
    else:
        take = pa.array(np.repeat(np.arange(m), ns))
        sample_data = pc.list_flatten(pc.list_slice(parts, 9, 9 + ns))
        idx = np.tile(np.arange(ns, dtype=np.int32), m)
        sample = pa.array(src.samples, pa.string()).take(pa.array(idx))
        sample_index = pa.array(idx, pa.int32())
        fmt_col = fmt

    def rep(arr):
        return arr if take is None else arr.take(take)

    out = {
        "source_file": pa.array([src.path] * (m * max(1, ns)), pa.string()),
        "record_index": pa.array(rec_index if take is None else np.repeat(rec_index, ns)),
        "sample": sample,
        "sample_index": sample_index,
        **{name: rep(cols[name]) for name in FIXED},
        "format": rep(fmt_col),
        "sample_data": sample_data,
        "_raw": pa.nulls(m * max(1, ns), pa.string()),
        "_rule": rep(rule),
        "_reason": rep(reason),
    }
    arrays = [out[name].cast(t) for name, t, _ in RAW_FIELDS]
    return pa.RecordBatch.from_arrays(arrays, schema=RAW_ARROW_SCHEMA)


def record_checks(src: VcfSource, cols: dict[str, pa.Array], fmt: pa.Array | None
                  ) -> tuple[pa.Array, pa.Array]:
    """Record-level rules that need the header: contig, INFO keys, FORMAT keys.

    Returns ``(rule, reason)`` string arrays, null where the record passes. The first rule
    that fails wins, in the order: unknown contig, malformed INFO, undeclared INFO key,
    duplicate INFO key, undeclared FORMAT key, duplicate FORMAT key.
    """
    m = len(cols["chrom"])
    rule = np.full(m, None, dtype=object)
    reason = np.full(m, None, dtype=object)

    def mark(rows: np.ndarray, name: str, texts) -> None:
        for r, text in zip(rows, texts, strict=True):
            if rule[r] is None:
                rule[r], reason[r] = name, text

    chrom = cols["chrom"]
    if src.contigs_declared:
        known = pc.is_in(chrom, value_set=pa.array(src.contigs_declared, chrom.type))
        where = "is not declared in the header's ##contig lines"
    else:
        known = pc.match_substring_regex(chrom, conventions()["human_contig_pattern"])
        where = "is not a human reference contig name (the header declares no contigs)"
    bad = np.nonzero(~known.to_numpy(zero_copy_only=False))[0]
    if len(bad):
        names = chrom.take(pa.array(bad)).to_pylist()
        mark(bad, "unknown_contig", [f"contig {c!r} {where}" for c in names])

    _check_info(src, cols["info"], mark)
    if fmt is not None:
        _check_format(src, fmt, mark)
    return pa.array(rule, pa.string()), pa.array(reason, pa.string())


def _check_info(src: VcfSource, info: pa.Array, mark) -> None:
    items = pc.split_pattern(info, ";")
    flat = pc.list_flatten(items)
    if not len(flat):
        return
    parents = pc.list_parent_indices(items).to_numpy(zero_copy_only=False)
    keys = pc.replace_substring_regex(flat, "=.*", "")
    is_dot = pc.equal(flat, ".").to_numpy(zero_copy_only=False)
    n_items = pc.list_value_length(items).to_numpy(zero_copy_only=False)
    # "." is the whole-field missing value; it must stand alone.
    empty = (pc.equal(keys, "").to_numpy(zero_copy_only=False)
             | (is_dot & (n_items[parents] > 1)))
    if empty.any():
        rows = np.unique(parents[empty])
        mark(rows, "malformed_info", ["INFO has an empty or misplaced entry (';;', a "
                                      "trailing ';' or a '.' among keys)"] * len(rows))
    declared = pa.array(list(src.info), pa.large_string())
    undeclared = ~pc.is_in(keys, value_set=declared).to_numpy(zero_copy_only=False)
    undeclared &= ~is_dot & ~empty
    if undeclared.any():
        pos = np.nonzero(undeclared)[0]
        rows, first = np.unique(parents[pos], return_index=True)
        names = keys.take(pa.array(pos[first])).to_pylist()
        mark(rows, "undeclared_info", [f"INFO key {k!r} is not declared in the header"
                                       for k in names])
    enc = pc.dictionary_encode(keys)
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    combined = parents.astype(np.int64) * (len(enc.dictionary) + 1) + codes
    order = np.argsort(combined, kind="stable")
    s = combined[order]
    dup = np.nonzero(s[1:] == s[:-1])[0] + 1
    if len(dup):
        pos = order[dup]
        rows, first = np.unique(parents[pos], return_index=True)
        names = keys.take(pa.array(pos[first])).to_pylist()
        mark(rows, "duplicate_info", [f"INFO key {k!r} appears more than once"
                                      for k in names])


def _check_format(src: VcfSource, fmt: pa.Array, mark) -> None:
    enc = pc.dictionary_encode(fmt)
    indices = enc.indices.to_numpy(zero_copy_only=False)
    declared = set(src.formats)
    for code, text in enumerate(enc.dictionary.to_pylist()):
        if text is None:
            continue
        keys = text.split(":")
        problem = None
        undeclared = [k for k in keys if k not in declared]
        if undeclared:
            problem = ("undeclared_format",
                       f"FORMAT key {undeclared[0]!r} is not declared in the header")
        elif len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            problem = ("duplicate_format", f"FORMAT key {dup!r} appears more than once")
        if problem:
            rows = np.nonzero(indices == code)[0]
            mark(rows, problem[0], [problem[1]] * len(rows))



# ---------------------------------------------------------------------------- Spark
PIECES_DDL = ("path string, piece int, contig string, first_index bigint, "
              "expected_records bigint, source_json string, target_rows int")


def _read_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: each input row names one piece; stream its rows out."""
    for batch in batches:
        for row in batch.to_pylist():
            src = VcfSource.from_json(row["source_json"])
            piece = Piece(row["path"], row["piece"], row["contig"], row["first_index"],
                          row["expected_records"], 0)
            yield from read_piece(src, piece, row["target_rows"])


def raw_frame(spark, sources: list[VcfSource], pieces: list[Piece],
              target_rows: int = TARGET_ROWS):
    """All raw rows of ``sources`` as one DataFrame (``RAW_DDL``), one Spark task per piece.

    Files that could not be opened contribute their one ``unreadable_file`` row.
    """
    by_path = {s.path: s for s in sources}
    rows = [(p.path, p.piece, p.contig, p.first_index, p.expected_records,
             by_path[p.path].to_json(), int(target_rows)) for p in pieces]
    unreadable = [unreadable_file_batch(s).to_pylist()[0] for s in sources if s.problem]
    bad = spark.createDataFrame([tuple(r[n] for n, _, _ in RAW_FIELDS) for r in unreadable],
                                RAW_DDL)
    if not rows:
        return bad
    try:
        # One partition per piece, in the planned (largest first) order.
        rdd = spark.sparkContext.parallelize(rows, len(rows))
        pieces_df = spark.createDataFrame(rdd, PIECES_DDL)
    except Exception:  # Spark Connect has no RDDs: spread the rows round-robin instead
        pieces_df = spark.createDataFrame(rows, PIECES_DDL).repartition(len(rows))
    good = pieces_df.mapInArrow(_read_partition, RAW_DDL)
    return good.unionByName(bad) if unreadable else good

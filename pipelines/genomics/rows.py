"""VCF data lines -> typed bronze rows, with vectorised Arrow kernels (no per-record Python).

This module is the rule book: a batch in which no rule fails may be typed faster by the
compiled fast path (:mod:`pipelines.genomics.fastrows`), which hands every other batch back
here and is tested to give exactly these rows.

:func:`lines_to_batch` cuts a batch of data lines into one row per (record, sample), types
every column of ``bronze.variants_raw`` and applies every rule of the bad-input table
(``README.md``), returning an Arrow batch in :data:`ROW_SCHEMA`. Rows that break a rule carry
``_rule``/``_reason`` and, in ``_raw``, the line as received (the fixed columns, FORMAT and
this sample's column). Record-level rules reject every sample row of the record; sample-level
rules (genotype, AD, DP, value count) only that sample's row. The first failing rule wins,
in the order of :data:`RULE_ORDER`.

Typing here rather than in Spark SQL matters for speed: ``str_to_map``, ``map_from_arrays``
and regular expressions evaluated row by row in the JVM cost more than reading the file
(measured in benchmarks/RESULTS.md, "VCF ingestion").
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from pipelines.genomics.line_spans import Lines
from pipelines.genomics.sources import VcfSource

STR_LIST = pa.list_(pa.string())
ROW_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("source_file", pa.string(), "string"),
    ("record_index", pa.int64(), "bigint"),
    ("sample", pa.string(), "string"),
    ("sample_index", pa.int32(), "int"),
    ("chrom", pa.string(), "string"),
    ("pos", pa.int64(), "bigint"),
    ("id", pa.string(), "string"),
    ("ref", pa.string(), "string"),
    ("alts", STR_LIST, "array<string>"),
    ("qual", pa.float64(), "double"),
    ("filters", STR_LIST, "array<string>"),
    ("info", pa.map_(pa.string(), pa.string()), "map<string,string>"),
    ("format", pa.map_(pa.string(), pa.string()), "map<string,string>"),
    ("gt", pa.string(), "string"),
    ("ad", pa.list_(pa.int32()), "array<int>"),
    ("dp", pa.int32(), "int"),
    ("gq", pa.int32(), "int"),
    ("af", pa.list_(pa.float64()), "array<double>"),
    ("info_af", pa.list_(pa.float64()), "array<double>"),
    ("info_dp", pa.int64(), "bigint"),
    ("info_end", pa.int64(), "bigint"),
    ("info_svtype", pa.string(), "string"),
    ("_raw", pa.string(), "string"),
    ("_rule", pa.string(), "string"),
    ("_reason", pa.string(), "string"),
)
ROW_SCHEMA = pa.schema([(n, t) for n, t, _ in ROW_FIELDS])
ROW_DDL = ", ".join(f"`{n}` {ddl}" for n, _, ddl in ROW_FIELDS)
FIXED = ("chrom", "pos", "id", "ref", "alt", "qual", "filter", "info")
RULE_ORDER = (
    "malformed_line", "unknown_contig", "malformed_info", "undeclared_info", "duplicate_info",
    "undeclared_format", "duplicate_format", "invalid_pos", "invalid_qual", "invalid_ref",
    "invalid_alt", "format_value_count", "malformed_gt", "invalid_ad", "invalid_dp",
)

# Smaller batches (small files) stay on the Arrow path: loading the compiled code costs a
# new Python worker ~1.2 s once, more than it saves on a few thousand rows.
COMPILED_MIN_ROWS = 4096
INT_RE = r"^-?[0-9]+$"
COUNT_RE = r"^[0-9]+$"
FLOAT_RE = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
# VCF 4.3 section 1.6.2: allele indices separated by / or |, "." when missing; a leading
# phasing character is allowed from 4.4 on.
GT_RE = r"^[|/]?(\.|[0-9]+)([|/](\.|[0-9]+))*$"
REF_RE = r"^[ACGTNacgtn]+$"


@cache
def conventions() -> dict:
    text = resources.files("pipelines.genomics.resources").joinpath(
        "vcf_conventions.yaml").read_text()
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------- small kernels
def _np(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _bool(arr: pa.Array) -> np.ndarray:
    return _np(pc.fill_null(arr, False)).astype(bool)


def _take(arr: pa.Array, idx: np.ndarray) -> pa.Array:
    """``arr[idx]`` with -1 meaning null."""
    if len(arr) == 0:
        return pa.nulls(len(idx), arr.type)
    mask = idx < 0
    return arr.take(pa.array(np.where(mask, 0, idx), mask=mask))


def _matches(arr: pa.Array, pattern: str) -> np.ndarray:
    return _bool(pc.match_substring_regex(arr, pattern))


def _parse(arr: pa.Array, pattern: str, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Strings -> numbers; '.' and null give null. Returns (values, invalid mask).

    ``pattern`` (:data:`COUNT_RE`, :data:`INT_RE` or :data:`FLOAT_RE`) says which strings are
    valid, but is evaluated only where cheaper exact kernels cannot decide: whole numbers are
    checked with ``ascii_is_decimal`` (the same strings as the pattern), and decimals are cast
    first, since what Arrow's parser accepts, NaN and infinities aside, is a subset of
    :data:`FLOAT_RE` (both claims are checked on ~170,000 strings in
    tests/test_genomics_reader.py). A whole number too large for ``typ`` is invalid too.
    """
    dots = _bool(pc.equal(arr, "."))
    present = _bool(pc.is_valid(arr)) & ~dots
    if pattern == FLOAT_RE:
        values = _cast_finite(arr if not dots.any() else _null_where(arr, dots), typ)
        if values is not None:
            return values, np.zeros(len(arr), dtype=bool)
    if pattern == COUNT_RE:
        ok = _bool(pc.ascii_is_decimal(arr))
    elif pattern == INT_RE:
        ok = _bool(pc.ascii_is_decimal(arr)) | (
            _bool(pc.starts_with(arr, "-"))
            & _bool(pc.ascii_is_decimal(pc.utf8_slice_codeunits(arr, 1))))
    else:
        ok = _matches(arr, pattern)
    values, too_large = _cast_fitting(arr if ok.all() else _null_where(arr, ~ok), typ)
    return values, (present & ~ok) | too_large


def _null_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)


def _cast_finite(arr: pa.Array, typ: pa.DataType) -> pa.Array | None:
    """``arr`` cast to a floating type, or None when a value is not a finite number."""
    try:
        values = pc.cast(arr, typ)
    except pa.ArrowInvalid:
        return None
    return None if pc.all(pc.is_finite(values)).as_py() is False else values


def _cast_fitting(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Valid number strings cast to ``typ``; whole numbers beyond its range become null and
    are flagged (a 20-digit depth is bad input, not a reason to fail the task)."""
    try:
        return pc.cast(arr, typ), np.zeros(len(arr), dtype=bool)
    except pa.ArrowInvalid:
        if not pa.types.is_integer(typ):
            raise
    info = np.iinfo(typ.to_pandas_dtype())
    too_large = np.array([s is not None and not info.min <= int(s) <= info.max
                          for s in arr.to_pylist()], dtype=bool)
    return pc.cast(_null_where(arr, too_large), typ), too_large


def _parse_list(arr: pa.Array, pattern: str, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Comma lists -> lists of numbers ('.' elements null). Returns (lists, invalid mask)."""
    lists = pc.split_pattern(arr, ",")
    flat = pc.list_flatten(lists)
    values, bad = _parse(flat, pattern, typ)
    out = pa.ListArray.from_arrays(lists.offsets, values, mask=pc.is_null(lists))
    invalid = np.zeros(len(arr), dtype=bool)
    if bad.any():
        invalid[np.unique(_np(pc.list_parent_indices(lists))[bad])] = True
    return out, invalid


def _ragged_index(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``starts[i] .. starts[i]+lengths[i]`` for every i, and the offsets."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    return np.repeat(starts, lengths) + within, offsets


def _lookup(keys: pa.Array, values: pa.Array, parents: np.ndarray, n: int, key: str
            ) -> pa.Array:
    """Per row, the value of ``key`` in a row's key/value pairs (null when absent)."""
    hit = np.nonzero(_bool(pc.equal(keys, key)))[0]
    idx = np.full(n, -1, dtype=np.int64)
    idx[parents[hit]] = hit
    return _take(values, idx)


class _Rules:
    """First failing rule per row, with its reason."""

    def __init__(self, n: int):
        self.rule = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)

    def mark(self, rows: np.ndarray, name: str, texts) -> None:
        for r, text in zip(rows, texts, strict=True):
            if self.rule[r] is None:
                self.rule[r], self.reason[r] = name, text

    def mark_mask(self, mask: np.ndarray, name: str, reason_of) -> None:
        rows = np.nonzero(mask)[0]
        if len(rows):
            self.mark(rows, name, [reason_of(int(r)) for r in rows])


# ---------------------------------------------------------------------------- lines -> rows
def lines_to_batch(src: VcfSource, lines: pa.Array | Lines, first_index: int,
                   compiled: bool = True) -> pa.RecordBatch:
    """One typed row per (record, sample) for a batch of VCF data lines.

    A batch of at least :data:`COMPILED_MIN_ROWS` rows in which no rule fails is typed by
    the compiled fast path (:mod:`pipelines.genomics.fastrows`) unless ``compiled`` is False;
    any other batch by the Arrow kernels below, which apply the rules.

    >>> from pipelines.genomics.sources import FieldDef
    >>> src = VcfSource("/f.vcf", samples=("S1",), contigs_declared=("1",),
    ...                 info={"DP": FieldDef("1", "Integer")},
    ...                 formats={"GT": FieldDef("1", "String")})
    >>> b = lines_to_batch(src, pa.array(["1\\t5\\t.\\tA\\tG\\t50\\tPASS\\tDP=3\\tGT\\t0/1"]), 7)
    >>> b.column("record_index").to_pylist(), b.column("gt").to_pylist()
    ([7], ['0/1'])
    """
    if compiled and len(lines) * max(1, len(src.samples)) >= COMPILED_MIN_ROWS:
        from pipelines.genomics import fastrows  # imports this module

        spans = lines if isinstance(lines, Lines) else (
            Lines.of_arrow(lines) if lines.null_count == 0 else None)
        fast = None if spans is None else fastrows.typed_batch(src, spans, first_index)
        if fast is not None:
            return fast
    if isinstance(lines, Lines):
        lines = lines.arrow()
    n = len(lines)
    lines = lines.cast(pa.large_string())
    parts = pc.split_pattern(lines, "\t")
    ncols = _np(pc.list_value_length(parts))
    ns = len(src.samples)
    ok = (ncols == 8) | (ncols == 9) if ns == 0 else ncols == 9 + ns
    rec_index = np.arange(first_index, first_index + n, dtype=np.int64)
    batches = []
    if not ok.all():
        bad = np.nonzero(~ok)[0]
        expected = "8 (or 9)" if ns == 0 else str(9 + ns)
        reasons = [f"expected {expected} tab-separated columns (8 fixed, FORMAT and {ns} "
                   f"samples), found {int(ncols[i])}" for i in bad]
        raw = pc.utf8_slice_codeunits(lines.take(pa.array(bad)), 0, 10_000)
        batches.append(_failure_rows(src.path, rec_index[bad], raw, "malformed_line", reasons))
        keep = np.nonzero(ok)[0]
        parts = parts.take(pa.array(keep))
        rec_index = rec_index[keep]
    if len(parts):
        batches.append(_typed_rows(src, parts, rec_index))
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, schema=ROW_SCHEMA).combine_chunks().to_batches()[0]


def _failure_rows(path: str, indexes: np.ndarray, raw: pa.Array, rule: str,
                  reasons: list[str]) -> pa.RecordBatch:
    k = len(indexes)
    cols = {name: pa.nulls(k, t) for name, t, _ in ROW_FIELDS}
    cols.update(source_file=pa.array([path] * k, pa.string()),
                record_index=pa.array(indexes, pa.int64()),
                _raw=raw.cast(pa.string()), _rule=pa.array([rule] * k, pa.string()),
                _reason=pa.array(reasons, pa.string()))
    return pa.RecordBatch.from_arrays([cols[n] for n, _, _ in ROW_FIELDS], schema=ROW_SCHEMA)


def failure_batch(path: str, record_index: int, rule: str, reason: str,
                  raw: str | None = None) -> pa.RecordBatch:
    return _failure_rows(path, np.array([record_index], dtype=np.int64),
                         pa.array([raw], pa.string()), rule, [reason])


def _typed_rows(src: VcfSource, parts: pa.Array, rec_index: np.ndarray) -> pa.RecordBatch:
    m = len(parts)
    ns = len(src.samples)
    col = {name: pc.list_element(parts, i) for i, name in enumerate(FIXED)}
    rules = _Rules(m)  # record-level rules first, repeated to sample rows below

    # --- contig
    chrom = col["chrom"]
    known = contig_known(src, chrom)
    where = ("is not declared in the header's ##contig lines" if src.contigs_declared else
             "is not a human reference contig name (the header declares no contigs)")
    rules.mark_mask(~known, "unknown_contig",
                    lambda r: f"contig {chrom[r].as_py()!r} {where}")

    # --- INFO: key/value pairs, header checks, map and typed fields
    info = col["info"]
    items = pc.split_pattern(info, ";")
    flat = pc.list_flatten(items)
    parents = _np(pc.list_parent_indices(items)).astype(np.int64)
    # key=value split on the first "=" (values may hold "="); a Flag has no value.
    # Each pair's key and value are taken straight from the split's flat strings.
    kv = pc.split_pattern(flat, "=", max_splits=1)
    kv_start = _np(kv.offsets)[:-1].astype(np.int64)
    keys = kv.values.take(pa.array(kv_start))
    has_eq = _np(pc.list_value_length(kv)) == 2
    values = _take(kv.values, np.where(has_eq, kv_start + 1, -1))
    is_dot = _bool(pc.equal(flat, "."))
    n_items = _np(pc.list_value_length(items))
    empty = _bool(pc.equal(keys, "")) | (is_dot & (n_items[parents] > 1))
    if empty.any():
        rules.mark(np.unique(parents[empty]), "malformed_info",
                   ["INFO has an empty or misplaced entry (';;', a trailing ';' or a '.' "
                    "among keys)"] * len(np.unique(parents[empty])))
    undeclared = ~_bool(pc.is_in(keys, value_set=pa.array(list(src.info), keys.type)))
    undeclared &= ~is_dot & ~empty
    _mark_first(rules, undeclared, parents, keys, "undeclared_info",
                "INFO key {!r} is not declared in the header")
    _mark_duplicates(rules, keys, parents, "duplicate_info", "INFO key {!r} appears more "
                     "than once")
    keep = ~is_dot
    counts = np.bincount(parents[keep], minlength=m)
    offsets = np.zeros(m + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    kept = pa.array(keep)
    info_map = pa.MapArray.from_arrays(pa.array(offsets), keys.filter(kept).cast(pa.string()),
                                       values.filter(kept).cast(pa.string()))
    info_af, _ = _parse_list(_lookup(keys, values, parents, m, "AF"), FLOAT_RE, pa.float64())
    info_dp, _ = _parse(_lookup(keys, values, parents, m, "DP"), INT_RE, pa.int64())
    info_end, _ = _parse(_lookup(keys, values, parents, m, "END"), INT_RE, pa.int64())
    info_svtype = _lookup(keys, values, parents, m, "SVTYPE")

    # --- FORMAT keys (few distinct strings per file: checked once each)
    fmt = pc.list_element(parts, 8) if ns else None
    if fmt is not None:
        enc = pc.dictionary_encode(fmt)
        codes = _np(enc.indices)
        declared = set(src.formats)
        for code, text in enumerate(enc.dictionary.to_pylist()):
            problem = format_key_problem((text or "").split(":"), declared)
            if problem is not None:
                rows = np.nonzero(codes == code)[0]
                rules.mark(rows, problem[0], [problem[1]] * len(rows))

    # --- fixed columns
    pos, bad_pos = _parse(col["pos"], COUNT_RE, pa.int64())
    bad_pos |= ~_bool(pc.is_valid(pos))
    rules.mark_mask(bad_pos, "invalid_pos",
                    lambda r: f"POS {col['pos'][r].as_py()!r} is not a whole number")
    qual, bad_qual = _parse(col["qual"], FLOAT_RE, pa.float64())
    rules.mark_mask(bad_qual, "invalid_qual",
                    lambda r: f"QUAL {col['qual'][r].as_py()!r} is not a number")
    rules.mark_mask(~_matches(col["ref"], REF_RE), "invalid_ref",
                    lambda r: f"REF {col['ref'][r].as_py()!r} is not a sequence of A, C, G, T, N")
    alt = col["alt"]
    rules.mark_mask(_bool(pc.equal(alt, "")), "invalid_alt",
                    lambda r: "ALT is empty (use '.' for none)")
    no_alt = pc.equal(alt, ".")
    alts = pc.if_else(no_alt, pa.scalar([], pa.list_(alt.type)), pc.split_pattern(alt, ","))
    n_alts = _np(pc.list_value_length(alts))
    flt = col["filter"]
    filters = pc.if_else(pc.equal(flt, "."), pa.scalar(None, pa.list_(flt.type)),
                         pc.split_pattern(flt, ";"))
    ident = pc.if_else(pc.equal(col["id"], "."), pa.scalar(None, col["id"].type), col["id"])

    record = {
        "chrom": chrom, "pos": pos, "id": ident, "ref": col["ref"], "alts": alts,
        "qual": qual, "filters": filters, "info": info_map, "info_af": info_af,
        "info_dp": info_dp, "info_end": info_end, "info_svtype": info_svtype,
    }
    rows_per_record = max(1, ns)
    rec_of_row = np.repeat(np.arange(m), rows_per_record)
    out = {name: (arr if ns <= 1 else arr.take(pa.array(rec_of_row)))
           for name, arr in record.items()}
    total = m * rows_per_record
    rule = rules.rule[rec_of_row].copy()
    reason = rules.reason[rec_of_row].copy()

    # --- per-sample columns
    if ns:
        sample_data = pc.list_flatten(pc.list_slice(parts, 9, 9 + ns))
        sample_idx = np.tile(np.arange(ns, dtype=np.int32), m)
        sample = pa.array(src.samples, pa.string()).take(pa.array(sample_idx))
        fmt_row = fmt if ns == 1 else fmt.take(pa.array(rec_of_row))
        fmt_map, sample_cols, sample_rules = _format_columns(
            fmt_row, enc.dictionary, codes[rec_of_row], sample_data, n_alts, rec_of_row)
        fill = rule == None  # noqa: E711 - numpy object comparison, element-wise
        rule[fill] = sample_rules.rule[fill]
        reason[fill] = sample_rules.reason[fill]
    else:
        sample_idx = None
        sample = pa.nulls(total, pa.string())
        fmt_map = pa.nulls(total, pa.map_(pa.string(), pa.string()))
        sample_cols = {"gt": pa.nulls(total, pa.string()),
                       "ad": pa.nulls(total, pa.list_(pa.int32())),
                       "dp": pa.nulls(total, pa.int32()), "gq": pa.nulls(total, pa.int32()),
                       "af": pa.nulls(total, pa.list_(pa.float64()))}
        fmt_row = sample_data = None

    raw = _raw_lines(parts, rule, rec_of_row, fmt_row, sample_data)
    cols = {
        "source_file": pa.repeat(pa.scalar(src.path, pa.string()), total),
        "record_index": pa.array(rec_index[rec_of_row], pa.int64()),
        "sample": sample,
        "sample_index": (pa.nulls(total, pa.int32()) if sample_idx is None
                         else pa.array(sample_idx, pa.int32())),
        **out, "format": fmt_map, **sample_cols,
        "_raw": raw,
        "_rule": pa.array(rule, pa.string()),
        "_reason": pa.array(reason, pa.string()),
    }
    arrays = [cols[name].cast(t) for name, t, _ in ROW_FIELDS]
    return pa.RecordBatch.from_arrays(arrays, schema=ROW_SCHEMA)


def _mark_first(rules: _Rules, mask: np.ndarray, parents: np.ndarray, keys: pa.Array,
                name: str, template: str) -> None:
    if not mask.any():
        return
    pos = np.nonzero(mask)[0]
    rows, first = np.unique(parents[pos], return_index=True)
    names = keys.take(pa.array(pos[first])).to_pylist()
    rules.mark(rows, name, [template.format(k) for k in names])


def _mark_duplicates(rules: _Rules, keys: pa.Array, parents: np.ndarray, name: str,
                     template: str) -> None:
    if not len(keys):
        return
    enc = pc.dictionary_encode(keys)
    codes = _np(enc.indices).astype(np.int64)
    combined = parents * (len(enc.dictionary) + 1) + codes
    order = np.argsort(combined, kind="stable")
    s = combined[order]
    dup = np.nonzero(s[1:] == s[:-1])[0] + 1
    if len(dup):
        mask = np.zeros(len(keys), dtype=bool)
        mask[order[dup]] = True
        _mark_first(rules, mask, parents, keys, name, template)


def _format_columns(fmt: pa.Array, formats: pa.Array, codes: np.ndarray,
                    sample_data: pa.Array, n_alts: np.ndarray, rec_of_row: np.ndarray):
    """The per-sample FORMAT map and typed fields; sample-level rules.

    ``formats`` are the distinct FORMAT strings and ``codes`` each row's one: a file has
    few, so keys and key positions are worked out once per distinct string, not per row.
    """
    n = len(sample_data)
    rules = _Rules(n)
    keys_of = [(text or "").split(":") for text in formats.to_pylist()]
    key_offsets = np.zeros(len(keys_of) + 1, dtype=np.int64)
    np.cumsum([len(k) for k in keys_of], out=key_offsets[1:])
    all_keys = pa.array([k for ks in keys_of for k in ks], pa.string())
    fvals = pc.split_pattern(sample_data, ":")
    nk = np.diff(key_offsets)[codes]
    nv = _np(pc.list_value_length(fvals)).astype(np.int64)
    too_many = nv > nk
    rules.mark_mask(too_many, "format_value_count",
                    lambda r: f"sample has more values than FORMAT keys "
                              f"({sample_data[r].as_py()} for {fmt[r].as_py()})")
    # Trailing FORMAT fields may be dropped (VCF 4.3 section 1.6.2): pair the first nv keys.
    length = np.where(too_many, 0, nv)
    key_idx, offsets = _ragged_index(key_offsets[:-1][codes], length)
    value_starts = _np(fvals.offsets)[:-1].astype(np.int64)
    val_idx, _ = _ragged_index(value_starts, length)
    vflat = pc.list_flatten(fvals)
    mkeys = all_keys.take(pa.array(key_idx))
    mvals = vflat.take(pa.array(val_idx)).cast(pa.string())
    fmt_map = pa.MapArray.from_arrays(pa.array(offsets.astype(np.int32)), mkeys, mvals)

    def field(key: str) -> pa.Array:
        """This row's value of FORMAT ``key`` (null when absent or dropped); the last
        occurrence, as a map lookup would give, for a (quarantined) repeated key."""
        where = np.array([len(ks) - 1 - ks[::-1].index(key) if key in ks else -1
                          for ks in keys_of], dtype=np.int64)[codes]
        present = (where >= 0) & (where < length)
        return _take(vflat, np.where(present, value_starts + where, -1)).cast(pa.string())

    gt = field("GT")
    gt_ok, top = genotype_checks(gt)
    rules.mark_mask(~gt_ok, "malformed_gt", lambda r: f"GT {gt[r].as_py()!r} is not a genotype")
    beyond = top > n_alts[rec_of_row]
    rules.mark_mask(beyond, "malformed_gt",
                    lambda r: f"GT {gt[r].as_py()} refers to allele {int(top[r])} but the "
                              f"record has {int(n_alts[rec_of_row[r]])} ALT allele(s)")
    ad_text = field("AD")
    ad, bad_ad = _parse_list(ad_text, COUNT_RE, pa.int32())
    rules.mark_mask(bad_ad, "invalid_ad",
                    lambda r: f"AD {ad_text[r].as_py()!r} is not a list of counts")
    dp_text = field("DP")
    dp, bad_dp = _parse(dp_text, COUNT_RE, pa.int32())
    rules.mark_mask(bad_dp, "invalid_dp", lambda r: f"DP {dp_text[r].as_py()!r} is not a count")
    gq, _ = _parse(field("GQ"), INT_RE, pa.int32())
    af, _ = _parse_list(field("AF"), FLOAT_RE, pa.float64())
    return fmt_map, {"gt": gt, "ad": ad, "dp": dp, "gq": gq, "af": af}, rules


def contig_known(src: VcfSource, chrom: pa.Array) -> np.ndarray:
    """Which CHROM values the header declares (or, without ##contig lines, which are human
    reference contig names)."""
    if src.contigs_declared:
        return _bool(pc.is_in(chrom, value_set=pa.array(src.contigs_declared, chrom.type)))
    return _matches(chrom, conventions()["human_contig_pattern"])


def format_key_problem(keys: list[str], declared: set[str]) -> tuple[str, str] | None:
    """(rule, reason) for a FORMAT string's keys: one the header does not declare, or one
    twice; None when they are fine."""
    bad = next((k for k in keys if k not in declared), None)
    if bad is not None:
        return "undeclared_format", f"FORMAT key {bad!r} is not declared in the header"
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        return "duplicate_format", f"FORMAT key {dup!r} appears more than once"
    return None


def genotype_checks(gt: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per row, whether GT is a valid genotype (a missing GT is) and the highest allele it
    names (-1: none, or invalid). A file has few distinct genotypes: each is checked, and
    its highest allele found, once."""
    enc = pc.dictionary_encode(gt)
    distinct = enc.dictionary.to_pylist()
    valid = np.append(_matches(enc.dictionary, GT_RE), True)  # last: no GT (index -1)
    highest = np.array([_highest_allele(g) if ok else -1
                        for g, ok in zip(distinct, valid[:-1], strict=True)] + [-1],
                       dtype=np.int64)
    code = _np(pc.fill_null(enc.indices, -1)).astype(np.int64)
    return valid[code], highest[code]


def _highest_allele(gt: str) -> int:
    """The highest allele index a valid GT names (-1 when all are missing), capped so an
    absurd index still fits: any index beyond the record's ALTs is flagged anyway."""
    return min(max((int(a) for a in re.split(r"[|/]", gt) if a not in ("", ".")), default=-1),
               2**31)


def _raw_lines(parts: pa.Array, rule: np.ndarray, rec_of_row: np.ndarray,
               fmt_row: pa.Array | None, sample_data: pa.Array | None) -> pa.Array:
    """For rejected rows only: the line as received (fixed columns, FORMAT, this sample)."""
    bad = np.nonzero(rule != None)[0]  # noqa: E711 - numpy object comparison, element-wise
    out = np.full(len(rule), None, dtype=object)
    if len(bad):
        fixed = pc.binary_join(pc.list_slice(parts.take(pa.array(rec_of_row[bad])), 0, 8),
                               pa.scalar("\t", pa.large_string())).to_pylist()
        for j, r in enumerate(bad):
            tail = "" if fmt_row is None else f"\t{fmt_row[r].as_py()}\t{sample_data[r].as_py()}"
            out[r] = (fixed[j] + tail)[:10_000]
    return pa.array(out, pa.string())

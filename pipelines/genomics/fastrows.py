"""Compiled fast path of :func:`pipelines.genomics.rows.lines_to_batch` for clean batches.

The Arrow-kernel typing in :mod:`pipelines.genomics.rows` makes ~25 passes over a batch
(split, take, match, cast …), each allocating its result; it was the largest single cost of
reading a VCF (benchmarks/RESULTS.md, "VCF ingestion"). Here the same columns are cut and
typed by a few numba-compiled loops over the bytes of the lines, each one pass over its
spans, with Arrow arrays built straight from the resulting buffers.

The fast path only ever produces rows that break **no** rule of the bad-input table: at the
first sign of anything unusual in a batch (a wrong column count, an undeclared key, a value
that is not a number, a genotype naming a missing allele, …) it returns ``None`` and the
caller types the batch with the Arrow kernels, which apply every rule and write every reason.
So the rules live in one place, and this module only has to agree with it on clean input —
checked field by field on the real files and on every bad-input case in
``tests/test_genomics_fastrows.py``.

Numbers are cut and checked here; whole numbers are also converted here (exactly), decimals
by Arrow's own string-to-float cast on the cut strings, as the Arrow path does.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from pipelines.genomics import rows
from pipelines.genomics.line_spans import Lines
from pipelines.genomics.sources import VcfSource

COLON, SEMI, COMMA, DOT = (ord(c) for c in ":;,.")
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63) + 1, 2**63 - 1)
MAX_OFFSET = 2**31 - 1  # pa.string() offsets are 32-bit


def _jit(fn):
    """Compile ``fn``, caching the machine code on disk (next to this module, or in the
    user's cache folder) so later processes only load it; without a writable place,
    compile in memory in each process."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)


# ---------------------------------------------------------------------------- kernels
@_jit
def line_spans(data):
    """(starts, ends) of the newline-separated lines of ``data``, whether any byte is not
    ASCII, and whether any line ends in a carriage return: what lines.Lines.of_block
    finds with five numpy passes, in two."""
    count, high = 0, False
    for i in range(len(data)):
        if data[i] == 10:
            count += 1
        elif data[i] >= 0x80:
            high = True
    starts = np.empty(count + 1, np.int64)
    ends = np.empty(count + 1, np.int64)
    starts[0] = 0
    k, cr = 0, False
    for i in range(len(data)):
        if data[i] == 10:
            ends[k] = i
            if i > starts[k] and data[i - 1] == 13:
                cr = True
            k += 1
            starts[k] = i + 1
    ends[k] = len(data)
    if len(data) > starts[k] and data[len(data) - 1] == 13:
        cr = True
    return starts, ends, high, cr


# Spans are (start, end) byte positions in the batch's data; a start of -1 is "absent".
@_jit
def _capacity(starts, ends):
    """Bytes plus one per present span (start >= 0): room for every token of a split."""
    cap = 0
    for i in range(len(starts)):
        if starts[i] >= 0:
            cap += ends[i] - starts[i] + 1
    return cap


@_jit
def split_columns(data, starts, ends, ncols):
    """Each line cut at tabs into exactly ``ncols`` columns, in one pass: (starts, ends) of
    shape (ncols, lines), and False when a line has another number of columns."""
    n = len(starts)
    cs = np.empty((ncols, n), np.int64)
    ce = np.empty((ncols, n), np.int64)
    for i in range(n):
        k = 0
        s = starts[i]
        for j in range(starts[i], ends[i]):
            if data[j] == 9:
                if k == ncols - 1:
                    return cs, ce, False
                cs[k, i] = s
                ce[k, i] = j
                k += 1
                s = j + 1
        if k != ncols - 1:
            return cs, ce, False
        cs[k, i] = s
        ce[k, i] = ends[i]
    return cs, ce, True


@_jit
def dots(data, starts, ends):
    """Which spans are exactly '.'."""
    out = np.zeros(len(starts), np.bool_)
    for i in range(len(starts)):
        out[i] = starts[i] >= 0 and ends[i] - starts[i] == 1 and data[starts[i]] == 46
    return out


@_jit
def gather(data, starts, ends):
    """The bytes of every span, back to back, and their offsets (absent spans are empty)."""
    n = len(starts)
    offsets = np.empty(n + 1, np.int64)
    k = 0
    for i in range(n):
        offsets[i] = k
        if starts[i] >= 0:
            k += ends[i] - starts[i]
    offsets[n] = k
    out = np.empty(k, np.uint8)
    k = 0
    for i in range(n):
        if starts[i] >= 0:
            for j in range(starts[i], ends[i]):
                out[k] = data[j]
                k += 1
    return out, offsets


@_jit
def split_gather(data, starts, ends, delim):
    """Each span cut at ``delim`` into a list of strings (an absent span: no tokens; an
    empty one: one empty token, as Arrow's ``split_pattern``): (list offsets, token bytes,
    token offsets), in one pass."""
    n = len(starts)
    cap = _capacity(starts, ends)
    lists = np.empty(n + 1, np.int64)
    toks = np.empty(cap + 1, np.int64)
    out = np.empty(cap, np.uint8)
    k = 0
    b = 0
    for i in range(n):
        lists[i] = k
        if starts[i] < 0:
            continue
        toks[k] = b
        for j in range(starts[i], ends[i]):
            c = data[j]
            if c == delim:
                k += 1
                toks[k] = b
            else:
                out[b] = c
                b += 1
        k += 1
    lists[n] = k
    toks[k] = b
    return lists, out[:b], toks[:k + 1]


@_jit
def list_spans(data, starts, ends, delim):
    """Each span cut at ``delim`` (an absent span: no tokens): (list offsets, token starts,
    token ends), in one pass."""
    n = len(starts)
    cap = _capacity(starts, ends)
    lists = np.empty(n + 1, np.int64)
    ts = np.empty(cap, np.int64)
    te = np.empty(cap, np.int64)
    k = 0
    for i in range(n):
        lists[i] = k
        if starts[i] < 0:
            continue
        s = starts[i]
        for j in range(starts[i], ends[i]):
            if data[j] == delim:
                ts[k] = s
                te[k] = j
                k += 1
                s = j + 1
        ts[k] = s
        te[k] = ends[i]
        k += 1
    lists[n] = k
    return lists, ts[:k], te[:k]


@_jit
def parse_ints(data, starts, ends, signed, lo, hi):
    """Whole numbers (``[0-9]+``, or ``-?[0-9]+`` when ``signed``) within [lo, hi].

    Returns (values, present, ok): '.' and absent spans are not present; ``ok`` is False as
    soon as one present span is not such a number.
    """
    n = len(starts)
    values = np.zeros(n, np.int64)
    present = np.ones(n, np.bool_)
    for i in range(n):
        s = starts[i]
        e = ends[i]
        if s < 0 or (e - s == 1 and data[s] == 46):
            present[i] = False
            continue
        neg = False
        if signed and s < e and data[s] == 45:
            neg = True
            s += 1
        if s == e:
            return values, present, False
        limit = -lo if neg else hi
        v = 0
        for j in range(s, e):
            d = np.int64(data[j]) - 48
            if d < 0 or d > 9 or v > (limit - d) // 10:
                return values, present, False
            v = v * 10 + d
        values[i] = -v if neg else v
    return values, present, True


@_jit
def check_floats(data, starts, ends):
    """Which spans are present (not '.', not absent) and whether every present one is a
    decimal number in the VCF sense (``rows.FLOAT_RE``)."""
    n = len(starts)
    present = np.ones(n, np.bool_)
    for i in range(n):
        s = starts[i]
        e = ends[i]
        if s < 0 or (e - s == 1 and data[s] == 46):
            present[i] = False
            continue
        j = s
        if j < e and (data[j] == 43 or data[j] == 45):
            j += 1
        digits = 0
        while j < e and 48 <= data[j] <= 57:
            j += 1
            digits += 1
        if j < e and data[j] == 46:
            j += 1
            while j < e and 48 <= data[j] <= 57:
                j += 1
                digits += 1
        if digits == 0:
            return present, False
        if j < e and (data[j] == 101 or data[j] == 69):
            j += 1
            if j < e and (data[j] == 43 or data[j] == 45):
                j += 1
            exp = 0
            while j < e and 48 <= data[j] <= 57:
                j += 1
                exp += 1
            if exp == 0:
                return present, False
        if j != e:
            return present, False
    return present, True


@_jit
def all_bases(data, starts, ends):
    """Every span is a non-empty run of A, C, G, T, N (either case): ``rows.REF_RE``."""
    for i in range(len(starts)):
        if ends[i] <= starts[i]:
            return False
        for j in range(starts[i], ends[i]):
            c = data[j] | 32  # lower case
            if c != 97 and c != 99 and c != 103 and c != 116 and c != 110:
                return False
    return True


@_jit
def _same(data, a, length, other, b):
    """``data[a:a+length] == other[b:b+length]``."""
    for j in range(length):  # noqa: SIM110 - a loop numba compiles, not a generator
        if data[a + j] != other[b + j]:
            return False
    return True


@_jit
def info_kernel(data, starts, ends, lookup, lookup_offsets):
    """The ``key[=value]`` items of each INFO column ('.' alone: none), in one pass.

    Returns (item offsets, key bytes, key offsets, value bytes, value offsets, has value,
    value starts and ends of each ``lookup`` key per record (-1: absent or a Flag), ok).
    Not ok: an empty key or item, a '.' among other items, or a key twice in one record.
    """
    n = len(starts)
    nl = len(lookup_offsets) - 1
    cap = _capacity(starts, ends)
    # sized for the worst case, never zeroed: the OS maps only the pages written
    items = np.empty(n + 1, np.int64)
    kb = np.empty(cap, np.uint8)
    ko = np.empty(cap + 1, np.int64)
    vb = np.empty(cap, np.uint8)
    vo = np.empty(cap + 1, np.int64)
    has_v = np.empty(cap, np.bool_)
    ko[0] = 0
    vo[0] = 0
    ls = np.full((nl, n), -1, np.int64)
    le = np.zeros((nl, n), np.int64)
    k = 0
    kp = 0
    vp = 0
    for i in range(n):
        items[i] = k
        s = starts[i]
        e = ends[i]
        if e - s == 1 and data[s] == 46:
            continue
        first = k
        a = s
        while True:
            b = a
            while b < e and data[b] != 59:
                b += 1
            q = a
            while q < b and data[q] != 61:
                q += 1
            klen = q - a
            if klen == 0 or (b - a == 1 and data[a] == 46):
                return items, kb, ko, vb, vo, has_v, ls, le, False
            for r in range(first, k):
                if ko[r + 1] - ko[r] == klen and _same(data, a, klen, kb, ko[r]):
                    return items, kb, ko, vb, vo, has_v, ls, le, False
            kb[kp:kp + klen] = data[a:q]
            kp += klen
            ko[k + 1] = kp
            has_v[k] = q < b
            if q < b:
                vb[vp:vp + b - q - 1] = data[q + 1:b]
                vp += b - q - 1
                for t in range(nl):
                    if (lookup_offsets[t + 1] - lookup_offsets[t] == klen
                            and _same(data, a, klen, lookup, lookup_offsets[t])):
                        ls[t, i] = q + 1
                        le[t, i] = b
            vo[k + 1] = vp
            k += 1
            if b >= e:
                break
            a = b + 1
    items[n] = k
    return items, kb[:kp], ko[:k + 1], vb[:vp], vo[:k + 1], has_v[:k], ls, le, True


@_jit
def sample_kernel(data, starts, ends, codes, nk_of, key_base, where):
    """The ':'-separated values of each sample column, paired with its FORMAT's keys, in
    one pass.

    ``codes``: each row's FORMAT (an index into ``nk_of``, its key count, and ``key_base``,
    its first key in the list of all keys); ``where[f, code]``: the position of field f in
    that FORMAT (-1: none). Returns (value offsets per row, value bytes, value offsets, each
    value's key index, starts and ends of each field per row (-1: absent or dropped), ok).
    Not ok: a row with more values than its FORMAT has keys.
    """
    n = len(starts)
    nf = where.shape[0]
    cap = _capacity(starts, ends)
    moff = np.empty(n + 1, np.int64)
    vb = np.empty(cap, np.uint8)
    vo = np.empty(cap + 1, np.int64)
    vo[0] = 0
    kidx = np.empty(cap, np.int64)
    fs = np.full((nf, n), -1, np.int64)
    fe = np.zeros((nf, n), np.int64)
    k = 0
    vp = 0
    for i in range(n):
        moff[i] = k
        code = codes[i]
        t = 0
        a = starts[i]
        e = ends[i]
        while True:
            b = a
            while b < e and data[b] != 58:
                b += 1
            if t >= nk_of[code]:
                return moff, vb, vo, kidx, fs, fe, False
            for j in range(a, b):
                vb[vp] = data[j]
                vp += 1
            vo[k + 1] = vp
            kidx[k] = key_base[code] + t
            for f in range(nf):
                if where[f, code] == t:
                    fs[f, i] = a
                    fe[f, i] = b
            k += 1
            t += 1
            if b >= e:
                break
            a = b + 1
    moff[n] = k
    return moff, vb[:vp], vo[:k + 1], kidx[:k], fs, fe, True


# ---------------------------------------------------------------------------- Arrow glue
class _Unusual(Exception):
    """Something in the batch needs the Arrow path's rules."""


def _bitmap(valid: np.ndarray | None):
    return None if valid is None or valid.all() else pa.py_buffer(
        np.packbits(valid, bitorder="little"))


def _string_array(out: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None
                  ) -> pa.Array:
    if offsets[-1] > MAX_OFFSET:
        raise _Unusual
    return pa.StringArray.from_buffers(len(offsets) - 1,
                                       pa.py_buffer(offsets.astype(np.int32)),
                                       pa.py_buffer(out), _bitmap(valid))


def _strings(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             valid: np.ndarray | None = None) -> pa.Array:
    """The spans as a string array (null where ``valid`` is False, or absent)."""
    if valid is None:
        valid = starts >= 0
    elif not valid.all():
        starts = np.where(valid, starts, -1)
    return _string_array(*gather(data, starts, ends), valid)


def _ints(data, starts, ends, signed: bool, bounds, typ: pa.DataType) -> pa.Array:
    values, present, ok = parse_ints(data, starts, ends, signed, *bounds)
    if not ok:
        raise _Unusual
    return pa.Array.from_buffers(typ, len(values), [_bitmap(present),
                                                    pa.py_buffer(values.astype(
                                                        typ.to_pandas_dtype()))])


def _floats(data, starts, ends) -> pa.Array:
    present, ok = check_floats(data, starts, ends)
    if not ok:
        raise _Unusual
    try:
        return pc.cast(_strings(data, starts, ends, present), pa.float64())
    except pa.ArrowInvalid:
        raise _Unusual from None


def _list(offsets: np.ndarray, values: pa.Array, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None or valid.all() else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, mask=mask)


def _string_lists(data, starts, ends, delim: int, valid: np.ndarray | None = None
                  ) -> pa.Array:
    lists, out, toks = split_gather(data, starts, ends, delim)
    return _list(lists, _string_array(out, toks), valid)


def _value_list(data, starts, ends, parse) -> pa.Array:
    """Comma lists in the spans (null where absent), elements typed by ``parse``."""
    lists, ts, te = list_spans(data, starts, ends, COMMA)
    return _list(lists, parse(data, ts, te), starts >= 0)


def _count32(data, starts, ends) -> pa.Array:
    return _ints(data, starts, ends, False, INT32, pa.int32())


# ---------------------------------------------------------------------------- the fast path
def typed_batch(src: VcfSource, lines: Lines, first_index: int) -> pa.RecordBatch | None:
    """``rows.lines_to_batch``'s result for a batch in which no rule fails, or None when the
    batch needs the Arrow path (anything unusual)."""
    if not len(lines):
        return None
    try:
        return _typed(src, lines, first_index)
    except _Unusual:
        return None


INFO_LOOKUP = ("AF", "DP", "END", "SVTYPE")
FORMAT_FIELDS = ("GT", "AD", "DP", "GQ", "AF")


def _encoded(keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    raw = [k.encode() for k in keys]
    offsets = np.zeros(len(raw) + 1, np.int64)
    np.cumsum([len(k) for k in raw], out=offsets[1:])
    return np.frombuffer(b"".join(raw), np.uint8), offsets


def _typed(src: VcfSource, lines: Lines, first_index: int) -> pa.RecordBatch:
    data = lines.data
    if not len(data):
        raise _Unusual
    m = len(lines)
    ns = len(src.samples)
    ncols = 9 + ns if ns else 8  # a sites-only line with an empty FORMAT column: Arrow path
    cs, ce, ok = split_columns(data, lines.starts, lines.ends, ncols)
    if not ok:
        raise _Unusual
    col = [(cs[k], ce[k]) for k in range(min(ncols, 9))]

    # --- fixed columns
    chrom = _strings(data, *col[0])
    if not rows.contig_known(src, chrom).all():
        raise _Unusual
    pos = _ints(data, *col[1], False, INT64, pa.int64())
    if pos.null_count:
        raise _Unusual
    ident = _strings(data, *col[2], ~dots(data, *col[2]))
    if not all_bases(data, *col[3]):
        raise _Unusual
    ref = _strings(data, *col[3])
    alt_s, alt_e = col[4]
    if (alt_e == alt_s).any():
        raise _Unusual
    no_alt = dots(data, alt_s, alt_e)  # '.': no ALT allele, an empty list
    alt_s = np.where(no_alt, -1, alt_s)
    alts = _string_lists(data, alt_s, alt_e, COMMA)
    n_alts = np.diff(alts.offsets.to_numpy())
    qual = _floats(data, *col[5])
    flt_s, flt_e = col[6]
    has_flt = ~dots(data, flt_s, flt_e)  # '.': filters not applied, null
    filters = _string_lists(data, np.where(has_flt, flt_s, -1), flt_e, SEMI, has_flt)

    # --- INFO
    items, kb, ko, vb, vo, has_v, ls, le, ok = info_kernel(data, *col[7],
                                                          *_encoded(INFO_LOOKUP))
    if not ok:
        raise _Unusual
    keys = _string_array(kb, ko)
    if len(keys) and not pc.all(pc.is_in(keys, value_set=pa.array(list(src.info),
                                                                   pa.string()))).as_py():
        raise _Unusual
    info_map = pa.MapArray.from_arrays(pa.array(items.astype(np.int32)), keys,
                                       _string_array(vb, vo, has_v))
    look = {key: (ls[t], le[t]) for t, key in enumerate(INFO_LOOKUP)}
    info_af = _value_list(data, *look["AF"], _floats)
    info_dp = _ints(data, *look["DP"], True, INT64, pa.int64())
    info_end = _ints(data, *look["END"], True, INT64, pa.int64())
    info_svtype = _strings(data, *look["SVTYPE"])

    record = {"chrom": chrom, "pos": pos, "id": ident, "ref": ref, "alts": alts, "qual": qual,
              "filters": filters, "info": info_map, "info_af": info_af, "info_dp": info_dp,
              "info_end": info_end, "info_svtype": info_svtype}
    if not ns:
        samples = {"sample": pa.nulls(m, pa.string()), "sample_index": pa.nulls(m, pa.int32())}
        samples.update((name, pa.nulls(m, t)) for name, t, _ in rows.ROW_FIELDS
                       if name in ("format", "gt", "ad", "dp", "gq", "af"))
        return _batch(src, first_index, np.arange(m), record, samples)

    # --- FORMAT: few distinct strings per file, each worked out once
    enc = pc.dictionary_encode(_strings(data, *col[8]))
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    keys_of = [t.split(":") for t in enc.dictionary.to_pylist()]
    declared = set(src.formats)
    if any(rows.format_key_problem(ks, declared) for ks in keys_of):
        raise _Unusual
    nk_of = np.array([len(ks) for ks in keys_of], np.int64)
    key_base = np.zeros(len(keys_of), np.int64)
    np.cumsum(nk_of[:-1], out=key_base[1:])
    where = np.array([[ks.index(f) if f in ks else -1 for ks in keys_of]
                      for f in FORMAT_FIELDS], np.int64)

    # --- samples: one row per (record, sample), record by record
    rec_of_row = np.repeat(np.arange(m), ns)
    moff, vbytes, voffs, kidx, fs, fe, ok = sample_kernel(
        data, cs[9:].T.reshape(-1), ce[9:].T.reshape(-1), codes[rec_of_row], nk_of,
        key_base, where)
    if not ok:
        raise _Unusual
    all_keys = pa.array([k for ks in keys_of for k in ks], pa.string())
    fmt_map = pa.MapArray.from_arrays(pa.array(moff.astype(np.int32)),
                                      all_keys.take(pa.array(kidx)),
                                      _string_array(vbytes, voffs))
    field = {f: (fs[i], fe[i]) for i, f in enumerate(FORMAT_FIELDS)}
    gt = _strings(data, *field["GT"])
    gt_ok, top = rows.genotype_checks(gt)
    if not gt_ok.all() or (top > n_alts[rec_of_row]).any():
        raise _Unusual
    sample_idx = np.tile(np.arange(ns, dtype=np.int32), m)
    samples = {"sample": pa.array(src.samples, pa.string()).take(pa.array(sample_idx)),
               "sample_index": pa.array(sample_idx, pa.int32()),
               "format": fmt_map, "gt": gt,
               "ad": _value_list(data, *field["AD"], _count32),
               "dp": _count32(data, *field["DP"]),
               "gq": _ints(data, *field["GQ"], True, INT32, pa.int32()),
               "af": _value_list(data, *field["AF"], _floats)}
    if ns > 1:
        take = pa.array(rec_of_row)
        record = {name: arr.take(take) for name, arr in record.items()}
    return _batch(src, first_index, rec_of_row, record, samples)


def _batch(src: VcfSource, first_index: int, rec_of_row: np.ndarray, record: dict,
           samples: dict) -> pa.RecordBatch:
    """The rows in ``rows.ROW_SCHEMA``: record columns already one per row."""
    total = len(rec_of_row)
    cols = {
        "source_file": pa.repeat(pa.scalar(src.path, pa.string()), total),
        "record_index": pa.array(rec_of_row + first_index, pa.int64()),
        **record, **samples,
        "_raw": pa.nulls(total, pa.string()), "_rule": pa.nulls(total, pa.string()),
        "_reason": pa.nulls(total, pa.string()),
    }
    return pa.RecordBatch.from_arrays([cols[n].cast(t) for n, t, _ in rows.ROW_FIELDS],
                                      schema=rows.ROW_SCHEMA)

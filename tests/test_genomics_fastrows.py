"""The compiled fast path types clean batches exactly as the Arrow path does, and declines
every batch in which a rule fails (so the rules and their reasons stay in one place).

Checked on the real files in ``shared/data/vcf``, on generated lines covering the VCF
notations a clean file may use, on random single-character corruptions of them, and on the
number strings the Arrow path's own parsing is tested with.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.genomics import fastrows, rows
from pipelines.genomics.line_spans import Lines
from pipelines.genomics.reader import _rechunk, iter_text_lines
from pipelines.genomics.rows import lines_to_batch
from pipelines.genomics.sources import FieldDef, VcfSource, read_source
from tests.test_genomics_reader import ALL, _tricky_numbers


def _both(src: VcfSource, lines: pa.Array | Lines, first: int = 0):
    spans = lines if isinstance(lines, Lines) else Lines.of_arrow(lines)
    return fastrows.typed_batch(src, spans, first), lines_to_batch(src, lines, first,
                                                                   compiled=False)


def _assert_same(fast: pa.RecordBatch, ref: pa.RecordBatch) -> None:
    assert fast.schema == ref.schema
    for name in ref.schema.names:
        assert fast.column(name).equals(ref.column(name)), (
            name, fast.column(name)[:3], ref.column(name)[:3])


def _rejects(batch: pa.RecordBatch) -> bool:
    return batch.column("_rule").null_count < batch.num_rows


@pytest.mark.parametrize("name", ALL)
def test_real_files_typed_alike_and_declined_only_where_a_rule_fails(shared_data, name):
    src = read_source(str(shared_data / "vcf" / name))
    fast_batches = declined = 0
    first = 0
    for lines in _rechunk(iter_text_lines(src.path, src.kind), 25):
        fast, ref = _both(src, lines, first)
        first += len(lines)
        if fast is None:
            declined += 1
            assert _rejects(ref), f"a clean batch at record {first - len(lines)} was declined"
        else:
            fast_batches += 1
            _assert_same(fast, ref)
    assert fast_batches + declined > 0
    if "malformed" not in name:
        assert declined == 0 and fast_batches > 0


def _source(samples=("T", "N")) -> VcfSource:
    return VcfSource(
        "/g.vcf", samples=samples, contigs_declared=("chr1", "chr2", "chrX"),
        info={k: FieldDef(n, t) for k, n, t in (
            ("DP", "1", "Integer"), ("AF", "A", "Float"), ("END", "1", "Integer"),
            ("SVTYPE", "1", "String"), ("DB", "0", "Flag"), ("CSQ", ".", "String"),
            ("NOTE", "1", "String"))},
        formats={k: FieldDef(n, t) for k, n, t in (
            ("GT", "1", "String"), ("AD", "R", "Integer"), ("DP", "1", "Integer"),
            ("GQ", "1", "Integer"), ("AF", "A", "Float"), ("PS", "1", "Integer"))})


CLEAN = [
    "chr1\t100\trs1\tA\tG\t50\tPASS\tDP=30;AF=0.5;DB\tGT:AD:DP:GQ:AF\t0/1:10,20:30:99:0.667\t"
    "0/0:30,0:30:60:0",
    "chr1\t200\t.\tAC\tA,ACC\t.\t.\t.\tGT:AD\t1/2:1,2,3\t./.:.",
    "chr2\t300\t.\tN\t.\t1e3\tq10;LowQual\tEND=400;SVTYPE=DEL;NOTE=a=b\tGT\t0|0\t|0",
    "chrX\t400\t.\tg\t<DEL>\t+7.\tPASS\tDP=-3;AF=.,1E-2\tGT:AD:DP\t1\t.",
    "chr1\t500\tid;2\tT\tC,*\t.5\tPASS\tCSQ=C|x|é|,*|y\tGT:AD:DP:GQ:AF:PS\t1/1:0,9,0:9:-1:1,0:"
    "5\t0/1:.,3",
    "chr2\t0600\t.\tC\tT\t0\tPASS\tAF=1\tGT:GQ\t0/1\t1/1:.",
]


def test_generated_notations_typed_alike_by_the_fast_path():
    src = _source()
    fast, ref = _both(src, pa.array(CLEAN), 5)
    assert fast is not None and not _rejects(ref)
    _assert_same(fast, ref)
    # one sample, and sites-only lines
    src1 = _source(samples=("T",))
    one = [line.rsplit("\t", 1)[0] for line in CLEAN]
    fast, ref = _both(src1, pa.array(one))
    assert fast is not None
    _assert_same(fast, ref)
    sites = [line.split("\t", 8)[:8] for line in CLEAN]
    fast, ref = _both(_source(samples=()), pa.array(["\t".join(s) for s in sites]))
    assert fast is not None
    _assert_same(fast, ref)


@pytest.mark.parametrize("line,rule", [
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/1", "malformed_line"),
    ("chr9\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/1\t0/1", "unknown_contig"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1;;DB\tGT\t0/1\t0/1", "malformed_info"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDB;.\tGT\t0/1\t0/1", "malformed_info"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tXX=1\tGT\t0/1\t0/1", "undeclared_info"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1;DP=2\tGT\t0/1\t0/1", "duplicate_info"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT:ZZ\t0/1:1\t0/1:1", "undeclared_format"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT:GT\t0/1:1\t0/1:1", "duplicate_format"),
    ("chr1\t-1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/1\t0/1", "invalid_pos"),
    ("chr1\t1\t.\tA\tG\tbad\tPASS\tDP=1\tGT\t0/1\t0/1", "invalid_qual"),
    ("chr1\t1\t.\tR\tG\t5\tPASS\tDP=1\tGT\t0/1\t0/1", "invalid_ref"),
    ("chr1\t1\t.\tA\t\t5\tPASS\tDP=1\tGT\t0/1\t0/1", "invalid_alt"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/1:3\t0/1", "format_value_count"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/x\t0/1", "malformed_gt"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT\t0/2\t0/1", "malformed_gt"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT:AD\t0/1:1,x\t0/1", "invalid_ad"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT:AD\t0/1:1,4294967296\t0/1", "invalid_ad"),
    ("chr1\t1\t.\tA\tG\t5\tPASS\tDP=1\tGT:AD:DP\t0/1:1,2:-3\t0/1", "invalid_dp"),
])
def test_every_rule_sends_the_batch_to_the_arrow_path(line, rule):
    src = _source()
    lines = pa.array([CLEAN[0], line])
    fast, ref = _both(src, lines)
    assert fast is None
    assert rule in ref.column("_rule").to_pylist()
    assert lines_to_batch(src, lines, 0).equals(ref)  # the default entry point falls back


def test_random_corruptions_never_type_differently():
    """One character of a clean line replaced, deleted or inserted: the fast path either
    declines or gives exactly the Arrow path's rows (which then break no rule)."""
    rnd = random.Random(11)
    alphabet = "\t:;,=.-+e0123456789AGX|/ *"
    src = _source()
    taken = declined = 0
    for _ in range(600):
        line = rnd.choice(CLEAN)
        i = rnd.randrange(len(line))
        c = rnd.choice(alphabet)
        line = rnd.choice([line[:i] + c + line[i + 1:], line[:i] + line[i + 1:],
                           line[:i] + c + line[i:]])
        fast, ref = _both(src, pa.array([line]))
        if fast is None:
            declined += 1
        else:
            taken += 1
            assert not _rejects(ref), line
            _assert_same(fast, ref)
    assert taken > 100 and declined > 100


@pytest.mark.parametrize("signed,bounds", [(False, fastrows.INT32), (True, fastrows.INT32),
                                           (False, fastrows.INT64), (True, fastrows.INT64)])
def test_whole_numbers_are_exactly_the_vcf_pattern(signed, bounds):
    pattern = rows.INT_RE if signed else rows.COUNT_RE
    strings = [s for s in _tricky_numbers() if s != "."]
    matches = pc.match_substring_regex(pa.array(strings), pattern).to_pylist()
    checked = 0
    for s, ok in zip(strings, matches, strict=True):
        data = np.frombuffer(s.encode() or b" ", np.uint8)
        values, present, good = fastrows.parse_ints(
            data, np.array([0]), np.array([len(s.encode())]), signed, *bounds)
        fits = ok and bounds[0] <= int(s) <= bounds[1]
        assert good == fits, s
        if fits:
            assert values[0] == int(s) and present[0]
            checked += 1
    assert checked > 500


def test_decimal_check_is_exactly_the_vcf_pattern():
    strings = [s for s in _tricky_numbers() if s != "."]
    matches = pc.match_substring_regex(pa.array(strings), rows.FLOAT_RE).to_pylist()
    for s, ok in zip(strings, matches, strict=True):
        data = np.frombuffer(s.encode() or b" ", np.uint8)
        _, good = fastrows.check_floats(data, np.array([0]), np.array([len(s.encode())]))
        assert good == ok, s
    assert sum(matches) > 500


def test_lines_of_a_block_are_spans_of_it():
    block = b"a\tb\n\n#x\nc\xc3\xa9\n"
    lines = Lines.of_block(memoryview(block)[:-1])
    assert [lines.text(i) for i in range(len(lines))] == ["a\tb", "", "#x", "c\u00e9"]
    assert lines.arrow().to_pylist() == ["a\tb", "", "#x", "c\u00e9"]
    assert lines.starts_with("#").tolist() == [False, False, True, False]
    assert lines.slice(1, 2).arrow().to_pylist() == ["", "#x"]
    again = Lines.of_arrow(pa.array(["x", "", "yz"]).slice(1))
    assert again.arrow().to_pylist() == ["", "yz"]
    # CRLF ends and bad UTF-8 are left to the careful path
    assert Lines.of_block(b"a\r\nb") is None
    assert Lines.of_block(b"a\nb\xff") is None


def test_compiled_line_cutting_equals_numpy(monkeypatch):
    """Large blocks are cut by fastrows.line_spans, small ones with numpy: the same spans,
    and the same refusals (CRLF, bad UTF-8), on blocks with empty lines, a CR inside a line,
    UTF-8 text and no trailing data."""
    import pipelines.genomics.line_spans as lines_mod

    rng = random.Random(7)
    alphabet = ["a", "\t", "\n", "\n", "\r", "\u00e9", "#", "1"]
    blocks = [b"", b"\n", b"a", b"a\n\nb", b"a\rb\nc", b"x\r", "\u00e9\n".encode(),
              b"a\nb\xff", b"a\r\nb"]
    blocks += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))).encode()
               for _ in range(300)]
    for block in blocks:
        monkeypatch.setattr(lines_mod, "COMPILED_MIN_BYTES", 1 << 40)
        slow = Lines.of_block(block)
        monkeypatch.setattr(lines_mod, "COMPILED_MIN_BYTES", 0)
        fast = Lines.of_block(block)
        assert (slow is None) == (fast is None), block
        if slow is not None:
            assert slow.starts.tolist() == fast.starts.tolist(), block
            assert slow.ends.tolist() == fast.ends.tolist(), block


def test_cutting_lines_alone_never_loads_numba():
    """A fresh worker cuts even a large block with numpy: numba (~1.2 s to load) comes in
    only with the compiled typing, never for cutting lines by itself."""
    import subprocess
    import sys

    code = ("import sys; from pipelines.genomics.line_spans import Lines; "
            "lines = Lines.of_block(b'chr1\\t1\\t.\\tA\\tC\\n' * 300_000); "
            "assert len(lines) == 300_001, len(lines); "
            "assert 'numba' not in sys.modules and 'pipelines.genomics.fastrows' not in "
            "sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_crlf_and_non_utf8_files_read_like_clean_ones(shared_data, tmp_path):
    """Blocks with CRLF ends or bytes that are not UTF-8 take the careful cutting path; the
    rows come out as from the clean file (the bad bytes replaced, U+FFFD)."""
    import gzip

    from tests.test_genomics_reader import TCGA, read_all

    text = gzip.decompress((shared_data / "vcf" / TCGA).read_bytes())
    clean, crlf, latin = (tmp_path / n for n in ("clean.vcf", "crlf.vcf", "latin.vcf"))
    clean.write_bytes(text)
    crlf.write_bytes(text.replace(b"\n", b"\r\n"))
    lines = text.split(b"\n")
    k = next(i for i, line in enumerate(lines) if line and not line.startswith(b"#"))
    cols = lines[k].split(b"\t")
    cols[7] = b"NOTE\xe9=1;" + cols[7]  # a Latin-1 byte in the first record's INFO
    lines[k] = b"\t".join(cols)
    latin.write_bytes(b"\n".join(lines))

    def rows_of(path):
        t = read_all(read_source(str(path))).drop_columns(["source_file"])
        return t.to_pylist()

    expected = rows_of(clean)
    assert rows_of(crlf) == expected
    damaged = rows_of(latin)
    assert len(damaged) == len(expected)
    assert damaged[0]["_rule"] == "undeclared_info" and "\ufffd" in damaged[0]["_reason"]
    assert damaged[1:] == expected[1:]

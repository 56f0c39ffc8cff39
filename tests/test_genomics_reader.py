"""VCF/BCF reading without Spark: headers, pieces, Arrow rows, record-level checks.

Counts and fields are checked against bcftools and pysam on the real files in
``shared/data/vcf`` (PROVENANCE.md), never against numbers typed here.
"""

from __future__ import annotations

import dataclasses
import gzip
import random
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pysam
import pytest

from pipelines.genomics.reader import read_piece
from pipelines.genomics.rows import lines_to_batch
from pipelines.genomics.sources import (
    FieldDef,
    Piece,
    VcfSource,
    discover,
    index_stats,
    plan_pieces,
    plan_tasks,
    read_source,
)
from pipelines.lakehouse.errors import InputNotFoundError

BCFTOOLS = shutil.which("bcftools") or "/usr/bin/bcftools"
needs_bcftools = pytest.mark.skipif(shutil.which("bcftools") is None,
                                    reason="needs bcftools (apt-get install bcftools tabix)")
TCGA = "somatic_TCGA-A6-2686_COAD_tumor_normal.grch38.vcf.gz"
GERMLINE = "germline_multisample_vep_snpeff.grch37.vcf.gz"
G1000 = "germline_1000G_NYGC_chr22_100samples.grch38.vcf.gz"
GNOMAD_BAD = "malformed_gnomad_r2_info_number_G.grch37.vcf"
GNOMAD_FIXED = "control_gnomad_r2_info_number_G_fixed.grch37.vcf"
ALL = (TCGA, GERMLINE, G1000, GNOMAD_BAD, GNOMAD_FIXED)


def bcftools_records(path: Path | str) -> int:
    out = subprocess.run([BCFTOOLS, "view", "-H", str(path)], capture_output=True, check=True)
    return out.stdout.count(b"\n")


def read_all(src: VcfSource, split_min_records: int = 10**12, piece_records: int = 1) -> pa.Table:
    batches = [b for p in plan_pieces([src], split_min_records, piece_records)
               for b in read_piece(src, p)]
    return pa.Table.from_batches(batches)


# ---------------------------------------------------------------------------- discovery
def test_discover_expands_folders_skips_indexes_and_hidden(tmp_path, shared_data):
    (tmp_path / "a.vcf").write_text("x")
    (tmp_path / "b.bcf").write_text("x")
    (tmp_path / "b.bcf.csi").write_text("x")
    (tmp_path / ".parts").mkdir()
    (tmp_path / ".parts" / "c.vcf.gz").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.VCF.GZ").write_text("x")
    found = discover([str(tmp_path), str(tmp_path / "a.vcf")])
    assert [Path(f).name for f in found] == ["a.vcf", "b.bcf", "d.VCF.GZ"]
    assert len(discover([str(shared_data / "vcf")])) == 5


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        discover([str(tmp_path / "nope.vcf.gz")])
    assert discover(["", "  "]) == []


# ---------------------------------------------------------------------------- headers
def test_headers_of_the_real_files(shared_data):
    d = shared_data / "vcf"
    for name in ALL:
        src = read_source(str(d / name))
        assert src.problem == "", name
        ref = pysam.VariantFile(str(d / name))
        assert src.samples == tuple(ref.header.samples)
        assert set(src.formats) == set(ref.header.formats)
        # Every INFO key pysam knows from the header (Number=G ones included) is declared.
        assert set(src.info) == set(ref.header.info)

    tcga = read_source(str(d / TCGA))
    assert tcga.kind == "bgzf" and tcga.eof_ok and tcga.contigs_declared == ()
    assert any(sec == "contig" for sec, _, _ in tcga.header_issues)
    assert tcga.index_usable and tcga.n_records_indexed == bcftools_records(d / TCGA)

    germ = read_source(str(d / GERMLINE))
    assert germ.csq_fields[:3] == ("Consequence", "Codons", "Amino_acids")
    assert germ.ann_fields[:4] == ("Allele", "Annotation", "Annotation_Impact", "Gene_Name")

    bad = read_source(str(d / GNOMAD_BAD))
    fixed = read_source(str(d / GNOMAD_FIXED))
    g_issues = {k for sec, k, _ in bad.header_issues if sec == "INFO"}
    assert "GC" in g_issues and bad.info["GC"].number == "G"
    assert not [k for sec, k, _ in fixed.header_issues if sec == "INFO"]
    assert bad.kind == "vcf" and len(bad.contigs_declared) > 0


def test_unreadable_files_are_described_not_raised(tmp_path, shared_data):
    garbage = tmp_path / "garbage.vcf"
    garbage.write_text("this is not a VCF\n")
    empty = tmp_path / "empty.vcf.gz"
    empty.write_bytes(b"")
    assert "header" in read_source(str(garbage)).problem
    assert "empty" in read_source(str(empty)).problem
    # A bgzip file cut in the middle keeps its header but loses the EOF marker.
    data = (shared_data / "vcf" / GERMLINE).read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    src = read_source(str(cut))
    assert src.problem == "" and not src.eof_ok and not src.index_usable


@needs_bcftools
def test_plain_gzip_and_bcf_headers(tmp_path, shared_data):
    plain = tmp_path / "plain.vcf.gz"
    with open(shared_data / "vcf" / GNOMAD_FIXED, "rb") as fh, gzip.open(plain, "wb") as gz:
        shutil.copyfileobj(fh, gz)
    assert read_source(str(plain)).kind == "gzip"
    bcf = tmp_path / "g.bcf"
    subprocess.run([BCFTOOLS, "view", "-Ob", "-o", str(bcf), str(shared_data / "vcf" / G1000)],
                   check=True)
    subprocess.run([BCFTOOLS, "index", str(bcf)], check=True)
    src = read_source(str(bcf))
    assert src.kind == "bcf" and len(src.samples) == 100 and src.index_usable


# ---------------------------------------------------------------------------- records
@needs_bcftools
@pytest.mark.parametrize("name", ALL)
def test_rows_equal_bcftools_records_times_samples(shared_data, name):
    path = shared_data / "vcf" / name
    src = read_source(str(path))
    table = read_all(src)
    n = bcftools_records(path)
    assert table.num_rows == n * max(1, len(src.samples))
    assert table.column("_rule").null_count == table.num_rows
    indexes = sorted(set(table.column("record_index").to_pylist()))
    assert indexes == list(range(n))


def test_fields_equal_what_pysam_reads(shared_data):
    path = shared_data / "vcf" / G1000
    src = read_source(str(path))
    rows = read_all(src).to_pylist()
    by_key = {(r["record_index"], r["sample"]): r for r in rows}
    for i, rec in enumerate(pysam.VariantFile(str(path))):
        if i % 7:
            continue
        for s in (0, 37, 99):
            name = src.samples[s]
            r = by_key[(i, name)]
            assert (r["chrom"], r["pos"], r["ref"]) == (rec.chrom, rec.pos, rec.ref)
            assert tuple(r["alts"]) == rec.alts
            assert r["qual"] == pytest.approx(rec.qual, rel=1e-6)
            assert r["filters"] == list(rec.filter.keys())
            values = dict(r["format"])
            gt = rec.samples[name]["GT"]
            ours = tuple(None if a == "." else int(a)
                         for a in r["gt"].replace("|", "/").split("/"))
            assert ours == gt and values["GT"] == r["gt"]
            if "DP" in values and values["DP"] != ".":
                assert r["dp"] == int(values["DP"]) == rec.samples[name]["DP"]
            if "AD" in values:
                assert tuple(r["ad"]) == tuple(rec.samples[name]["AD"])


def test_contig_pieces_reproduce_the_whole_file(shared_data):
    src = read_source(str(shared_data / "vcf" / TCGA))
    pieces = plan_pieces([src], split_min_records=1, piece_records=1)
    assert len(pieces) == len(src.index_counts) == 23
    assert sorted(p.first_index for p in pieces)[0] == 0
    grouped = plan_pieces([src], split_min_records=1, piece_records=sum(
        n for _, n in src.index_counts) // 4)
    assert 4 <= len(grouped) < 23 and any(len(p.contigs) > 1 for p in grouped)
    assert set(src.contig_offsets) == {c for c, _ in src.index_counts}
    whole = read_all(src)
    cols = ["record_index", "chrom", "pos", "ref", "alts", "info", "format", "gt", "ad"]
    key = [("record_index", "ascending")]
    # bulk reads from the index's offsets, and htslib's region iterator (no offsets)
    for source in (src, dataclasses.replace(src, contig_offsets={})):
        for piece_records in (1, sum(n for _, n in src.index_counts) // 4):
            split = read_all(source, split_min_records=1, piece_records=piece_records)
            assert whole.select(cols).sort_by(key).equals(split.select(cols).sort_by(key))


def test_tasks_pack_small_files_and_keep_every_slot_busy():
    rnd = random.Random(7)
    weights = [rnd.choice([1, 50, 5_000, 20_000]) for _ in range(300)] + [900_000, 3_000_000]
    pieces = [Piece(f"/f{i}.vcf", 0, None, 0, None, w) for i, w in enumerate(weights)]
    total = sum(weights)
    for task_rows, slots in ((1_000_000, 1), (1_000_000, 2), (100_000, 8), (10**9, 3)):
        tasks = plan_tasks(pieces, task_rows, slots)
        big = sum(1 for w in weights if 2 * w >= task_rows)
        assert len(tasks) == min(len(pieces), max(slots, -(-total // task_rows), big))
        assert all(len(t) == 1 for t in tasks if 2 * t[0].weight >= task_rows)
        placed = [p for t in tasks for p in t]
        assert sorted(placed, key=lambda p: p.path) == sorted(pieces, key=lambda p: p.path)
        loads = [sum(p.weight for p in t) for t in tasks]
        assert loads == sorted(loads, reverse=True)  # largest task first
        # longest-processing-time packing: no task exceeds the mean by more than one piece
        assert max(loads) <= total / len(tasks) + max(weights)
        big = [t for t in tasks if any(p.weight == 3_000_000 for p in t)]
        assert len(big[0]) == 1  # a piece above the others' share stays alone
    assert len(plan_tasks(pieces, 10**9, 1)) == 1  # one core, small cohort: one task
    assert plan_tasks([], 10, 2) == []


@needs_bcftools
@pytest.mark.parametrize("name,csi", [(TCGA, False), (G1000, True), (TCGA, True)])
def test_contig_offsets_are_where_htslib_starts_each_contig(tmp_path, shared_data, name, csi):
    path = shared_data / "vcf" / name
    if csi and not Path(str(path) + ".csi").exists():
        path = tmp_path / name
        shutil.copy(shared_data / "vcf" / name, path)
        subprocess.run([BCFTOOLS, "index", "--csi", str(path)], check=True)
    index = str(path) + (".csi" if csi else ".tbi")
    # the counts read with the offsets are what `bcftools index --stats` prints
    offsets, counts = index_stats(index)
    stats = subprocess.run([BCFTOOLS, "index", "--stats", str(path)], capture_output=True,
                           text=True, check=True).stdout
    expected = tuple((c, int(n)) for c, _, n in (ln.split("\t") for ln in stats.splitlines()))
    assert counts == expected and sum(n for _, n in counts) == bcftools_records(path)
    assert read_source(str(path)).index_counts == counts
    with pysam.TabixFile(str(path), index=index) as tbx, pysam.BGZFile(str(path), "rb") as bgz:
        assert sorted(offsets) == sorted(tbx.contigs)
        for contig, offset in offsets.items():
            bgz.seek(offset)
            assert bgz.readline().decode() == next(tbx.fetch(contig))


def test_pieces_that_disagree_with_the_index_counts_are_reported(shared_data):
    """A stale or wrong index: an index_mismatch row says where, for the bulk reader (which
    keeps only the rows before the disagreement) and for htslib's region iterator."""
    src = read_source(str(shared_data / "vcf" / TCGA))
    (c1, n1), (c2, n2), *rest = src.index_counts
    for source in (src, dataclasses.replace(src, contig_offsets={})):
        # the index claims one record fewer on the first contig, one more on the second
        fewer = dataclasses.replace(source, index_counts=((c1, n1 - 1), (c2, n2 + 1), *rest))
        for piece_records in (1, n1 + n2):
            table = read_all(fewer, split_min_records=1, piece_records=piece_records)
            rules = [r for r in table.column("_rule").to_pylist() if r]
            assert rules and set(rules) == {"index_mismatch"}, (source.contig_offsets != {},
                                                               piece_records)
            if source.contig_offsets:  # the bulk reader stops at the first disagreement
                good = table.filter(pa.compute.is_null(table.column("_rule")))
                lost = 1 if piece_records == 1 else n2 + 1
                assert good.num_rows == sum(n for _, n in src.index_counts) - lost


@needs_bcftools
def test_bcf_rows_match_the_vcf(tmp_path, shared_data):
    vcf = shared_data / "vcf" / G1000
    bcf = tmp_path / "g.bcf"
    subprocess.run([BCFTOOLS, "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
    subprocess.run([BCFTOOLS, "index", str(bcf)], check=True)
    a = read_all(read_source(str(vcf)))
    b = read_all(read_source(str(bcf)), split_min_records=1)
    cols = ["record_index", "sample", "chrom", "pos", "ref", "alts", "filters", "gt", "ad",
            "dp"]
    key = [(c, "ascending") for c in ["record_index", "sample"]]
    assert a.select(cols).sort_by(key).equals(b.select(cols).sort_by(key))


def test_truncated_bgzip_keeps_what_can_be_read(tmp_path, shared_data):
    data = (shared_data / "vcf" / GERMLINE).read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    src = read_source(str(cut))
    table = read_all(src)
    rules = [r for r in table.column("_rule").to_pylist() if r]
    assert rules == ["truncated_file"]
    good = table.filter(pa.compute.is_null(table.column("_rule")))
    n_records = len(set(good.column("record_index").to_pylist()))
    # pysam (htslib) reads the same complete records before failing on the damaged block.
    pysam_n = 0
    with pytest.warns(UserWarning, match="truncated"):
        vf = pysam.VariantFile(str(cut), ignore_truncation=True)
    with pytest.raises(OSError):
        for _ in vf:
            pysam_n += 1
    with pytest.raises(OSError):  # htslib reports the damaged stream again on close
        vf.close()
    assert n_records == pysam_n > 0
    assert good.num_rows == n_records * len(src.samples)
    fail = table.filter(pa.compute.is_valid(table.column("_rule"))).to_pylist()[0]
    assert fail["record_index"] == n_records


# ---------------------------------------------------------------------------- checks
def _src(**kw) -> VcfSource:
    base = dict(path="/t.vcf", samples=("S1", "S2"), contigs_declared=("1", "2"),
                info={"DP": FieldDef("1", "Integer"), "DB": FieldDef("0", "Flag")},
                formats={"GT": FieldDef("1", "String"), "AD": FieldDef("R", "Integer")})
    base.update(kw)
    return VcfSource(**base)


def test_record_checks_flag_header_problems():
    lines = pa.array([
        "1\t10\t.\tA\tG\t50\tPASS\tDP=3;DB\tGT:AD\t0/1:3,4\t0/0:5,0",      # 0 fine
        "3\t10\t.\tA\tG\t50\tPASS\tDP=3\tGT\t0/1\t0/0",                    # 1 contig
        "1\t11\t.\tA\tG\t50\tPASS\tDP=3;XX=1\tGT\t0/1\t0/0",               # 2 INFO key
        "1\t12\t.\tA\tG\t50\tPASS\tDP=3;DP=4\tGT\t0/1\t0/0",               # 3 dup INFO
        "1\t13\t.\tA\tG\t50\tPASS\tDP=3\tGT:ZZ\t0/1:1\t0/0:1",             # 4 FORMAT key
        "1\t14\t.\tA\tG\t50\tPASS\tDP=3;;DB\tGT\t0/1\t0/0",                # 5 empty entry
        "1\t15\t.\tA\tG\t50\tPASS\tDP=3\tGT\t0/1",                         # 6 short line
    ])
    b = lines_to_batch(_src(), lines, 100)
    rows = b.to_pylist()
    assert len(rows) == 6 * 2 + 1  # six good lines x two samples + one malformed line
    rule = {}
    for r in rows:
        rule.setdefault(r["record_index"], set()).add(r["_rule"])
    assert rule == {100: {None}, 101: {"unknown_contig"}, 102: {"undeclared_info"},
                    103: {"duplicate_info"}, 104: {"undeclared_format"},
                    105: {"malformed_info"}, 106: {"malformed_line"}}
    short = next(r for r in rows if r["record_index"] == 106)
    assert short["_raw"].startswith("1\t15") and short["sample"] is None
    s2 = next(r for r in rows if r["record_index"] == 100 and r["sample"] == "S2")
    assert (s2["sample_index"], s2["gt"], s2["ad"]) == (1, "0/0", [5, 0])
    assert dict(s2["format"]) == {"GT": "0/0", "AD": "5,0"}
    assert dict(s2["info"]) == {"DP": "3", "DB": None} and s2["info_dp"] == 3


def test_without_contig_lines_human_names_are_accepted():
    lines = pa.array(["chr7\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/1",
                      "7\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/1",
                      "GL000192.1\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/1",
                      "chrZ\t5\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/1"])
    b = lines_to_batch(_src(contigs_declared=()), lines, 0).to_pylist()
    bad = {r["chrom"] for r in b if r["_rule"]}
    assert bad == {"chrZ"}


def _tricky_numbers() -> list[str]:
    """Every string up to 4 characters over digits, '.', 'e', 'E', '+', '-', 'x', and 100,000
    random ones up to 8 characters with letters Arrow's parsers know (nan, inf, 0x, 0b)."""
    import itertools
    import random

    out = {"".join(t) for n in range(5) for t in itertools.product("01.eE+-x", repeat=n)}
    rnd = random.Random(7)
    alphabet = "0123456789.eE+-xXnaNifIb _,٣"
    out.update("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
               for _ in range(100_000))
    out.update(["99999999999", "2147483647", "2147483648", "-2147483649",
                "9223372036854775808", "1" * 25, "1e400", "-1e400", "Infinity", "nan"])
    return sorted(out)


@pytest.mark.parametrize("pattern,typ", [
    ("COUNT_RE", pa.int32()), ("COUNT_RE", pa.int64()), ("INT_RE", pa.int32()),
    ("INT_RE", pa.int64()), ("FLOAT_RE", pa.float64())])
def test_number_parsing_is_exactly_the_vcf_pattern(pattern, typ):
    """The parser's fast checks (ascii_is_decimal, Arrow's float cast) accept exactly the
    strings the pattern does; what matches but does not fit the type is flagged, not raised."""
    import pyarrow.compute as pc

    from pipelines.genomics import rows

    regex = getattr(rows, pattern)
    strings = pa.array(_tricky_numbers() + [None])
    values, invalid = rows._parse(strings, regex, typ)
    matches = pc.match_substring_regex(strings, regex).to_pylist()
    limit = None if pa.types.is_floating(typ) else 2 ** (typ.bit_width - 1)
    checked = 0
    for s, ok, v, bad in zip(strings.to_pylist(), matches, values.to_pylist(), invalid,
                             strict=True):
        if s is None or s == ".":
            assert (v, bad) == (None, False)
        elif not ok:
            assert (v, bad) == (None, True), s
        elif limit is None:
            expected = float(s)
            assert (v, bad) == (expected, False), s
            checked += 1
        elif -limit <= int(s) < limit:
            assert (v, bad) == (int(s), False), s
            checked += 1
        else:
            assert (v, bad) == (None, True), s
    assert checked > 500


def test_absurd_values_are_quarantined_not_raised():
    src = _src(info={"DP": FieldDef("1", "Integer"), "END": FieldDef("1", "Integer")},
               formats={"GT": FieldDef("1", "String"), "AD": FieldDef("R", "Integer"),
                        "DP": FieldDef("1", "Integer")})
    lines = pa.array([
        "1\t10\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD:DP\t0/1:3,4:7\t0/0:5,0:5",                 # fine
        f"1\t{'9' * 25}\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD:DP\t0/1:3,4:7\t0/0:5,0:5",        # POS
        "1\t12\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD:DP\t0/1:3,4:99999999999\t0/0:5,0:5",     # DP
        "1\t13\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD:DP\t0/1:3,4294967296:7\t0/0:5,0:5",      # AD
        f"1\t14\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD:DP\t0/{'9' * 22}:3,4:7\t0/0:5,0:5",    # GT
        f"1\t15\t.\tA\tG\t50\tPASS\tDP={'9' * 30};END=1\tGT:AD:DP\t0/1:3,4:7\t0/0:5,0:5",
    ])
    rows = lines_to_batch(src, lines, 0).to_pylist()
    rule = {(r["record_index"], r["sample"]): r["_rule"] for r in rows}
    assert rule == {(0, "S1"): None, (0, "S2"): None,
                    (1, "S1"): "invalid_pos", (1, "S2"): "invalid_pos",
                    (2, "S1"): "invalid_dp", (2, "S2"): None,
                    (3, "S1"): "invalid_ad", (3, "S2"): None,
                    (4, "S1"): "malformed_gt", (4, "S2"): None,
                    (5, "S1"): None, (5, "S2"): None}
    # an INFO value out of range is kept verbatim in the map, its typed column left null
    last = next(r for r in rows if r["record_index"] == 5)
    assert dict(last["info"])["DP"] == "9" * 30 and last["info_dp"] is None

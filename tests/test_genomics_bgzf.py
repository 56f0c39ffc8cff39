"""The libdeflate BGZF reader against htslib's (pysam.BGZFile) on real files: the same
bytes from every virtual offset, and on damaged files the same data before the damage and
htslib's own error at it."""

from __future__ import annotations

import contextlib
import gzip
import struct

import pysam
import pytest

from pipelines.genomics.bgzf import BgzfReader
from pipelines.genomics.reader import iter_text_lines

FILES = ["germline_multisample_vep_snpeff.grch37.vcf.gz",
         "somatic_TCGA-A6-2686_COAD_tumor_normal.grch38.vcf.gz",
         "germline_1000G_NYGC_chr22_100samples.grch38.vcf.gz"]
EOF_MARKER = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def read_all(reader, size: int = 1 << 16) -> tuple[bytes, bool]:
    """Everything a reader yields until the end or an OSError: (bytes, whether it failed)."""
    parts = []
    try:
        while data := reader.read(size):
            parts.append(data)
    except OSError:
        return b"".join(parts), True
    finally:
        with contextlib.suppress(OSError):  # htslib reports some damage again on close
            reader.close()
    return b"".join(parts), False


def blocks(raw: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each BGZF block of a well-formed file."""
    out, off = [], 0
    while off < len(raw):
        size = struct.unpack_from("<H", raw, off + 16)[0] + 1
        out.append((off, size))
        off += size
    return out


@pytest.fixture(scope="module")
def multi_block(tmp_path_factory, shared_data):
    """A real VCF recompressed by htslib into many small blocks (pysam.tabix_compress)."""
    text = gzip.decompress((shared_data / "vcf" / FILES[0]).read_bytes())
    plain = tmp_path_factory.mktemp("bgzf") / "g.vcf"
    plain.write_bytes(text * 3)
    out = plain.with_suffix(".vcf.gz")
    pysam.tabix_compress(str(plain), str(out), force=True)
    assert len(blocks(out.read_bytes())) > 20
    return out


@pytest.mark.parametrize("name", FILES)
def test_same_bytes_as_htslib(shared_data, name):
    path = str(shared_data / "vcf" / name)
    ours, failed = read_all(BgzfReader(path))
    theirs, _ = read_all(pysam.BGZFile(path, "rb"))
    assert not failed and ours == theirs and len(ours) > 10_000


def test_seek_and_tell_use_htslib_virtual_offsets(multi_block):
    path = str(multi_block)
    raw = multi_block.read_bytes()
    text, _ = read_all(pysam.BGZFile(path, "rb"))
    # tell() after each one-block read is the next block's virtual offset
    reader = BgzfReader(path)
    starts = [0]
    while reader.read(1):
        starts.append(reader.tell())
    reader.close()
    assert [s >> 16 for s in starts[:-1]] == [off for off, _ in blocks(raw)][:len(starts) - 1]
    with pysam.BGZFile(path, "rb") as h, BgzfReader(path) as ours:
        for voffset in [starts[3], starts[7] | 5, starts[12] | 1000, starts[-2]]:
            h.seek(voffset)
            ours.seek(voffset)
            assert ours.tell() == voffset
            assert ours.read(200_000)[:150_000] == h.read(150_000)
    assert len(text) > 150_000


def _damage(multi_block, tmp_path, how: str):
    raw = bytearray(multi_block.read_bytes())
    off, size = blocks(bytes(raw))[10]
    if how == "corrupt":       # a byte of the compressed data
        raw[off + size // 2] ^= 0xFF
    elif how == "crc":         # the data intact, its stated CRC32 wrong
        raw[off + size - 8] ^= 0xFF
    elif how == "truncated":   # the file ends inside block 10
        del raw[off + size // 2:]
    elif how == "no_eof":      # cut at a block boundary: htslib reads it all, and so do we
        del raw[off:]
    elif how == "tiny_size":   # a BSIZE field too small for any block
        raw[off + 16:off + 18] = (4).to_bytes(2, "little")
    elif how == "gzip_member":  # a plain gzip member (no BGZF size) after the blocks
        del raw[off:]
        raw += gzip.compress(b"chr1\t1\t.\tA\tC\t.\t.\t.\n") + EOF_MARKER
    path = tmp_path / f"{how}.vcf.gz"
    path.write_bytes(bytes(raw))
    return str(path)


@pytest.mark.parametrize("how", ["corrupt", "crc", "truncated", "no_eof", "gzip_member",
                                 "tiny_size"])
def test_damaged_files_read_as_htslib_reads_them(multi_block, tmp_path, how):
    path = _damage(multi_block, tmp_path, how)
    ours, ours_failed = read_all(BgzfReader(path), size=1 << 20)
    theirs, theirs_failed = read_all(pysam.BGZFile(path, "rb"), size=1)
    assert ours_failed == theirs_failed
    # htslib read byte by byte gives up exactly at the damage; we hand over at the first
    # block we cannot vouch for, so we yield exactly the same bytes.
    assert ours == theirs
    if how in ("corrupt", "truncated"):
        assert ours_failed and 0 < len(ours) < len(read_all(pysam.BGZFile(
            str(multi_block), "rb"))[0])


def test_damaged_middle_block_keeps_the_lines_before_it(multi_block, tmp_path):
    """iter_text_lines on a corrupt middle block: every complete line before the damage,
    then the failure; pysam's own record loop reads the same records."""
    path = _damage(multi_block, tmp_path, "corrupt")
    items = list(iter_text_lines(path, "bgzf"))
    *lines, failure = items
    n = sum(len(x) for x in lines)
    assert failure.rule == "truncated_file" and failure.record_index == n > 0
    vf = pysam.VariantFile(path)
    count = 0
    with pytest.raises(OSError):
        for _ in vf:
            count += 1
    with pytest.raises(OSError):  # htslib reports the damaged stream again on close
        vf.close()
    assert count == n

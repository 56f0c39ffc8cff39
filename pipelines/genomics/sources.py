"""VCF/BCF inputs: find the files, read their headers with pysam, plan the read tasks.

Everything here runs on the driver and touches only headers and indexes, never records.
The result is a list of :class:`VcfSource` (one per file, picklable, JSON-able), a list of
:class:`Piece`: a whole file, or some whole contigs of a large indexed file, and the Spark
tasks that read them (:func:`plan_tasks`: small files share a task).

Why a piece is a contig and not an arbitrary range: the bronze key is the record's ordinal in
the file, and an index tells us exactly how many records each contig holds
(``bcftools index --stats``), so every task knows the ordinal of its first record without a
counting pass. A file is split only when it is bgzipped (or BCF), indexed, not truncated, its
index is not older than the data, and it holds at least ``split_min_records`` records.

>>> source_kind_from_magic(b"##fileformat=VCFv4.2", b"")
'vcf'
"""

from __future__ import annotations

import dataclasses
import gzip
import heapq
import json
import logging
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.lakehouse.errors import InputNotFoundError

log = logging.getLogger("oncorank.genomics")

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
# The 28-byte empty block that ends every complete BGZF file (SAM/BAM spec, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_DESCRIPTION_FORMAT = re.compile(r"Format:\s*'?\s*([^'\"]+?)\s*'?\s*$")
_SNPEFF_FIELDS = re.compile(r"'([^']+)'")
_CONTIG_LINE = re.compile(r"^##contig=<.*?\bID=([^,>]+)(?:.*?\blength=(\d+))?")


@dataclass(frozen=True)
class FieldDef:
    """One ``##INFO`` or ``##FORMAT`` declaration."""

    number: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class VcfSource:
    """What the reader needs to know about one file, taken from its header and index.

    ``contigs_declared`` holds the ``##contig`` IDs written in the file itself (htslib also
    adds contigs from a tabix index, which says nothing about the file's own declarations).
    ``problem`` is set when the file cannot be read at all; such a file becomes one
    quarantine row.
    """

    path: str
    kind: str = "vcf"  # vcf (plain text) | bgzf (bgzipped VCF) | gzip | bcf
    samples: tuple[str, ...] = ()
    info: dict[str, FieldDef] = field(default_factory=dict)
    formats: dict[str, FieldDef] = field(default_factory=dict)
    filters: tuple[str, ...] = ()
    contigs_declared: tuple[str, ...] = ()
    contig_lengths: dict[str, int] = field(default_factory=dict)
    csq_fields: tuple[str, ...] = ()
    ann_fields: tuple[str, ...] = ()
    header_issues: tuple[tuple[str, str, str], ...] = ()  # (section, id, issue)
    eof_ok: bool = True
    index_counts: tuple[tuple[str, int], ...] = ()  # (contig, records) in index order
    index_usable: bool = False
    # BGZF virtual offset of each contig's first record (bgzipped VCF with a .tbi/.csi)
    contig_offsets: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    @property
    def n_records_indexed(self) -> int | None:
        return sum(n for _, n in self.index_counts) if self.index_counts else None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> VcfSource:
        d = json.loads(text)
        d["info"] = {k: FieldDef(**v) for k, v in d["info"].items()}
        d["formats"] = {k: FieldDef(**v) for k, v in d["formats"].items()}
        d["header_issues"] = tuple(tuple(x) for x in d["header_issues"])
        d["index_counts"] = tuple(tuple(x) for x in d["index_counts"])
        for key in ("samples", "filters", "contigs_declared", "csq_fields", "ann_fields"):
            d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True)
class Piece:
    """One read: a whole file (``contigs`` None) or every record of some contigs.

    ``contigs`` are consecutive contigs of an indexed file with their indexed record counts;
    ``first_index`` is the ordinal of the piece's first record in the file.
    """

    path: str
    piece: int
    contigs: tuple[tuple[str, int], ...] | None
    first_index: int
    expected_records: int | None  # from the index; None when unknown
    weight: int  # estimated rows (records x samples), to schedule large pieces first


# ---------------------------------------------------------------------------- discovery
def discover(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Expand files and folders into a sorted, de-duplicated list of VCF/BCF paths.

    Folders are searched recursively; hidden folders (a generator's ``.parts``) and index
    files are skipped. A path that does not exist is a clear error.
    """
    found: list[str] = []
    for raw in paths:
        if not str(raw).strip():
            continue
        p = Path(raw).expanduser()
        if not p.exists():
            raise InputNotFoundError(
                f"VCF input {p} does not exist; pass an existing VCF/BCF file or a folder of "
                "them (settings [inputs] vcf, or `oncorank ingest vcf PATH`)."
            )
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                rel = child.relative_to(p).parts
                if any(part.startswith(".") for part in rel) or not child.is_file():
                    continue
                if child.name.lower().endswith(VCF_SUFFIXES):
                    found.append(str(child.resolve()))
        else:
            found.append(str(p.resolve()))
    return sorted(dict.fromkeys(found))


def source_kind_from_magic(head: bytes, decompressed: bytes) -> str:
    """``vcf``, ``bgzf``, ``gzip`` or ``bcf`` from a file's first bytes (and, for
    compressed files, the first decompressed bytes)."""
    if head[:2] == b"\x1f\x8b":
        if decompressed[:3] == b"BCF":
            return "bcf"
        # A BGZF block carries the extra subfield "BC" (SAM/BAM spec, section 4.1).
        return "bgzf" if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC" else "gzip"
    if head[:3] == b"BCF":
        return "bcf"  # uncompressed BCF
    return "vcf"


# ---------------------------------------------------------------------------- headers
def read_source(path: str) -> VcfSource:
    """Read one file's header (and index statistics) with pysam; never raises for bad files.

    A file that cannot be opened or whose header cannot be parsed comes back with
    ``problem`` set; its records are then not read.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(18)
            size = fh.seek(0, os.SEEK_END)
            tail = b""
            if size >= 28:
                fh.seek(size - 28)
                tail = fh.read(28)
    except OSError as exc:
        return VcfSource(path=path, problem=f"cannot open the file ({exc.strerror or exc})")
    if not head:
        return VcfSource(path=path, problem="the file is empty")
    decompressed = b""
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                decompressed = gz.read(4)
        except (OSError, EOFError) as exc:
            return VcfSource(path=path, kind="gzip",
                             problem=f"the gzip stream cannot be decompressed ({exc})")
    kind = source_kind_from_magic(head, decompressed)
    eof_ok = tail == BGZF_EOF if kind in ("bgzf", "bcf") and head[:2] == b"\x1f\x8b" else True

    try:
        header, declared, skipped = _pysam_header(path, kind)
    except Exception as exc:  # pysam raises ValueError/OSError with htslib's message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return VcfSource(path=path, kind=kind, eof_ok=eof_ok,
                         problem=f"the VCF/BCF header cannot be read ({first})")

    info = {k: FieldDef(str(v.number), str(v.type), v.description or "")
            for k, v in header.info.items()}
    formats = {k: FieldDef(str(v.number), str(v.type), v.description or "")
               for k, v in header.formats.items()}
    issues = header_issues(info, formats, declared) + skipped
    lengths = {}
    for name in declared:
        contig = header.contigs.get(name)
        if contig is not None and contig.length:
            lengths[name] = int(contig.length)
    counts, usable, offsets = (), False, {}
    if kind in ("bgzf", "bcf") and eof_ok:
        counts, usable, offsets = _index_facts(path, kind)
    return VcfSource(
        path=path,
        kind=kind,
        samples=tuple(header.samples),
        info=info,
        formats=formats,
        filters=tuple(header.filters),
        contigs_declared=tuple(declared),
        contig_lengths=lengths,
        csq_fields=annotation_fields(info.get("CSQ")),
        ann_fields=annotation_fields(info.get("ANN")),
        header_issues=issues,
        eof_ok=eof_ok,
        index_counts=counts,
        index_usable=usable,
        contig_offsets=offsets,
    )


def _pysam_header(path: str, kind: str):
    """The pysam header plus the contig IDs the file itself declares.

    Text VCFs (plain, gzip, bgzip) are parsed line by line into a ``pysam.VariantHeader``:
    that works for truncated files and plain gzip (which ``VariantFile`` cannot open), and
    keeps the declared contigs apart from those htslib would add from a tabix index. BCF
    headers are binary and come from ``pysam.VariantFile``.
    """
    import pysam

    if kind == "bcf":
        with warnings.catch_warnings():
            # A missing EOF marker is reported per file through VcfSource.eof_ok instead.
            warnings.simplefilter("ignore")
            vf = pysam.VariantFile(path, ignore_truncation=True)
        try:
            header = vf.header.copy()
        finally:
            vf.close()
        declared = [r.get("ID") for r in header.records if r.type == "CONTIG"]
        return header, [c for c in declared if c], ()

    header = pysam.VariantHeader()
    declared: list[str] = []
    skipped: list[tuple[str, str, str]] = []
    saw_columns = False
    opener = pysam.BGZFile if kind in ("bgzf", "gzip") else open
    with opener(path, "rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("##"):
                m = _CONTIG_LINE.match(line)
                if m:
                    # Contig lines are parsed here: thousands of them (GRCh38 with decoys)
                    # would make add_line the slowest part of reading a header.
                    declared.append(m.group(1))
                    if m.group(2):
                        header.contigs.add(m.group(1), length=int(m.group(2)))
                    continue
                try:
                    header.add_line(line)
                except Exception:  # keep going: one bad meta line must not sink the file
                    skipped.append(("meta", line[:60], "header line could not be parsed; "
                                    "ignored"))
            elif line.startswith("#CHROM"):
                samples = line.split("\t")[9:]
                if samples:
                    header.add_samples(samples)
                saw_columns = True
                break
            else:
                break
    if not saw_columns:
        raise ValueError("no #CHROM column header line")
    return header, declared, tuple(skipped)


def header_issues(info: dict[str, FieldDef], formats: dict[str, FieldDef],
                  declared_contigs: list[str]) -> tuple[tuple[str, str, str], ...]:
    """Header declarations that break the VCF spec, and what ingestion does about them.

    >>> header_issues({"GC": FieldDef("G", "Integer")}, {}, ["1"])[0][2][:41]
    'Number=G is valid only for FORMAT fields '
    """
    issues = []
    for key, d in info.items():
        if d.number == "G":
            # VCF 4.2 section 1.4.2: G (one value per genotype) has no meaning at site
            # level. pysam refuses to decode such fields (pysam issue #593); htslib reads
            # the record fine. We keep the value verbatim in `info` and do not type it.
            issues.append(("INFO", key, "Number=G is valid only for FORMAT fields (VCF 4.2 "
                           "section 1.4.2); the value is kept verbatim in `info` and not "
                           "typed"))
    if not declared_contigs:
        issues.append(("contig", "*", "no ##contig lines; CHROM is checked against human "
                       "reference contig names instead"))
    return tuple(issues)


def annotation_fields(defn: FieldDef | None) -> tuple[str, ...]:
    """Sub-field names of a VEP ``CSQ`` or SnpEff ``ANN`` INFO field, from its Description.

    >>> annotation_fields(FieldDef(".", "String", "Consequence annotations from Ensembl VEP. "
    ...                            "Format: Allele|Consequence|SYMBOL"))
    ('Allele', 'Consequence', 'SYMBOL')
    >>> annotation_fields(FieldDef(".", "String", "Functional annotations: 'Allele | "
    ...                            "Annotation | Gene_Name '"))
    ('Allele', 'Annotation', 'Gene_Name')
    """
    if defn is None or not defn.description:
        return ()
    text = defn.description
    m = _DESCRIPTION_FORMAT.search(text)
    if m and "|" in m.group(1):
        body = m.group(1)
    else:
        quoted = _SNPEFF_FIELDS.search(text)
        if not quoted or "|" not in quoted.group(1):
            return ()
        body = quoted.group(1)
    return tuple(part.strip() for part in body.split("|"))


def _index_facts(path: str, kind: str
                 ) -> tuple[tuple[tuple[str, int], ...], bool, dict[str, int]]:
    """Per-contig record counts (``bcftools index --stats``), whether they can be used to
    read the file in pieces, and each contig's first virtual offset, from the .tbi/.csi.

    The index of a bgzipped VCF is read once, here (:func:`index_stats`); a BCF's CSI names
    no contigs (the BCF header does), so its counts come from ``bcftools index --stats``.
    An index older than its data file may describe another version of the file, so such a
    file is read whole instead of by contig.
    """
    index = _index_path(path, kind)
    if index is None:
        return (), False, {}
    if os.path.getmtime(index) < os.path.getmtime(path):
        log.warning("index %s is older than its data file; reading the file whole", index)
        return (), False, {}
    if kind == "bgzf":
        stats = index_stats(index)
        if stats is not None:
            offsets, counts = stats
            return counts, bool(counts), offsets
    # A BCF, or an index index_stats cannot read: it had no offsets to give either.
    counts = _bcftools_index_counts(path)
    return counts, bool(counts), {}


def _bcftools_index_counts(path: str) -> tuple[tuple[str, int], ...]:
    import pysam.bcftools

    try:
        text = pysam.bcftools.index("--stats", path)
    except Exception:  # an index without statistics: read the file whole
        return ()
    counts = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].isdigit():
            counts.append((parts[0], int(parts[2])))
    return tuple(counts)


def _index_path(path: str, kind: str) -> str | None:
    candidates = [path + ".csi"] if kind == "bcf" else [path + ".tbi", path + ".csi"]
    return next((c for c in candidates if os.path.isfile(c)), None)


def index_stats(index: str) -> tuple[dict[str, int], tuple[tuple[str, int], ...]] | None:
    """(first virtual offset per contig, records per contig) from a .tbi/.csi that names
    its contigs, or None when it cannot say (no names — BCF indexes name contigs through the
    BCF header —, a reference without a pseudo-bin, an unreadable file).

    htslib stores, per reference, a pseudo-bin whose first chunk spans the reference's
    records: its start is where a reader seeks to read the contig as one stream, without
    going through the index's region iterator line by line. Its second chunk holds the
    mapped-record count: the counts, in the index's contig order, contigs without records
    left out, are what ``bcftools index --stats`` prints.
    """
    try:
        with gzip.open(index, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError):
        return None
    try:
        return _parse_index(data)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def _parse_index(data: bytes) -> tuple[dict[str, int], tuple[tuple[str, int], ...]] | None:
    i32, u32, u64 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<Q")
    pos = 4
    if data[:4] == b"TBI\x01":
        n_ref = i32.unpack_from(data, pos)[0]
        pos += 4 + 6 * 4
        l_nm = i32.unpack_from(data, pos)[0]
        names = data[pos + 4:pos + 4 + l_nm].split(b"\0")[:n_ref]
        pos += 4 + l_nm
        pseudo, csi = 37450, False
    elif data[:4] == b"CSI\x01":
        _, depth, l_aux = struct.unpack_from("<iii", data, pos)
        aux = data[pos + 12:pos + 12 + l_aux]
        pos += 12 + l_aux
        if len(aux) < 28:
            return None
        l_nm = i32.unpack_from(aux, 24)[0]
        names = aux[28:28 + l_nm].split(b"\0")
        n_ref = i32.unpack_from(data, pos)[0]
        pos += 4
        names = names[:n_ref]
        pseudo, csi = ((1 << ((depth + 1) * 3)) - 1) // 7 + 1, True
    else:
        return None
    if len(names) < n_ref:
        return None
    offsets: dict[str, int] = {}
    counts: list[tuple[str, int]] = []
    for ref in range(n_ref):
        n_bin = i32.unpack_from(data, pos)[0]
        pos += 4
        found = False
        for _ in range(n_bin):
            bin_id = u32.unpack_from(data, pos)[0]
            pos += 4 + (8 if csi else 0)
            n_chunk = i32.unpack_from(data, pos)[0]
            pos += 4
            if bin_id == pseudo and n_chunk == 2:
                name = names[ref].decode()
                offsets[name] = u64.unpack_from(data, pos)[0]
                mapped = u64.unpack_from(data, pos + 16)[0]
                if mapped:
                    counts.append((name, mapped))
                found = True
            pos += 16 * n_chunk
        if not csi:
            n_intv = i32.unpack_from(data, pos)[0]
            pos += 4 + 8 * n_intv
        if n_bin and not found:
            return None
    return offsets, tuple(counts)


# ---------------------------------------------------------------------------- pieces
def plan_pieces(sources: list[VcfSource], split_min_records: int = 200_000,
                piece_records: int = 1_000_000, slots: int = 1) -> list[Piece]:
    """One piece per file, or per group of consecutive contigs for large indexed files;
    largest first.

    A file with at least ``split_min_records`` indexed records is cut between contigs into
    pieces of about ``piece_records`` records (a contig is never cut), and into at least
    ``slots`` pieces when its contigs allow: every Spark task costs a fixed ~0.1 s, so pieces
    are as large as keeping every task slot busy permits.

    >>> s = VcfSource("/x.vcf.gz", kind="bgzf", index_counts=(("1", 5), ("2", 7), ("3", 2)),
    ...               index_usable=True)
    >>> [(p.contigs, p.first_index) for p in plan_pieces([s], split_min_records=10, slots=2)]
    [((('2', 7),), 5), ((('1', 5),), 0), ((('3', 2),), 12)]
    >>> [(p.contigs, p.first_index) for p in plan_pieces([s], 10, piece_records=9)]
    [((('2', 7), ('3', 2)), 5), ((('1', 5),), 0)]
    """
    pieces: list[Piece] = []
    for src in sources:
        if src.problem:
            continue
        total = src.n_records_indexed
        if src.index_usable and total is not None and total >= split_min_records:
            target = max(1, min(piece_records, -(-total // max(1, slots))))
            groups: list[list[tuple[str, int]]] = []
            for contig, n in src.index_counts:
                if groups and sum(c for _, c in groups[-1]) + n <= target:
                    groups[-1].append((contig, n))
                else:
                    groups.append([(contig, n)])
            offset = 0
            for i, group in enumerate(groups):
                n = sum(c for _, c in group)
                pieces.append(Piece(src.path, i, tuple(group), offset, n,
                                    n * max(1, len(src.samples))))
                offset += n
        else:
            pieces.append(Piece(src.path, 0, None, 0, total, _estimated_rows(src)))
    # Longest-processing-time first keeps the tail of the job short.
    return sorted(pieces, key=lambda p: -p.weight)


# Bytes per data row, to estimate the rows of a file no index counts (scheduling only):
# about 300 in plain text, about 35 bgzipped or BCF (the benchmark's somatic VCFs).
_BYTES_PER_ROW_TEXT, _BYTES_PER_ROW_COMPRESSED = 300, 35


def _estimated_rows(src: VcfSource) -> int:
    """Rows (records x samples) a whole file will give: counted by its index, else guessed
    from its size."""
    if src.n_records_indexed is not None:
        return src.n_records_indexed * max(1, len(src.samples))
    try:
        size = os.path.getsize(src.path)
    except OSError:
        return 1
    per_row = _BYTES_PER_ROW_TEXT if src.kind == "vcf" else _BYTES_PER_ROW_COMPRESSED
    return max(1, size // per_row)


def plan_tasks(pieces: list[Piece], task_rows: int,
               slots: int = 1) -> list[tuple[Piece, ...]]:
    """The Spark tasks: pieces packed so that small files share a task; largest first.

    A Spark Python task costs a fixed ~0.2 s (one core, measured), ten times the ~20 ms of
    reading a 5,000-record file: a cohort of 200 such files spent 44 s in 200 tasks for 4 s
    of reading. The pieces are packed, largest first, each into the least loaded of ``k``
    tasks (longest-processing-time scheduling), where ``k`` is the number of tasks of about
    ``task_rows`` rows the input fills, at least ``slots`` (when there are that many pieces)
    so that every task slot stays busy, and at least the number of pieces of half a task or
    more: those each get a task of their own, as a split file's contig pieces do, and the
    small files fill in around them. ``task_rows`` is ``genomics.task_records``: at its
    default, 4M rows (~8 s of one core), the fixed cost stays near 2%, and a split file's
    ~1M-row pieces still spread over every slot.

    >>> ps = [Piece(f"/{n}.vcf", 0, None, 0, None, w) for n, w in enumerate([9, 5, 4, 3, 1])]
    >>> [[p.path for p in t] for t in plan_tasks(ps, task_rows=10, slots=2)]
    [['/0.vcf'], ['/2.vcf', '/3.vcf'], ['/1.vcf', '/4.vcf']]
    >>> len(plan_tasks(ps, task_rows=100, slots=1)), len(plan_tasks(ps, task_rows=1, slots=1))
    (1, 5)
    """
    if not pieces:
        return []
    ordered = sorted(pieces, key=lambda p: -p.weight)
    total = sum(max(1, p.weight) for p in ordered)
    big = sum(1 for p in ordered if 2 * p.weight >= task_rows)  # a task's worth on their own
    k = min(len(ordered), max(slots, -(-total // max(1, task_rows)), big))
    load = [(0, i) for i in range(k)]  # (rows, task) heap: the least loaded task first
    tasks: list[list[Piece]] = [[] for _ in range(k)]
    for p in ordered:
        rows, i = heapq.heappop(load)
        tasks[i].append(p)
        heapq.heappush(load, (rows + max(1, p.weight), i))
    return sorted((tuple(t) for t in tasks), key=lambda t: -sum(p.weight for p in t))

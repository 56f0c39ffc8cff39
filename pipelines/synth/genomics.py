"""Tumour VCF records for one patient: drivers at their GRCh38 positions plus passengers.

The VCF is what a somatic exome pipeline with VEP annotation would hand over: VCF 4.2,
GRCh38 ``##contig`` lines, FORMAT ``GT:AD:DP:AF``, PASS plus ``LowQual``/``strand_bias``
calls, a few multi-allelic sites, a VEP ``CSQ`` INFO field and the ERBB2 amplification as a
symbolic ``<DUP>`` with ``SVTYPE``/``END``/``CN``.

There is no reference FASTA in the product, so passenger REF bases come from a fixed hash of
(contig, position): every patient sees the same "reference" base at a position, which keeps
multi-sample merges consistent. Passenger annotation (consequence, protein change) is a pure
function of the allele for the same reason. Driver REF/ALT are the real GRCh38 alleles.

Passenger protein changes follow a small protein model, so that a report never shows a residue
the protein lacks or an amino-acid change no point mutation can make:

* **Residue.** A position maps linearly from the gene span onto residues 2..L, L being the
  canonical protein length of ``pipelines/resources/protein_lengths.tsv`` (UniProt). This is a
  simplification: real coding exons are a small, uneven part of a span, and residue 1 is
  left out because a change of the initiator Met is ``start_lost``, not in the mix here.
  Residues rise with the position whatever the gene's strand.
* **Reference codon.** Each (gene, residue) has one sense codon, drawn from a hash of the two
  (:func:`reference_codon`): every variant at a residue, in any patient, agrees on its
  reference amino acid.
* **SNVs.** A few sites are splice sites (``splice_consequences`` in genome.yaml; no HGVSp).
  At the others one base of the reference codon, at a codon position chosen by the site's
  hash, is substituted and the codon is translated with the standard genetic code:
  same amino acid -> ``synonymous_variant`` (LOW, ``p.Leu858=``), stop -> ``stop_gained``
  (HIGH, ``p.Arg213Ter``), else ``missense_variant`` (MODERATE, ``p.Leu858Arg``). So the
  consequence mix comes out of the codons instead of being drawn: about 67 % missense, 29 %
  synonymous and 3.5 % stop_gained of coding SNVs (TCGA MC3: roughly 66/24/5 %, with more
  stops from C>T at CpG, which a uniform codon draw does not model).
  The pseudo-reference is not a coding sequence, so the substituted base is the VCF ALT
  moved by the cyclic shift (in ACGT order) that takes the VCF REF onto the codon's base:
  two ALTs at one site give two different codons, and a transition stays a transition.
* **Indels.** A length that is not a multiple of 3 is a frameshift (``p.Arg97ProfsTer23``),
  else an in-frame deletion or insertion of 1-2 residues, the flanking residues named with
  the same reference codons.

>>> header_lines(["PT000001"])[0]
'##fileformat=VCFv4.2'
>>> GENETIC_CODE["ATG"], GENETIC_CODE["TGA"], len(SENSE_CODONS)
('Met', 'Ter', 61)
>>> protein_lengths()["RB1"]
928
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pipelines.genomics.proteins import protein_lengths
from pipelines.lakehouse.errors import ConfigError
from pipelines.synth.patient import STREAM_GENOME, Patient, patient_rng
from pipelines.synth.world import World, load_world

CSQ_FIELDS = ("Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|"
              "HGVSc|HGVSp|CANONICAL")
BASES = np.array(list("ACGT"))
TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
OTHERS = {b: [o for o in "ACGT" if o != b] for b in "ACGT"}
_TRANSITION_IDX = np.array(["ACGT".index(TRANSITION[b]) for b in "ACGT"])
_OTHERS_IDX = np.array([["ACGT".index(o) for o in OTHERS[b]] for b in "ACGT"])

THREE_LETTER = {"A": "Ala", "R": "Arg", "N": "Asn", "D": "Asp", "C": "Cys", "Q": "Gln",
                "E": "Glu", "G": "Gly", "H": "His", "I": "Ile", "L": "Leu", "K": "Lys",
                "M": "Met", "F": "Phe", "P": "Pro", "S": "Ser", "T": "Thr", "W": "Trp",
                "Y": "Tyr", "V": "Val", "*": "Ter"}
AMINO = tuple(v for v in THREE_LETTER.values() if v != "Ter")
# The standard genetic code (NCBI translation table 1), codons in TCAG x TCAG x TCAG order.
_TABLE_1 = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
GENETIC_CODE = {a + b + c: THREE_LETTER[_TABLE_1[16 * i + 4 * j + k]]
                for i, a in enumerate("TCAG") for j, b in enumerate("TCAG")
                for k, c in enumerate("TCAG")}
SENSE_CODONS = tuple(sorted(c for c, aa in GENETIC_CODE.items() if aa != "Ter"))
_BASE_INDEX = {b: i for i, b in enumerate("ACGT")}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread integer hash (vectorised)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ref_index(contig_index: np.ndarray, pos: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        key = pos.astype(np.uint64) * np.uint64(64) + contig_index.astype(np.uint64)
    return (_mix(key) & np.uint64(3)).astype(np.int64)


def ref_bases(contig_index: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The pseudo-reference base at each (contig, position): same answer for every patient."""
    return BASES[_ref_index(contig_index, pos)]


def _mix_int(x: int) -> int:
    """Scalar splitmix64 finaliser (same function as :func:`_mix`)."""
    x &= 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _allele_code(allele: str) -> int:
    return zlib.crc32(allele.encode()) & 0xFFFFFF


def _allele_hash(contig_index: int, pos: int, allele: str) -> int:
    """Hash of (site, "REF>ALT"): what a passenger indel's protein change is drawn from."""
    return _mix_int((pos * 64 + contig_index) ^ (_allele_code(allele) << 40))


def _site_hash(contig_index: int, pos: int) -> int:
    """Hash of the site alone (scalar twin of the ``site`` array in :func:`patient_records`)."""
    return _mix_int(pos * 64 + contig_index)


# --------------------------------------------------------------------------- protein model
def residue_at(gene: tuple[str, str, int, int], pos: int, length: int) -> int:
    """The residue (2..``length``) a position in ``gene``'s span maps to, linearly.

    >>> residue_at(("RB1", "chr13", 48303751, 48481890), 48481890, 928)
    928
    >>> residue_at(("RB1", "chr13", 48303751, 48481890), 48303751, 928)
    2
    """
    span = gene[3] - gene[2] + 1
    return 2 + (pos - gene[2]) * (length - 1) // span


def reference_codon(symbol: str, residue: int) -> str:
    """The sense codon of residue ``residue`` of ``symbol``'s protein (a fixed hash of the
    two, so every variant at a residue agrees on the reference amino acid)."""
    # _allele_code is a 24-bit CRC of any text; here of the gene symbol.
    return SENSE_CODONS[_mix_int((_allele_code(symbol) << 24) | residue) % len(SENSE_CODONS)]


def reference_amino_acid(symbol: str, residue: int) -> str:
    """Three-letter reference amino acid of a residue (the translated reference codon)."""
    return GENETIC_CODE[reference_codon(symbol, residue)]


def _other_amino_acid(h: int, avoid: set[str]) -> str:
    """An amino acid outside ``avoid``, chosen by ``h``."""
    choices = [a for a in AMINO if a not in avoid]
    return choices[h % len(choices)]


def substituted_codon(codon: str, site: int, ref: str, alt: str) -> str:
    """The reference codon with one base substituted, for the VCF allele ``ref``>``alt``.

    The codon position comes from the site's hash. The new base is ``alt`` moved by the
    cyclic shift (in ACGT order) that takes ``ref`` onto the codon's base there: a bijection
    that never returns the codon's own base, gives two ALTs at one site two different
    codons, and keeps transitions (A<->G, C<->T: two steps apart) transitions.

    >>> substituted_codon("CGT", 3, "C", "T")    # site % 3 == 0: the first base, C>T
    'TGT'
    """
    k = site % 3
    shift = _BASE_INDEX[codon[k]] - _BASE_INDEX[ref]
    new = "ACGT"[(_BASE_INDEX[alt] + shift) % 4]
    return codon[:k] + new + codon[k + 1:]


def snv_change(symbol: str, residue: int, site: int, ref: str, alt: str
               ) -> tuple[str, str, str]:
    """(consequence, IMPACT, HGVSp) of a coding SNV at ``residue``: the translated codon
    change (see the module docstring).

    >>> reference_codon("RB1", 170)
    'CAG'
    >>> [snv_change("RB1", 170, site, "C", "T") for site in (0, 1, 2)]   # CAG -> TAG, CGG, CAA
    ... # doctest: +NORMALIZE_WHITESPACE
    [('stop_gained', 'HIGH', 'p.Gln170Ter'), ('missense_variant', 'MODERATE', 'p.Gln170Arg'),
     ('synonymous_variant', 'LOW', 'p.Gln170=')]
    """
    codon = reference_codon(symbol, residue)
    ref_aa, alt_aa = GENETIC_CODE[codon], GENETIC_CODE[substituted_codon(codon, site, ref, alt)]
    if alt_aa == ref_aa:
        return "synonymous_variant", "LOW", f"p.{ref_aa}{residue}="
    if alt_aa == "Ter":
        return "stop_gained", "HIGH", f"p.{ref_aa}{residue}Ter"
    return "missense_variant", "MODERATE", f"p.{ref_aa}{residue}{alt_aa}"


def indel_change(symbol: str, residue: int, length: int, ref: str, alt: str, h: int
                 ) -> tuple[str, str, str]:
    """(consequence, IMPACT, HGVSp) of an indel (VCF ``ref``/``alt`` share their first base)
    at ``residue`` of a protein of ``length`` residues; ``h`` is the allele's hash."""
    size = abs(len(ref) - len(alt))
    aa = reference_amino_acid
    if size % 3:
        # p.Arg97ProfsTer23: the first changed residue differs from the reference one.
        first = _other_amino_acid(h // 7, {aa(symbol, residue)})
        return ("frameshift_variant", "HIGH",
                f"p.{aa(symbol, residue)}{residue}{first}fsTer{2 + h // 11 % 40}")
    n = size // 3
    # In-frame changes keep every residue they name inside the protein.
    residue = min(residue, length - 1)
    if len(ref) > len(alt):
        residue = min(residue, length - n + 1)
        # HGVS names a deletion at its most 3' equivalent place: while the residue after the
        # deleted stretch equals its first, the same protein results one residue on.
        while residue + n <= length and aa(symbol, residue + n) == aa(symbol, residue):
            residue += 1
        last = residue + n - 1
        span = (f"{aa(symbol, residue)}{residue}" if n == 1 else
                f"{aa(symbol, residue)}{residue}_{aa(symbol, last)}{last}")
        return "inframe_deletion", "MODERATE", f"p.{span}del"
    left, right = aa(symbol, residue), aa(symbol, residue + 1)
    # Residues unlike both flanks: otherwise HGVS would call it a dup or shift it 3'.
    inserted = "".join(_other_amino_acid(h // (13 + 6 * i), {left, right}) for i in range(n))
    return ("inframe_insertion", "MODERATE",
            f"p.{left}{residue}_{right}{residue + 1}ins{inserted}")


@dataclass(frozen=True)
class GenomeModel:
    """Pre-computed lookups (built once per cohort)."""

    contigs: tuple[str, ...]
    contig_index: dict[str, int]
    genes: tuple[tuple[str, str, int, int], ...]
    gene_weights: np.ndarray
    protein_lengths: dict[str, int]
    splice_consequences: tuple[tuple[float, str, str], ...]
    indel_fraction: float
    multiallelic_fraction: float
    filters: tuple[tuple[str, float], ...]
    target_size_mb: float
    gene_starts: np.ndarray
    gene_ends: np.ndarray
    gene_contigs: np.ndarray


def genome_model(world: World | None = None) -> GenomeModel:
    world = world or load_world()
    g = world.genome
    contigs = tuple(g["contigs"])
    genes = tuple((str(s), str(c), int(a), int(b)) for s, c, a, b in g["passenger_genes"])
    lengths = protein_lengths()
    missing = sorted(({s for s, *_ in genes} | {d["gene"] for d in world.drivers.values()})
                     - set(lengths))
    if missing:
        raise ConfigError(
            f"genome.yaml names genes {missing} that pipelines/synth/resources/"
            f"protein_lengths.tsv lacks; add their canonical protein length (UniProt).")
    # Passenger hits scale with the square root of the gene span: coding length grows much
    # more slowly than the span of long, intron-rich genes.
    w = np.sqrt(np.array([b - a + 1 for _, _, a, b in genes], dtype=float))
    # Splice consequences by cumulative share of the site draw; the rest of the sites are
    # coding and get their consequence from the codon change.
    splice, total = [], 0.0
    for name, impact, share in g["splice_consequences"]:
        total += float(share)
        splice.append((total, str(name), str(impact)))
    return GenomeModel(
        contigs=contigs, contig_index={c: i for i, c in enumerate(contigs)}, genes=genes,
        gene_weights=w / w.sum(), protein_lengths=lengths,
        splice_consequences=tuple(splice), indel_fraction=float(g["indel_fraction"]),
        multiallelic_fraction=float(g["multiallelic_fraction"]),
        filters=tuple((k, float(v["fraction"])) for k, v in g["filters"].items()),
        target_size_mb=float(g["target_size_mb"]),
        gene_starts=np.array([a for _, _, a, _ in genes], dtype=np.int64),
        gene_ends=np.array([b for _, _, _, b in genes], dtype=np.int64),
        gene_contigs=np.array([contigs.index(c) for _, c, _, _ in genes], dtype=np.int64))


def header_lines(samples: list[str], world: World | None = None) -> list[str]:
    world = world or load_world()
    g = world.genome
    lines = ["##fileformat=VCFv4.2", "##source=oncorank-synth", f"##reference={g['reference']}"]
    lines += [f"##contig=<ID={c},length={n},assembly=GRCh38>" for c, n in g["contigs"].items()]
    lines.append('##FILTER=<ID=PASS,Description="All filters passed">')
    for name, spec in g["filters"].items():
        lines.append(f'##FILTER=<ID={name},Description="{spec["description"]}">')
    lines += [
        '##ALT=<ID=DUP,Description="Duplication (copy-number gain)">',
        '##INFO=<ID=SVTYPE,Number=1,Type=String,Description="Type of structural variant">',
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the structural '
        'variant">',
        '##INFO=<ID=SVLEN,Number=1,Type=Integer,Description="Length of the structural '
        'variant">',
        '##INFO=<ID=CN,Number=1,Type=Integer,Description="Estimated tumour copy number">',
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic call (tumour only)">',
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
        f'Ensembl VEP. Format: {CSQ_FIELDS}">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the ref and '
        'alt alleles">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Variant allele fraction">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    return lines


def _csq(allele, consequence, impact, symbol, gene="", transcript="", exon="", hgvsc="",
         hgvsp="", canonical="") -> str:
    feature_type = "Transcript" if transcript else ""
    biotype = "protein_coding"
    # VEP percent-encodes characters that would break the INFO syntax ("=" in p.Arg12=).
    hgvsp = hgvsp.replace("=", "%3D")
    return "|".join((allele, consequence, impact, symbol, gene, feature_type, transcript,
                     biotype, exon, hgvsc, hgvsp, canonical))


def _driver_line(world: World, key: str, rng: np.random.Generator, purity: float) -> tuple:
    d = world.drivers[key]
    gi = world.contigs.index(d["chrom"])
    if d["alt"] == "<DUP>":
        cn = int(rng.integers(6, 21))
        csq = _csq("duplication", d["consequence"], d["impact"], d["gene"], d["gene_id"],
                   d["transcript"], canonical="YES")
        info = (f"SVTYPE=DUP;END={d['end']};SVLEN={d['end'] - d['pos']};CN={cn};"
                f"SOMATIC;CSQ={csq}")
        sample = "0/1:.:.:."
        qual = "."
    else:
        dp = int(rng.integers(180, 900))
        vaf = float(np.clip(purity * rng.beta(8, 8), 0.04, 0.95))
        alt_reads = max(8, int(rng.binomial(dp, vaf)))
        # VEP writes a deletion's allele as "-" (the anchor base is not part of it).
        allele = "-" if len(d["ref"]) > len(d["alt"]) else d["alt"]
        csq = _csq(allele, d["consequence"], d["impact"], d["gene"], d["gene_id"],
                   d["transcript"], d["exon"], f"{d['transcript']}:{d['hgvsc']}", d["hgvsp"],
                   "YES")
        info = f"SOMATIC;CSQ={csq}"
        sample = f"0/1:{dp - alt_reads},{alt_reads}:{dp}:{alt_reads / dp:.3f}"
        qual = f"{min(3000.0, 12.0 * alt_reads):.1f}"
    line = (f"{d['chrom']}\t{d['pos']}\t{d['id']}\t{d['ref']}\t{d['alt']}\t{qual}\tPASS\t"
            f"{info}\tGT:AD:DP:AF\t{sample}")
    return gi, int(d["pos"]), line


def _splice_consequence(model: GenomeModel, site: int) -> tuple[str, str] | None:
    """(consequence, IMPACT) when the site is a splice site, else None (a coding site).

    Uses other bits of the site hash than the codon position (``site % 3``)."""
    u = (site >> 24) % 1_000_003 / 1_000_003
    for upper, name, impact in model.splice_consequences:
        if u < upper:
            return name, impact
    return None


def _snv_csq(model: GenomeModel, gene: tuple[str, str, int, int], pos: int, site: int,
             ref: str, alt: str) -> tuple[str, str]:
    """(CSQ entry, consequence) of a passenger SNV ``ref``>``alt``; ``site`` is its site hash."""
    splice = _splice_consequence(model, site)
    if splice is not None:
        return _csq(alt, splice[0], splice[1], gene[0]), splice[0]
    residue = residue_at(gene, pos, model.protein_lengths[gene[0]])
    consequence, impact, hgvsp = snv_change(gene[0], residue, site, ref, alt)
    return _csq(alt, consequence, impact, gene[0], hgvsp=hgvsp), consequence


def _passenger_csq(model: GenomeModel, gi: int, pos: int, ref: str, alt: str,
                   gene: tuple[str, str, int, int]) -> tuple[str, str]:
    """(CSQ entry, consequence) for a passenger allele; a function of the allele only."""
    if len(ref) == len(alt):
        return _snv_csq(model, gene, pos, _site_hash(gi, pos), ref, alt)
    length = model.protein_lengths[gene[0]]
    residue = residue_at(gene, pos, length)
    h = _allele_hash(gi, pos, ref + ">" + alt)
    consequence, impact, hgvsp = indel_change(gene[0], residue, length, ref, alt, h)
    # VEP writes a deletion's allele as "-" and an insertion's without the anchor base.
    allele = "-" if len(ref) > len(alt) else alt[1:]
    return _csq(allele, consequence, impact, gene[0], hgvsp=hgvsp), consequence


def patient_records(world: World, model: GenomeModel, patient: Patient, seed: int) -> list[str]:
    """The sorted data lines of a patient's single-sample tumour VCF.

    Numbers are drawn in bulk with numpy; the loop only assembles strings (this function is
    the generator's hot path: ~350 records per patient on average, up to ~2,000).
    """
    rng = patient_rng(seed, patient.index, STREAM_GENOME)
    purity = float(rng.uniform(0.35, 0.9))
    records = [_driver_line(world, k, rng, purity) for k in patient.vcf_drivers]

    n_true = int(rng.poisson(patient.tmb * model.target_size_mb))
    fail_rate = sum(f for _, f in model.filters)
    n_fail = int(rng.poisson(n_true * fail_rate / (1 - fail_rate)))
    n = n_true + n_fail
    gene_idx = rng.choice(len(model.genes), size=n, p=model.gene_weights)
    starts = model.gene_starts[gene_idx]
    ends = model.gene_ends[gene_idx]
    pos = (starts + (rng.random(n) * (ends - starts + 1)).astype(np.int64)).astype(np.int64)
    contig = model.gene_contigs[gene_idx]
    is_fail = np.zeros(n, dtype=bool)
    is_fail[rng.permutation(n)[:n_fail]] = True
    fail_kind = rng.random(n)
    kind = rng.random(n)
    ref_idx = _ref_index(contig, pos)
    refs = BASES[ref_idx]
    transition = rng.random(n) < 0.65
    alt_choice = rng.integers(0, 3, size=n)
    vaf = rng.beta(2.2, 5.0, size=n) * purity * 1.6
    depth = rng.negative_binomial(8, 8 / (8 + 140.0), size=n) + 20
    indel_len = rng.integers(1, 7, size=n)
    ins_bases = BASES[rng.integers(0, 4, size=(n, 6))]
    second_alt = rng.integers(0, 3, size=n)

    # Filters, depths and allele fractions, all vectorised.
    fail_cum = np.cumsum([f for _, f in model.filters]) / fail_rate
    filt_idx = np.where(is_fail, np.minimum(np.searchsorted(fail_cum, fail_kind, side="right"),
                                            len(model.filters) - 1) + 1, 0)
    filt_names = ["PASS"] + [name for name, _ in model.filters]
    low = np.array([False] + [name == "LowQual" for name, _ in model.filters])[filt_idx]
    bias = np.array([False] + [name == "strand_bias" for name, _ in model.filters])[filt_idx]
    depth = np.where(low, 5 + depth % 11, depth)
    vaf = np.where(bias, 0.06, np.clip(vaf, 0.03, 0.97))
    alt1 = np.maximum(2, np.rint(depth * vaf)).astype(np.int64)

    # SNV alleles and the site hashes, vectorised (_site_hash is the scalar twin that
    # _passenger_csq uses for indels and second ALTs, so both paths annotate alike).
    alt_idx = np.where(transition, _TRANSITION_IDX[ref_idx], _OTHERS_IDX[ref_idx, alt_choice])
    site = _mix(pos.astype(np.uint64) * np.uint64(64) + contig.astype(np.uint64))

    seen = {(gi_, p_) for gi_, p_, _ in records}
    L = (contig.tolist(), pos.tolist(), gene_idx.tolist(), refs.tolist(), kind.tolist(),
         indel_len.tolist(), BASES[alt_idx].tolist(), second_alt.tolist(),
         depth.tolist(), filt_idx.tolist(), alt1.tolist(), low.tolist(), site.tolist())
    indel_cut, del_cut = model.indel_fraction, model.indel_fraction / 2
    multi_cut = 1.0 - model.multiallelic_fraction
    for j, (c, p, g, ref, k, length, alt, second, dp, fi, a1, is_low, st) in enumerate(
            zip(*L, strict=True)):
        if (c, p) in seen:
            continue
        seen.add((c, p))
        gene = model.genes[g]
        snv_csq = None
        if k < indel_cut:
            if k < del_cut:                          # deletion of `length` bases after POS
                nxt = ref_bases(np.full(length, c), np.arange(p + 1, p + 1 + length))
                ref_allele, alts = ref + "".join(nxt.tolist()), [ref]
            else:                                     # insertion after POS
                ref_allele, alts = ref, [ref + "".join(ins_bases[j, :length].tolist())]
        else:
            ref_allele, alts = ref, [alt]
            snv_csq = _snv_csq(model, gene, p, st, ref, alt)[0]
            if k > multi_cut:
                rest = [b for b in OTHERS[ref] if b != alt]
                alts.append(rest[second % len(rest)])
        alt_reads = [a1] if len(alts) == 1 else [max(2, a1 * 2 // 3), max(2, a1 // 3)]
        ref_reads = max(0, dp - sum(alt_reads))
        dp = ref_reads + sum(alt_reads)
        if len(alts) == 1:
            gt, ad, af = "0/1", f"{ref_reads},{a1}", f"{a1 / dp:.3f}"
        else:
            gt = "1/2"
            ad = f"{ref_reads},{alt_reads[0]},{alt_reads[1]}"
            af = f"{alt_reads[0] / dp:.3f},{alt_reads[1] / dp:.3f}"
        total_alt = sum(alt_reads)
        qual = 3.0 + 2.5 * total_alt if is_low else 8.0 + 9.5 * total_alt
        if snv_csq is None:
            csq = _passenger_csq(model, c, p, ref_allele, alts[0], gene)[0]
        else:
            csq = snv_csq
        if len(alts) == 2:
            csq += "," + _passenger_csq(model, c, p, ref_allele, alts[1], gene)[0]
        filt = filt_names[fi]
        info = f"SOMATIC;CSQ={csq}" if fi == 0 else f"CSQ={csq}"
        records.append((c, p, f"{model.contigs[c]}\t{p}\t.\t{ref_allele}\t{','.join(alts)}\t"
                              f"{qual:.1f}\t{filt}\t{info}\tGT:AD:DP:AF\t{gt}:{ad}:{dp}:{af}"))
    records.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in records]


def count_pass(lines: list[str]) -> int:
    """PASS records that are point mutations or indels (what TMB counts; not the <DUP>)."""
    return sum(1 for ln in lines if "\tPASS\t" in ln and "<DUP>" not in ln)

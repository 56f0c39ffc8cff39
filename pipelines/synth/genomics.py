"""Tumour VCF records for one patient: drivers at their GRCh38 positions plus passengers.

The VCF is what a somatic exome pipeline with VEP annotation would hand over: VCF 4.2,
GRCh38 ``##contig`` lines, FORMAT ``GT:AD:DP:AF``, PASS plus ``LowQual``/``strand_bias``
calls, a few multi-allelic sites, a VEP ``CSQ`` INFO field and the ERBB2 amplification as a
symbolic ``<DUP>`` with ``SVTYPE``/``END``/``CN``.

There is no reference FASTA in the product, so passenger REF bases come from a fixed hash of
(contig, position): every patient sees the same "reference" base at a position, which keeps
multi-sample merges consistent. Passenger annotation (consequence, protein change) is a pure
function of the allele for the same reason. Driver REF/ALT are the real GRCh38 alleles.

>>> header_lines(["PT000001"])[0]
'##fileformat=VCFv4.2'
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from pipelines.synth.patient import STREAM_GENOME, Patient, patient_rng
from pipelines.synth.world import World, load_world

CSQ_FIELDS = ("Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|"
              "HGVSc|HGVSp|CANONICAL")
BASES = np.array(list("ACGT"))
AMINO = ("Ala", "Arg", "Asn", "Asp", "Cys", "Gln", "Glu", "Gly", "His", "Ile", "Leu", "Lys",
         "Met", "Phe", "Pro", "Ser", "Thr", "Trp", "Tyr", "Val")
TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
OTHERS = {b: [o for o in "ACGT" if o != b] for b in "ACGT"}
_TRANSITION_IDX = np.array(["ACGT".index(TRANSITION[b]) for b in "ACGT"])
_OTHERS_IDX = np.array([["ACGT".index(o) for o in OTHERS[b]] for b in "ACGT"])


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
    """Hash of (site, "REF>ALT"): what a passenger allele's annotation is derived from."""
    return _mix_int((pos * 64 + contig_index) ^ (_allele_code(allele) << 40))


# _allele_code of every SNV "R>A", indexed [ref, alt] in ACGT order (vectorised path).
_SNV_CODES = np.array([[_allele_code(f"{r}>{a}") for a in "ACGT"] for r in "ACGT"],
                      dtype=np.uint64)


@dataclass(frozen=True)
class GenomeModel:
    """Pre-computed lookups (built once per cohort)."""

    contigs: tuple[str, ...]
    contig_index: dict[str, int]
    genes: tuple[tuple[str, str, int, int], ...]
    gene_weights: np.ndarray
    snv_consequences: tuple[tuple[str, str], ...]
    snv_cum: np.ndarray
    snv_cum_list: list
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
    # Passenger hits scale with the square root of the gene span: coding length grows much
    # more slowly than the span of long, intron-rich genes.
    w = np.sqrt(np.array([b - a + 1 for _, _, a, b in genes], dtype=float))
    cons = g["snv_consequences"]
    cum = np.cumsum([c[2] for c in cons])
    return GenomeModel(
        contigs=contigs, contig_index={c: i for i, c in enumerate(contigs)}, genes=genes,
        gene_weights=w / w.sum(), snv_consequences=tuple((c[0], c[1]) for c in cons),
        snv_cum=cum / cum[-1], snv_cum_list=(cum / cum[-1]).tolist(), indel_fraction=float(g["indel_fraction"]),
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


def _protein_change(site: int, h: int, consequence: str, gene_pos: int, span: int) -> str:
    """An HGVSp-style change: residue and reference amino acid depend on the site only, the
    alternate amino acid on the allele (so two alleles at one site agree on the residue)."""
    protein_len = int(min(5000, max(200, span // 40)))
    aa_pos = 1 + gene_pos * protein_len // max(1, span)
    ref_aa = AMINO[site % 20]
    if consequence == "missense_variant":
        alt_aa = AMINO[(site % 20 + 1 + h % 19) % 20]
        return f"p.{ref_aa}{aa_pos}{alt_aa}"
    if consequence == "synonymous_variant":
        return f"p.{ref_aa}{aa_pos}="
    if consequence == "stop_gained":
        return f"p.{ref_aa}{aa_pos}Ter"
    if consequence == "frameshift_variant":
        return f"p.{ref_aa}{aa_pos}{AMINO[h // 7 % 20]}fsTer{2 + h // 11 % 40}"
    if consequence == "inframe_deletion":
        return f"p.{ref_aa}{aa_pos}del"
    if consequence == "inframe_insertion":
        return f"p.{ref_aa}{aa_pos}_{AMINO[site // 5 % 20]}{aa_pos + 1}ins{AMINO[h // 13 % 20]}"
    return ""


def _snv_consequence_index(model: GenomeModel, h: int) -> int:
    k = bisect_right(model.snv_cum_list, (h % 1_000_003) / 1_000_003)
    return min(k, len(model.snv_consequences) - 1)


def _snv_csq(model: GenomeModel, alt: str, k: int, h: int, site: int, gene_pos: int,
             gene: tuple[str, str, int, int]) -> str:
    consequence, impact = model.snv_consequences[k]
    hgvsp = _protein_change(site, h, consequence, gene_pos, gene[3] - gene[2] + 1)
    return _csq(alt, consequence, impact, gene[0], hgvsp=hgvsp)


def _passenger_csq(model: GenomeModel, gi: int, pos: int, ref: str, alt: str,
                   gene: tuple[str, str, int, int]) -> tuple[str, str]:
    """(CSQ entry, consequence) for a passenger allele; a function of the allele only."""
    h = _allele_hash(gi, pos, ref + ">" + alt)
    if len(ref) == len(alt):
        k = _snv_consequence_index(model, h)
        site = _mix_int(pos * 64 + gi)
        return _snv_csq(model, alt, k, h, site, pos - gene[2], gene), model.snv_consequences[k][0]
    if abs(len(ref) - len(alt)) % 3:
        consequence, impact = "frameshift_variant", "HIGH"
    elif len(ref) > len(alt):
        consequence, impact = "inframe_deletion", "MODERATE"
    else:
        consequence, impact = "inframe_insertion", "MODERATE"
    allele = "-" if len(ref) > len(alt) else alt[1:]
    site = _mix_int(pos * 64 + gi)
    hgvsp = _protein_change(site, h, consequence, pos - gene[2], gene[3] - gene[2] + 1)
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

    # SNV alleles and the annotation of the first ALT, vectorised (the scalar path in
    # _passenger_csq computes the same values; indels and second ALTs go through it).
    alt_idx = np.where(transition, _TRANSITION_IDX[ref_idx], _OTHERS_IDX[ref_idx, alt_choice])
    site_key = pos.astype(np.uint64) * np.uint64(64) + contig.astype(np.uint64)
    site = _mix(site_key)
    h1 = _mix(site_key ^ (_SNV_CODES[ref_idx, alt_idx] << np.uint64(40)))
    cons1 = np.minimum(np.searchsorted(model.snv_cum, (h1 % np.uint64(1_000_003))
                                       / 1_000_003, side="right"),
                       len(model.snv_consequences) - 1)

    seen = {(gi_, p_) for gi_, p_, _ in records}
    L = (contig.tolist(), pos.tolist(), gene_idx.tolist(), refs.tolist(), kind.tolist(),
         indel_len.tolist(), BASES[alt_idx].tolist(), second_alt.tolist(),
         depth.tolist(), filt_idx.tolist(), alt1.tolist(), low.tolist(), h1.tolist(),
         site.tolist(), cons1.tolist())
    indel_cut, del_cut = model.indel_fraction, model.indel_fraction / 2
    multi_cut = 1.0 - model.multiallelic_fraction
    for j, (c, p, g, ref, k, length, alt, second, dp, fi, a1, is_low, h, st, k1) in enumerate(
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
            snv_csq = _snv_csq(model, alt, k1, h, st, p - gene[2], gene)
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

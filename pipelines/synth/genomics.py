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


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread integer hash (vectorised)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ref_bases(contig_index: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The pseudo-reference base at each (contig, position): same answer for every patient."""
    with np.errstate(over="ignore"):
        key = pos.astype(np.uint64) * np.uint64(64) + contig_index.astype(np.uint64)
    return BASES[(_mix(key) & np.uint64(3)).astype(np.int64)]


def _mix_int(x: int) -> int:
    """Scalar splitmix64 finaliser (same function as :func:`_mix`)."""
    x &= 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _allele_hash(contig_index: int, pos: int, allele: str) -> int:
    h = 0
    for ch in allele:
        h = (h * 131 + ord(ch)) & 0xFFFFFF
    return _mix_int((pos * 64 + contig_index) ^ (h << 40))


@dataclass(frozen=True)
class GenomeModel:
    """Pre-computed lookups (built once per cohort)."""

    contigs: tuple[str, ...]
    contig_index: dict[str, int]
    genes: tuple[tuple[str, str, int, int], ...]
    gene_weights: np.ndarray
    snv_consequences: tuple[tuple[str, str], ...]
    snv_cum: np.ndarray
    indel_fraction: float
    multiallelic_fraction: float
    filters: tuple[tuple[str, float], ...]
    target_size_mb: float


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
        snv_cum=cum / cum[-1], indel_fraction=float(g["indel_fraction"]),
        multiallelic_fraction=float(g["multiallelic_fraction"]),
        filters=tuple((k, float(v["fraction"])) for k, v in g["filters"].items()),
        target_size_mb=float(g["target_size_mb"]))


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
        info = (f"SVTYPE=DUP;END={d['end']};SVLEN={d['end'] - d['pos'] + 1};CN={cn};"
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


def _passenger_csq(model: GenomeModel, gi: int, pos: int, ref: str, alt: str,
                   gene: tuple[str, str, int, int]) -> tuple[str, str]:
    """(CSQ entry, consequence) for a passenger allele; a function of the allele only."""
    h = _allele_hash(gi, pos, ref + ">" + alt)
    if len(ref) == len(alt):
        u = (h % 1_000_003) / 1_000_003
        k = int(np.searchsorted(model.snv_cum, u, side="right"))
        consequence, impact = model.snv_consequences[min(k, len(model.snv_consequences) - 1)]
        allele = alt
    else:
        diff = abs(len(ref) - len(alt))
        if diff % 3:
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
    """The sorted data lines of a patient's single-sample tumour VCF."""
    rng = patient_rng(seed, patient.index, STREAM_GENOME)
    purity = float(rng.uniform(0.35, 0.9))
    records = [_driver_line(world, k, rng, purity) for k in patient.vcf_drivers]

    n_true = int(rng.poisson(patient.tmb * model.target_size_mb))
    fail_rate = sum(f for _, f in model.filters)
    n_fail = int(rng.poisson(n_true * fail_rate / (1 - fail_rate)))
    n = n_true + n_fail
    gene_idx = rng.choice(len(model.genes), size=n, p=model.gene_weights)
    starts = np.array([g[2] for g in model.genes])[gene_idx]
    ends = np.array([g[3] for g in model.genes])[gene_idx]
    pos = (starts + (rng.random(n) * (ends - starts + 1)).astype(np.int64)).astype(np.int64)
    gi = np.array([model.contig_index[model.genes[i][1]] for i in range(len(model.genes))])
    contig = gi[gene_idx]
    is_fail = np.zeros(n, dtype=bool)
    is_fail[rng.permutation(n)[:n_fail]] = True
    fail_kind = rng.random(n)
    kind = rng.random(n)
    refs = ref_bases(contig, pos)
    transition = rng.random(n) < 0.65
    alt_choice = rng.integers(0, 3, size=n)
    vaf = rng.beta(2.2, 5.0, size=n) * purity * 1.6
    depth = rng.negative_binomial(8, 8 / (8 + 140.0), size=n) + 20
    indel_len = rng.integers(1, 7, size=n)
    ins_bases = BASES[rng.integers(0, 4, size=(n, 6))]
    second_alt = rng.integers(0, 3, size=n)

    seen = {(gi_, p_) for gi_, p_, _ in records}
    fail_names = [name for name, _ in model.filters]
    fail_cum = np.cumsum([f for _, f in model.filters]) / fail_rate
    for j in range(n):
        c, p = int(contig[j]), int(pos[j])
        if (c, p) in seen:
            continue
        seen.add((c, p))
        gene = model.genes[int(gene_idx[j])]
        ref = str(refs[j])
        if kind[j] < model.indel_fraction:
            length = int(indel_len[j])
            if kind[j] < model.indel_fraction / 2:   # deletion of `length` bases after POS
                nxt = ref_bases(np.full(length, c), np.arange(p + 1, p + 1 + length))
                ref_allele, alts = ref + "".join(nxt), [ref]
            else:                                     # insertion after POS
                ref_allele, alts = ref, [ref + "".join(ins_bases[j, :length])]
        else:
            others = [b for b in "ACGT" if b != ref]
            alt = TRANSITION[ref] if transition[j] else others[int(alt_choice[j])]
            ref_allele, alts = ref, [alt]
            if kind[j] > 1.0 - model.multiallelic_fraction:
                rest = [b for b in others if b != alt]
                alts.append(rest[int(second_alt[j]) % len(rest)])
        dp = int(depth[j])
        filt = "PASS"
        if is_fail[j]:
            filt = fail_names[int(np.searchsorted(fail_cum, fail_kind[j], side="right"))
                              if fail_kind[j] < 1 else len(fail_names) - 1]
            if filt == "LowQual":
                dp = int(5 + dp % 11)
        f = float(np.clip(vaf[j], 0.03, 0.97)) if filt != "strand_bias" else 0.06
        alt_reads = [max(2, int(round(dp * f)))]
        if len(alts) == 2:
            alt_reads = [max(2, alt_reads[0] * 2 // 3), max(2, alt_reads[0] // 3)]
        ref_reads = max(0, dp - sum(alt_reads))
        dp = ref_reads + sum(alt_reads)
        gt = "0/1" if len(alts) == 1 else "1/2"
        ad = ",".join(str(x) for x in [ref_reads, *alt_reads])
        af = ",".join(f"{a / dp:.3f}" for a in alt_reads)
        qual = 8.0 + 9.5 * sum(alt_reads) if filt != "LowQual" else 3.0 + 2.5 * sum(alt_reads)
        csq = ",".join(_passenger_csq(model, c, p, ref_allele, a, gene)[0] for a in alts)
        info = f"SOMATIC;CSQ={csq}" if filt == "PASS" else f"CSQ={csq}"
        line = (f"{model.contigs[c]}\t{p}\t.\t{ref_allele}\t{','.join(alts)}\t{qual:.1f}\t"
                f"{filt}\t{info}\tGT:AD:DP:AF\t{gt}:{ad}:{dp}:{af}")
        records.append((c, p, line))
    records.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in records]


def count_pass(lines: list[str]) -> int:
    """PASS records that are point mutations or indels (what TMB counts; not the <DUP>)."""
    return sum(1 for ln in lines if "\tPASS\t" in ln and "<DUP>" not in ln)

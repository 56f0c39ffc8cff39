"""VEP ``CSQ`` and SnpEff ``ANN`` annotations as Spark columns (built-ins only).

Both fields are comma-separated lists of ``|``-separated entries, one per (allele,
transcript); the header's Description names the sub-fields. The names differ between the
tools, so each file's sub-fields are resolved to *roles* (gene, consequence, hgvsp, ...)
through ``annotation_roles`` in ``resources/vcf_conventions.yaml``; the role positions travel
with every row as ``<prefix>_<role>_i`` columns (0-based, -1 when the file lacks the role).

Choosing the entry for one ALT allele (VEP documentation, "VCF output"; SnpEff ANN spec):

1. entries whose Allele equals the allele as the tool writes it: SnpEff writes the ALT as in
   the VCF; VEP drops the first base when every allele shares it (so a deletion is "-");
2. if none match and the record has a single ALT, or the format has no Allele, all entries
   (symbolic alleles such as ``<DUP>`` are written by VEP as "duplication" and the like);
3. among those, the first with ``CANONICAL=YES``, else the first (SnpEff sorts by impact).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines.genomics.reader import conventions
from pipelines.genomics.sources import VcfSource

ROLES = ("allele", "consequence", "impact", "gene", "gene_id", "transcript", "biotype",
         "exon", "intron", "hgvsc", "hgvsp", "canonical", "amino_acids", "protein_position")
EXTRA_ROLES = {"amino_acids": ["Amino_acids"], "protein_position": ["Protein_position"]}

# IUPAC-IUB three-letter amino-acid codes (HGVS recommendations, varnomen.hgvs.org).
AMINO_ACIDS = {
    "Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q", "Glu": "E",
    "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K", "Met": "M", "Phe": "F",
    "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W", "Tyr": "Y", "Val": "V", "Ter": "*",
    "Sec": "U", "Pyl": "O", "Xaa": "X",
}


@cache
def consequence_classes() -> dict:
    text = resources.files("pipelines.genomics.resources").joinpath(
        "consequences.yaml").read_text()
    return yaml.safe_load(text)


def role_positions(fields: tuple[str, ...]) -> dict[str, int]:
    """0-based position of each role in an annotation format, -1 when absent.

    >>> role_positions(("Allele", "Annotation", "Gene_Name"))["gene"]
    2
    >>> role_positions(("Allele", "Annotation", "Gene_Name"))["canonical"]
    -1
    """
    names = {**conventions()["annotation_roles"], **EXTRA_ROLES}
    out = {}
    for role in ROLES:
        out[role] = next((fields.index(n) for n in names.get(role, []) if n in fields), -1)
    return out


def annotation_layout(src: VcfSource) -> dict:
    """One row of the per-file annotation layout (joined onto variants by source_file)."""
    row = {"source_file": src.path}
    for prefix, fields in (("csq", src.csq_fields), ("ann", src.ann_fields)):
        for role, pos in role_positions(fields).items():
            row[f"{prefix}_{role}_i"] = pos
    return row


def layout_ddl() -> str:
    cols = ["source_file string"]
    cols += [f"{p}_{r}_i int" for p in ("csq", "ann") for r in ROLES]
    return ", ".join(cols)


def vep_allele(ref: Column, alts: Column, alt: Column) -> Column:
    """The ALT allele as VEP writes it in CSQ's Allele: first base dropped when all alleles
    share it ("-" when nothing is left)."""
    first = F.substring(ref, 1, 1)
    shared = F.forall(alts, lambda a: F.substring(a, 1, 1) == first) & ~alt.startswith("<")
    stripped = F.substring(alt, 2, 1 << 20)
    return F.when(shared, F.when(stripped == "", F.lit("-")).otherwise(stripped)).otherwise(alt)


def _get(entry: Column, prefix: str, role: str) -> Column:
    value = F.get(entry, F.col(f"{prefix}_{role}_i"))
    return F.when(value != "", value)


def pick_entry(prefix: str, text: Column, allele_vep: Column, alt: Column,
               n_alts: Column) -> Column:
    """The chosen entry (array of sub-field strings) of a CSQ/ANN string for one allele."""
    entries = F.transform(F.split(text, ","), lambda e: F.split(e, r"\|", -1))
    allele_i = F.col(f"{prefix}_allele_i")
    matching = F.filter(entries, lambda e: (F.get(e, allele_i) == allele_vep)
                        | (F.get(e, allele_i) == alt))
    candidates = F.when((allele_i < 0) | ((F.size(matching) == 0) & (n_alts == 1)),
                        entries).otherwise(matching)
    canonical_i = F.col(f"{prefix}_canonical_i")
    canonical = F.filter(candidates, lambda e: F.get(e, canonical_i) == "YES")
    return F.when(text.isNotNull(), F.coalesce(F.get(canonical, 0), F.get(candidates, 0)))


def same_transcript_entry(prefix: str, text: Column, transcript: Column) -> Column:
    """The entry of another annotation field that describes ``transcript`` (version-free)."""
    entries = F.transform(F.split(text, ","), lambda e: F.split(e, r"\|", -1))
    idx = F.col(f"{prefix}_transcript_i")
    base = F.regexp_replace(transcript, r"\.[0-9]+$", "")
    hits = F.filter(entries, lambda e: F.regexp_replace(F.get(e, idx), r"\.[0-9]+$", "")
                    == base)
    return F.when(text.isNotNull() & transcript.isNotNull(), F.get(hits, 0))


def protein_change(hgvsp: Column, amino_acids: Column | None = None,
                   position: Column | None = None) -> Column:
    """HGVSp as a short one-letter change: ``ENSP...:p.Leu858Arg`` -> ``L858R``.

    Falls back to VEP's Amino_acids (``L/R``) and Protein_position (``858``) when there is no
    HGVSp. Percent-encoded ``=`` (VEP writes ``p.Arg12%3D``) is decoded.
    """
    x = F.regexp_replace(hgvsp, r"^.*:", "")
    x = F.regexp_replace(x, "%3D", "=")
    x = F.regexp_replace(x, r"^p\.", "")
    x = F.regexp_replace(x, r"[()]", "")
    for three, one in AMINO_ACIDS.items():
        x = F.regexp_replace(x, three, one)
    x = F.when(x != "", x)
    if amino_acids is not None and position is not None:
        ref_alt = F.split(amino_acids, "/")
        simple = (amino_acids.rlike(r"^[A-Z*]/[A-Z*]$") & position.rlike(r"^[0-9]+$"))
        fallback = F.when(simple, F.concat(F.get(ref_alt, 0), position, F.get(ref_alt, 1)))
        x = F.coalesce(x, fallback)
    return x


def protein_position(change: Column) -> Column:
    return F.regexp_extract(change, r"^[A-Z*]([0-9]+)", 1).cast("int")


def reference_residue(change: Column) -> Column:
    return F.when(change.rlike(r"^[A-Z*][0-9]"), F.substring(change, 1, 1))


def has_class(terms: Column, name: str) -> Column:
    """Whether any consequence term belongs to a class of ``consequences.yaml``."""
    members = consequence_classes()["classes"][name]
    return F.coalesce(F.arrays_overlap(terms, F.array(*[F.lit(t) for t in members])),
                      F.lit(False))


def exon_from_residue(gene: Column, position: Column) -> Column:
    """Exon number from the protein residue, for genes listed in ``exon_residues``."""
    out = F.lit(None).cast("int")
    for g, exons in consequence_classes().get("exon_residues", {}).items():
        for exon, (lo, hi) in exons.items():
            out = F.when((gene == g) & position.between(lo, hi), F.lit(int(exon))).otherwise(out)
    return out

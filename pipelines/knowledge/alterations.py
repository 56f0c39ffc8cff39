"""Alteration names as knowledge bases write them -> matchable alteration specs.

CIViC and the curated set name alterations in a few recurring shapes; each becomes an
:class:`Alteration` whose ``kind`` says how a patient's variant is compared with it (see
:mod:`pipelines.genomics.matching`):

==================  =====================================  ===============================
kind                examples                               a variant matches when
==================  =====================================  ===============================
protein_change      L858R, E746_A750del, G12C, Q1467*      its one-letter HGVSp is equal
codon               V600, G12, R132                        same residue, protein-altering
frameshift          W288fs                                 frameshift at that residue
any_mutation        Mutation, Kinase Domain Mutation       any protein-altering variant
truncating          Loss-of-function, Truncating Mutation  stop/frameshift/splice-site
exon_deletion       Exon 19 Deletion                       in-frame deletion in that exon
exon_insertion      Exon 20 Insertion                      in-frame insertion in that exon
exon_mutation       Exon 11 Mutation                       protein-altering, in that exon
exon_skipping       Exon 14 Skipping Mutation              splice-site / exon-loss variant
amplification       Amplification                          a copy-number gain call
deletion            Deletion, Loss                         a copy-number loss call
fusion              Fusion, EML4::ALK, Rearrangement       a fusion call (with the partner)
biomarker           TMB-H                                  the patient-level flag is set
==================  =====================================  ===============================

Expression, methylation, wild-type, serum levels and other non-DNA profiles return ``[]``.

>>> [a.key for a in parse_alteration("EGFR", "L858R")]
['protein_change:L858R']
>>> [a.key for a in parse_alteration("KRAS", "G12/G13")]
['codon:G12', 'codon:G13']
>>> [a.key for a in parse_alteration("EGFR", "Exon 19 Deletion")]
['exon_deletion:19']
>>> parse_alteration("EGFR", "Overexpression")
[]
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Alteration:
    kind: str
    text: str
    protein_change: str | None = None  # upper-case one-letter, e.g. L858R, E746_A750DEL
    position: int | None = None
    ref_aa: str | None = None
    exon: int | None = None
    partner: str | None = None
    biomarker: str | None = None

    @property
    def key(self) -> str:
        detail = {
            "protein_change": self.protein_change,
            "codon": f"{self.ref_aa}{self.position}",
            "frameshift": f"{self.ref_aa}{self.position}fs",
            "exon_deletion": self.exon, "exon_insertion": self.exon,
            "exon_mutation": self.exon, "exon_skipping": self.exon,
            "fusion": self.partner or "any", "biomarker": self.biomarker,
        }.get(self.kind)
        return f"{self.kind}:{detail}" if detail is not None else self.kind


_AA = "ACDEFGHIKLMNPQRSTVWY"
_MISSENSE = re.compile(rf"^([{_AA}])(\d+)([{_AA}*X])$")
_MISSENSE_MULTI = re.compile(rf"^([{_AA}])(\d+)([{_AA}*])((?:/[{_AA}*])+)$")
_CODON = re.compile(rf"^([{_AA}])(\d+)$")
_CODON_MULTI = re.compile(rf"^[{_AA}]\d+(?:/[{_AA}]\d+)+$")
_RANGE_CHANGE = re.compile(rf"^[{_AA}]\d+(?:_[{_AA}]\d+)?(?:DEL|DUP|INS|DELINS)[{_AA}]*$")
_CIVIC_DELINS = re.compile(rf"^([{_AA}]\d+(?:_[{_AA}]\d+)?)>([{_AA}]+)$")
_FRAMESHIFT = re.compile(rf"^([{_AA}])(\d+)FS")
_EXON = re.compile(r"^EXON (\d+) (DELETIONS?|INSERTIONS?|MUTATIONS?|SKIPPING(?: MUTATION)?)$")
_FUSION_PAIR = re.compile(r"^([A-Z0-9-]+)::([A-Z0-9-]+)(?:\s.*)?$")

ANY_MUTATION = {"MUTATION", "MUTATIONS", "ONCOGENIC MUTATION", "KINASE DOMAIN MUTATION",
                "TKD MUTATION", "SOMATIC MUTATION"}
TRUNCATING = {"LOSS-OF-FUNCTION", "LOSS OF FUNCTION", "TRUNCATING MUTATION",
              "DELETERIOUS MUTATION", "FRAMESHIFT TRUNCATION", "FRAMESHIFT MUTATION",
              "NONSENSE MUTATION", "TRUNCATING MUTATIONS"}
AMPLIFICATION = {"AMPLIFICATION", "COPY NUMBER GAIN", "GAIN"}
DELETION = {"DELETION", "LOSS", "HOMOZYGOUS DELETION", "COPY NUMBER LOSS"}
FUSION = {"FUSION", "FUSIONS", "REARRANGEMENT", "TRANSLOCATION"}
BIOMARKERS = {"TMB-H": "tmb_high", "TMB HIGH": "tmb_high", "HIGH TMB": "tmb_high",
              "TUMOR MUTATIONAL BURDEN HIGH": "tmb_high"}


def parse_alteration(gene: str, text: str) -> list[Alteration]:
    """The alteration specs one knowledge-base variant name stands for (``[]`` if none)."""
    t = " ".join(text.strip().split())
    u = t.upper()
    gene = gene.upper()
    if u in BIOMARKERS:
        return [Alteration("biomarker", t, biomarker=BIOMARKERS[u])]
    if m := _MISSENSE.match(u):
        alt = "*" if m.group(3) == "X" else m.group(3)
        return [Alteration("protein_change", t, f"{m.group(1)}{m.group(2)}{alt}",
                           int(m.group(2)), m.group(1))]
    if m := _MISSENSE_MULTI.match(u):
        alts = [m.group(3)] + [a for a in m.group(4).split("/") if a]
        return [Alteration("protein_change", t, f"{m.group(1)}{m.group(2)}{a}",
                           int(m.group(2)), m.group(1)) for a in alts]
    if m := _CODON.match(u):
        return [Alteration("codon", t, position=int(m.group(2)), ref_aa=m.group(1))]
    if _CODON_MULTI.match(u):
        return [Alteration("codon", t, position=int(c[1:]), ref_aa=c[0]) for c in u.split("/")]
    if m := _CIVIC_DELINS.match(u):
        return [Alteration("protein_change", t, f"{m.group(1)}DELINS{m.group(2)}",
                           _first_position(m.group(1)), m.group(1)[0])]
    if _RANGE_CHANGE.match(u):
        # HGVS writes a duplication without its residues (p.Ala767_Val769dup); CIViC
        # sometimes appends them (A767_V769dupASV).
        change = re.sub(r"DUP[A-Z]+$", "DUP", u)
        return [Alteration("protein_change", t, change, _first_position(u), u[0])]
    if m := _FRAMESHIFT.match(u):
        return [Alteration("frameshift", t, position=int(m.group(2)), ref_aa=m.group(1))]
    if u in ANY_MUTATION:
        return [Alteration("any_mutation", t)]
    if u in TRUNCATING:
        return [Alteration("truncating", t)]
    if m := _EXON.match(u):
        word = m.group(2)
        kind = ("exon_deletion" if word.startswith("DELETION") else
                "exon_insertion" if word.startswith("INSERTION") else
                "exon_skipping" if word.startswith("SKIPPING") else "exon_mutation")
        return [Alteration(kind, t, exon=int(m.group(1)))]
    if u in AMPLIFICATION:
        return [Alteration("amplification", t)]
    if u in DELETION:
        return [Alteration("deletion", t)]
    if u in FUSION:
        return [Alteration("fusion", t)]
    if m := _FUSION_PAIR.match(u):
        a, b = m.group(1), m.group(2)
        if gene in (a, b):
            partner = b if a == gene else a
            return [Alteration("fusion", t, partner=partner if partner != gene else None)]
    return []


def _first_position(text: str) -> int | None:
    m = re.search(r"\d+", text)
    return int(m.group(0)) if m else None


def split_profile(profile: str) -> list[tuple[str, str]] | None:
    """A CIViC molecular profile as (gene, variant) alternatives; ``None`` when it needs
    more than one variant at once (``AND``/``NOT``/parentheses), which single-variant
    matching cannot honour.

    >>> split_profile("EGFR L858R OR EGFR Exon 19 Deletion")
    [('EGFR', 'L858R'), ('EGFR', 'Exon 19 Deletion')]
    >>> split_profile("BRAF V600E AND BRAF V600M") is None
    True
    """
    text = profile.strip()
    if re.search(r"\b(AND|NOT)\b|[()]", text):
        return None
    out = []
    for part in re.split(r"\s+OR\s+", text):
        gene, _, variant = part.strip().partition(" ")
        if not gene or not variant:
            return None
        out.append((gene, variant))
    return out

"""Canonical protein lengths: where a protein change can and cannot be.

``pipelines/resources/protein_lengths.tsv`` holds the residue count of the canonical isoform
of each cancer gene oncorank writes or reports (UniProtKB/Swiss-Prot; source and licence in
its header). A protein change at a residue beyond it (``RB1 p.Pro3124Ala``: RB1 has 928
residues) is an annotation error, never a finding.

>>> protein_lengths()["RB1"]
928
>>> beyond_protein("RB1", 3124), beyond_protein("RB1", 661), beyond_protein("NOTAGENE", 9999)
(True, False, False)
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def protein_lengths() -> dict[str, int]:
    """Canonical protein length (residues) per gene symbol."""
    text = resources.files("pipelines.resources").joinpath("protein_lengths.tsv").read_text()
    header, *rows = [ln.split("\t") for ln in text.splitlines()
                     if ln.strip() and not ln.startswith("#")]
    gene, residues = header.index("gene"), header.index("residues")
    return {r[gene]: int(r[residues]) for r in rows}


def beyond_protein(gene: str | None, position) -> bool:
    """True when ``position`` lies beyond ``gene``'s canonical protein (unknown genes and
    positions are never judged)."""
    length = protein_lengths().get(str(gene or "").upper())
    try:
        return length is not None and position is not None and int(position) > length
    except (TypeError, ValueError):
        return False

"""The report's genomics section: what it shows of variants outside the knowledge base."""

from __future__ import annotations

from pipelines.genomics.proteins import beyond_protein, protein_lengths
from pipelines.reports.context import genomics_context


def _variant(gene, hgvsp, position, consequence="missense_variant"):
    return {"gene": gene, "hgvsp": hgvsp, "protein_position": position,
            "consequence": consequence, "filter": "PASS", "vaf": 0.3, "dp": 120}


def test_a_protein_change_beyond_the_protein_is_an_annotation_error_not_a_finding():
    ctx = genomics_context([], {}, [_variant("RB1", "p.Pro3124Ala", 3124),
                                    _variant("RB1", "p.Arg661Trp", 661),
                                    _variant("TP53", "p.Arg175His", 175)])
    shown = [(d["gene"], d["hgvsp"]) for d in ctx["drivers"]]
    assert shown == [("RB1", "p.Arg661Trp"), ("TP53", "p.Arg175His")]
    assert len(ctx["annotation_errors"]) == 1
    assert "RB1 p.Pro3124Ala names residue 3124 of a 928-residue protein" in \
        ctx["annotation_errors"][0]


def test_protein_length_table_is_uniprot_canonical():
    lengths = protein_lengths()
    assert {g: lengths[g] for g in ("TP53", "KRAS", "EGFR", "BRAF", "PIK3CA", "RB1")} == {
        "TP53": 393, "KRAS": 189, "EGFR": 1210, "BRAF": 766, "PIK3CA": 1068, "RB1": 928}
    assert beyond_protein("rb1", "929") and not beyond_protein("RB1", 928)
    assert not beyond_protein("RB1", None) and not beyond_protein(None, 5)

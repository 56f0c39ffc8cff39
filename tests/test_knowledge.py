"""Knowledge base: alteration parsing, CIViC + curated loading, OncoTree, regimen mapping."""

from __future__ import annotations

import shutil

import pytest
import yaml

from pipelines.catalog import regimen_catalog
from pipelines.genomics.actionable import catalog_regimens, disease_match, on_label
from pipelines.knowledge.alterations import parse_alteration, split_profile
from pipelines.knowledge.kb import (
    _resource,
    knowledge_dir,
    load_knowledge_base,
)
from pipelines.knowledge.oncotree import OncoTree
from pipelines.lakehouse.errors import InputNotFoundError
from pipelines.lakehouse.settings import Settings


@pytest.fixture(scope="module")
def kb(shared_data):
    return load_knowledge_base(shared_data / "knowledge")


# ---------------------------------------------------------------------------- alterations
@pytest.mark.parametrize("gene,text,expected", [
    ("EGFR", "L858R", [("protein_change", "L858R", 858, "L")]),
    ("BRCA1", "W1815X", [("protein_change", "W1815*", 1815, "W")]),
    ("ERBB2", "S310F/Y", [("protein_change", "S310F", 310, "S"),
                         ("protein_change", "S310Y", 310, "S")]),
    ("BRAF", "V600", [("codon", None, 600, "V")]),
    ("EGFR", "E746_A750del", [("protein_change", "E746_A750DEL", 746, "E")]),
    ("EGFR", "A767_V769dupASV", [("protein_change", "A767_V769DUP", 767, "A")]),
    ("BRAF", "V600_K601>E", [("protein_change", "V600_K601DELINSE", 600, "V")]),
    ("BRCA2", "W288FS", [("frameshift", None, 288, "W")]),
])
def test_protein_level_names(gene, text, expected):
    got = [(a.kind, a.protein_change, a.position, a.ref_aa) for a in parse_alteration(gene, text)]
    assert got == expected


@pytest.mark.parametrize("text,kind,extra", [
    ("Mutation", "any_mutation", {}),
    ("Loss-of-function", "truncating", {}),
    ("Exon 19 Deletion", "exon_deletion", {"exon": 19}),
    ("Exon 20 Insertion", "exon_insertion", {"exon": 20}),
    ("Exon 14 Skipping Mutation", "exon_skipping", {"exon": 14}),
    ("EXON 12 MUTATION", "exon_mutation", {"exon": 12}),
    ("Amplification", "amplification", {}),
    ("Fusion", "fusion", {"partner": None}),
    ("EML4::ALK e6-e20", "fusion", {"partner": "EML4"}),
    ("TMB-H", "biomarker", {"biomarker": "tmb_high"}),
])
def test_class_level_names(text, kind, extra):
    [a] = parse_alteration("ALK", text)
    assert a.kind == kind
    for k, v in extra.items():
        assert getattr(a, k) == v


@pytest.mark.parametrize("text", ["Overexpression", "Wildtype", "Promoter Methylation",
                                  "SERUM LEVELS", "Y1092 PHOSPHORYLATION"])
def test_non_dna_profiles_are_not_matchable(text):
    assert parse_alteration("EGFR", text) == []


def test_profiles_with_and_are_skipped_or_splits_alternatives():
    assert split_profile("ALK EML4::ALK AND ALK L1196M") is None
    assert split_profile("BRAF Amplification AND ( BRAF V600E OR BRAF V600K )") is None
    assert split_profile("BRCA1 Mutation OR BRCA2 Mutation") == [("BRCA1", "Mutation"),
                                                                 ("BRCA2", "Mutation")]


# ---------------------------------------------------------------------------- loading
def test_civic_release_and_curated_set_load(kb, shared_data):
    assert kb.version == "civic-01-Aug-2024+curated-2026.12"
    assert kb.civic_release == "01-Aug-2024"
    assert kb.oncotree.version == "2025_10_03"
    civic = [e for e in kb.entries if e.source == "civic"]
    curated = [e for e in kb.entries if e.source == "curated"]
    assert len(curated) == len(_resource("curated_biomarkers.yaml")["entries"])
    # Every CIViC evidence row is either an entry or counted as skipped, with its reason.
    import csv
    with open(next((shared_data / "knowledge").glob("*ClinicalEvidence*"))) as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    eids = {e.evidence_id for e in civic if e.evidence_id.startswith("EID")}
    skipped = sum(v for k, v in kb.skipped.items() if k.startswith("evidence: "))
    assert len(eids) + skipped == n_rows
    assert kb.skipped["evidence: does not support"] > 0
    assert {e.direction for e in kb.entries} == {"sensitivity", "resistance"}
    assert {e.evidence_level for e in civic} <= set("ABCDE")


def test_known_statements_are_in_the_kb(kb):
    def find(**kw):
        return [e for e in kb.entries if all(getattr(e, k) == v for k, v in kw.items())]

    l858r = [e for e in find(gene="EGFR", source="civic") if e.alteration.key ==
             "protein_change:L858R" and "osimertinib" in e.drugs]
    assert l858r and all(e.disease_oncotree == "NSCLC" for e in l858r)
    ras = [e for e in find(gene="KRAS", direction="resistance")
           if e.alteration.kind == "any_mutation" and "cetuximab" in e.drugs]
    assert any(e.disease_oncotree == "COADREAD" for e in ras)
    ex19 = [e for e in find(gene="EGFR") if e.alteration.key == "exon_deletion:19"]
    assert {"civic", "curated"} <= {e.source for e in ex19}
    tmb = [e for e in kb.entries if e.alteration.kind == "biomarker"]
    assert tmb and tmb[0].gene is None and tmb[0].disease_oncotree == "TISSUE"


def test_disease_map_points_at_real_oncotree_codes(kb):
    table = _resource("civic_disease_oncotree.yaml")
    codes = set(table["doid"].values()) | set((table.get("names") or {}).values())
    assert codes and not [c for c in codes if c not in kb.oncotree]
    for e in kb.entries:
        if e.disease_oncotree is not None:
            assert e.disease_oncotree in kb.oncotree, e


def test_curated_only_when_civic_is_absent(tmp_path, shared_data):
    shutil.copy(shared_data / "knowledge" / "oncotree_2025_10_03.json", tmp_path)
    kb = load_knowledge_base(tmp_path)
    assert kb.version == "curated-2026.12" and kb.civic_release is None
    assert {e.source for e in kb.entries} == {"curated"}
    assert load_knowledge_base(None).oncotree.version == "none"


def test_knowledge_dir_resolution(tmp_path, monkeypatch):
    from pipelines.knowledge.kb import SHIPPED_DIR

    monkeypatch.delenv("ONCORANK_KNOWLEDGE_DIR", raising=False)
    assert knowledge_dir(Settings()) == SHIPPED_DIR
    monkeypatch.setenv("ONCORANK_KNOWLEDGE_DIR", str(tmp_path))
    assert knowledge_dir(Settings()) == tmp_path
    monkeypatch.setenv("ONCORANK_KNOWLEDGE_DIR", str(tmp_path / "missing"))
    with pytest.raises(InputNotFoundError, match="ONCORANK_KNOWLEDGE_DIR"):
        knowledge_dir(Settings())
    cfg = tmp_path / "oncorank.toml"
    (tmp_path / "kb").mkdir()
    cfg.write_text('[knowledge]\ncivic_dir = "kb"\n')
    assert knowledge_dir(Settings.load(cfg, environ={})) == tmp_path / "kb"
    cfg.write_text('[knowledge]\ncivic_dir = "nowhere"\n')
    with pytest.raises(InputNotFoundError, match="civic_dir"):
        knowledge_dir(Settings.load(cfg, environ={}))


def test_curated_entries_cite_a_source_and_use_catalog_drug_names():
    data = _resource("curated_biomarkers.yaml")
    drugs = set(yaml.safe_load(
        (__import__("importlib").resources.files("pipelines.resources") / "regimens.yaml")
        .read_text())["drugs"])
    for e in data["entries"]:
        assert e["citation"] and e["approval"] in ("fda", "nccn"), e["id"]
        if e["approval"] == "fda":
            assert e["application"].isdigit(), e["id"]
        for d in e["drugs"]:
            assert d == d.lower()
    used = {d for e in data["entries"] for d in e["drugs"]}
    # The catalog's targeted drugs with a biomarker label are all covered by the curated set.
    for d in ("osimertinib", "sotorasib", "dabrafenib", "trametinib", "encorafenib",
              "cetuximab", "trastuzumab", "alpelisib", "pembrolizumab"):
        assert d in drugs and d in used


# ---------------------------------------------------------------------------- tumour types
def test_oncotree_relations(kb):
    t = kb.oncotree
    assert t.relation("NSCLC", "LUAD") == "ancestor"
    assert t.relation("LUAD", "NSCLC") == "descendant"
    assert t.relation("TISSUE", "COADREAD") == "ancestor"
    assert t.relation("MEL", "NSCLC") == "none"
    assert t.relation("NSCLC", None) == "unknown"
    assert t.within("LUAD", ["NSCLC", "BRCA"]) == ["NSCLC"]
    assert t.within("BREAST", ["NSCLC", "BRCA"]) == ["BRCA"]
    assert OncoTree.minimal().relation("TISSUE", "LUAD") == "ancestor"


def test_on_label_and_exclusions(kb):
    agnostic = next(e for e in kb.entries
                    if e.evidence_id == "fda-dabrafenib-trametinib-braf-v600e-solid")
    assert disease_match(kb, agnostic, "COADREAD") == "excluded"
    assert on_label(agnostic, "excluded") is False
    assert disease_match(kb, agnostic, "NSCLC") == "ancestor"
    assert on_label(agnostic, disease_match(kb, agnostic, "NSCLC")) is True
    assert on_label(agnostic, disease_match(kb, agnostic, None)) is None
    osi = next(e for e in kb.entries if e.evidence_id == "fda-osimertinib-egfr-l858r")
    assert on_label(osi, disease_match(kb, osi, "MEL")) is False
    low = next(e for e in kb.entries if e.source == "civic" and e.evidence_level == "C"
               and e.disease_oncotree == "NSCLC")
    assert on_label(low, disease_match(kb, low, "NSCLC")) is False


def test_therapies_map_to_catalog_regimens(kb):
    cat = regimen_catalog()

    def entry(eid):
        return next(e for e in kb.entries if e.evidence_id == eid)

    assert catalog_regimens(kb, cat, entry("fda-osimertinib-egfr-l858r"), "LUAD") == (
        "osimertinib", ["osimertinib"])
    reg, regs = catalog_regimens(kb, cat, entry("fda-cetuximab-kras-resistance-crc"),
                                 "COADREAD")
    assert reg == "folfox_cetuximab" and regs == ["encorafenib_cetuximab", "folfox_cetuximab"]
    assert catalog_regimens(kb, cat, entry("fda-encorafenib-cetuximab-braf-v600e-crc"),
                            "COADREAD")[0] == "encorafenib_cetuximab"
    # Unknown patient type: the indication's type decides; tumour-agnostic lists all.
    assert catalog_regimens(kb, cat, entry("fda-alpelisib-fulvestrant-pik3ca-brca"),
                            None)[0] == "alpelisib_fulvestrant"
    reg, regs = catalog_regimens(kb, cat, entry("fda-pembrolizumab-tmb-high"), None)
    assert reg is None and {"pembrolizumab", "pembrolizumab_crc", "pembrolizumab_mel"} <= set(regs)
    # No catalog regimen delivers sotorasib + panitumumab.
    assert catalog_regimens(kb, cat, entry("fda-sotorasib-panitumumab-kras-g12c-crc"),
                            "COADREAD") == (None, [])


def test_the_release_shipped_with_oncorank_loads_and_knows_alpelisib(monkeypatch):
    """A fresh install (no config, no environment, nothing beside the checkout) gets the
    shipped CIViC and OncoTree releases, with their licence files, and PIK3CA H1047R in
    breast cancer reaches alpelisib."""
    from pipelines.knowledge.kb import SHIPPED_DIR

    monkeypatch.delenv("ONCORANK_KNOWLEDGE_DIR", raising=False)
    shipped = load_knowledge_base(knowledge_dir(Settings()))
    assert shipped.version.startswith("civic-01-Aug-2024+curated-")
    assert shipped.oncotree.version == "2025_10_03"
    assert "shared" not in SHIPPED_DIR.parts
    assert (SHIPPED_DIR / "LICENSE-oncotree-CC-BY-4.0.md").is_file()
    assert "CC0" in (SHIPPED_DIR / "README.md").read_text(encoding="utf-8")
    pik3ca = {e.alteration.key for e in shipped.entries
              if e.gene == "PIK3CA" and "alpelisib" in e.drugs and e.direction == "sensitivity"}
    assert "protein_change:H1047R" in pik3ca

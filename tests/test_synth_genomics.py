"""Genomic realism of the synthetic cohort's VCFs (pipelines/synth/genomics.py).

A tumour board reading a generated report must not see a residue the protein lacks
(``RB1 p.Pro3124Ala`` when RB1 has 928 residues), an amino-acid change no point mutation can
make, or a passenger presented as a driver. These tests parse every CSQ entry of a 200-patient
cohort and check each protein change against the shipped UniProt length table and an
independent copy of the standard genetic code.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path

import pytest

from pipelines.synth import generate_cohort
from pipelines.synth.genomics import (
    CSQ_FIELDS,
    GENETIC_CODE,
    protein_lengths,
    reference_amino_acid,
    reference_codon,
    residue_at,
)
from pipelines.synth.world import load_world

# The standard genetic code (NCBI translation table 1), written out independently of the
# generator's compact table so that a slip there cannot hide here.
STANDARD_CODE = {codon: aa for aa, codons in {
    "Ala": "GCT GCC GCA GCG", "Arg": "CGT CGC CGA CGG AGA AGG", "Asn": "AAT AAC",
    "Asp": "GAT GAC", "Cys": "TGT TGC", "Gln": "CAA CAG", "Glu": "GAA GAG",
    "Gly": "GGT GGC GGA GGG", "His": "CAT CAC", "Ile": "ATT ATC ATA",
    "Leu": "TTA TTG CTT CTC CTA CTG", "Lys": "AAA AAG", "Met": "ATG", "Phe": "TTT TTC",
    "Pro": "CCT CCC CCA CCG", "Ser": "TCT TCC TCA TCG AGT AGC", "Thr": "ACT ACC ACA ACG",
    "Trp": "TGG", "Tyr": "TAT TAC", "Val": "GTT GTC GTA GTG", "Ter": "TAA TAG TGA",
}.items() for codon in codons.split()}
FIELDS = CSQ_FIELDS.split("|")
# A three-letter residue followed by its number, anywhere in an HGVSp (p.Glu746_Ala750del);
# not the "Ter23" of a frameshift's fsTer23, which counts residues to the new stop.
RESIDUE = re.compile(r"(?<!fs)([A-Z][a-z]{2})(\d+)")
SNV_CHANGE = re.compile(r"^p\.([A-Z][a-z]{2})(\d+)([A-Z][a-z]{2}|=)$")
IMPACT = {"missense_variant": "MODERATE", "synonymous_variant": "LOW",
          "stop_gained": "HIGH", "frameshift_variant": "HIGH",
          "inframe_deletion": "MODERATE", "inframe_insertion": "MODERATE"}


def _one_substitution(codon: str) -> set[str]:
    """Amino acids (or Ter) one base substitution of ``codon`` can give, itself excluded."""
    return {STANDARD_CODE[codon[:k] + b + codon[k + 1:]]
            for k in range(3) for b in "ACGT" if b != codon[k]}


def _reachable_from(amino_acid: str) -> set[str]:
    """What one substitution can make of ``amino_acid``, from any of its codons."""
    out: set[str] = set()
    for codon, aa in STANDARD_CODE.items():
        if aa == amino_acid:
            out |= _one_substitution(codon)
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth-genomics") / "cohort"
    generate_cohort(out, patients=200, seed=3, workers=1)
    return out


@pytest.fixture(scope="module")
def records(cohort) -> list[dict]:
    """Every data line of every VCF: the columns, INFO keys and CSQ entries (dicts, with the
    ALT each entry describes and HGVSp percent-decoded as a reader would)."""
    rows = []
    for vcf in sorted((cohort / "vcf").glob("PT*.vcf.gz")):
        with gzip.open(vcf, "rt") as fh:
            for line in fh:
                if line.startswith("#"):
                    continue
                chrom, pos, vid, ref, alt, _q, filt, info, *_ = line.rstrip("\n").split("\t")
                keys = {kv.split("=", 1)[0] for kv in info.split(";")}
                csq = info.split("CSQ=", 1)[1].split(";", 1)[0].split(",")
                alts = alt.split(",")
                entries = []
                for a, raw in zip(alts, csq, strict=True):
                    e = dict(zip(FIELDS, raw.split("|"), strict=True))
                    e["HGVSp"] = e["HGVSp"].replace("%3D", "=")
                    entries.append({**e, "alt": a})
                rows.append({"patient": vcf.name.split(".")[0], "chrom": chrom, "pos": int(pos),
                             "id": vid, "ref": ref, "alts": alts, "filter": filt,
                             "info_keys": keys, "csq": entries})
    return rows


def _passenger_entries(records: list[dict]):
    """(record, CSQ entry, passenger gene tuple) for every passenger allele."""
    genes = {g[0]: (g[0], g[1], int(g[2]), int(g[3])) for g in load_world().genome[
        "passenger_genes"]}
    for r in records:
        for e in r["csq"]:
            if e["SYMBOL"] in genes:
                yield r, e, genes[e["SYMBOL"]]


# ---------------------------------------------------------------------------- the table
def test_protein_length_table_has_uniprot_values_for_every_gene():
    lengths = protein_lengths()
    # Well-known canonical lengths (UniProtKB/Swiss-Prot canonical isoforms).
    known = {"TP53": 393, "KRAS": 189, "EGFR": 1210, "BRAF": 766, "PIK3CA": 1068, "RB1": 928,
             "NRAS": 189, "ERBB2": 1255, "PTEN": 403, "APC": 2843, "BRCA2": 3418,
             "CDKN2A": 156, "VHL": 213, "TTN": 34350, "MUC16": 14507}
    assert {g: lengths[g] for g in known} == known
    world = load_world()
    used = {d["gene"] for d in world.drivers.values()} | {
        g[0] for g in world.genome["passenger_genes"]}
    assert used <= set(lengths), sorted(used - set(lengths))
    assert all(isinstance(v, int) and 100 <= v <= 40000 for v in lengths.values())
    header = resources.files("pipelines.resources").joinpath(
        "protein_lengths.tsv").read_text().split("\ngene\t")[0]
    for cited in ("UniProtKB/Swiss-Prot", "2020_04", "CC BY 4.0"):
        assert cited in header, cited


def test_genetic_code_is_the_standard_one():
    assert GENETIC_CODE == STANDARD_CODE
    assert len(STANDARD_CODE) == 64


def test_driver_protein_changes_lie_within_their_proteins():
    lengths = protein_lengths()
    for key, d in load_world().drivers.items():
        for _aa, residue in RESIDUE.findall(d["hgvsp"]):
            assert 1 <= int(residue) <= lengths[d["gene"]], (key, d["hgvsp"])


# ---------------------------------------------------------------------------- the cohort
def test_every_protein_position_lies_within_the_canonical_protein(records):
    lengths = protein_lengths()
    checked = 0
    for r in records:
        for e in r["csq"]:
            for _aa, residue in RESIDUE.findall(e["HGVSp"]):
                assert 1 <= int(residue) <= lengths[e["SYMBOL"]], (r["chrom"], r["pos"], e)
                checked += 1
    assert checked > 20000


def test_rb1_positions_never_exceed_928(records):
    """The regression the issue names: RB1 has 928 residues (UniProt P06400)."""
    positions = [int(n) for _r, e, _g in _passenger_entries(records) if e["SYMBOL"] == "RB1"
                 for _aa, n in RESIDUE.findall(e["HGVSp"])]
    assert len(positions) > 50
    assert max(positions) <= 928
    # ... and the changes spread over the whole protein, not a squeezed corner of it.
    assert min(positions) < 100 and max(positions) > 830


def test_snv_changes_are_one_base_substitutions_of_the_reference_codon(records):
    counts = defaultdict(int)
    for r, e, _gene in _passenger_entries(records):
        if len(r["ref"]) != len(e["alt"]) or not e["HGVSp"]:
            continue
        m = SNV_CHANGE.match(e["HGVSp"])
        assert m, e
        ref_aa, residue, alt_aa = m.group(1), int(m.group(2)), m.group(3)
        # Codon-free check: some codon of the reference amino acid reaches the new one.
        if alt_aa != "=":
            assert alt_aa in _reachable_from(ref_aa), e
        # Against the exposed reference codon: it encodes the written reference amino acid,
        # and the change is one substitution of that very codon.
        codon = reference_codon(e["SYMBOL"], residue)
        assert STANDARD_CODE[codon] == ref_aa, (codon, e)
        if alt_aa == "=":
            assert any(STANDARD_CODE[codon[:k] + b + codon[k + 1:]] == ref_aa
                       for k in range(3) for b in "ACGT" if b != codon[k]), e
        else:
            assert alt_aa in _one_substitution(codon), (codon, e)
        expected = ("synonymous_variant" if alt_aa == "=" else
                    "stop_gained" if alt_aa == "Ter" else "missense_variant")
        assert e["Consequence"] == expected, e
        assert e["IMPACT"] == IMPACT[expected], e
        assert ref_aa != "Ter"
        counts[expected] += 1
    assert counts["missense_variant"] > 10000
    assert counts["synonymous_variant"] > 3000 and counts["stop_gained"] > 200
    # Every change a codon allows shows up, not only the easy ones.
    share = counts["missense_variant"] / sum(counts.values())
    assert 0.55 < share < 0.8


def test_residue_follows_the_position_in_the_gene_span(records):
    lengths = protein_lengths()
    by_gene = defaultdict(list)
    for r, e, gene in _passenger_entries(records):
        if len(r["ref"]) != len(e["alt"]) or not e["HGVSp"]:
            continue
        residue = int(RESIDUE.findall(e["HGVSp"])[0][1])
        span = gene[3] - gene[2] + 1
        # Linear: the fraction of the span matches the fraction of the protein.
        expected = 2 + (r["pos"] - gene[2]) / span * (lengths[gene[0]] - 1)
        assert abs(residue - expected) <= 1, (r["pos"], e)
        assert residue == residue_at(gene, r["pos"], lengths[gene[0]])
        by_gene[gene[0]].append((r["pos"], residue))
    for gene, pairs in by_gene.items():
        residues = [res for _pos, res in sorted(pairs)]
        assert residues == sorted(residues), gene


def test_annotation_is_one_per_allele_and_one_reference_residue_per_site(records):
    """The same allele at the same site reads the same in every patient, and every variant
    at a residue (any position mapping there, SNV or indel) names the same reference amino
    acid."""
    per_allele: dict[tuple, set] = defaultdict(set)
    per_residue: dict[tuple, set] = defaultdict(set)
    for r, e, _gene in _passenger_entries(records):
        per_allele[(r["chrom"], r["pos"], r["ref"], e["alt"])].add(
            "|".join(e[f] for f in FIELDS))
        for aa, residue in RESIDUE.findall(e["HGVSp"]):
            per_residue[(e["SYMBOL"], int(residue))].add(aa)
    assert [k for k, v in per_allele.items() if len(v) > 1] == []
    assert [k for k, v in per_residue.items() if len(v) > 1] == []
    assert len(per_residue) > 10000
    for (symbol, residue), aas in per_residue.items():
        assert aas == {reference_amino_acid(symbol, residue)}, (symbol, residue, aas)


def test_consequence_impact_and_hgvsp_agree_for_indels_and_splice_sites(records):
    seen = defaultdict(int)
    for r, e, _gene in _passenger_entries(records):
        cons, hgvsp = e["Consequence"], e["HGVSp"]
        seen[cons] += 1
        if cons.startswith("splice_"):
            assert len(r["ref"]) == len(e["alt"]) and hgvsp == "", e
            assert e["IMPACT"] in {"LOW", "HIGH"}
            continue
        assert e["IMPACT"] == IMPACT[cons], e
        if len(r["ref"]) == len(e["alt"]):
            continue
        size = abs(len(r["ref"]) - len(e["alt"]))
        residues = RESIDUE.findall(hgvsp)
        if cons == "frameshift_variant":
            assert size % 3, e
            m = re.match(r"^p\.([A-Z][a-z]{2})\d+([A-Z][a-z]{2})fsTer(\d+)$", hgvsp)
            assert m and m.group(1) != m.group(2) and int(m.group(3)) >= 2, e
        elif cons == "inframe_deletion":
            assert size % 3 == 0 and len(r["ref"]) > len(e["alt"]) and hgvsp.endswith("del")
            first, last = int(residues[0][1]), int(residues[-1][1])
            assert last - first + 1 == size // 3, e
        else:
            assert cons == "inframe_insertion" and size % 3 == 0, e
            m = re.match(r"^p\.[A-Z][a-z]{2}(\d+)_[A-Z][a-z]{2}(\d+)ins((?:[A-Z][a-z]{2})+)$",
                         hgvsp)
            assert m and int(m.group(2)) == int(m.group(1)) + 1, e
            assert len(m.group(3)) // 3 == size // 3, e     # three letters a residue
    for cons in ("frameshift_variant", "inframe_deletion", "inframe_insertion",
                 "splice_region_variant", "splice_donor_variant", "splice_acceptor_variant"):
        assert seen[cons] > 0, cons


def test_passengers_never_carry_a_driver_label(cohort, records):
    world = load_world()
    driver_sites = {(d["chrom"], int(d["pos"]), d["ref"], d["alt"]): d
                    for d in world.drivers.values()}
    driver_genes = {d["gene"] for d in world.drivers.values()}
    driver_changes = {(d["gene"], d["hgvsp"]) for d in world.drivers.values() if d["hgvsp"]}
    passenger_genes = {g[0] for g in world.genome["passenger_genes"]}
    assert not driver_genes & passenger_genes
    with gzip.open(next((cohort / "vcf").glob("PT*.vcf.gz")), "rt") as fh:
        header = fh.read().split("#CHROM")[0]
    assert "driver" not in header.lower()

    with open(cohort / "truth" / "patients.csv", newline="") as fh:
        truth = {t["patient_id"]: t for t in csv.DictReader(fh)}
    planted = defaultdict(set)
    n_passenger = 0
    for r in records:
        site = (r["chrom"], r["pos"], r["ref"], ",".join(r["alts"]))
        if site in driver_sites:
            planted[r["patient"]].add(driver_sites[site]["concept"])
            continue
        n_passenger += 1
        assert r["info_keys"] <= {"SOMATIC", "CSQ"}, r
        assert r["id"] == ".", r
        for e in r["csq"]:
            assert e["SYMBOL"] in passenger_genes, (r, e)
            assert (e["SYMBOL"], e["HGVSp"]) not in driver_changes, (r, e)
            # The curated gene/transcript fields (CANONICAL=YES) are the drivers' only.
            assert (e["Gene"], e["Feature"], e["CANONICAL"]) == ("", "", ""), (r, e)
            assert "driver" not in "|".join(e.values()).lower()
    assert n_passenger > 50000
    # The truth's drivers are exactly the planted driver records, never a passenger.
    for pid, t in truth.items():
        assert planted.get(pid, set()) == set(filter(None, t["vcf_drivers"].split(";"))), pid
        assert set(filter(None, t["drivers"].split(";"))) <= {
            d["concept"] for d in world.drivers.values()}
    params = json.loads((cohort / "truth" / "params.json").read_text())
    assert set(params["drivers"]) == set(world.drivers)

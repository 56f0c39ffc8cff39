"""The stage on a generated cohort, checked against the generator's truth (planted drivers,
PASS counts, cancer types): biomarker flags, TMB and actionable matches."""

from __future__ import annotations

import csv

import pytest
from pyspark.sql import functions as F

from pipelines.genomics.stage import ingest_variants
from pipelines.lakehouse import delta
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Inputs, Settings

# Driver concepts the generator writes into VCFs -> the flags they must set.
CONCEPT_FLAGS = {
    "EGFR L858R": {"egfr_l858r", "egfr_mut"},
    "EGFR exon 19 deletion": {"egfr_ex19del", "egfr_mut"},
    "KRAS G12C": {"kras_g12c", "kras_mut"},
    "KRAS G12D": {"kras_mut"},
    "KRAS G12V": {"kras_mut"},
    "NRAS Q61K": {"nras_mut"},
    "BRAF V600E": {"braf_v600e"},
    "PIK3CA H1047R": {"pik3ca_mut"},
    "PIK3CA E545K": {"pik3ca_mut"},
    "TP53 R175H": {"tp53_mut"},
    "TP53 R248Q": {"tp53_mut"},
    "TP53 R273H": {"tp53_mut"},
    "ERBB2 amplification": {"erbb2_amp"},
}
CHECKED_FLAGS = sorted(set().union(*CONCEPT_FLAGS.values()))


@pytest.fixture(scope="module")
def cohort(spark, tmp_path_factory):
    from pipelines.synth import generate_cohort

    root = tmp_path_factory.mktemp("genomics-cohort")
    generate_cohort(root / "cohort", patients=40, seed=11)
    settings = Settings(lakehouse=root / "lakehouse", shuffle_partitions=2,
                        spark_master="local[2]",
                        inputs=Inputs(vcf=(str(root / "cohort" / "vcf"),),
                                      sample_map=str(root / "cohort" / "truth" /
                                                     "sample_map.csv")),
                        sections={"genomics": {"tmb_class": "all"}})
    with open(root / "cohort" / "truth" / "patients.csv", newline="") as fh:
        truth = {pseudonymise(r["patient_id"], settings.pseudonym_key): r
                 for r in csv.DictReader(fh)}
    # silver.patients as the clinical stage writes it: the cancer type per patient_key.
    patients = spark.createDataFrame([(k, r["cancer_type"]) for k, r in truth.items()],
                                     "patient_key string, cancer_type string")
    delta.write_table(spark, patients, settings.table("silver", "patients"), mode="overwrite")
    run = ingest_variants(spark, settings)
    assert run.status == "succeeded"
    return settings, truth


def rows(spark, settings, name):
    return delta.read_table(spark, settings.table("silver", name)).collect()


def test_flags_equal_the_planted_drivers(spark, cohort):
    settings, truth = cohort
    bm = {r["patient_key"]: r for r in rows(spark, settings, "biomarkers")}
    assert set(bm) == set(truth)
    for key, t in truth.items():
        concepts = [c for c in (t["vcf_drivers"] or "").split(";") if c]
        expected = set().union(*(CONCEPT_FLAGS[c] for c in concepts)) if concepts else set()
        got = {f for f in CHECKED_FLAGS if bm[key][f]}
        assert got == expected, (t["patient_id"], concepts)


def test_tmb_counts_equal_the_generators_pass_calls(spark, cohort):
    """With tmb_class=all, TMB counts every PASS small variant; the generator counts PASS
    records. They differ exactly by the extra ALT alleles of multi-allelic PASS records."""
    settings, truth = cohort
    variants = delta.read_table(spark, settings.table("silver", "variants"))
    extra = dict(variants.filter(F.col("is_pass") & (F.col("allele_index") > 1)
                                 & (F.col("variant_type") != "symbolic"))
                 .groupBy("patient_key").count().collect())
    for r in rows(spark, settings, "biomarkers"):
        t = truth[r["patient_key"]]
        records = r["tmb_variants"] - extra.get(r["patient_key"], 0)
        assert records == int(t["pass_variants"])
        assert r["tmb"] == pytest.approx(r["tmb_variants"] / r["target_size_mb"], abs=5e-4)
        assert records / r["target_size_mb"] == pytest.approx(float(t["measured_tmb"]),
                                                             abs=5e-4)


def test_actionable_matches_follow_labels_and_tumour_types(spark, cohort):
    settings, truth = cohort
    acts = rows(spark, settings, "actionable_alterations")
    curated = [a for a in acts if a["source"] == "curated"]
    assert {a["kb_version"] for a in acts} == {"civic-01-Aug-2024+curated-2026.12"}

    def has(key, therapy, **kw):
        return [a for a in curated if a["patient_key"] == key and a["therapy"] == therapy
                and all(a[k] == v for k, v in kw.items())]

    seen = set()
    for key, t in truth.items():
        drivers, ctype = t["vcf_drivers"] or "", t["cancer_type"]
        if ctype == "NSCLC" and "KRAS G12C" in drivers:
            assert has(key, "Sotorasib", regimen="sotorasib", on_label=True,
                       disease_match="exact", evidence_level="A")
            seen.add("g12c")
        if ctype == "NSCLC" and "EGFR exon 19 deletion" in drivers:
            assert has(key, "Osimertinib", regimen="osimertinib", on_label=True)
            seen.add("ex19")
        if ctype == "COADREAD" and "KRAS" in drivers:
            [r] = has(key, "Cetuximab", direction="resistance", on_label=True)
            assert r["regimen"] == "folfox_cetuximab" and "folfox_cetuximab" in r["regimens"]
            seen.add("ras")
        if ctype == "MEL" and "BRAF V600E" in drivers:
            assert has(key, "Dabrafenib + Trametinib", regimen="dabrafenib_trametinib",
                       on_label=True, disease_match="exact")
            seen.add("braf")
        if ctype == "BRCA" and "ERBB2 amplification" in drivers:
            assert has(key, "Trastuzumab + Pertuzumab + Docetaxel",
                       regimen="trastuzumab_pertuzumab_docetaxel", on_label=True)
            seen.add("erbb2")
        if ctype == "BRCA" and "PIK3CA" in drivers:
            assert has(key, "Alpelisib + Fulvestrant", regimen="alpelisib_fulvestrant",
                       on_label=True)
            seen.add("pik3ca")
        if "KRAS G12C" not in drivers:
            assert not has(key, "Sotorasib")
        if "BRAF V600E" not in drivers:
            assert not has(key, "Dabrafenib + Trametinib")
    assert seen == {"g12c", "ex19", "ras", "braf", "erbb2", "pik3ca"}


def test_tmb_high_patients_get_the_tumour_agnostic_label(spark, cohort):
    settings, truth = cohort
    high = {r["patient_key"] for r in rows(spark, settings, "biomarkers") if r["tmb_high"]}
    tmb_rows = {a["patient_key"]: a for a in rows(spark, settings, "actionable_alterations")
                if a["alteration"] == "TMB-H"}
    assert high and set(tmb_rows) == high
    expected = {"NSCLC": "pembrolizumab", "COADREAD": "pembrolizumab_crc",
                "MEL": "pembrolizumab_mel", "BRCA": None}
    for key, a in tmb_rows.items():
        assert a["gene"] is None and a["on_label"] and a["disease_match"] == "ancestor"
        assert a["regimen"] == expected[truth[key]["cancer_type"]]


def test_passenger_variants_do_not_make_gene_level_mutations(spark, cohort):
    """The generator sprinkles passenger calls over BRCA2 and FGFR1-3 (no planted drivers
    there). brca_mut / fgfr_alt must come only from truncating BRCA calls or from residues
    the knowledge base names — never from a missense passenger of unknown significance."""
    from pipelines.genomics.annotation import consequence_classes
    from pipelines.genomics.matching import known_sites
    from pipelines.knowledge.kb import knowledge_dir, load_knowledge_base

    settings, _ = cohort
    kb = load_knowledge_base(knowledge_dir(settings))
    sites = {(r["gene"], r["protein_position"]) for r in
             known_sites(spark, kb.gene_alterations()).collect()}
    truncating = set(consequence_classes()["classes"]["truncating"])
    nonsyn = set(consequence_classes()["classes"]["nonsynonymous"])
    variants = (delta.read_table(spark, settings.table("silver", "variants"))
                .filter(F.col("is_pass") & F.col("gene").isin("BRCA1", "BRCA2", "FGFR1",
                                                             "FGFR2", "FGFR3"))
                .select("patient_key", "gene", "protein_position", "consequence_terms")
                .collect())
    assert variants, "the generator should place passengers in these genes"
    expected = {"brca_mut": set(), "fgfr_alt": set()}
    missense_passengers = 0
    for v in variants:
        flag = "brca_mut" if v["gene"].startswith("BRCA") else "fgfr_alt"
        # A synonymous passenger at a knowledge-base residue changes no protein: no flag.
        at_site = ((v["gene"], v["protein_position"]) in sites
                   and bool(nonsyn & set(v["consequence_terms"] or ())))
        trunc = bool(truncating & set(v["consequence_terms"] or ()))
        if at_site or (trunc and flag == "brca_mut"):
            expected[flag].add(v["patient_key"])
        elif "missense_variant" in (v["consequence_terms"] or ()):
            missense_passengers += 1
    assert missense_passengers > 0
    bm = rows(spark, settings, "biomarkers")
    for flag, keys in expected.items():
        assert {r["patient_key"] for r in bm if r[flag]} == keys, flag

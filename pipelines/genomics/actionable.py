"""``silver.actionable_alterations``: patients' alterations matched to the knowledge base.

One row per (patient, gene, alteration, disease, therapy, direction, source): the CIViC
evidence items (or curated label entries) behind it are aggregated — best evidence level,
its citation, every evidence id.

Tumour-type logic (per knowledge-base entry and patient cancer type, decided on the driver
with OncoTree, then joined):

* ``disease_match``: ``exact``; ``ancestor`` (the indication is broader than the patient's
  type — a tumour-agnostic label, or NSCLC for a LUAD patient); ``descendant`` (narrower:
  LUAD evidence for a patient recorded as NSCLC); ``none``; ``excluded`` (a label's
  Limitations of Use name the patient's type, e.g. BRAF inhibitors in colorectal cancer);
  ``unknown`` (no cancer type for the patient) or ``unmapped`` (the evidence's disease has
  no OncoTree code).
* ``on_label``: the entry is an approval-grade statement (FDA label, NCCN, CIViC level A or
  an approved CIViC assertion) and ``disease_match`` is exact/ancestor/descendant. False for
  other evidence in the patient's type and for other types; null when the match is unknown.
* ``regimen``/``regimens``: catalog regimens (pipelines/resources/regimens.yaml) of the
  patient's cancer type (else the indication's) that contain the therapy's drugs; for
  sensitivity all drugs, for resistance any. ``regimen`` prefers regimens whose other drugs
  are the type's standard-of-care backbone (cetuximab in CRC -> folfox_cetuximab), then
  fewer drugs.
* ``label_terms``: what a curated FDA label asks beyond the alteration (line of therapy,
  co-requirements such as HR-positive/HER2-negative, what the board must confirm); read
  against one patient by :func:`pipelines.knowledge.labels.label_context` in the report and
  ``oncorank ingest vcf``.

The patient's cancer type comes from silver.patients, else the tumour type declared at
ingestion (:mod:`pipelines.genomics.declared`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.catalog import RegimenCatalog
from pipelines.genomics.matching import match_variants, rules_frame
from pipelines.knowledge.kb import KbEntry, KnowledgeBase
from pipelines.knowledge.labels import LABEL_TERMS_DDL

UNKNOWN = "~unknown"
ON_LABEL_MATCHES = ("exact", "ancestor", "descendant")
# Patient-level biomarkers of silver.biomarkers that knowledge-base entries may name.
PATIENT_BIOMARKERS = ("tmb_high",)

ENTRY_DDL = ("rule_id string, source string, evidence_id string, gene string, alteration "
             "string, match_kind string, disease string, disease_oncotree string, therapy "
             "string, drugs array<string>, direction string, significance string, "
             "evidence_level string, approved boolean, citation string, url string, "
             f"label_terms {LABEL_TERMS_DDL}")
RELATION_DDL = ("rule_id string, ctype string, disease_match string, on_label boolean, "
                "regimen string, regimens array<string>")



def entry_rows(kb: KnowledgeBase) -> list[tuple]:
    return [(f"k{i}", e.source, e.evidence_id, e.gene, e.alteration.text, e.alteration.kind,
             e.disease, e.disease_oncotree, e.therapy, list(e.drugs), e.direction,
             e.significance, e.evidence_level, e.approved, e.citation, e.url,
             e.label.as_row() if e.label else None)
            for i, e in enumerate(kb.entries)]


def disease_match(kb: KnowledgeBase, entry: KbEntry, ctype: str | None) -> str:
    if ctype is None:
        return "unknown"
    if entry.disease_oncotree is None:
        return "unmapped"
    lineage = kb.oncotree.ancestors(ctype)
    if any(x in lineage for x in entry.exclude_oncotree):
        return "excluded"
    return kb.oncotree.relation(entry.disease_oncotree, ctype)


def on_label(entry: KbEntry, match: str) -> bool | None:
    if match in ("unknown", "unmapped"):
        return None
    return bool(entry.approved and match in ON_LABEL_MATCHES)


def catalog_regimens(kb: KnowledgeBase, catalog: RegimenCatalog, entry: KbEntry,
                     ctype: str | None) -> tuple[str | None, list[str]]:
    """(preferred regimen, all regimens) of the catalog that deliver ``entry``'s therapy."""
    types = list(catalog.cancer_types)
    scope = kb.oncotree.within(ctype, types) if ctype else []
    if not ctype:
        scope = kb.oncotree.within(entry.disease_oncotree, types) or types
    if ctype and ctype in types:
        scope = [ctype]
    drugs = set(entry.drugs)
    found = []
    for t in scope:
        soc = set(catalog.standard_of_care(t).drugs)
        for r in catalog.for_cancer_type(t):
            have = set(r.drugs)
            ok = drugs <= have if entry.direction == "sensitivity" else bool(drugs & have)
            if ok and drugs:
                extra = have - drugs
                found.append(((not extra <= soc, len(extra), r.name), r.name))
    names = [n for _, n in sorted(found)]
    return (names[0] if names and len(scope) == 1 else None), sorted(names)


def relation_rows(kb: KnowledgeBase, catalog: RegimenCatalog, ctypes: list[str | None]
                  ) -> list[tuple]:
    rows = []
    for i, e in enumerate(kb.entries):
        for ctype in ctypes:
            match = disease_match(kb, e, ctype)
            regimen, regimens = catalog_regimens(kb, catalog, e, ctype)
            rows.append((f"k{i}", ctype or UNKNOWN, match, on_label(e, match), regimen,
                         regimens))
    return rows


def build_actionable(spark: SparkSession, facts: DataFrame, biomarkers: DataFrame,
                     patients: DataFrame | None, kb: KnowledgeBase,
                     catalog: RegimenCatalog) -> DataFrame:
    """Match every patient against ``kb``; see the module docstring for the columns."""
    rules = rules_frame(spark, [(f"k{i}", e.gene, e.alteration)
                                for i, e in enumerate(kb.entries)])
    variant_hits = match_variants(facts, rules).select(
        "patient_key", "rule_id", "variant_key", "vaf",
        F.coalesce("patient_change", "consequence").alias("patient_alteration"))
    biomarker_hits = None
    for name in PATIENT_BIOMARKERS:
        if name not in biomarkers.columns:
            continue
        flagged = biomarkers.filter(F.col(name)).select(
            "patient_key", F.lit(name).alias("biomarker"),
            F.format_string("TMB %.1f/Mb", F.col("tmb")).alias("patient_alteration")
            if name == "tmb_high" else F.lit(name).alias("patient_alteration"))
        hits = flagged.join(F.broadcast(rules.filter(F.col("kind") == "biomarker")),
                            "biomarker").select(
            "patient_key", "rule_id", F.lit(None).cast("string").alias("variant_key"),
            F.lit(None).cast("double").alias("vaf"), "patient_alteration")
        biomarker_hits = hits if biomarker_hits is None else biomarker_hits.unionByName(hits)
    hits = variant_hits if biomarker_hits is None else variant_hits.unionByName(biomarker_hits)

    if patients is not None:
        hits = hits.join(patients.select("patient_key", F.col("cancer_type")),
                         "patient_key", "left")
        ctypes = [r["cancer_type"] for r in patients.select("cancer_type").distinct().collect()]
    else:
        hits = hits.withColumn("cancer_type", F.lit(None).cast("string"))
        ctypes = []
    ctypes = sorted({c for c in ctypes if c}) + [None]
    entries = spark.createDataFrame(entry_rows(kb), ENTRY_DDL)
    relation = spark.createDataFrame(relation_rows(kb, catalog, ctypes), RELATION_DDL)
    level = F.col("evidence_level")
    rows = (
        hits.withColumn("ctype", F.coalesce("cancer_type", F.lit(UNKNOWN)))
        .join(F.broadcast(entries), "rule_id")
        .join(F.broadcast(relation), ["rule_id", "ctype"], "left")
    )
    keys = ["patient_key", "gene", "alteration", "disease", "disease_oncotree", "therapy",
            "direction", "source"]
    # The best evidence: lowest level, ties broken by evidence id, so re-runs agree.
    best = F.struct("citation", "url", "disease_match", "match_kind", "significance",
                    "label_terms")
    order = F.struct(level, F.col("evidence_id"))
    out = rows.groupBy(*keys).agg(
        F.min(level).alias("evidence_level"),
        F.min_by(best, order).alias("_best"),
        F.array_sort(F.collect_set("evidence_id")).alias("evidence_ids"),
        F.max("approved").alias("approved"),
        F.max("on_label").alias("on_label"),
        F.min("drugs").alias("drugs"),
        F.min("regimen").alias("regimen"),
        F.min("regimens").alias("regimens"),
        F.min("cancer_type").alias("patient_cancer_type"),
        F.max("vaf").alias("vaf"),
        F.array_sort(F.collect_set("variant_key")).alias("variant_keys"),
        F.array_sort(F.collect_set("patient_alteration")).alias("patient_alterations"),
    )
    key_text = F.concat_ws("|", *[F.coalesce(F.col(k), F.lit("")) for k in
                                  ("patient_key", "gene", "alteration", "disease", "therapy",
                                   "direction", "source")])
    return out.select(
        F.sha2(key_text, 256).alias("alteration_key"), "patient_key", "gene", "alteration",
        F.col("_best.match_kind").alias("match_kind"), "patient_alterations", "variant_keys",
        "vaf", "disease", "disease_oncotree", "patient_cancer_type",
        F.col("_best.disease_match").alias("disease_match"), "therapy", "drugs", "regimen",
        "regimens", "evidence_level", "direction",
        F.col("_best.significance").alias("significance"), "on_label", "approved",
        F.col("_best.citation").alias("citation"), F.col("_best.url").alias("url"),
        "evidence_ids", F.size("evidence_ids").alias("n_evidence"), "source",
        F.lit(kb.version).alias("kb_version"), F.col("_best.label_terms").alias("label_terms"),
    )

"""``silver.biomarkers``: one row per sequenced patient — TMB, gene-level flags, altered genes.

TMB = distinct PASS variants of the counted class (default: non-synonymous, see
``consequences.yaml``) / ``target_size_mb``; ``tmb_high`` = TMB >= ``tmb_high_threshold``.
A patient is in the table when at least one of their samples was ingested
(``silver.sequenced_samples``), so a sequenced patient without variants has TMB 0 and every
flag false. Flags are defined in ``resources/biomarker_flags.yaml`` with knowledge-base
alteration names, matched exactly as actionability matches them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.genomics import annotation as ann
from pipelines.genomics.config import GenomicsConfig
from pipelines.genomics.matching import match_variants, rules_frame
from pipelines.knowledge.alterations import parse_alteration


@cache
def flag_definitions() -> dict[str, dict]:
    text = resources.files("pipelines.genomics.resources").joinpath(
        "biomarker_flags.yaml").read_text()
    return yaml.safe_load(text)["flags"]


def flag_names() -> list[str]:
    return list(flag_definitions())


def flag_rules(spark: SparkSession) -> DataFrame:
    """One rule per (flag, gene, alteration); the rule id is the flag name."""
    rules = []
    for flag, spec in flag_definitions().items():
        for gene in spec["genes"]:
            for text in spec["alterations"]:
                alts = parse_alteration(gene, text)
                if not alts:
                    raise ValueError(f"biomarker flag {flag}: alteration {text!r} not understood")
                rules += [(flag, gene, a) for a in alts]
    return rules_frame(spark, rules)


def tmb_condition(cfg: GenomicsConfig):
    if cfg.tmb_class == "all":
        return F.col("variant_type") != "symbolic"
    return ann.has_class(F.col("consequence_terms"), cfg.tmb_class)


def build_biomarkers(variants: DataFrame, samples: DataFrame, facts: DataFrame,
                     flag_rules_df: DataFrame, cfg: GenomicsConfig) -> DataFrame:
    """Per-patient biomarkers from silver.variants (all patients) and the sequenced samples."""
    site = ["patient_key", "chrom", "pos", "ref", "alt"]
    passed = variants.filter(F.col("is_pass") & F.col("patient_key").isNotNull())
    counts = (
        passed.select(*site, tmb_condition(cfg).alias("_counted"),
                      F.col("consequence").isNotNull().alias("_annotated"))
        .groupBy(*site)
        .agg(F.max("_counted").alias("_counted"), F.max("_annotated").alias("_annotated"))
        .groupBy("patient_key")
        .agg(F.count(F.lit(1)).alias("pass_variants"),
             F.sum(F.col("_counted").cast("int")).alias("tmb_variants"),
             F.sum(F.col("_annotated").cast("int")).alias("annotated_variants"))
    )
    hits = match_variants(facts, flag_rules_df).groupBy("patient_key").agg(
        F.collect_set("rule_id").alias("_flags"))
    altered = facts.filter(F.col("c_nonsyn") | F.col("c_amp") | F.col("c_fusion")
                           | F.col("c_del")).groupBy("patient_key").agg(
        F.array_sort(F.collect_set("gene")).alias("altered_genes"))
    patients = samples.filter(F.col("patient_key").isNotNull()).groupBy("patient_key").agg(
        F.count(F.lit(1)).alias("n_samples"))
    # Counting by consequence needs annotation: PASS calls none of which is annotated give an
    # unknown TMB (null), not zero.
    unknowable = F.lit(cfg.tmb_class != "all") & (F.col("pass_variants") > 0) & (
        F.col("annotated_variants") == 0)
    out = (
        patients.join(counts, "patient_key", "left")
        .join(hits, "patient_key", "left")
        .join(altered, "patient_key", "left")
        .withColumn("tmb_variants", F.coalesce("tmb_variants", F.lit(0)).cast("long"))
        .withColumn("pass_variants", F.coalesce("pass_variants", F.lit(0)).cast("long"))
        .withColumn("target_size_mb", F.lit(float(cfg.target_size_mb)))
        .withColumn("annotated_variants",
                    F.coalesce("annotated_variants", F.lit(0)).cast("long"))
        .withColumn("tmb", F.when(
            ~unknowable, F.round(F.col("tmb_variants") / F.lit(cfg.target_size_mb), 3)))
        .withColumn("tmb_high", F.col("tmb") >= F.lit(cfg.tmb_high_threshold))
        .withColumn("tmb_class", F.lit(cfg.tmb_class))
        .withColumn("altered_genes", F.coalesce(
            "altered_genes", F.array().cast("array<string>")))
    )
    for flag in flag_names():
        out = out.withColumn(flag, F.coalesce(F.array_contains("_flags", flag), F.lit(False)))
    return out.select("patient_key", "tmb", "tmb_high", "tmb_variants", "pass_variants",
                      "annotated_variants", "target_size_mb", "tmb_class", *flag_names(),
                      "altered_genes", "n_samples")


def biomarker_comments() -> dict[str, str]:
    """Comments of the gene-level flag columns (``resources/biomarker_flags.yaml``); the
    other columns' are in the comments registry (pipelines/lakehouse/resources/comments.yaml)."""
    out = {}
    for flag, spec in flag_definitions().items():
        out[flag] = (f"PASS {' / '.join(spec['alterations'])} in "
                     f"{', '.join(spec['genes'])}")
    return out

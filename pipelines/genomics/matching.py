"""Match patients' variants against alteration specs (knowledge-base entries, flag rules).

``variant_facts`` reduces silver.variants to what matching looks at: PASS variants of known
patients, one row per gene they touch (SnpEff writes a fusion's genes as ``EML4&ALK``), with
the normalised protein change and the consequence classes of ``consequences.yaml``.
``match_variants`` joins those facts with a rules frame on gene and keeps the pairs that
satisfy the rule's kind (the table in :mod:`pipelines.knowledge.alterations`).

Gene-level "Mutation" means an *oncogenic* mutation (``c_oncogenic``): a truncating variant
of a tumour suppressor (``knowledge/resources/gene_roles.yaml``), or a protein-altering
variant at a residue (in-frame indel: an exon) that the knowledge base names for the gene.
Without known sites (``known_sites=None``) every protein-altering variant counts.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.genomics import annotation as ann
from pipelines.knowledge.alterations import Alteration

RULES_DDL = ("rule_id string, gene string, kind string, protein_change string, position int, "
             "ref_aa string, exon int, partner string, biomarker string")
CLASS_COLUMNS = {
    "nonsynonymous": "c_nonsyn", "truncating": "c_trunc", "inframe_deletion": "c_indel_del",
    "inframe_insertion": "c_indel_ins", "amplification": "c_amp", "deletion": "c_del",
    "fusion": "c_fusion", "exon_skipping": "c_skip",
}


def rules_frame(spark: SparkSession, rules: list[tuple[str, str | None, Alteration]]
                ) -> DataFrame:
    """A rules DataFrame from ``(rule_id, gene, alteration)`` triples."""
    rows = [(rid, gene.upper() if gene else None, a.kind,
             a.protein_change.upper() if a.protein_change else None, a.position, a.ref_aa,
             a.exon, a.partner, a.biomarker) for rid, gene, a in rules]
    return spark.createDataFrame(rows, RULES_DDL)


SITE_KINDS = ("protein_change", "codon", "frameshift")
EXON_KINDS = ("exon_deletion", "exon_insertion", "exon_mutation")


def known_sites(spark: SparkSession, alterations: list[tuple[str | None, Alteration]]
                ) -> DataFrame:
    """(gene, protein_position, exon) sites the knowledge base names; one of the two is null."""
    rows = set()
    for gene, a in alterations:
        if not gene:
            continue
        if a.kind in SITE_KINDS and a.position is not None:
            rows.add((gene.upper(), a.position, None))
        elif a.kind in EXON_KINDS and a.exon is not None:
            rows.add((gene.upper(), None, a.exon))
    return spark.createDataFrame(sorted(rows, key=str),
                                 "gene string, protein_position int, exon int")


def mark_oncogenic(facts: DataFrame, sites: DataFrame | None,
                   suppressors: frozenset[str] = frozenset()) -> DataFrame:
    """Add ``c_oncogenic`` (see the module docstring) to ``variant_facts`` output."""
    if sites is None:
        return facts.withColumn("c_oncogenic", F.col("c_nonsyn"))
    at_site = (sites.filter(F.col("protein_position").isNotNull())
               .select("gene", "protein_position", F.lit(True).alias("_site")).distinct())
    in_exon = (sites.filter(F.col("exon").isNotNull())
               .select("gene", "exon", F.lit(True).alias("_exon")).distinct())
    indel = F.col("c_indel_del") | F.col("c_indel_ins")
    trunc_tsg = F.col("c_trunc") & F.col("gene").isin(*sorted(suppressors)) \
        if suppressors else F.lit(False)
    return (
        facts.join(F.broadcast(at_site), ["gene", "protein_position"], "left")
        .join(F.broadcast(in_exon), ["gene", "exon"], "left")
        .withColumn("c_oncogenic", (F.col("c_nonsyn") & (
            F.coalesce("_site", F.lit(False)) | (indel & F.coalesce("_exon", F.lit(False)))))
            | trunc_tsg)
        .drop("_site", "_exon")
    )


def variant_facts(variants: DataFrame, sites: DataFrame | None = None,
                  suppressors: frozenset[str] = frozenset()) -> DataFrame:
    """PASS variants of known patients, one row per (variant, gene), with match features.

    ``sites`` (from :func:`known_sites`) and ``suppressors`` define ``c_oncogenic``.
    """
    terms = F.col("consequence_terms")
    genes = F.split(F.upper("gene"), "&")
    df = variants.filter(F.col("is_pass") & F.col("patient_key").isNotNull()
                         & F.col("gene").isNotNull())
    cols = [
        "patient_key", "variant_key", "vaf", "consequence",
        F.explode(F.array_distinct(genes)).alias("gene"),
        genes.alias("fusion_genes"),
        F.upper("protein_change").alias("pchange"),
        "protein_position",
        ann.reference_residue(F.col("protein_change")).alias("ref_aa"),
        "exon",
        F.coalesce(F.array_contains(terms, "frameshift_variant"), F.lit(False)).alias(
            "c_frameshift"),
        F.col("protein_change").alias("patient_change"),
    ]
    cols += [ann.has_class(terms, cls).alias(col) for cls, col in CLASS_COLUMNS.items()]
    return mark_oncogenic(df.select(*cols), sites, suppressors)


def rule_matches(kind: Column) -> Column:
    """Whether a (fact, rule) pair matches, by the rule's kind."""
    exon_eq = F.col("f.exon") == F.col("r.exon")
    return (
        F.when(kind == "protein_change", F.col("f.pchange") == F.col("r.protein_change"))
        .when(kind == "codon", (F.col("f.protein_position") == F.col("r.position"))
              & (F.col("f.ref_aa") == F.col("r.ref_aa")) & F.col("f.c_nonsyn"))
        .when(kind == "frameshift", (F.col("f.protein_position") == F.col("r.position"))
              & F.col("f.c_frameshift"))
        .when(kind == "any_mutation", F.col("f.c_oncogenic"))
        .when(kind == "truncating", F.col("f.c_trunc"))
        .when(kind == "exon_deletion", exon_eq & F.col("f.c_indel_del"))
        .when(kind == "exon_insertion", exon_eq & F.col("f.c_indel_ins"))
        .when(kind == "exon_mutation", exon_eq & F.col("f.c_nonsyn"))
        # Splice-site variants are intronic, so their exon is usually empty.
        .when(kind == "exon_skipping", F.col("f.c_skip")
              & (F.col("f.exon").isNull() | exon_eq))
        .when(kind == "amplification", F.col("f.c_amp"))
        .when(kind == "deletion", F.col("f.c_del"))
        .when(kind == "fusion", F.col("f.c_fusion")
              & (F.col("r.partner").isNull()
                 | F.array_contains(F.col("f.fusion_genes"), F.col("r.partner"))))
        .otherwise(F.lit(False))
    )


def match_variants(facts: DataFrame, rules: DataFrame) -> DataFrame:
    """(patient_key, rule_id, variant_key, vaf, patient_change, consequence) per match."""
    gene_rules = rules.filter(F.col("kind") != "biomarker")
    joined = facts.alias("f").join(F.broadcast(gene_rules.alias("r")),
                                   F.col("f.gene") == F.col("r.gene"), "inner")
    return joined.filter(F.coalesce(rule_matches(F.col("r.kind")), F.lit(False))).select(
        "f.patient_key", "r.rule_id", "f.variant_key", "f.vaf", "f.patient_change",
        "f.consequence", F.col("f.gene").alias("matched_gene"))

"""``bronze.variants_raw`` -> ``silver.variants``: one row per (record, sample, ALT allele)
that the sample carries, with genotype, depths, VAF, annotation and pseudonymised ids.

Steps (each DataFrame -> DataFrame, chained with ``.transform``):

* :func:`split_alleles` — one row per ALT allele (``bcftools norm -m-`` semantics: per-allele
  AD is (REF, this ALT), per-allele AF is this ALT's value);
* :func:`with_genotype` — decode GT into allele indices, copies of this allele, zygosity;
* :func:`with_depths` — AD/DP/AF through the FORMAT aliases (AD, then the GDC tumour ADT...),
  VAF = AF when given, else ALT reads / all reads, else the site's tumour VAF (INFO TVAF);
* :func:`filter_carriers` — keep alleles the sample carries (GT contains the allele, or, with
  no called GT, reads support it); sites-only records are kept with a null sample;
* :func:`with_annotation` — VEP CSQ first, SnpEff ANN otherwise (see
  :mod:`pipelines.genomics.annotation`);
* :func:`with_identity` — patient_key from the sample map, pseudonymised sample and file.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.genomics import annotation as ann
from pipelines.genomics.reader import conventions
from pipelines.lakehouse.privacy import pseudonymise_col

SILVER_COLUMNS = (
    "variant_key", "patient_key", "sample", "chrom", "pos", "ref", "alt", "allele_index",
    "n_alts", "variant_type", "filter", "is_pass", "qual", "gt", "zygosity", "phased",
    "ad_ref", "ad_alt", "dp", "vaf", "vaf_source", "gene", "gene_id", "consequence",
    "consequence_terms", "impact", "hgvsc", "hgvsp", "protein_change", "protein_position",
    "exon", "transcript", "biotype", "canonical", "annotation_source", "is_nonsynonymous",
    "end", "copy_number", "source_file", "record_index",
)
SILVER_KEYS = ["source_file", "record_index", "sample", "allele_index"]



# ---------------------------------------------------------------------------- steps
def split_alleles(bronze: DataFrame) -> DataFrame:
    """One row per ALT allele; records without ALT (``.``) produce none."""
    return (
        bronze.select("*", F.posexplode("alts").alias("_alt_pos", "alt"))
        .withColumn("allele_index", F.col("_alt_pos") + 1)
        .withColumn("n_alts", F.size("alts"))
        .drop("_alt_pos")
    )


def with_genotype(df: DataFrame) -> DataFrame:
    """GT -> allele indices; copies of this allele; zygosity; phasing."""
    alleles = F.split(F.regexp_replace(F.regexp_replace("gt", r"^[|/]", ""), r"[|/]", ","),
                      ",").cast("array<int>")
    ploidy = F.size("gt_alleles")
    copies = ploidy - F.size(F.expr("array_remove(gt_alleles, allele_index)"))
    called = F.size(F.array_compact("gt_alleles"))
    zygosity = (
        F.when(F.col("gt").isNull() | (called == 0) | (copies == 0), F.lit(None))
        .when(ploidy == 1, "hemizygous")
        .when(copies == ploidy, "hom_alt")
        .otherwise("het")
    )
    return (
        df.withColumn("gt_alleles", F.when(F.col("gt").isNotNull(), alleles))
        .withColumn("allele_copies", F.when(F.col("gt").isNotNull(), copies))
        .withColumn("gt_called", F.when(F.col("gt").isNotNull(), called))
        .withColumn("zygosity", zygosity)
        .withColumn("phased", F.col("gt").contains("|"))
    )


def _first_present(mapping: str, keys: list[str]) -> Column:
    return F.coalesce(*[F.col(mapping)[k] for k in keys])


def with_depths(df: DataFrame) -> DataFrame:
    """Per-allele AD and AF, depth and VAF, through the FORMAT/INFO aliases."""
    fa = conventions()["format_aliases"]
    ia = conventions()["info_aliases"]
    ad_all = F.split(_first_present("format", fa["allelic_depth"]), ",").cast("array<int>")
    af_all = F.split(_first_present("format", fa["allele_fraction"]), ",").cast(
        "array<double>")
    info_af = F.split(_first_present("info", ia["allele_fraction"]), ",").cast("array<double>")
    df = (
        df.withColumn("_ad", ad_all)
        .withColumn("ad_ref", F.get("_ad", 0))
        .withColumn("ad_alt", F.get("_ad", F.col("allele_index")))
        .withColumn("_ad_total", F.aggregate("_ad", F.lit(0).cast("bigint"),
                                             lambda acc, x: acc + F.coalesce(x, F.lit(0))))
        .withColumn("_af", F.get(af_all, F.col("allele_index") - 1))
        .withColumn("_info_af", F.coalesce(F.get(info_af, F.col("allele_index") - 1),
                                           F.when(F.size(info_af) == 1, F.get(info_af, 0))))
    )
    from_ad = F.when(F.col("_ad_total") > 0, F.col("ad_alt") / F.col("_ad_total"))
    depth = F.coalesce(*[F.col("format")[k].cast("int") for k in fa["depth"]],
                       *[F.col("info")[k].cast("int") for k in ia["depth"]])
    return (
        df.withColumn("vaf", F.coalesce(F.col("_af"), from_ad, F.col("_info_af")))
        .withColumn("vaf_source",
                    F.when(F.col("_af").isNotNull(), "format_af")
                    .when(from_ad.isNotNull(), "ad")
                    .when(F.col("_info_af").isNotNull(), "info"))
        .withColumn("dp_any", depth)
        .drop("_ad", "_ad_total", "_af", "_info_af")
    )


def filter_carriers(df: DataFrame) -> DataFrame:
    """Keep alleles the sample carries; sites-only records (no sample) are kept."""
    no_call = F.col("gt").isNull() | (F.col("gt_called") == 0)
    carried = (
        F.col("sample").isNull()
        | (F.col("allele_copies") > 0)
        | (no_call & (F.coalesce(F.col("ad_alt"), F.lit(0)) > 0))
    )
    return df.filter(carried)


def with_annotation(df: DataFrame, layout: DataFrame) -> DataFrame:
    """Gene, consequence, HGVS, exon, transcript of the chosen CSQ (else ANN) entry.

    ``layout`` is one row per source file with the annotation role positions
    (:func:`pipelines.genomics.annotation.annotation_layout`).
    """
    df = df.join(F.broadcast(layout), on="source_file", how="left")
    vep = ann.vep_allele(F.col("ref"), F.col("alts"), F.col("alt"))
    csq_text, ann_text = F.col("info")["CSQ"], F.col("info")["ANN"]
    df = (
        df.withColumn("_csq", ann.pick_entry("csq", csq_text, vep, F.col("alt"), F.col("n_alts")))
        .withColumn("_ann", ann.pick_entry("ann", ann_text, vep, F.col("alt"), F.col("n_alts")))
        .withColumn("annotation_source",
                    F.when(F.col("_csq").isNotNull(), "vep")
                    .when(F.col("_ann").isNotNull(), "snpeff"))
    )
    use_csq = F.col("annotation_source") == "vep"

    def role(name: str) -> Column:
        return F.when(use_csq, ann._get(F.col("_csq"), "csq", name)).otherwise(
            ann._get(F.col("_ann"), "ann", name))

    df = df.withColumn("transcript", role("transcript"))
    # A CSQ without HGVS sub-fields: take HGVS from the SnpEff entry of the same transcript.
    df = df.withColumn("_ann_same", F.when(
        use_csq & ((F.col("csq_hgvsp_i") < 0) | (F.col("csq_hgvsc_i") < 0)),
        ann.same_transcript_entry("ann", ann_text, F.col("transcript"))))
    hgvsc = F.coalesce(role("hgvsc"), ann._get(F.col("_ann_same"), "ann", "hgvsc"))
    hgvsp = F.coalesce(role("hgvsp"), ann._get(F.col("_ann_same"), "ann", "hgvsp"))
    df = (
        df.withColumn("gene", role("gene"))
        .withColumn("gene_id", role("gene_id"))
        .withColumn("consequence", role("consequence"))
        .withColumn("impact", role("impact"))
        .withColumn("biotype", role("biotype"))
        .withColumn("canonical", F.coalesce(role("canonical") == "YES", F.lit(False)))
        .withColumn("hgvsc", hgvsc)
        .withColumn("hgvsp", F.regexp_replace(hgvsp, "%3D", "="))
        .withColumn("protein_change",
                    ann.protein_change(hgvsp, role("amino_acids"), role("protein_position")))
        .withColumn("protein_position", ann.protein_position(F.col("protein_change")))
        .withColumn("consequence_terms", F.split("consequence", "&"))
    )
    exon_text = role("exon")
    exon = F.regexp_extract(exon_text, r"^([0-9]+)", 1)
    df = df.withColumn("exon", F.coalesce(
        F.when(exon != "", exon.cast("int")),
        ann.exon_from_residue(F.col("gene"), F.col("protein_position"))))
    layout_cols = [c for c in layout.columns if c != "source_file"]
    return df.drop("_csq", "_ann", "_ann_same", *layout_cols)


def with_variant_type(df: DataFrame) -> DataFrame:
    ref, alt = F.col("ref"), F.col("alt")
    return df.withColumn(
        "variant_type",
        F.when(alt.startswith("<") | alt.contains("[") | alt.contains("]") | (alt == "*"),
               "symbolic")
        .when((F.length(ref) == 1) & (F.length(alt) == 1), "snv")
        .when(F.length(ref) == F.length(alt), "mnv")
        .when((F.length(ref) < F.length(alt)) & alt.startswith(ref), "insertion")
        .when((F.length(ref) > F.length(alt)) & ref.startswith(alt), "deletion")
        .otherwise("complex"),
    )


def with_identity(df: DataFrame, sample_map: DataFrame | None, key: bytes) -> DataFrame:
    """patient_key from the sample map (else the sample name is the patient id); the sample
    and file become pseudonyms so no identifier reaches silver."""
    if sample_map is not None:
        df = df.join(F.broadcast(sample_map.select(
            F.col("sample").alias("_map_sample"), F.col("patient_id").alias("_patient_id"))),
            F.col("sample") == F.col("_map_sample"), "left").drop("_map_sample")
        patient_id = F.coalesce(F.col("_patient_id"), F.col("sample"))
    else:
        patient_id = F.col("sample")
    df = df.withColumn("patient_key", pseudonymise_col(patient_id, key))
    df = df.withColumn("sample", pseudonymise_col(F.concat(F.lit("sample:"), "sample"), key))
    df = df.withColumn("source_file", file_pseudonym(F.col("source_file"), key))
    return df.drop("_patient_id") if sample_map is not None else df


def file_pseudonym(path: Column, key: bytes) -> Column:
    """Silver's name for a source file: paths often contain patient ids."""
    return F.concat(F.lit("vcf-"), pseudonymise_col(F.concat(F.lit("file:"), path), key))


def with_variant_key(df: DataFrame) -> DataFrame:
    text = F.concat_ws("|", "chrom", F.col("pos").cast("string"), "ref", "alt",
                       F.coalesce("sample", F.lit("")))
    return df.withColumn("variant_key", F.sha2(text, 256))


def build_variants(bronze: DataFrame, layout: DataFrame, sample_map: DataFrame | None,
                   key: bytes) -> DataFrame:
    """The whole bronze -> silver.variants chain for the rows of ``bronze``."""
    filt = F.col("filters")
    return (
        bronze.transform(split_alleles)
        .transform(with_genotype)
        .transform(with_depths)
        .transform(filter_carriers)
        .transform(lambda d: with_annotation(d, layout))
        .transform(with_variant_type)
        .transform(lambda d: with_identity(d, sample_map, key))
        .transform(with_variant_key)
        .withColumn("filter", F.array_join(filt, ";"))
        .withColumn("is_pass", F.coalesce(F.array_contains(filt, "PASS") & (F.size(filt) == 1),
                                          F.lit(False)))
        .withColumn("is_nonsynonymous", ann.has_class(F.col("consequence_terms"),
                                                      "nonsynonymous"))
        .withColumn("dp", F.col("dp_any"))
        .withColumn("end", F.col("info_end"))
        .withColumn("copy_number", F.col("info")["CN"].cast("double"))
        .select(*SILVER_COLUMNS)
    )

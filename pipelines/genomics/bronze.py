"""Raw reader rows -> typed ``bronze.variants_raw`` rows plus the rows to quarantine.

Input: the all-string rows of :mod:`pipelines.genomics.reader` (``RAW_DDL``). Output of
:func:`with_bronze_fields`: the same rows with typed columns and, for rows that break a rule,
``_rule``/``_reason`` (the reader's header checks win over the checks here).

INFO and FORMAT are kept whole as ``map<string,string>`` (every key, value verbatim — so a
field pysam cannot decode, like gnomAD's ``Number=G`` INFO, is still there), plus typed
columns for the fields every consumer needs: ``gt``, ``ad``, ``dp``, ``gq``, ``af`` per sample
and ``info_af``, ``info_dp``, ``info_end``, ``info_svtype`` per site. Typing uses only Spark
built-ins (casts of split strings), no Python UDF.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# VCF 4.3 section 1.6.2: GT is allele indices separated by / or |, "." when missing; a
# leading phasing character is allowed from 4.4 on.
GT_PATTERN = r"^[|/]?(\.|[0-9]+)([|/](\.|[0-9]+))*$"
INT_LIST_PATTERN = r"^(\.|[0-9]+)(,(\.|[0-9]+))*$"
INT_PATTERN = r"^(\.|[0-9]+)$"
REF_PATTERN = r"^[ACGTNacgtn]+$"

BRONZE_COLUMNS = (
    "source_file", "record_index", "sample", "sample_index", "chrom", "pos", "id", "ref",
    "alts", "qual", "filters", "info", "format", "gt", "ad", "dp", "gq", "af", "info_af",
    "info_dp", "info_end", "info_svtype",
)
QUARANTINE_COLUMNS = (
    "source_file", "record_index", "sample", "sample_index", "chrom", "pos", "id", "ref",
    "alt", "qual", "filter", "info", "format", "sample_data", "raw_line",
)

BRONZE_COMMENTS = {
    "source_file": "Absolute path of the VCF/BCF file the record came from",
    "record_index": "0-based ordinal of the record among the file's data lines",
    "sample": "Sample name from the #CHROM line (null for a sites-only file)",
    "sample_index": "0-based position of the sample column",
    "chrom": "CHROM as written in the file",
    "pos": "POS, 1-based",
    "id": "ID (null when '.')",
    "ref": "REF allele",
    "alts": "ALT alleles in file order (empty when '.')",
    "qual": "QUAL (null when '.')",
    "filters": "FILTER values; null when '.', ['PASS'] when passed",
    "info": "Every INFO key -> its value exactly as written (null value for a Flag)",
    "format": "Every FORMAT key -> this sample's value exactly as written",
    "gt": "FORMAT GT as written, e.g. 0/1, 1|2, ./.",
    "ad": "FORMAT AD: allelic depths, REF first then each ALT",
    "dp": "FORMAT DP: read depth",
    "gq": "FORMAT GQ: genotype quality",
    "af": "FORMAT AF: allele fraction per ALT",
    "info_af": "INFO AF: allele frequency per ALT",
    "info_dp": "INFO DP: combined depth",
    "info_end": "INFO END: end position of a symbolic/structural allele",
    "info_svtype": "INFO SVTYPE: structural variant type",
}
BRONZE_TABLE_COMMENT = (
    "VCF/BCF records as received, one row per (file, record, sample); key (source_file, "
    "record_index, sample). Written by ingest-variants; bad rows go to "
    "bronze.quarantine_variants_raw with the reason."
)


def _int_array(text: Column) -> Column:
    return F.split(text, ",").cast("array<int>")


def _float_array(text: Column) -> Column:
    return F.split(text, ",").cast("array<double>")


def _rule(*checks: tuple[Column, str, Column]) -> tuple[Column, Column]:
    """First failing (condition, rule, reason) as (rule, reason) columns."""
    rule, reason = F.lit(None).cast("string"), F.lit(None).cast("string")
    for cond, name, why in reversed(checks):
        rule = F.when(cond, F.lit(name)).otherwise(rule)
        reason = F.when(cond, why).otherwise(reason)
    return rule, reason


def with_bronze_fields(raw: DataFrame) -> DataFrame:
    """Type the reader's string rows and apply the rules that need no header.

    Adds ``pos_l``, ``qual_d``, ``id_v``, ``alts``, ``filters``, ``info_map``, ``fmt_map``,
    ``gt``, ``ad``, ``dp``, ``gq``, ``af``, ``info_af``, ``info_dp``, ``info_end``,
    ``info_svtype``; fills ``_rule``/``_reason`` for rows the reader passed but a rule here
    rejects. Maps are only built for rows without a rule (a duplicate key would make Spark
    fail the whole task).
    """
    fmt_keys = F.split("format", ":")
    vals = F.split("sample_data", ":")
    has_sample = F.col("sample_data").isNotNull()
    alts = F.when(F.col("alt") == ".", F.array().cast("array<string>")).otherwise(
        F.split("alt", ","))
    qual_d = F.when(F.col("qual") == ".", F.lit(None)).otherwise(
        F.col("qual").cast("double"))

    df = raw.withColumn("alts", alts).withColumn("qual_d", qual_d).withColumn(
        "_fmt_ok", has_sample & (F.size(vals) <= F.size(fmt_keys)))
    fmt_map_all = F.when(
        F.col("_fmt_ok") & F.col("_rule").isNull(),
        F.map_from_arrays(F.slice(fmt_keys, 1, F.size(vals)), vals))
    df = df.withColumn("_fmt", fmt_map_all)
    gt = F.col("_fmt")["GT"]
    ad, dp = F.col("_fmt")["AD"], F.col("_fmt")["DP"]
    gt_max = F.array_max(F.split(F.regexp_replace(gt, r"[|/]", ","), ",").cast("array<int>"))

    checks = (
        (~F.col("pos").rlike(r"^[0-9]+$"), "invalid_pos",
         F.concat(F.lit("POS "), F.to_json(F.array("pos")), F.lit(" is not a whole number"))),
        (F.col("qual_d").isNull() & (F.col("qual") != "."), "invalid_qual",
         F.concat(F.lit("QUAL "), F.to_json(F.array("qual")), F.lit(" is not a number"))),
        (~F.col("ref").rlike(REF_PATTERN), "invalid_ref",
         F.concat(F.lit("REF "), F.to_json(F.array("ref")),
                  F.lit(" is not a sequence of A, C, G, T, N"))),
        (F.col("alt") == "", "invalid_alt", F.lit("ALT is empty (use '.' for none)")),
        (has_sample & ~F.col("_fmt_ok"), "format_value_count",
         F.concat(F.lit("sample has more values than FORMAT keys ("),
                  F.col("sample_data"), F.lit(" for "), F.col("format"), F.lit(")"))),
        (gt.isNotNull() & ~gt.rlike(GT_PATTERN), "malformed_gt",
         F.concat(F.lit("GT "), F.to_json(F.array(gt)), F.lit(" is not a genotype"))),
        (gt.isNotNull() & (gt_max > F.size("alts")), "malformed_gt",
         F.concat(F.lit("GT "), gt, F.lit(" refers to allele "), gt_max.cast("string"),
                  F.lit(" but the record has "), F.size("alts").cast("string"),
                  F.lit(" ALT allele(s)"))),
        (ad.isNotNull() & ~ad.rlike(INT_LIST_PATTERN), "invalid_ad",
         F.concat(F.lit("AD "), F.to_json(F.array(ad)), F.lit(" is not a list of counts"))),
        (dp.isNotNull() & ~dp.rlike(INT_PATTERN), "invalid_dp",
         F.concat(F.lit("DP "), F.to_json(F.array(dp)), F.lit(" is not a count"))),
    )
    rule, reason = _rule(*checks)
    worker_rule = F.col("_rule").isNotNull()
    df = df.withColumn("_reason", F.when(worker_rule, F.col("_reason")).otherwise(reason))
    df = df.withColumn("_rule", F.when(worker_rule, F.col("_rule")).otherwise(rule))

    good = F.col("_rule").isNull()
    info_map = F.when(good & (F.col("info") == "."), F.create_map().cast(
        "map<string,string>")).when(good, F.expr("str_to_map(info, ';', '=')"))
    fmt = F.when(good, F.col("_fmt"))
    return (
        df.withColumn("pos_l", F.col("pos").cast("bigint"))
        .withColumn("id_v", F.when(F.col("id") != ".", F.col("id")))
        .withColumn("filters", F.when(F.col("filter") != ".", F.split("filter", ";")))
        .withColumn("info_map", info_map)
        .withColumn("fmt_map", fmt)
        .withColumn("gt", fmt["GT"])
        .withColumn("ad", _int_array(fmt["AD"]))
        .withColumn("dp", fmt["DP"].cast("int"))
        .withColumn("gq", fmt["GQ"].cast("int"))
        .withColumn("af", _float_array(fmt["AF"]))
        .withColumn("info_af", _float_array(F.col("info_map")["AF"]))
        .withColumn("info_dp", F.col("info_map")["DP"].cast("bigint"))
        .withColumn("info_end", F.col("info_map")["END"].cast("bigint"))
        .withColumn("info_svtype", F.col("info_map")["SVTYPE"])
        .drop("_fmt", "_fmt_ok")
    )


def select_bronze(typed: DataFrame) -> DataFrame:
    """The rows that passed, in the bronze.variants_raw layout."""
    return typed.filter(F.col("_rule").isNull()).select(
        "source_file", "record_index", "sample", "sample_index", "chrom",
        F.col("pos_l").alias("pos"), F.col("id_v").alias("id"), "ref", "alts",
        F.col("qual_d").alias("qual"), "filters", F.col("info_map").alias("info"),
        F.col("fmt_map").alias("format"), "gt", "ad", "dp", "gq", "af", "info_af", "info_dp",
        "info_end", "info_svtype",
    )


def select_quarantine(typed: DataFrame) -> DataFrame:
    """The rejected rows as received (strings), with the quarantine meta columns."""
    return typed.filter(F.col("_rule").isNotNull()).select(
        *[c for c in QUARANTINE_COLUMNS if c != "raw_line"],
        F.col("_raw").alias("raw_line"),
        F.col("source_file").alias("_source"),
        F.col("record_index").alias("_record_index"),
        "_rule", "_reason",
    )

"""Pure steps of the ``score`` stage: DataFrame(s) in, DataFrame out, no I/O.

The ranking rule, stated once: **within a patient, candidate regimens are ranked by predicted
restricted mean survival time (RMST) at the model horizon, highest first; ties go to the higher
lower interval bound, then to the regimen name — except for a targeted regimen whose label
requirement (``label`` in regimens.yaml) is unknown for the patient (the biomarker was not
tested: the board must test first), which comes after every option that can be given now; and
no rank at all** (``rank_status``, :mod:`pipelines.ranking.abstention`) **for an option without
enough comparable treated patients, for a targeted regimen whose label requirement is not met
(a biomarker the patient is known not to have, e.g. trastuzumab for a HER2-negative tumour,
cetuximab for a KRAS-mutant one) and for an option the patient carries a level-A resistance
marker against in this tumour type (an approval-grade knowledge-base statement, e.g. KRAS/NRAS
mutations against anti-EGFR antibodies in colorectal cancer)**: such an option is shown with
its reason and never ranks first, even when nothing else can be ranked. Its ``label_status``
says why. Evidence level, weaker resistance evidence and contraindications are
attached beside each option and never change its rank: the tumor board weighs them, the code
does not silently apply them.

>>> from pyspark.sql import SparkSession  # doctest: +SKIP
>>> preds.transform(with_rank).select("treatment", "rank")  # doctest: +SKIP
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.catalog import RegimenCatalog
from pipelines.ranking.abstention import LABEL_NOT_MET, RANKED, RESISTANCE_A
from pipelines.ranking.option_rules import RuleBook

KEYS = ["patient_key", "treatment", "board_date"]

# What the model hands over for each (patient, candidate regimen).
PREDICTION_SCHEMA = T.StructType(
    [
        T.StructField("patient_key", T.StringType(), False),
        T.StructField("treatment", T.StringType(), False),
        T.StructField("predicted_rmst", T.DoubleType(), True),
        T.StructField("rmst_lower", T.DoubleType(), True),
        T.StructField("rmst_upper", T.DoubleType(), True),
        T.StructField("surv_12", T.DoubleType(), True),
        T.StructField("surv_12_lower", T.DoubleType(), True),
        T.StructField("surv_12_upper", T.DoubleType(), True),
        T.StructField("surv_24", T.DoubleType(), True),
        T.StructField("surv_24_lower", T.DoubleType(), True),
        T.StructField("surv_24_upper", T.DoubleType(), True),
        T.StructField("propensity", T.DoubleType(), True),
        T.StructField("overlap_warning", T.BooleanType(), True),
        T.StructField("n_similar_treated", T.LongType(), True),
    ]
)

# gold.treatment_rankings, column order as written.
RANKING_COLUMNS = [
    "patient_key", "board_date", "treatment", "rank", "rank_status", "cancer_type",
    "predicted_rmst", "rmst_lower", "rmst_upper",
    "surv_12", "surv_12_lower", "surv_12_upper", "surv_24", "surv_24_lower", "surv_24_upper",
    "horizon_months", "standard_of_care", "benefit_vs_soc", "benefit_lower", "benefit_upper",
    "prob_rank1", "n_refits",
    "evidence_level", "evidence_alteration", "evidence_citation", "evidence_ids",
    "evidence_on_label", "label_status", "contraindications", "overlap_warning", "propensity",
    "n_similar_treated",
    "model_name", "model_version", "mlflow_run_id", "kb_version", "scored_at",
]



# ---------------------------------------------------------------------------- inputs
def latest_per_patient(df: DataFrame, order_col: str = "index_date") -> DataFrame:
    """One row per patient: the one with the latest ``order_col`` (nulls last)."""
    if order_col not in df.columns:
        return df.dropDuplicates(["patient_key"])
    w = Window.partitionBy("patient_key").orderBy(F.col(order_col).desc_nulls_last())
    return df.withColumn("_n", F.row_number().over(w)).filter(F.col("_n") == 1).drop("_n")


def catalog_frame(spark: SparkSession, catalog: RegimenCatalog) -> DataFrame:
    """The regimen catalog as a small DataFrame (treatment, cancer_type, drugs, class, soc)."""
    rows = [(r.name, r.cancer_type, list(r.drugs), r.drug_class, r.standard_of_care)
            for r in catalog.regimens]
    schema = "treatment string, cancer_type string, drugs array<string>, drug_class string, " \
             "is_standard_of_care boolean"
    return spark.createDataFrame(rows, schema)


def candidate_pairs(patients: DataFrame, catalog_df: DataFrame) -> DataFrame:
    """Every (patient, candidate regimen of the patient's cancer type).

    Input: ``patient_key, cancer_type``. Output adds ``treatment``; a patient whose cancer type
    has no regimen in the catalog gets no row (the stage quarantines such patients).
    """
    return patients.select("patient_key", "cancer_type").join(
        F.broadcast(catalog_df.select("cancer_type", "treatment")), "cancer_type", "inner")


# ---------------------------------------------------------------------------- ranking
def label_status(candidates: DataFrame, features: DataFrame, catalog: RegimenCatalog
                 ) -> DataFrame:
    """``patient_key, treatment, label_status, requirement_not_met, requirement_unknown`` for
    every candidate of a
    regimen with a ``label`` in the catalog: "requirement not met: HER2-negative" when a
    required feature has the other value, "requirement unknown: PIK3CA status unknown" when it
    is null, "on label at a later line (after 1 prior line)" when the label is for a later line
    than the patient's (``n_prior_lines``), else "on label now". Regimens without a label get
    no row."""
    spark = candidates.sparkSession
    reqs = [(r.name, q.feature, q.value, q.unmet, q.unknown)
            for r in catalog.regimens if r.label for q in r.label.requires]
    prior = {r.name: r.label.prior_lines for r in catalog.regimens if r.label}
    if not reqs:
        return spark.createDataFrame([], "patient_key string, treatment string, "
                                         "label_status string, requirement_not_met boolean")
    cols = set(features.columns)
    names = sorted({q[1] for q in reqs})
    values = F.create_map(*[x for f in names for x in (
        F.lit(f), F.col(f).cast("boolean") if f in cols else F.lit(None).cast("boolean"))])
    lines = F.col("n_prior_lines") if "n_prior_lines" in cols else F.lit(None)
    per_patient = features.select("patient_key", values.alias("_f"),
                                  lines.cast("double").alias("_prior"))
    req_df = spark.createDataFrame(reqs, "treatment string, feature string, value boolean, "
                                         "unmet string, unknown string")
    have = F.col("_f")[F.col("feature")]
    state = F.when(have.isNull(), "unknown").when(have == F.col("value"), "met").otherwise("unmet")
    joined = (candidates.select("patient_key", "treatment")
              .join(F.broadcast(req_df), "treatment", "inner")
              .join(per_patient, "patient_key", "left").withColumn("_state", state))
    agg = joined.groupBy("patient_key", "treatment").agg(
        F.array_sort(F.collect_set(F.when(F.col("_state") == "unmet", F.col("unmet"))))
        .alias("_unmet"),
        F.array_sort(F.collect_set(F.when(F.col("_state") == "unknown", F.col("unknown"))))
        .alias("_unknown"),
        F.first("_prior", ignorenulls=True).alias("_prior"))
    needed = F.create_map(*[x for k, v in prior.items() for x in (F.lit(k), F.lit(v))])[
        F.col("treatment")]
    status = (
        F.when(F.size("_unmet") > 0,
               F.concat(F.lit("requirement not met: "), F.array_join("_unmet", ", ")))
        .when(F.size("_unknown") > 0,
              F.concat(F.lit("requirement unknown: "), F.array_join("_unknown", ", ")))
        .when(F.coalesce(F.col("_prior"), F.lit(0.0)) < needed,
              F.concat(F.lit("on label at a later line (after "), needed.cast("string"),
                       F.when(needed == 1, F.lit(" prior line)")).otherwise(F.lit(" prior lines)"))))
        .otherwise(F.lit("on label now")))
    return agg.select("patient_key", "treatment", status.alias("label_status"),
                      (F.size("_unmet") > 0).alias("requirement_not_met"),
                      ((F.size("_unmet") == 0) & (F.size("_unknown") > 0))
                      .alias("requirement_unknown"))


def with_rank(predictions: DataFrame) -> DataFrame:
    """Add ``rank`` (1 = best) within each patient by the documented rule (module docstring)
    and ``rank_tier`` (0 = can be given now, 1 = label requirement unknown).

    ``rank_status`` (:mod:`pipelines.ranking.abstention`; added as ``ranked`` when absent)
    becomes "label requirement not met" or "level-A resistance marker" for the options the
    rule excludes; only ``ranked`` rows get a rank and a tier, the others nulls."""
    cols = set(predictions.columns)

    def flag(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(False)) if name in cols else F.lit(False)

    status = F.col("rank_status") if "rank_status" in cols else F.lit(RANKED)
    status = (F.when((status == F.lit(RANKED)) & flag("requirement_not_met"),
                     F.lit(LABEL_NOT_MET))
              .when((status == F.lit(RANKED)) & flag("resistance_level_a"), F.lit(RESISTANCE_A))
              .otherwise(status))
    predictions = predictions.withColumn("rank_status", status)
    tier = F.when(flag("requirement_unknown"), 1).otherwise(0)
    ranked = F.col("rank_status") == F.lit(RANKED)
    w = Window.partitionBy("patient_key").orderBy(
        (~ranked).asc(),
        tier.asc(),
        F.col("predicted_rmst").desc_nulls_last(),
        F.col("rmst_lower").desc_nulls_last(),
        F.col("treatment").asc(),
    )
    return (predictions.withColumn("rank", F.when(ranked, F.row_number().over(w)))
            .withColumn("rank_tier", F.when(ranked, tier)))


def with_benefit_vs_soc(predictions: DataFrame, catalog_df: DataFrame) -> DataFrame:
    """Add ``standard_of_care`` and ``benefit_vs_soc`` (months of RMST over the SoC regimen).

    Input needs ``cancer_type``. The SoC regimen is scored like any other candidate, so its own
    benefit is 0; a patient without a SoC prediction gets null (never a silent 0), and so do
    options that are not ranked, and every option when the SoC itself is not ranked (no
    comparable patients received it: there is nothing to measure the benefit against).
    """
    soc = catalog_df.filter("is_standard_of_care").select(
        "cancer_type", F.col("treatment").alias("standard_of_care"))
    with_soc = predictions.join(F.broadcast(soc), "cancer_type", "left")
    w = Window.partitionBy("patient_key")
    ranked = ((F.col("rank_status") == F.lit(RANKED)) if "rank_status" in predictions.columns
              else F.lit(True))
    soc_rmst = F.max(F.when((F.col("treatment") == F.col("standard_of_care")) & ranked,
                            F.col("predicted_rmst"))).over(w)
    return with_soc.withColumn("benefit_vs_soc",
                               F.when(ranked, F.col("predicted_rmst") - soc_rmst))


# ---------------------------------------------------------------------------- evidence
def therapy_drugs(therapy: Column) -> Column:
    """Lower-case drug names of a knowledge-base therapy string.

    CIViC joins combination therapies with ``,``; curated sets write ``+``, ``/`` or "and".
    """
    parts = F.split(F.lower(F.coalesce(therapy, F.lit(""))),
                    r"\s*(?:\+|,|;|/|&|\band\b|\bplus\b)\s*")
    return F.filter(F.transform(parts, lambda p: F.trim(p)), lambda p: p != "")


def _level_rank(level: Column, rules: RuleBook) -> Column:
    order = [lv.lower() for lv in rules.evidence_level_order]
    mapping = F.create_map(*[F.lit(x) for pair in enumerate(order) for x in pair[::-1]])
    return F.coalesce(mapping[F.lower(F.trim(level))], F.lit(len(order)))


def _with_optional(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    for name, typ in columns.items():
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast(typ))
    return df


def kb_matches(candidates: DataFrame, actionable: DataFrame, catalog_df: DataFrame) -> DataFrame:
    """Knowledge-base rows of each patient joined to the candidate regimens they speak about.

    A sensitivity row matches a regimen when the knowledge base mapped its therapy to that
    regimen, or when every drug of the therapy is in the regimen (``Osimertinib`` matches
    ``osimertinib``; ``Dabrafenib, Trametinib`` matches ``dabrafenib_trametinib``). A resistance
    row matches every regimen containing any of its drugs: a KRAS mutation that predicts
    resistance to cetuximab speaks against each cetuximab-containing regimen.
    """
    kb = _with_optional(actionable, {"regimen": "string", "on_label": "boolean",
                                     "citation": "string", "evidence_level": "string",
                                     "alteration": "string", "gene": "string",
                                     "direction": "string", "therapy": "string",
                                     "evidence_ids": "array<string>"})
    kb = kb.select(
        "patient_key", "gene", "alteration", "therapy", F.col("regimen").alias("kb_regimen"),
        F.col("evidence_level").cast("string").alias("evidence_level"),
        F.lower(F.trim("direction")).alias("direction"), F.col("on_label").cast("boolean")
        .alias("on_label"), F.col("citation").cast("string").alias("citation"),
        therapy_drugs(F.col("therapy")).alias("therapy_drugs"), "evidence_ids",
    )
    cands = candidates.select("patient_key", "treatment").join(
        F.broadcast(catalog_df.select("treatment", "drugs")), "treatment", "inner")
    joined = cands.join(kb, "patient_key", "inner")
    same_regimen = F.col("kb_regimen") == F.col("treatment")
    all_drugs_in = (F.size("therapy_drugs") > 0) & (
        F.size(F.array_except("therapy_drugs", "drugs")) == 0)
    any_drug_in = F.arrays_overlap("therapy_drugs", "drugs")
    matches = (
        ((F.col("direction") == "sensitivity") & (same_regimen | all_drugs_in))
        | ((F.col("direction") == "resistance") & (same_regimen | any_drug_in))
    )
    return joined.filter(F.coalesce(matches, F.lit(False)))


def _matches(candidates: DataFrame, actionable: DataFrame, catalog_df: DataFrame,
             matches: DataFrame | None) -> DataFrame:
    """The :func:`kb_matches` a caller computed once for several readers, else computed here."""
    return matches if matches is not None else kb_matches(candidates, actionable, catalog_df)


def evidence_for_candidates(candidates: DataFrame, actionable: DataFrame, catalog_df: DataFrame,
                            rules: RuleBook, matches: DataFrame | None = None) -> DataFrame:
    """Best sensitivity evidence per (patient, regimen).

    Output: ``patient_key, treatment, evidence_level, evidence_alteration, evidence_citation,
    evidence_ids, evidence_on_label``. Best = strongest level (``evidence_level_order``), then on-label, then
    gene/alteration name for a stable choice.
    """
    m = _matches(candidates, actionable, catalog_df, matches).filter(
        F.col("direction") == "sensitivity")
    w = Window.partitionBy("patient_key", "treatment").orderBy(
        _level_rank(F.col("evidence_level"), rules), F.col("on_label").desc_nulls_last(),
        F.col("gene").asc_nulls_last(), F.col("alteration").asc_nulls_last(),
        F.col("citation").asc_nulls_last())
    return (
        m.withColumn("_n", F.row_number().over(w)).filter(F.col("_n") == 1)
        .select("patient_key", "treatment", "evidence_level",
                F.concat_ws(" ", "gene", "alteration").alias("evidence_alteration"),
                F.col("citation").alias("evidence_citation"),
                F.col("evidence_ids").alias("evidence_ids"),
                F.col("on_label").alias("evidence_on_label"))
    )


def resistance_reasons(candidates: DataFrame, actionable: DataFrame,
                       catalog_df: DataFrame, matches: DataFrame | None = None) -> DataFrame:
    """``patient_key, treatment, reason`` for knowledge-base resistance markers."""
    m = _matches(candidates, actionable, catalog_df, matches).filter(
        F.col("direction") == "resistance")
    level = F.when(F.col("evidence_level").isNotNull(),
                   F.concat(F.lit(", level "), F.col("evidence_level"))).otherwise(F.lit(""))
    reason = F.concat(F.concat_ws(" ", "gene", "alteration"), F.lit(": resistance marker for "),
                      F.coalesce(F.col("therapy"), F.col("kb_regimen")), level,
                      F.lit(" (knowledge base)"))
    return m.select("patient_key", "treatment", reason.alias("reason"))


def level_a_resistance(candidates: DataFrame, actionable: DataFrame,
                       catalog_df: DataFrame, matches: DataFrame | None = None) -> DataFrame:
    """``patient_key, treatment, resistance_level_a`` (true) for the regimens a level-A,
    approval-grade resistance statement in the patient's tumour type speaks against
    (``on_label`` of silver.actionable_alterations: the statement's disease is the patient's)."""
    m = _matches(candidates, actionable, catalog_df, matches).filter(
        (F.col("direction") == "resistance") & (F.col("evidence_level") == "A")
        & F.coalesce(F.col("on_label"), F.lit(False)))
    return m.select("patient_key", "treatment").distinct().withColumn(
        "resistance_level_a", F.lit(True))


# ---------------------------------------------------------------------------- contraindications
def _flag_rules_frame(spark: SparkSession, rules: RuleBook) -> DataFrame:
    """One row per (flag, drug it speaks against)."""
    rows = [(f.flag, f.label, drug, why, list(f.note_concepts))
            for f in rules.flags for drug, why in f.applies_to]
    return spark.createDataFrame(rows, "flag string, label string, drug string, why string, "
                                       "note_concepts array<string>")


def ci_flags_long(comorbidities: DataFrame) -> DataFrame:
    """Wide ``ci_*`` flags → ``patient_key, flag`` for each flag that is true.

    Flags may be boolean or 0/1; null means unknown and never fires.
    """
    flags = [c for c in comorbidities.columns if c.startswith("ci_")]
    if not flags:
        return comorbidities.select("patient_key", F.lit(None).cast("string").alias("flag")) \
            .limit(0)
    pairs = F.array(*[
        F.struct(F.lit(c).alias("flag"), F.col(c).cast("boolean").alias("on")) for c in flags])
    return (comorbidities.select("patient_key", F.explode(pairs).alias("p"))
            .filter(F.col("p.on")).select("patient_key", F.col("p.flag").alias("flag")))


def contraindication_reasons(candidates: DataFrame, comorbidities: DataFrame | None,
                             findings: DataFrame | None, catalog_df: DataFrame,
                             rules: RuleBook) -> DataFrame:
    """``patient_key, treatment, reason`` for every contraindication flag that fires.

    A flag fires for a regimen when the regimen holds a drug the flag speaks against and either
    the patient's latest silver.comorbidities row has the flag set ("coded"), or
    silver.note_findings has one of the flag's concepts in a counting context (affirmed or
    historical; negated, possible, hypothetical and family mentions never fire). One reason per
    (flag, regimen), e.g. ``Interstitial lung disease: osimertinib (ILD risk) [record; notes:
    pneumonitis (historical)]``.
    """
    spark = candidates.sparkSession
    per_drug = (
        candidates.select("patient_key", "treatment")
        .join(F.broadcast(catalog_df.select("treatment", F.explode("drugs").alias("drug"))),
              "treatment", "inner")
        .join(F.broadcast(_flag_rules_frame(spark, rules)), "drug", "inner")
    )
    hits = []
    if comorbidities is not None and "patient_key" in comorbidities.columns:
        coded = ci_flags_long(latest_per_patient(comorbidities))
        hits.append(per_drug.join(coded, ["patient_key", "flag"], "inner")
                    .withColumn("coded", F.lit(True)).withColumn("note", F.lit(None)
                                                                 .cast("string")))
    if findings is not None and {"patient_key", "concept", "context"} <= set(findings.columns):
        f = (findings.select("patient_key", F.lower(F.trim("concept")).alias("concept"),
                             F.lower(F.trim("context")).alias("context"))
             .filter(F.col("context").isin(list(rules.note_contexts))).distinct())
        noted = per_drug.join(f, "patient_key", "inner").filter(
            F.array_contains(F.col("note_concepts"), F.col("concept")))
        hits.append(noted.select(
            *per_drug.columns, F.lit(False).alias("coded"),
            F.concat(F.col("concept"), F.lit(" ("), F.col("context"), F.lit(")")).alias("note")))
    if not hits:
        return spark.createDataFrame([], "patient_key string, treatment string, reason string")
    allhits = reduce(DataFrame.unionByName, hits)
    agg = allhits.groupBy("patient_key", "treatment", "flag", "label").agg(
        F.array_sort(F.collect_set(F.concat(F.col("drug"), F.lit(" ("), F.col("why"),
                                            F.lit(")")))).alias("drugs"),
        F.max("coded").alias("coded"),
        F.array_sort(F.collect_set("note")).alias("notes"),
    )
    sources = F.concat_ws("; ", F.when(F.col("coded"), F.lit("record")),
                          F.when(F.size("notes") > 0, F.concat(F.lit("notes: "),
                                                               F.concat_ws(", ", "notes"))))
    reason = F.concat(F.col("label"), F.lit(": "), F.concat_ws(", ", "drugs"), F.lit(" ["),
                      sources, F.lit("]"))
    return agg.select("patient_key", "treatment", reason.alias("reason"))


def with_contraindications(rankings: DataFrame, reasons: list[DataFrame]) -> DataFrame:
    """Add ``contraindications``: sorted distinct reasons, an empty array when there are none."""
    empty = F.array().cast("array<string>")
    if not reasons:
        return rankings.withColumn("contraindications", empty)
    allr = reduce(DataFrame.unionByName, reasons)
    agg = allr.groupBy("patient_key", "treatment").agg(
        F.array_sort(F.collect_set("reason")).alias("contraindications"))
    return rankings.join(agg, ["patient_key", "treatment"], "left").withColumn(
        "contraindications", F.coalesce(F.col("contraindications"), empty))


# ---------------------------------------------------------------------------- idempotency
def with_stable_scored_at(new: DataFrame, existing: DataFrame | None, now) -> DataFrame:
    """Set ``scored_at``: kept from ``existing`` when a row's content is unchanged, else ``now``.

    ``scored_at`` says when these values were first produced, so re-scoring the same board date
    with the same model and data changes nothing in the table (a Delta MERGE then rewrites no
    row), while a new model version or new data gets a new timestamp.
    """
    stamped = new.withColumn("scored_at", F.lit(now).cast("timestamp"))
    if existing is None or set(existing.columns) != set(stamped.columns):
        return stamped
    content = [c for c in new.columns if c not in KEYS and c != "scored_at"]
    same = reduce(lambda a, b: a & b,
                  [F.col(f"n.{c}").eqNullSafe(F.col(f"e.{c}")) for c in content], F.lit(True))
    old = existing.select(*KEYS, *content, "scored_at")
    joined = stamped.alias("n").join(old.alias("e"), KEYS, "left")
    keep = F.col("e.scored_at").isNotNull() & same
    return joined.select(
        *[F.col(k) for k in KEYS], *[F.col(f"n.{c}") for c in content],
        F.when(keep, F.col("e.scored_at")).otherwise(F.col("n.scored_at")).alias("scored_at"))

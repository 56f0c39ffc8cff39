"""Pure steps that turn silver tables into ``gold.patient_features`` (see FEATURES.md).

Every step takes and returns DataFrames; a missing input table is passed as ``None`` and its
features come out as typed nulls, so the core schema does not depend on which stages ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

AFFIRMED = "affirmed"
NEGATED = "negated"
STAGE_NUMBER = {"I": 1, "II": 2, "III": 3, "IV": 4}


@dataclass(frozen=True)
class ConceptMap:
    """The note-concept → feature map of ``resources/note_concepts.yaml``."""

    version: str
    concepts: dict[str, dict]
    biomarker_flags: tuple[str, ...]
    site_flags: tuple[str, ...]
    pdl1_high_threshold: float
    tmb_high_threshold: float

    def flag_concepts(self) -> dict[str, list[str]]:
        """flag → lower-cased concepts that set it."""
        out: dict[str, list[str]] = {}
        for concept, spec in self.concepts.items():
            for flag in spec.get("flags", []):
                out.setdefault(flag, []).append(concept.lower())
        return out

    def value_concept(self, feature: str) -> str | None:
        for concept, spec in self.concepts.items():
            if spec.get("value") == feature:
                return concept.lower()
        return None

    def smoking_concepts(self) -> dict[str, str]:
        return {c.lower(): s["smoking"] for c, s in self.concepts.items() if "smoking" in s}


@cache
def concept_map() -> ConceptMap:
    text = resources.files("pipelines.features.resources").joinpath(
        "note_concepts.yaml").read_text()
    data = yaml.safe_load(text)
    return ConceptMap(str(data["version"]), data["concepts"], tuple(data["biomarker_flags"]),
                      tuple(data["site_flags"]), float(data["pdl1_high_threshold"]),
                      float(data["tmb_high_threshold"]))


def _null(typ: str) -> Column:
    return F.lit(None).cast(typ)


# ------------------------------------------------------------------------------ spine
def patient_spine(patients: DataFrame | None, *others: DataFrame | None) -> DataFrame:
    """One row per patient: silver.patients, or — without it — every patient_key seen in the
    other tables (so a genomics-only lakehouse still gets features).

    Output: patient_key, sex, age_at_diagnosis, cancer_type, stage, diagnosis_date,
    index_date, ecog_structured, smoking_structured (+ ``_dup_rank`` for de-duplication).
    """
    if patients is not None:
        cols = set(patients.columns)

        def col(name: str, typ: str) -> Column:
            return F.col(name).cast(typ) if name in cols else _null(typ)

        base = patients.select(
            F.col("patient_key").cast("string").alias("patient_key"),
            col("sex", "string").alias("sex"),
            col("age_at_diagnosis", "double").alias("age_at_diagnosis"),
            col("cancer_type", "string").alias("cancer_type"),
            F.upper(F.trim(col("stage", "string"))).alias("stage"),
            col("diagnosis_date", "date").alias("diagnosis_date"),
            col("index_date", "date").alias("patient_index_date"),
            col("ecog", "double").alias("ecog_structured"),
            F.lower(col("smoking_status", "string")).alias("smoking_structured"),
        )
    else:
        keys = [o.select(F.col("patient_key").cast("string").alias("patient_key"))
                for o in others if o is not None and "patient_key" in o.columns]
        if not keys:
            raise ValueError("no input table with patient_key")
        spine = keys[0]
        for k in keys[1:]:
            spine = spine.unionByName(k)
        base = spine.distinct().select(
            "patient_key", _null("string").alias("sex"), _null("double").alias("age_at_diagnosis"),
            _null("string").alias("cancer_type"), _null("string").alias("stage"),
            _null("date").alias("diagnosis_date"), _null("date").alias("patient_index_date"),
            _null("double").alias("ecog_structured"), _null("string").alias("smoking_structured"),
        )
    # Several rows per patient (a re-registered patient): keep the latest diagnosis; the others
    # are quarantined by the stage with this rank.
    w = Window.partitionBy("patient_key").orderBy(
        F.col("diagnosis_date").desc_nulls_last(), F.col("patient_index_date").desc_nulls_last(),
        F.col("cancer_type").asc_nulls_last(), F.col("stage").asc_nulls_last())
    return base.withColumn("_dup_rank", F.row_number().over(w))


def with_stage_number(df: DataFrame) -> DataFrame:
    """``stage_num`` 1–4 from stage I–IV (sub-stages like IIIB count as III)."""
    roman = F.regexp_extract(F.col("stage"), r"^(IV|III|II|I)", 1)
    mapping = F.create_map(*[x for k, v in STAGE_NUMBER.items() for x in (F.lit(k), F.lit(v))])
    return df.withColumn("stage_num", F.when(roman != "", mapping[roman]).cast("double"))


# ------------------------------------------------------------------------------ outcomes
def with_outcomes(df: DataFrame, outcomes: DataFrame | None) -> DataFrame:
    """Index date, overall survival and time to next treatment from silver.outcomes."""
    if outcomes is None:
        return df.select(
            "*", F.col("patient_index_date").alias("index_date"),
            _null("double").alias("os_months"), _null("int").alias("os_event"),
            _null("double").alias("ttnt_months"), _null("int").alias("ttnt_event"),
            _null("string").alias("outcome_first_line"),
        ).drop("patient_index_date")
    cols = set(outcomes.columns)

    def col(name: str, typ: str) -> Column:
        return F.col(name).cast(typ) if name in cols else _null(typ)

    o = outcomes.select(
        F.col("patient_key").cast("string").alias("patient_key"),
        col("index_date", "date").alias("outcome_index_date"),
        col("os_months", "double").alias("os_months"),
        col("os_event", "int").alias("os_event"),
        col("ttnt_months", "double").alias("ttnt_months"),
        col("ttnt_event", "int").alias("ttnt_event"),
        col("first_line_treatment", "string").alias("outcome_first_line"),
    ).dropDuplicates(["patient_key"])
    return (
        df.join(o, "patient_key", "left")
        .withColumn("index_date", F.coalesce("outcome_index_date", "patient_index_date",
                                             "diagnosis_date"))
        .drop("outcome_index_date", "patient_index_date")
    )


def with_treatment(df: DataFrame, lines: DataFrame | None) -> DataFrame:
    """``treatment`` (first-line regimen received) and ``n_prior_lines`` (lines started before
    the index date, e.g. adjuvant therapy) from silver.treatment_lines."""
    if lines is None:
        return df.withColumn("treatment", F.col("outcome_first_line")).withColumn(
            "n_prior_lines", _null("double")).drop("outcome_first_line")
    cols = set(lines.columns)
    ln = lines.select(
        F.col("patient_key").cast("string").alias("patient_key"),
        (F.col("line_number") if "line_number" in cols else _null("int")).cast("int").alias("ln"),
        (F.col("treatment") if "treatment" in cols else _null("string")).cast("string")
        .alias("line_treatment"),
        (F.col("start_date") if "start_date" in cols else _null("date")).cast("date")
        .alias("line_start"),
    )
    first = (ln.filter(F.col("ln") == 1).groupBy("patient_key")
             .agg(F.min("line_treatment").alias("line1_treatment")))
    joined = df.join(first, "patient_key", "left")
    prior = (joined.select("patient_key", "index_date").join(ln, "patient_key")
             .groupBy("patient_key")
             .agg(F.sum(F.when(F.col("line_start") < F.col("index_date"), 1).otherwise(0))
                  .cast("double").alias("n_prior_lines")))
    return (joined.join(prior, "patient_key", "left")
            .withColumn("treatment", F.coalesce("outcome_first_line", "line1_treatment"))
            .withColumn("n_prior_lines", F.coalesce("n_prior_lines", F.lit(0.0)))
            .drop("outcome_first_line", "line1_treatment"))


# ------------------------------------------------------------------------------ genomics
def biomarker_flags_from_vcf(biomarkers: DataFrame | None, cmap: ConceptMap) -> DataFrame | None:
    """Per patient: every boolean flag of silver.biomarkers (``<flag>_vcf``), tmb, tmb_high."""
    if biomarkers is None:
        return None
    schema = {f.name: f.dataType for f in biomarkers.schema.fields}
    flags = [c for c, t in schema.items() if isinstance(t, T.BooleanType)]
    for c in cmap.biomarker_flags:
        if c not in flags and c in schema and isinstance(schema[c], T.NumericType):
            flags.append(c)  # 0/1 integer flags
    aggs = [F.max(F.col(c).cast("boolean")).alias(f"{c}_vcf") for c in flags]
    tmb = F.max(F.col("tmb").cast("double")) if "tmb" in schema else _null("double")
    aggs.append(tmb.alias("tmb"))
    out = biomarkers.groupBy(F.col("patient_key").cast("string").alias("patient_key")).agg(*aggs)
    if "tmb_high_vcf" not in out.columns:
        out = out.withColumn("tmb_high_vcf", F.when(F.col("tmb").isNotNull(),
                                                    F.col("tmb") >= cmap.tmb_high_threshold))
    return out.withColumn("has_genomics", F.lit(True))


def before_index(facts: DataFrame, index_dates: DataFrame | None, date_col: str) -> DataFrame:
    """Time zero: keep the facts dated on or before the patient's index date (start of first-
    line therapy). A patient without an index date (not treated yet: scored as of now) keeps
    every fact; an undated fact counts only for such a patient.

    Both dates are as silver holds them, moved by the same per-patient date shift, so they
    compare as the source dates would.
    """
    if index_dates is None:
        return facts
    index = F.col("index_date").cast("date")
    idx = index_dates.select(F.col("patient_key").cast("string").alias("patient_key"),
                             index.alias("_index_date"))
    return (facts.join(idx, "patient_key", "left")
            .filter(F.col("_index_date").isNull() | (F.col(date_col) <= F.col("_index_date")))
            .drop("_index_date"))


def pdl1_high_from(value: Column, comparator: Column, threshold: float) -> Column:
    """PD-L1 high (TPS >= threshold) from a stated value and its comparator: "<50" and
    "1-49" are not high, ">=50" is; an exact value is compared as is."""
    lo = F.regexp_extract(value, r"^(\d+(?:\.\d+)?)", 1)
    hi = F.regexp_extract(value, r"(\d+(?:\.\d+)?)\s*%?\s*$", 1)
    lo_n, hi_n = F.when(lo != "", lo.cast("double")), F.when(hi != "", hi.cast("double"))
    return (F.when(comparator == "range", F.when(lo_n >= threshold, True)
                   .when(hi_n < threshold, False))
            .when(comparator == "<", F.when(hi_n <= threshold, False))
            .when(comparator == "<=", F.when(hi_n < threshold, False))
            .when(comparator.isin(">", ">="), F.when(lo_n >= threshold, True))
            .otherwise(hi_n >= threshold))


def note_features(findings: DataFrame | None, cmap: ConceptMap,
                  index_dates: DataFrame | None = None) -> DataFrame | None:
    """Per patient, from note findings dated on or before the index date
    (:func:`before_index`): ``<flag>_notes`` (affirmed) and ``<flag>_negated`` booleans,
    pdl1_tps (exact values), pdl1_high_notes (comparators read: "<50%" is not high),
    ecog_notes (latest note), smoking_notes, has_notes. Pending, equivocal, indeterminate,
    possible, historical, hypothetical and family mentions set nothing."""
    if findings is None:
        return None
    cols = set(findings.columns)
    f = findings.select(
        F.col("patient_key").cast("string").alias("patient_key"),
        F.lower(F.trim(F.col("concept").cast("string"))).alias("concept"),
        F.lower(F.trim((F.col("context") if "context" in cols else F.lit(AFFIRMED))
                       .cast("string"))).alias("context"),
        (F.col("value") if "value" in cols else _null("string")).cast("string").alias("value"),
        (F.col("comparator") if "comparator" in cols else _null("string")).cast("string")
        .alias("comparator"),
        (F.col("note_date") if "note_date" in cols else _null("date")).cast("date")
        .alias("note_date"),
    )
    patients = f.select("patient_key").distinct().withColumn("has_notes", F.lit(True))
    f = before_index(f, index_dates, "note_date")
    aff = f.filter(F.col("context") == AFFIRMED)
    # An explicitly negated finding ("EGFR wild-type", "no brain metastases") is evidence of
    # absence; silence in the notes is not.
    negated = (f.filter(F.col("context") == NEGATED).groupBy("patient_key").agg(*[
        F.max(F.col("concept").isin(concepts)).alias(f"{flag}_negated")
        for flag, concepts in cmap.flag_concepts().items()]))
    aggs = []
    for flag, concepts in cmap.flag_concepts().items():
        aggs.append(F.max(F.col("concept").isin(concepts)).alias(f"{flag}_notes"))
    number = F.regexp_extract(F.col("value"), r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$", 1)
    num = F.when((number != "") & F.col("comparator").isNull(), number.cast("double"))
    pdl1 = cmap.value_concept("pdl1_tps")
    aggs.append(F.max(F.when(F.col("concept") == pdl1, num)).alias("pdl1_tps"))
    # the highest stated level wins, as with exact values (max of booleans: any high)
    aggs.append(F.max(F.when(F.col("concept") == pdl1, pdl1_high_from(
        F.col("value"), F.col("comparator"), cmap.pdl1_high_threshold))).alias(
        "pdl1_high_notes"))
    ecog = cmap.value_concept("ecog_notes")
    # latest ECOG by note date: max of struct(date, value) picks the newest note's value
    aggs.append(F.max(F.when((F.col("concept") == ecog) & num.between(0, 4),
                             F.struct(F.col("note_date"), num.alias("v")))).alias("_ecog"))
    smoking = cmap.smoking_concepts()
    level = F.create_map(*[x for k, v in smoking.items() for x in (F.lit(k), F.lit(v))])
    # current > former > never when notes disagree: the more recent exposure is the safer read
    rank = F.when(level[F.col("concept")] == "current", 3).when(
        level[F.col("concept")] == "former", 2).when(level[F.col("concept")] == "never", 1)
    aggs.append(F.max(F.when(rank.isNotNull(), F.struct(rank.alias("r"),
                                                        level[F.col("concept")].alias("s"))))
                .alias("_smoking"))
    per = aff.groupBy("patient_key").agg(*aggs)
    return (patients.join(per, "patient_key", "left").join(negated, "patient_key", "left")
            .withColumn("ecog_notes", F.col("_ecog.v"))
            .withColumn("smoking_notes", F.col("_smoking.s"))
            .drop("_ecog", "_smoking"))


def observation_flags(observations: DataFrame | None, cmap: ConceptMap,
                      index_dates: DataFrame | None = None) -> DataFrame | None:
    """Per patient, from silver.biomarker_observations dated on or before the index date:
    ``<flag>_fhir`` (affirmed) and ``<flag>_fhir_negated`` booleans, pdl1_tps_fhir (exact),
    pdl1_high_fhir. The same reading as the notes' (:func:`note_features`); FHIR dates are
    not de-identified, so they are compared with the index date as they are."""
    if observations is None:
        return None
    flags = note_features(observations.withColumnRenamed("obs_date", "note_date"), cmap,
                          index_dates)
    renamed = {"pdl1_tps": "pdl1_tps_fhir", "pdl1_high_notes": "pdl1_high_fhir"}
    for flag in cmap.flag_concepts():
        renamed[f"{flag}_notes"] = f"{flag}_fhir"
        renamed[f"{flag}_negated"] = f"{flag}_fhir_negated"
    return flags.select("patient_key", *[F.col(c).alias(renamed[c]) for c in flags.columns
                                         if c in renamed])


def _named(parts: list[tuple[Column, str]]) -> Column:
    """The names of the sources whose condition holds, comma-separated (null when none)."""
    joined = F.concat_ws(", ", *[F.when(cond, F.lit(name)) for cond, name in parts])
    return F.when(joined != "", joined)


def with_biomarkers(df: DataFrame, vcf: DataFrame | None, findings: DataFrame | None,
                    cmap: ConceptMap, observations: DataFrame | None = None) -> DataFrame:
    """Merge the three sources of a biomarker — the VCF, note findings and FHIR Observations
    — into one flag per biomarker plus ``<flag>_source`` and the sources' disagreements in
    ``biomarker_conflicts``.

    Notes and Observations count when dated on or before the index date (time zero). The
    rule:

    * a sequenced position decides its own variant: when the VCF stage reports the flag, the
      flag is the VCF's, and a note or Observation that says otherwise is a conflict;
    * otherwise notes and Observations decide: true when one affirms it, false when one
      negates it, null (unknown) when some affirm and others negate it (a conflict) or none
      says anything (silence is not a negative);
    * a metastatic site is true when any note before the index date affirms it (sites
      accumulate; an earlier negative is not a conflict).

    ``<flag>_source`` names the sources of a true flag (``vcf``, ``notes``, ``fhir``, joined
    by ``+`` when several agree), else null. ``biomarker_conflicts`` lists each conflict with
    its sources, e.g. ``egfr_l858r: VCF not detected; note affirmed (kept: VCF)``, joined by
    `` | ``; null when there is none.
    """
    index = df.select("patient_key", "index_date")
    notes = note_features(findings, cmap, index)
    fhir = observation_flags(observations, cmap, index)
    out = df
    out = out.join(vcf, "patient_key", "left") if vcf is not None else out.withColumn(
        "has_genomics", _null("boolean")).withColumn("tmb", _null("double"))
    out = out.join(notes, "patient_key", "left") if notes is not None else out.withColumn(
        "has_notes", _null("boolean")).withColumn("pdl1_tps", _null("double")).withColumn(
        "pdl1_high_notes", _null("boolean")).withColumn(
        "ecog_notes", _null("double")).withColumn("smoking_notes", _null("string"))
    if fhir is not None:
        out = out.join(fhir, "patient_key", "left")
    vcf_flags = {c[:-4] for c in (vcf.columns if vcf is not None else []) if c.endswith("_vcf")}
    note_flags = set(cmap.flag_concepts()) if notes is not None else set()
    fhir_flags = set(cmap.flag_concepts()) if fhir is not None else set()
    all_flags = list(dict.fromkeys([*cmap.biomarker_flags, *sorted(vcf_flags - set(
        cmap.biomarker_flags) - set(cmap.site_flags)), *cmap.site_flags]))
    no = F.lit(False)

    def flag_col(name: str, present: bool) -> Column:
        return F.coalesce(F.col(name), no) if present else no

    conflicts = []
    for flag in all_flags:
        v = flag_col(f"{flag}_vcf", flag in vcf_flags)
        n = flag_col(f"{flag}_notes", flag in note_flags)
        n_neg = flag_col(f"{flag}_negated", flag in note_flags)
        o = flag_col(f"{flag}_fhir", flag in fhir_flags)
        o_neg = flag_col(f"{flag}_fhir_negated", flag in fhir_flags)
        sequenced = F.col(f"{flag}_vcf").isNotNull() if flag in vcf_flags else no
        if flag in cmap.site_flags:
            # Metastases accumulate: an earlier "no brain metastases" does not outweigh a
            # later note that finds them.
            value = F.when(v | n, True).when(sequenced | n_neg, False)
            out = out.withColumn(flag, value.cast("boolean")).withColumn(
                f"{flag}_source", F.when(n, "notes"))
            continue
        pos, neg = n | o, n_neg | o_neg
        value = (F.when(sequenced, v).when(pos & neg, _null("boolean"))
                 .when(pos, True).when(neg, False))
        agree = F.concat_ws("+", F.when(v, F.lit("vcf")),
                            F.when(n & (v | ~sequenced), F.lit("notes")),
                            F.when(o & (v | ~sequenced), F.lit("fhir")))
        source = F.when(value & (agree != ""), agree)
        affirming = _named([(n, "note"), (o, "FHIR Observation")])
        negating = _named([(n_neg, "note"), (o_neg, "FHIR Observation")])
        conflict = (
            F.when(sequenced & ~v & pos, F.concat(
                F.lit(f"{flag}: VCF not detected; "), affirming, F.lit(" affirmed (kept: VCF)")))
            .when(sequenced & v & neg, F.concat(
                F.lit(f"{flag}: VCF detected; "), negating, F.lit(" negated (kept: VCF)")))
            .when(~sequenced & pos & neg & (affirming == negating), F.concat(
                F.lit(f"{flag}: "), affirming, F.lit("s both affirm and negate (kept: unknown)")))
            .when(~sequenced & pos & neg, F.concat(
                F.lit(f"{flag}: "), affirming, F.lit(" affirmed; "), negating,
                F.lit(" negated (kept: unknown)"))))
        conflicts.append(conflict)
        out = out.withColumn(flag, value.cast("boolean")).withColumn(f"{flag}_source", source)
    listed = F.array_compact(F.array(*conflicts)) if conflicts else F.array().cast(
        "array<string>")
    out = out.withColumn("biomarker_conflicts", F.when(F.size(listed) > 0,
                                                       F.array_join(listed, " | ")))
    # An exact TPS decides (the highest of notes and Observations); else the comparators
    # stated ("<50%", "1-49%").
    tps = F.col("pdl1_tps") if fhir is None else F.greatest("pdl1_tps", "pdl1_tps_fhir")
    high_stated = (F.col("pdl1_high_notes") if fhir is None
                   else F.greatest("pdl1_high_notes", "pdl1_high_fhir"))
    out = out.withColumn("pdl1_tps", tps).withColumn("pdl1_high", F.coalesce(
        F.when(F.col("pdl1_tps").isNotNull(), F.col("pdl1_tps") >= cmap.pdl1_high_threshold),
        high_stated))
    drop = [c for c in out.columns if c.endswith(("_vcf", "_negated", "_fhir"))
            or (c.endswith("_notes") and c not in ("ecog_notes", "smoking_notes"))]
    return out.drop(*drop)


def with_ecog_and_smoking(df: DataFrame) -> DataFrame:
    """ECOG: the structured value, else the latest note's; smoking: structured, else notes."""
    return (
        df.withColumn("ecog_source", F.when(F.col("ecog_structured").isNotNull(), "structured")
                      .when(F.col("ecog_notes").isNotNull(), "notes"))
        .withColumn("ecog", F.coalesce("ecog_structured", "ecog_notes"))
        .withColumn("smoking_source",
                    F.when(F.col("smoking_structured").isNotNull(), "structured")
                    .when(F.col("smoking_notes").isNotNull(), "notes"))
        .withColumn("smoking_status", F.coalesce("smoking_structured", "smoking_notes"))
        .drop("ecog_structured", "ecog_notes", "smoking_structured", "smoking_notes")
    )


def with_actionability(df: DataFrame, actionable: DataFrame | None,
                       regimens: list[str]) -> DataFrame:
    """Knowledge-base matches per patient: counts, and for every catalog regimen whether the
    tumour carries a sensitivity (``kb_sensitive_<regimen>``) or resistance
    (``kb_resistant_<regimen>``) alteration for it."""
    cols = ["n_actionable_sensitive", "n_actionable_resistant"]
    if actionable is None:
        out = df
        for c in cols:
            out = out.withColumn(c, _null("double"))
        for r in regimens:
            out = out.withColumn(f"kb_sensitive_{r}", _null("boolean")).withColumn(
                f"kb_resistant_{r}", _null("boolean"))
        return out
    a = set(actionable.columns)
    act = actionable.select(
        F.col("patient_key").cast("string").alias("patient_key"),
        F.lower((F.col("direction") if "direction" in a else F.lit("sensitivity")).cast("string"))
        .alias("direction"),
        (F.col("regimen") if "regimen" in a else _null("string")).cast("string").alias("regimen"),
        F.coalesce(*[F.col(c).cast("string") for c in ("therapy", "regimen", "alteration")
                     if c in a], F.lit("?")).alias("therapy"),
    )
    sens = F.col("direction").startswith("sensitiv")
    res = F.col("direction").startswith("resist")
    aggs = [F.countDistinct(F.when(sens, F.col("therapy"))).cast("double")
            .alias("n_actionable_sensitive"),
            F.countDistinct(F.when(res, F.col("therapy"))).cast("double")
            .alias("n_actionable_resistant")]
    for r in regimens:
        aggs.append(F.max(sens & (F.col("regimen") == r)).alias(f"kb_sensitive_{r}"))
        aggs.append(F.max(res & (F.col("regimen") == r)).alias(f"kb_resistant_{r}"))
    per = act.groupBy("patient_key").agg(*aggs)
    out = df.join(per, "patient_key", "left")
    # A sequenced tumour without a match has 0 / false; an unsequenced one stays unknown.
    known = F.coalesce(F.col("has_genomics"), F.lit(False))
    for c in [*cols, *[f"kb_{d}_{r}" for r in regimens for d in ("sensitive", "resistant")]]:
        zero = F.lit(0.0) if c.startswith("n_") else F.lit(False)
        out = out.withColumn(c, F.when(F.col(c).isNotNull(), F.col(c)).when(known, zero))
    return out


# ------------------------------------------------------------------------------ comorbidities
def with_comorbidities(df: DataFrame, comorbidities: DataFrame | None) -> DataFrame:
    """Charlson/Elixhauser components and scores and contraindication flags (every ``cci_*``,
    ``elix_*``, ``ci_*`` column of silver.comorbidities), one row per patient."""
    if comorbidities is None:
        return df.withColumn("charlson_index", _null("double")).withColumn(
            "elixhauser_vw", _null("double"))
    cols = [c for c in comorbidities.columns
            if c.startswith(("cci_", "elix_", "ci_")) or c in ("charlson_index", "elixhauser_vw")]
    schema = {f.name: f.dataType for f in comorbidities.schema.fields}
    aggs = []
    for c in cols:
        if isinstance(schema[c], T.BooleanType):
            aggs.append(F.max(c).alias(c))
        else:
            aggs.append(F.max(F.col(c).cast("double")).alias(c))
    per = comorbidities.groupBy(F.col("patient_key").cast("string").alias("patient_key")).agg(
        *aggs)
    out = df.join(per, "patient_key", "left")
    for c in ("charlson_index", "elixhauser_vw"):
        if c not in out.columns:
            out = out.withColumn(c, _null("double"))
    return out


# ------------------------------------------------------------------------------ metastases
# ICD-10-CM codes of secondary malignant neoplasm per site flag (FY2025 tabular): brain and
# cerebral meninges C79.31/C79.32, liver and intrahepatic bile ducts C78.7, bone and bone
# marrow C79.51/C79.52. Matched without dots: about a third of EHR exports drop them.
METASTASIS_ICD10 = {"met_brain": ("C7931", "C7932"), "met_liver": ("C787",),
                    "met_bone": ("C7951", "C7952")}


def with_metastases_from_codes(df: DataFrame, diagnoses: DataFrame | None) -> DataFrame:
    """Site flags also from coded diagnoses dated on or before the index date.

    A coded metastasis makes ``met_<site>`` true (notes alone miss the sites a note never
    mentions); codes never make a flag false. ``met_<site>_source`` becomes ``codes`` or
    ``notes+codes`` where a code contributed. Codes after the index date are not known at
    time zero and are ignored.
    """
    if diagnoses is None or "code" not in diagnoses.columns:
        return df
    code = F.upper(F.regexp_replace(F.col("code").cast("string"), r"[.\s]", ""))
    onset = F.col("onset_date").cast("date") if "onset_date" in diagnoses.columns else \
        _null("date")
    coded = (diagnoses.select("patient_key", code.alias("_code"), onset.alias("_onset"))
             .join(df.select("patient_key", "index_date"), "patient_key", "inner")
             .filter(F.col("_onset").isNull() | F.col("index_date").isNull()
                     | (F.col("_onset") <= F.col("index_date")))
             .groupBy("patient_key")
             .agg(*[F.max(F.col("_code").rlike("^(" + "|".join(prefixes) + ")"))
                    .alias(f"{flag}_coded") for flag, prefixes in METASTASIS_ICD10.items()]))
    out = df.join(coded, "patient_key", "left")
    for flag in METASTASIS_ICD10:
        if flag not in out.columns:
            continue
        hit = F.coalesce(F.col(f"{flag}_coded"), F.lit(False))
        src = F.col(f"{flag}_source")
        out = (out.withColumn(f"{flag}_source", F.when(hit & src.isNotNull(),
                                                       F.concat(src, F.lit("+codes")))
                              .when(hit, F.lit("codes")).otherwise(src))
               .withColumn(flag, F.when(hit, True).otherwise(F.col(flag))))
    return out.drop(*[f"{flag}_coded" for flag in METASTASIS_ICD10])


# ------------------------------------------------------------------------------ final shape
LEADING = ["patient_key", "index_date", "cancer_type", "treatment", "os_months", "os_event",
           "ttnt_months", "ttnt_event", "sex", "age_at_diagnosis", "stage", "stage_num", "ecog",
           "ecog_source", "smoking_status", "smoking_source", "n_prior_lines", "charlson_index",
           "elixhauser_vw", "tmb", "pdl1_tps", "pdl1_high"]


def select_features(df: DataFrame) -> DataFrame:
    """Stable column order: identifiers and outcome, clinical, then the rest alphabetically."""
    drop = {"_dup_rank", "diagnosis_date", "has_genomics", "has_notes"}
    rest = sorted(c for c in df.columns if c not in LEADING and c not in drop)
    return df.select(*[c for c in LEADING if c in df.columns], *rest)

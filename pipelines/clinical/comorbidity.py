"""Charlson and Elixhauser comorbidity indices and contraindication flags, in Spark built-ins.

Steps are pure ``DataFrame -> DataFrame`` functions; the code lists are data files
(``resources/charlson_quan2005.tsv``, ``elixhauser_quan2005.tsv``, ``contraindications.yaml``).

Matching: a code is upper-cased and stripped of dots and spaces, then each of its leading
substrings (3 to 7 characters) is equi-joined to the components' prefixes. That is exact prefix
matching ("E11.21" matches "E11.2") without a UDF or a non-equi join, so it scales to any number
of diagnosis rows with a broadcast of a ~1,000-row table.

>>> flags = comorbidity_flags(codes_df, id_col="patient_id")  # doctest: +SKIP
>>> scores = flags.transform(with_comorbidity_scores)          # doctest: +SKIP
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.clinical.codes import (
    Component,
    charlson_components,
    contraindication_rules,
    elixhauser_components,
    note_comorbidity_codes,
    note_contexts,
)

MAX_CODE_LENGTH = 7  # ICD-10-CM codes have at most 7 characters without the dot
ICD10_SYSTEMS = ("ICD-10-CM", "ICD-10")
EXCLUDED_VERIFICATION = ("refuted", "entered-in-error")


def components() -> tuple[Component, ...]:
    """Charlson then Elixhauser components, in output column order."""
    return charlson_components() + elixhauser_components()


def flag_columns() -> list[str]:
    return [c.column for c in components()]


def contraindication_columns() -> list[str]:
    return [r.column for r in contraindication_rules()]


def normalised_code(code: Column) -> Column:
    """Upper case without dots or whitespace ("e11.21 " -> "E1121")."""
    return F.upper(F.regexp_replace(code.cast("string"), r"[.\s]", ""))


def _code_prefixes(code: Column) -> Column:
    norm = normalised_code(code)
    return F.array(*[F.substring(norm, 1, n) for n in range(3, MAX_CODE_LENGTH + 1)])


def _prefix_map(spark, rows: list[tuple[str, str]], value_name: str) -> DataFrame:
    return F.broadcast(spark.createDataFrame(rows, f"prefix string, {value_name} string"))


def with_component_matches(codes: DataFrame, id_col: str, code_col: str = "code") -> DataFrame:
    """``(id, component)`` pairs: one per component that any of the id's codes falls in."""
    spark = codes.sparkSession
    rows = [(p, c.column) for c in components() for p in c.prefixes]
    prefixes = (
        codes.where(F.col(code_col).isNotNull())
        .select(F.col(id_col), F.explode(F.array_distinct(_code_prefixes(F.col(code_col))))
                .alias("prefix"))
        .where(F.length("prefix") >= 3)
        .distinct()
    )
    return prefixes.join(_prefix_map(spark, rows, "component"), "prefix", "inner").select(
        id_col, "component").distinct()


def _pivot_flags(ids: DataFrame, matches: DataFrame, id_col: str, match_col: str,
                 columns: list[str]) -> DataFrame:
    """One row per id with a 0/1 column per name in ``columns`` (0 when no match)."""
    wide = matches.groupBy(id_col).agg(
        *[F.max(F.when(F.col(match_col) == c, 1).otherwise(0)).alias(c) for c in columns]
    )
    out = ids.join(wide, id_col, "left")
    return out.select(id_col, *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c)
                                for c in columns], *[c for c in ids.columns if c != id_col])


def with_hierarchy(flags: DataFrame) -> DataFrame:
    """Apply the hierarchy rules: the milder form is 0 when the more severe one is present.

    Charlson: complicated over uncomplicated diabetes, moderate/severe over mild liver disease,
    metastatic solid tumour over any malignancy. Elixhauser: complicated over uncomplicated
    diabetes and hypertension, metastatic cancer over solid tumour without metastasis.
    """
    for comp in components():
        if comp.supersedes:
            flags = flags.withColumn(
                comp.supersedes,
                F.when(F.col(comp.column) == 1, F.lit(0)).otherwise(F.col(comp.supersedes)),
            )
    return flags


def with_comorbidity_scores(flags: DataFrame) -> DataFrame:
    """Add ``charlson_index`` (Charlson 1987 weights) and ``elixhauser_vw`` (van Walraven)."""

    def weighted(comps: tuple[Component, ...]) -> Column:
        total = F.lit(0)
        for c in comps:
            total = total + F.col(c.column) * F.lit(c.weight)
        return total.cast("int")

    return flags.withColumn("charlson_index", weighted(charlson_components())).withColumn(
        "elixhauser_vw", weighted(elixhauser_components()))


def comorbidity_flags(codes: DataFrame, id_col: str = "patient_key", code_col: str = "code",
                      ids: DataFrame | None = None) -> DataFrame:
    """Every Charlson and Elixhauser component flag, after the hierarchy rules, plus scores.

    ``codes`` holds ``id_col`` and ``code_col`` (ICD-10 or ICD-10-CM, with or without dots);
    ``ids`` (one column ``id_col``) lists ids to report even without any code (all zeros);
    by default the ids present in ``codes``.
    """
    ids = (ids if ids is not None else codes.select(id_col)).select(id_col).distinct()
    matches = with_component_matches(codes, id_col, code_col)
    return (
        _pivot_flags(ids, matches, id_col, "component", flag_columns())
        .transform(with_hierarchy)
        .transform(with_comorbidity_scores)
    )


def contraindication_flags(codes: DataFrame, findings: DataFrame | None, ids: DataFrame,
                           id_col: str = "patient_key", code_col: str = "code") -> DataFrame:
    """``ci_*`` flags from ICD-10 codes and (if given) note findings; see contraindications.yaml.

    ``findings`` has ``id_col``, ``concept`` and ``context``; only affirmed/historical findings
    count.
    """
    spark = codes.sparkSession
    rules = contraindication_rules()
    rows = [(p, f"{r.column}|+") for r in rules for p in r.prefixes]
    rows += [(p, f"{r.column}|-") for r in rules for p in r.exclude]
    per_code = (
        codes.where(F.col(code_col).isNotNull())
        .select(F.col(id_col), F.col(code_col).alias("_code"),
                F.explode(F.array_distinct(_code_prefixes(F.col(code_col)))).alias("prefix"))
        .join(_prefix_map(spark, rows, "rule"), "prefix", "inner")
        .select(id_col, "_code", F.split("rule", r"\|").getItem(0).alias("flag"),
                (F.split("rule", r"\|").getItem(1) == "-").alias("excluded"))
        .groupBy(id_col, "_code", "flag")
        .agg(F.max(F.col("excluded").cast("int")).alias("excluded"))
        .where(F.col("excluded") == 0)
        .select(id_col, "flag")
    )
    matches = per_code
    if findings is not None:
        concept_rows = [(c, r.column) for r in rules for c in r.note_concepts]
        concept_map = F.broadcast(spark.createDataFrame(concept_rows, "concept string, flag string"))
        from_notes = (
            findings.where(F.lower(F.col("context")).isin(*note_contexts()))
            .select(F.col(id_col), F.lower(F.trim(F.col("concept"))).alias("concept"))
            .join(concept_map, "concept", "inner")
            .select(id_col, "flag")
        )
        matches = matches.unionByName(from_notes)
    return _pivot_flags(ids.select(id_col).distinct(), matches.distinct(), id_col, "flag",
                        contraindication_columns())


def note_comorbidity_rows(findings: DataFrame, index: DataFrame, lookback_days: int,
                          id_col: str = "patient_key") -> DataFrame:
    """``(id, code)`` rows for the comorbidities that notes state, as ICD-10-CM codes.

    ``findings`` has ``id_col``, ``category``, ``concept``, ``context`` and ``note_date``;
    ``index`` has ``id_col`` and ``index_date``. A finding counts when it is a comorbidity
    (``note_comorbidities.tsv`` names its code), affirmed or historical (not negated, possible,
    hypothetical or a family member's) and its note is dated in ``[index_date -
    lookback_days, index_date]``, the window coded diagnoses use: a note written after time zero
    never sets a baseline covariate.
    """
    spark = findings.sparkSession
    codes = F.broadcast(spark.createDataFrame(sorted(note_comorbidity_codes().items()),
                                              "concept string, code string"))
    dated = findings.join(index.select(id_col, "index_date"), id_col, "inner").where(
        (F.col("note_date") <= F.col("index_date"))
        & (F.col("note_date") >= F.date_sub(F.col("index_date"), int(lookback_days))))
    return (dated.where((F.col("category") == "comorbidity")
                        & F.lower(F.col("context")).isin(*note_contexts()))
            .select(id_col, F.lower(F.trim(F.col("concept"))).alias("concept"))
            .join(codes, "concept", "inner").select(id_col, "code").distinct())


def note_only_components(coded: DataFrame, noted: DataFrame, ids: DataFrame,
                         id_col: str = "patient_key") -> DataFrame:
    """Per id, ``note_components``: the components a note sets that no code does (sorted;
    empty when codes cover every component the notes state)."""
    from_codes = with_component_matches(coded, id_col)
    only = with_component_matches(noted, id_col).join(from_codes, [id_col, "component"],
                                                      "left_anti")
    per = only.groupBy(id_col).agg(F.array_sort(F.collect_set("component"))
                                   .alias("note_components"))
    return ids.select(id_col).distinct().join(per, id_col, "left").select(
        id_col, F.coalesce("note_components", F.array().cast("array<string>"))
        .alias("note_components"))


def filter_lookback(diagnoses: DataFrame, lookback_days: int, include_undated: bool = True
                    ) -> DataFrame:
    """Diagnoses present at some time in ``[index_date - lookback_days, index_date]``.

    ``diagnoses`` needs ``index_date``, ``onset_date``, ``abatement_date`` and ``ongoing``.
    A diagnosis counts when its onset is on or before the index date and it either began in the
    window, was still ongoing (an active problem-list entry without an end), or ended inside the
    window. Diagnoses after the index date never count (they would leak the future into a
    baseline covariate). Undated diagnoses count when ``include_undated`` (chronic conditions on
    problem lists are often undated).
    """
    start = F.date_sub(F.col("index_date"), int(lookback_days))
    dated = (
        (F.col("onset_date") <= F.col("index_date"))
        & (
            (F.col("onset_date") >= start)
            | F.coalesce(F.col("ongoing"), F.lit(False))
            | (F.col("abatement_date") >= start)
        )
    )
    undated = F.col("onset_date").isNull() & F.lit(bool(include_undated))
    no_index = F.col("index_date").isNull() & F.lit(bool(include_undated))
    return diagnoses.where(dated | undated | no_index)


def usable_icd10(diagnoses: DataFrame) -> DataFrame:
    """ICD-10 / ICD-10-CM rows (incl. those mapped from SNOMED CT) that are not refuted."""
    return diagnoses.where(
        F.col("code_system").isin(*ICD10_SYSTEMS)
        & ~F.coalesce(F.col("verification_status"), F.lit("")).isin(*EXCLUDED_VERIFICATION)
    )

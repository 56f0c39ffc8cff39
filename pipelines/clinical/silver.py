"""Pure steps that turn parsed FHIR/CSV records into the silver clinical tables.

Every function takes and returns DataFrames keyed by ``pid`` (the SOURCE patient id); the stage
replaces ``pid`` with the pseudonymised ``patient_key`` only when writing, so no step needs the
key and no silver table ever holds the source id.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.catalog import regimen_catalog
from pipelines.clinical.codes import drug_aliases, snomed_to_icd10cm
from pipelines.clinical.columns import add_rule, stage_group
from pipelines.clinical.comorbidity import normalised_code, usable_icd10

DAYS_PER_MONTH = 365.25 / 12  # 30.4375: months as used for os_months / ttnt_months


# ---------------------------------------------------------------------------- lookup tables
def snomed_map_df(spark) -> DataFrame:
    rows = sorted(snomed_to_icd10cm().items())
    return spark.createDataFrame(rows, "snomed string, icd10 string")


def cancer_prefix_df(spark) -> DataFrame:
    cat = regimen_catalog()
    rows = [(p.replace(".", "").upper(), ct) for ct, meta in cat.cancer_types.items()
            for p in meta.get("icd10_prefixes", [])]
    return spark.createDataFrame(rows, "prefix string, cancer_type string")


def drug_maps(spark) -> tuple[DataFrame, DataFrame, str]:
    """(alias -> drug), (catalog rxcui -> drug) and the alias regex (longest alias first)."""
    aliases = drug_aliases()
    alias_df = spark.createDataFrame(sorted(aliases.items()), "alias string, drug string")
    rx = [(str(meta["rxcui"]), name) for name, meta in regimen_catalog().drugs.items()
          if meta.get("rxcui")]
    rx_df = spark.createDataFrame(rx, "rxcui string, drug string")
    alternation = "|".join(_regex_escape(a) for a in sorted(aliases, key=lambda a: (-len(a), a)))
    return alias_df, rx_df, f"(?<![a-z0-9])({alternation})(?![a-z0-9])"


def _regex_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?{}[]\|()" else ch for ch in text)


# ---------------------------------------------------------------------------- patients
def dedupe_patients(parsed: DataFrame) -> DataFrame:
    """Mark all but the first record of each patient id ``duplicate_patient``."""
    w = Window.partitionBy("pid").orderBy("source_file", "record_index")
    first = F.row_number().over(w) == 1
    # add_rule only touches rows that passed so far; a null pid is never a duplicate.
    ranked = parsed.withColumn("_first", F.when(F.col("pid").isNotNull(), first))
    return add_rule(ranked, ~F.coalesce(F.col("_first"), F.lit(True)), "duplicate_patient",
                    "the patient id appears in an earlier record").drop("_first")


def combine_patients(spark, fhir: DataFrame | None, csv: DataFrame | None) -> DataFrame:
    """One row per source patient id; FHIR values first, CSV values fill the gaps.

    Output: pid, name, mrn, birth_date, sex, deceased, death_date, postal_code, cancer_type,
    stage, ecog, diagnosis_date, smoking_status, source ("fhir", "csv" or "fhir,csv").
    """
    f_cols = ["pid", "name", "mrn", "birth_date", "sex", "deceased", "death_date",
              "postal_code"]
    c_cols = ["pid", "name", "mrn", "birth_date", "sex", "cancer_type", "stage", "ecog",
              "diagnosis_date", "smoking_status", "postal_code"]
    if fhir is None:
        fhir = spark.createDataFrame(
            [], "pid string, name string, mrn string, birth_date date, sex string, "
                "deceased boolean, death_date date, postal_code string")
    if csv is None:
        csv = spark.createDataFrame(
            [], "pid string, name string, mrn string, birth_date date, sex string, "
                "cancer_type string, stage string, ecog int, diagnosis_date date, "
                "smoking_status string, postal_code string")
    f = fhir.select(*[F.col(c).alias(f"f_{c}") for c in f_cols])
    c = csv.select(*[F.col(c).alias(f"c_{c}") for c in c_cols])
    j = f.join(c, F.col("f_pid") == F.col("c_pid"), "full_outer")
    both = ["name", "mrn", "birth_date", "sex", "postal_code"]
    return j.select(
        F.coalesce("f_pid", "c_pid").alias("pid"),
        *[F.coalesce(f"f_{x}", f"c_{x}").alias(x) for x in both],
        F.coalesce("f_deceased", F.lit(False)).alias("deceased"),
        F.col("f_death_date").alias("death_date"),
        *[F.col(f"c_{x}").alias(x) for x in ("cancer_type", "stage", "ecog", "diagnosis_date",
                                             "smoking_status")],
        F.concat_ws(",", F.when(F.col("f_pid").isNotNull(), F.lit("fhir")),
                    F.when(F.col("c_pid").isNotNull(), F.lit("csv"))).alias("source"),
    )


# ---------------------------------------------------------------------------- diagnoses
def with_mapped_icd10(diagnoses: DataFrame, snomed_map: DataFrame) -> DataFrame:
    """Add an ICD-10-CM row (``mapped_from`` = the SNOMED code) for each mapped SNOMED row."""
    mapped = (
        diagnoses.where(F.col("code_system") == "SNOMED-CT")
        .join(snomed_map, F.col("code") == F.col("snomed"), "inner")
        .withColumn("diagnosis_id", F.substring(F.sha2(F.concat_ws("#", "diagnosis_id",
                                                                   F.lit("icd10")), 256), 1, 20))
        .withColumn("mapped_from", F.col("code"))
        .withColumn("code", F.col("icd10"))
        .withColumn("code_system", F.lit("ICD-10-CM"))
        .withColumn("display", F.lit(None).cast("string"))
        .drop("snomed", "icd10")
    )
    return diagnoses.withColumn("mapped_from", F.lit(None).cast("string")).unionByName(mapped)


def cancer_summary(diagnoses: DataFrame, cancer_prefixes: DataFrame) -> DataFrame:
    """Per pid: catalog cancer type and first diagnosis date, any-malignancy date, stage text,
    and the first distant-metastasis (ICD-10 C78/C79) date.

    The primary cancer is the earliest-dated ICD-10 code whose prefix maps to a catalog cancer
    type (ties broken by code); undated codes count after dated ones.
    """
    icd = usable_icd10(diagnoses).withColumn("_norm", normalised_code(F.col("code")))
    typed = icd.join(
        F.broadcast(cancer_prefixes), F.col("_norm").startswith(F.col("prefix")), "inner")
    w = Window.partitionBy("pid").orderBy(F.col("onset_date").asc_nulls_last(), "_norm")
    primary = typed.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").select(
        "pid", F.col("cancer_type").alias("dx_cancer_type"),
        F.col("onset_date").alias("dx_cancer_date"))
    malignant = F.col("_norm").rlike(r"^C[0-9]")
    metastatic = F.col("_norm").rlike(r"^C7[89]")
    agg = icd.groupBy("pid").agg(
        F.min(F.when(malignant, F.col("onset_date"))).alias("dx_any_malignancy_date"),
        F.max(metastatic.cast("int")).alias("has_metastasis"),
        F.min(F.when(metastatic, F.col("onset_date"))).alias("metastasis_date"),
    )
    staged = diagnoses.where(F.col("stage_text").isNotNull()).withColumn(
        "_rn", F.row_number().over(Window.partitionBy("pid").orderBy(
            F.col("onset_date").asc_nulls_last(), "diagnosis_id"))).where("_rn = 1").select(
        "pid", F.col("stage_text").alias("dx_stage_text"))
    return agg.join(primary, "pid", "left").join(staged, "pid", "left")


STAGE_NOTE_CONTEXTS = ("affirmed", "historical")


def note_stage(findings: DataFrame, index: DataFrame) -> DataFrame:
    """Per patient_key: ``note_stage``, the overall stage group I-IV the notes state on or
    before the index date.

    ``findings`` are silver.note_findings rows (``category`` "stage": concept ``stage`` with the
    stated group, ``TNM`` with the classification); ``index`` has ``patient_key`` and
    ``index_date`` on the notes' (shifted) calendar. The latest stated group wins (sub-stages
    collapse: IIIA -> III); without one, a TNM with M1 is stage IV. Negated, possible,
    hypothetical and family mentions ("if stage IV", "her mother's stage II cancer") never
    count, nor do notes written after time zero.
    """
    explicit = F.col("concept") == "stage"
    group = (F.when(explicit, stage_group(F.col("value")))
             .when((F.col("concept") == "TNM") & F.col("value").rlike(r"M1"), F.lit("IV")))
    usable = (findings.where((F.col("category") == "stage")
                             & F.col("context").isin(*STAGE_NOTE_CONTEXTS))
              .join(index.select("patient_key", "index_date"), "patient_key", "inner")
              .where(F.col("note_date") <= F.col("index_date"))
              .withColumn("_group", group).where(F.col("_group").isNotNull()))
    order = Window.partitionBy("patient_key").orderBy(
        explicit.desc(), F.col("note_date").desc(), F.col("note_id").desc(),
        F.col("start").desc())
    return usable.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").select(
        "patient_key", F.col("_group").alias("note_stage"))


# ---------------------------------------------------------------------------- lines
def lines_input(exposures: DataFrame, patients: DataFrame, progression: DataFrame) -> DataFrame:
    """Exposures that form lines of therapy, with the patient's cancer type and progressions."""
    from pipelines.clinical.fhir import NOT_TAKEN_STATUSES

    usable = exposures.where(
        F.col("antineoplastic") & F.col("drug").isNotNull() & F.col("start_date").isNotNull()
        & ~F.coalesce(F.col("status"), F.lit("")).isin(*NOT_TAKEN_STATUSES))
    prog = progression.groupBy("pid").agg(
        F.array_sort(F.collect_set("progression_date")).alias("progression_dates"))
    return (usable.select("pid", "drug", "start_date", "end_date")
            .join(patients.select("pid", "cancer_type"), "pid", "left")
            .join(prog, "pid", "left"))


# ---------------------------------------------------------------------------- outcomes
def months_between_days(start: Column, end: Column) -> Column:
    return F.round(F.datediff(end, start) / F.lit(DAYS_PER_MONTH), 2)


def with_outcomes(df: DataFrame) -> DataFrame:
    """OS and TTNT from ``index_date, line2_start, death_date, deceased, followup_date``.

    * follow-up ends at death for those who died (records dated after death are ignored);
      otherwise at ``followup_date`` (the latest of the recorded last follow-up and any
      later care);
    * OS: index -> death (event 1), else index -> end of follow-up (event 0). A patient known
      to be deceased without a death date has event 1 at the last recorded care (the time is
      then a lower bound);
    * TTNT: index -> start of the next line or death, whichever is first (event 1), else
      censored at the end of follow-up; null without a first line.
    """
    end_fu = F.when(F.col("death_date").isNotNull(), F.col("death_date")).otherwise(
        F.col("followup_date"))
    os_event = (F.col("deceased") | F.col("death_date").isNotNull()).cast("int")
    ttnt_stop = F.least(F.col("line2_start"), F.col("death_date"))
    ttnt_end = F.coalesce(ttnt_stop, end_fu)
    treated = F.col("first_line_start").isNotNull()
    return df.select(
        "*",
        end_fu.alias("last_followup_date_out"),
        months_between_days(F.col("index_date"), end_fu).alias("os_months"),
        os_event.alias("os_event"),
        F.when(treated, months_between_days(F.col("index_date"), ttnt_end)).alias("ttnt_months"),
        F.when(treated, (ttnt_stop.isNotNull() | (os_event == 1)).cast("int"))
        .alias("ttnt_event"),
    )

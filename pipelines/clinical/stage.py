"""Stages ``ingest-clinical`` and ``comorbidities`` (all table I/O of the clinical domain).

ingest-clinical
    FHIR R4 (``[inputs] fhir``) and/or the CSV layout (``[inputs] clinical_csv``) ->
    ``bronze.fhir_resources`` / ``bronze.clinical_csv_<table>`` (as received; the job's primary
    output: rows in = records received = written + quarantined) -> ``restricted.patient_identity``,
    ``silver.patients``, ``silver.diagnoses``, ``silver.medication_exposures``,
    ``silver.treatment_lines``, ``silver.outcomes``. Every silver table is a snapshot of the
    configured inputs (MERGE with delete of rows no longer present), so a re-run changes nothing.
    Records rejected on the way to silver are quarantined with the reason, and each family of
    records is checked: received = accepted + quarantined.
comorbidities
    ``silver.patients`` + ``silver.diagnoses`` (+ ``silver.note_findings`` when it exists) ->
    ``silver.comorbidities``, one row per patient.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipelines.clinical import csv_input, fhir, silver
from pipelines.clinical.columns import add_rule, stage_group
from pipelines.clinical.dates import shift_date_text
from pipelines.clinical.therapy_lines import LineRule, treatment_lines
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.comments import column_comments
from pipelines.lakehouse.errors import ConfigError, ReconciliationError
from pipelines.lakehouse.privacy import (
    patient_shift_days_col,
    pseudonymise_col,
    shift_dates,
    zip3_col,
)

log = logging.getLogger("oncorank")

INGEST_STAGE = "ingest-clinical"
COMORBIDITY_STAGE = "comorbidities"
META = ["_rule", "_reason", "_source", "_record_index"]

AGE_CAP = 90  # HIPAA Safe Harbor: ages over 89 fall in one "90 or older" category


# ============================================================================ ingest-clinical
def ingest_clinical(spark, settings, parent_run_id: str | None = None) -> JobRun:
    """Run the ingest-clinical stage; see the module docstring.

    >>> ingest_clinical(spark, settings).rows_in  # doctest: +SKIP
    2134
    """
    rule = LineRule.from_settings(settings)
    with job_run(spark, settings, INGEST_STAGE, parent_run_id) as run:
        fhir_bronze = _land_fhir(run) if settings.inputs.fhir else None
        csv_bronze = _land_csv(run) if settings.inputs.clinical_csv else {}
        if fhir_bronze is None and not csv_bronze:
            log.info("%s: no clinical input configured; nothing to ingest", INGEST_STAGE)
        else:
            findings = run.read_optional(run.table("silver", "note_findings"),
                                         consequence="stage comes from structured data only")
            built = build_clinical_silver(spark, fhir_bronze, csv_bronze, rule,
                                          settings.pseudonym_key, findings)
            _write_clinical_silver(run, built)
            _write_privacy_risk(run)
    return run


def _write_privacy_risk(run: JobRun) -> None:
    """``ops.privacy_risk``: how many patients of silver.patients are unique on their
    quasi-identifiers (:mod:`pipelines.analytics.privacy_risk`); one row per identifier set,
    replaced at each load."""
    from pipelines.analytics.privacy_risk import RISK_SCHEMA, privacy_risk

    rows = privacy_risk(run.read(run.table("silver", "patients")))
    at = run.started_at.replace(tzinfo=None)
    df = run.spark.createDataFrame(
        [(*r.values(), at) for r in rows], RISK_SCHEMA)
    run.write(df, run.table("ops", "privacy_risk"), mode="overwrite", primary=False)
    top = rows[-1]
    log.info("%s: %d of %d patients unique on %s", INGEST_STAGE, top["unique_patients"],
             top["patients"], top["quasi_identifiers"])


def _materialise(df: DataFrame) -> DataFrame:
    """Compute an intermediate result once and cut its lineage.

    A local checkpoint rather than ``persist``: a persisted frame still carries (and prints, on
    every adaptive re-plan) its whole upstream plan, and the parsed-FHIR plans are large, so
    chaining persisted frames made query planning, not execution, the bottleneck.
    """
    start = time.perf_counter()
    out = df.localCheckpoint(eager=True)
    log.debug("%s: intermediate result materialised in %.1fs", INGEST_STAGE,
              time.perf_counter() - start)
    return out


def _land_fhir(run: JobRun) -> DataFrame:
    ref = run.table("bronze", "fhir_resources")
    records = _materialise(fhir.with_bronze_columns(
        fhir.read_fhir_files(run.spark, run.settings.inputs.fhir)))
    run.count_in(records.count())
    bad = records.where(F.col("problem").isNotNull()).select(
        "source_file", "record_index", "source_format", "resource",
        F.lit("unparseable_resource").alias("_rule"), F.col("problem").alias("_reason"),
        F.col("source_file").alias("_source"), F.col("record_index").alias("_record_index"))
    run.quarantine(bad, ref)
    run.write(
        records.where(F.col("problem").isNull()).select(*fhir.BRONZE_COLUMNS), ref,
        keys=["record_id"], delete_missing=True)
    return _materialise(run.read(ref))


def _land_csv(run: JobRun) -> dict[str, DataFrame]:
    out = {}
    for table, path in csv_input.csv_files(run.settings.inputs.clinical_csv).items():
        ref = run.table("bronze", f"clinical_csv_{table}")
        rows = _materialise(csv_input.read_csv_table(run.spark, table, path))
        run.count_in(rows.count())
        cols = csv_input.bronze_columns(table)
        bad = csv_input.corrupt_rows(rows).select(
            *cols, csv_input.CORRUPT, F.lit("malformed_row").alias("_rule"),
            F.lit("the line does not split into the header's fields").alias("_reason"),
            F.col("source_file").alias("_source"), F.col("record_index").alias("_record_index"))
        run.quarantine(bad, ref)
        good = rows.where(F.col(csv_input.CORRUPT).isNull()).select(*cols)
        # A lakehouse from before an optional column (patients.csv `zip`) gains it here.
        delta.add_columns(run.spark, ref, good)
        run.write(good, ref, keys=["record_id"], delete_missing=True)
        out[table] = _materialise(run.read(ref))
    return out


# ---------------------------------------------------------------------------- helpers
def _check_family(name: str, total: DataFrame, parsed: DataFrame) -> None:
    """Every received record of a family is accepted or quarantined, never both, never lost."""
    n_total = total.select("record_id").distinct().count()
    ok = parsed.where(F.col("_rule").isNull()).select("record_id").distinct()
    bad = parsed.where(F.col("_rule").isNotNull()).select("record_id").distinct()
    n_ok, n_bad = ok.count(), bad.count()
    both = ok.join(bad, "record_id", "inner").count()
    if n_ok + n_bad != n_total or both:
        raise ReconciliationError(
            f"{name}: {n_total} records received but {n_ok} accepted + {n_bad} quarantined "
            f"({both} both); the run is marked failed.")


def _quarantine(run: JobRun, parsed: DataFrame, target, record_cols: list[str],
                bronze: DataFrame | None = None) -> int:
    """Quarantine rejected records (``_rule`` set), one row per record.

    With ``bronze`` the row as received is stored (restricted targets only); otherwise the
    listed parsed columns, with ``pid`` replaced by its pseudonym so no source identifier
    reaches a silver-schema quarantine.
    """
    key = run.settings.pseudonym_key
    bad = parsed.where(F.col("_rule").isNotNull()).dropDuplicates(["record_id"])
    if bronze is not None:
        rows = bronze.join(bad.select("record_id", "_rule", "_reason"), "record_id", "inner")
        src = F.col("source_file")
        rows = rows.select("*", src.alias("_source"),
                           F.col("record_index").alias("_record_index"))
    else:
        # Raw dates of a silver-schema quarantine move by the patient's shift like every
        # analyst date; a value that is no date stays as received (it is the reason).
        shift = patient_shift_days_col(pseudonymise_col(F.col("pid"), key), key)
        cols = [pseudonymise_col(F.col("pid"), key).alias("patient_key") if c == "pid"
                else shift_date_text(F.col(c), shift).alias(c) if c.endswith("_raw")
                else F.col(c) for c in record_cols]
        # FHIR rows point at bronze.fhir_resources; CSV rows name their (non-identifying) file.
        source = F.col("_source") if "_source" in bad.columns else F.col("source_file")
        index = F.col("_record_index") if "_record_index" in bad.columns else F.col(
            "record_index")
        rows = bad.select(*cols, "_rule", "_reason", source.alias("_source"),
                          index.alias("_record_index"))
    return run.quarantine(rows, target, primary=False)


def _with_known(parsed: DataFrame, known: DataFrame, what: str) -> DataFrame:
    """Reject rows whose patient id is not an accepted patient of either source."""
    flagged = parsed.join(known.select("pid", F.lit(True).alias("_known")), "pid", "left")
    return add_rule(flagged, F.col("_known").isNull(), "unknown_subject",
                    f"{what} refers to a patient_id that is not an accepted patient"
                    ).drop("_known")


def _latest_before(df: DataFrame, value: str, index: DataFrame) -> DataFrame:
    """Per pid, ``value`` of the latest observation on or before the patient's index date."""
    j = df.where(F.col(value).isNotNull()).join(index, "pid", "inner").where(
        F.col("obs_date") <= F.col("index_date"))
    w = Window.partitionBy("pid").orderBy(F.col("obs_date").desc(), F.col(value).desc())
    return j.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").select("pid", value)


# ---------------------------------------------------------------------------- silver
@dataclass
class Rejects:
    """Parsed records of one family, the rejected ones (``_rule`` set) bound for the
    quarantine of ``schema.table`` (see :func:`_quarantine`)."""

    parsed: DataFrame
    schema: str
    table: str
    record_cols: list[str]
    bronze: DataFrame | None = None


@dataclass
class ClinicalSilver:
    """What ingest-clinical writes, built from the bronze frames without touching a table.

    Rows are keyed by the source patient id (``pid``); the writer pseudonymises and shifts.
    ``patients``: one row per accepted patient with demographics, cancer, stage and its
    source, index date and first lines; ``outcomes``: survival labels (``outcome_rejects``:
    deaths dated before the index date, shaped for the quarantine);
    ``biomarker_observations``: parsed FHIR biomarker Observations (``_rule`` on rejects).
    """

    rejects: list[Rejects]
    patients: DataFrame
    diagnoses: DataFrame
    exposures: DataFrame
    lines: DataFrame
    outcomes: DataFrame
    outcome_rejects: DataFrame
    biomarker_observations: DataFrame | None


EXPOSURE_COLUMNS = ["pid", "exposure_id", "drug", "rxcui", "display", "start_date",
                    "end_date", "status", "antineoplastic", "source"]


def build_clinical_silver(spark, fbr: DataFrame | None, cbr: dict[str, DataFrame],
                          rule: LineRule, key: bytes,
                          note_findings: DataFrame | None = None) -> ClinicalSilver:
    """Parse, reconcile and derive every silver clinical table from the bronze frames
    (``fbr``: bronze.fhir_resources; ``cbr``: bronze.clinical_csv_<table> by table name) and,
    for a stage the structured record lacks, silver.note_findings. Pure: no table is read or
    written, so each step can be checked on small frames (tests/test_clinical_build.py).
    """
    rejects: list[Rejects] = []
    alias_df, rx_df, alias_pattern = silver.drug_maps(spark)
    empty = spark.createDataFrame([], "pid string")

    # ---- patients (rejects hold names/MRNs/birth dates: restricted quarantine only)
    fhir_pat = csv_pat = None
    pat_refs = spark.createDataFrame([], "ref_key string, target_id string")
    if fbr is not None:
        fp = _materialise(silver.dedupe_patients(fhir.parse_patients(fbr)))
        _check_family("FHIR Patient", fbr.where(F.col("resource_type") == "Patient"), fp)
        rejects.append(Rejects(fp, "restricted", "patient_identity", [],
                               fbr.select(*fhir.BRONZE_COLUMNS)))
        fhir_pat = fp.where(F.col("_rule").isNull())
        resolvable = fp.where(F.col("_rule").isNull() | (F.col("_rule") == "duplicate_patient"))
        pat_refs = _materialise(fhir.reference_map(
            fbr.join(resolvable.select("record_id"), "record_id", "left_semi"), "Patient"))
    if "patients" in cbr:
        cp = _materialise(silver.dedupe_patients(csv_input.parse_patients(cbr["patients"])))
        _check_family("patients.csv", cbr["patients"], cp)
        rejects.append(Rejects(cp, "restricted", "patient_identity", [], cbr["patients"]))
        csv_pat = cp.where(F.col("_rule").isNull())
    known = empty
    for p in (fhir_pat, csv_pat):
        if p is not None:
            known = known.unionByName(p.select("pid"))
    known = _materialise(known.distinct())

    # ---- diagnoses
    diag_parts = []
    diag_cols = ["pid", "diagnosis_id", "code", "code_system", "display", "onset_date",
                 "abatement_date", "ongoing", "verification_status", "stage_text", "source"]
    if fbr is not None:
        fc = _materialise(fhir.parse_conditions(fbr, pat_refs))
        _check_family("FHIR Condition", fbr.where(F.col("resource_type") == "Condition"), fc)
        rejects.append(Rejects(fc, "silver", "diagnoses", [
            "record_id", "resource_type", "resource_id", "pid", "onset_raw", "abatement_raw"]))
        diag_parts.append(fc.where(F.col("_rule").isNull()).select(
            "pid", F.substring(F.sha2(F.concat_ws("#", "record_id", F.col("coding_index")
                                                  .cast("string")), 256), 1, 20)
            .alias("diagnosis_id"),
            "code", "code_system", "display", "onset_date", "abatement_date", "ongoing",
            "verification_status", "stage_text", F.lit("fhir").alias("source")))
    if "diagnoses" in cbr:
        cd = _materialise(_with_known(csv_input.parse_diagnoses(cbr["diagnoses"]), known,
                                      "diagnoses.csv row"))
        _check_family("diagnoses.csv", cbr["diagnoses"], cd)
        rejects.append(Rejects(cd, "silver", "diagnoses",
                               ["record_id", "pid", "code", "code_system", "onset_raw"]))
        diag_parts.append(cd.where(F.col("_rule").isNull()).select(
            "pid", F.col("record_id").alias("diagnosis_id"), "code", "code_system",
            F.lit(None).cast("string").alias("display"), "onset_date",
            F.lit(None).cast("date").alias("abatement_date"), F.lit(False).alias("ongoing"),
            F.lit(None).cast("string").alias("verification_status"),
            F.lit(None).cast("string").alias("stage_text"), F.lit("csv").alias("source")))
    diagnoses = spark.createDataFrame([], ", ".join(
        f"{c} {t}" for c, t in zip(diag_cols, ["string"] * 5 + ["date", "date", "boolean"]
                                   + ["string"] * 3, strict=True)))
    for part in diag_parts:
        diagnoses = diagnoses.unionByName(part)
    diagnoses = _materialise(silver.with_mapped_icd10(diagnoses, silver.snomed_map_df(spark)))

    # ---- medication exposures
    exposures = spark.createDataFrame(
        [], "pid string, exposure_id string, drug string, rxcui string, display string, "
            "start_date date, end_date date, status string, antineoplastic boolean, "
            "source string")
    if fbr is not None:
        fm = _materialise(fhir.parse_medications(fbr, pat_refs, alias_df, rx_df, alias_pattern))
        _check_family("FHIR MedicationRequest/Administration",
                      fbr.where(F.col("resource_type").isin(*fhir.MEDICATION_TYPES)), fm)
        rejects.append(Rejects(fm, "silver", "medication_exposures", [
            "record_id", "resource_type", "resource_id", "pid", "display", "start_raw",
            "end_raw"]))
        exposures = exposures.unionByName(_exposure_rows(fm))
    if "treatments" in cbr:
        ct = _with_known(csv_input.parse_treatments(cbr["treatments"]), known,
                         "treatments.csv row")
        ct = _materialise(fhir.with_drug_names(
            ct.withColumn("source", F.lit("csv")), alias_df, rx_df, alias_pattern,
            antineoplastic_only=False))
        _check_family("treatments.csv", cbr["treatments"], ct)
        rejects.append(Rejects(ct, "silver", "medication_exposures", [
            "record_id", "pid", "display", "rxcui", "start_raw", "end_raw"]))
        exposures = exposures.unionByName(_exposure_rows(ct))
    exposures = _materialise(exposures.select(*EXPOSURE_COLUMNS))

    # ---- observations (FHIR): ECOG, stage, smoking, progression
    obs = spark.createDataFrame([], "pid string, kind string, obs_date date, ecog int, "
                                    "stage string, smoking string, progressed boolean")
    biomarker_obs = None
    activity = spark.createDataFrame([], "pid string, last_activity_date date")
    if fbr is not None:
        fo = _materialise(fhir.parse_observations(fbr, pat_refs))
        obs_cols = ["record_id", "resource_type", "resource_id", "pid", "kind", "date_raw"]
        rejects.append(Rejects(fo.where(F.col("kind") != "progression"), "silver", "patients",
                               obs_cols))
        rejects.append(Rejects(fo.where(F.col("kind") == "progression"), "silver",
                               "treatment_lines", obs_cols))
        obs = fo.where(F.col("_rule").isNull()).select(*obs.columns)
        activity = fhir.activity_dates(fbr, pat_refs)
        biomarker_obs = _materialise(fhir.parse_biomarker_observations(fbr, pat_refs))
        rejects.append(Rejects(biomarker_obs, "silver", "biomarker_observations", [
            "record_id", "resource_type", "resource_id", "pid", "loinc", "date_raw"]))
    obs = _materialise(obs)

    # ---- CSV outcomes (need patients for death-before-birth)
    patients = _materialise(silver.combine_patients(
        spark,
        None if fhir_pat is None else fhir_pat.select(
            "pid", "name", "mrn", "birth_date", "sex", "deceased", "death_date", "postal_code"),
        None if csv_pat is None else csv_pat.select(
            "pid", "name", "mrn", "birth_date", "sex", "cancer_type", "stage", "ecog",
            "diagnosis_date", "smoking_status", "postal_code")))
    csv_out = spark.createDataFrame([], "pid string, death_date date, last_followup_date date, "
                                        "progression_date date")
    if "outcomes" in cbr:
        co = _with_known(csv_input.parse_outcomes(cbr["outcomes"]), known, "outcomes.csv row")
        co = silver.dedupe_patients(co).join(
            patients.select("pid", F.col("birth_date").alias("_birth")), "pid", "left")
        co = _materialise(add_rule(co, F.col("death_date") < F.col("_birth"),
                                   "death_before_birth", "death_date is before birth_date"))
        _check_family("outcomes.csv", cbr["outcomes"], co)
        rejects.append(Rejects(co, "silver", "outcomes", [
            "record_id", "pid", "death_raw", "followup_raw", "progression_raw"]))
        csv_out = co.where(F.col("_rule").isNull()).select(*csv_out.columns)
    csv_out = _materialise(csv_out)

    # ---- cancer, lines, index date
    summary = silver.cancer_summary(diagnoses, silver.cancer_prefix_df(spark))
    base = patients.join(summary, "pid", "left").select(
        "*",
        F.coalesce("cancer_type", "dx_cancer_type").alias("_cancer_type"),
        F.coalesce("diagnosis_date", "dx_cancer_date", "dx_any_malignancy_date")
        .alias("_diagnosis_date"),
    ).drop("cancer_type", "diagnosis_date").withColumnRenamed(
        "_cancer_type", "cancer_type").withColumnRenamed("_diagnosis_date", "diagnosis_date")
    base = _materialise(base)
    progression = obs.where(F.col("progressed")).select(
        "pid", F.col("obs_date").alias("progression_date")).unionByName(
        csv_out.where(F.col("progression_date").isNotNull()).select("pid", "progression_date"))
    lines = _materialise(treatment_lines(
        silver.lines_input(exposures, base, progression), rule))
    firsts = lines.groupBy("pid").agg(
        F.min(F.when(F.col("line_number") == 1, F.col("start_date"))).alias("first_line_start"),
        F.first(F.when(F.col("line_number") == 1, F.col("treatment")), ignorenulls=True)
        .alias("first_line_treatment"),
        F.min(F.when(F.col("line_number") == 2, F.col("start_date"))).alias("line2_start"))
    base = _materialise(base.join(firsts, "pid", "left").withColumn(
        "index_date", F.coalesce("first_line_start", "diagnosis_date")))
    index = base.select("pid", "index_date")

    ecog_obs = _latest_before(obs.where(F.col("kind") == "ecog"), "ecog", index)
    smoke_obs = _latest_before(obs.where(F.col("kind") == "smoking"), "smoking", index)
    stage_obs = obs.where((F.col("kind") == "stage") & F.col("stage").isNotNull()).withColumn(
        "_rn", F.row_number().over(Window.partitionBy("pid").orderBy("obs_date"))).where(
        "_rn = 1").select("pid", F.col("stage").alias("obs_stage"))
    inferred_iv = F.when(
        (F.col("has_metastasis") == 1)
        & (F.col("metastasis_date").isNull() | (F.col("metastasis_date") <= F.col("index_date"))),
        F.lit("IV"))
    stages = [(F.col("stage"), "csv"), (stage_group(F.col("dx_stage_text")), "fhir condition"),
              (F.col("obs_stage"), "fhir observation"), (F.col("note_stage"), "note"),
              (inferred_iv, "metastasis codes")]
    final = (
        base.join(ecog_obs.withColumnRenamed("ecog", "obs_ecog"), "pid", "left")
        .join(smoke_obs, "pid", "left").join(stage_obs, "pid", "left")
        .join(note_stages(spark, note_findings, base, key), "pid", "left")
        .select(
            "*",
            F.coalesce("obs_ecog", "ecog").alias("_ecog"),
            F.coalesce("smoking", "smoking_status").alias("_smoking"),
            F.coalesce(*[c for c, _ in stages]).alias("_stage"),
            F.coalesce(*[F.when(c.isNotNull(), F.lit(s)) for c, s in stages])
            .alias("stage_source"),
        )
    )
    final = _materialise(final)
    outcomes, outcome_rejects = outcome_frames(final, csv_out, activity, diagnoses, exposures,
                                               key)
    return ClinicalSilver(rejects, final, diagnoses, exposures, lines, outcomes,
                          outcome_rejects, biomarker_obs)


def _write_clinical_silver(run: JobRun, built: ClinicalSilver) -> None:
    """Quarantine every rejected record and write the silver and restricted tables."""
    spark, key = run.spark, run.settings.pseudonym_key
    for r in built.rejects:
        _quarantine(run, r.parsed, run.table(r.schema, r.table), r.record_cols, bronze=r.bronze)
    final, diagnoses, exposures, lines = (built.patients, built.diagnoses, built.exposures,
                                          built.lines)
    identity_ref = run.table("restricted", "patient_identity")
    diag_ref = run.table("silver", "diagnoses")
    expo_ref = run.table("silver", "medication_exposures")
    patient_key = pseudonymise_col(F.col("pid"), key).alias("patient_key")

    # ---- writes (derived outputs: the bronze landing is the reconciled primary output)
    run.write(final.select(patient_key, F.col("pid").alias("source_patient_id"), "name", "mrn",
                           "birth_date", "source"),
              identity_ref, keys=["patient_key"], delete_missing=True, primary=False)
    # Every date below is moved by the patient's date shift (privacy.shift_dates): the
    # intervals the features and labels need survive, the calendar dates stay in restricted.
    patients_ref = run.table("silver", "patients")
    _drop_identifying_columns(run, patients_ref, ("birth_year",))
    silver_patients = (final.select(
        patient_key, "sex",
        # HIPAA Safe Harbor: ages over 89 are aggregated into one category, stored as 90.
        F.least(F.floor(F.months_between("diagnosis_date", "birth_date") / 12), F.lit(AGE_CAP))
        .cast("int").alias("age_at_diagnosis"),
        "cancer_type", F.col("_stage").alias("stage"), "stage_source", "diagnosis_date",
        "index_date",
        F.col("_ecog").cast("int").alias("ecog"), F.col("_smoking").alias("smoking_status"),
        zip3_col(F.col("postal_code")).alias("zip3"), "source")
        .transform(lambda d: shift_dates(d, key, ["diagnosis_date", "index_date"])))
    added = delta.add_columns(spark, patients_ref, silver_patients,
                               column_comments(patients_ref))
    if added:
        log.info("%s: %s gained %s", INGEST_STAGE, patients_ref.key, ", ".join(added))
    run.write(silver_patients, patients_ref, keys=["patient_key"], delete_missing=True,
              primary=False)
    run.write(diagnoses.select(
        "diagnosis_id", patient_key, "code", "code_system", "display", "onset_date",
        "abatement_date", "ongoing", "verification_status", "mapped_from", "source")
        .transform(lambda d: shift_dates(d, key, ["onset_date", "abatement_date"])),
        diag_ref, keys=["diagnosis_id"], delete_missing=True, primary=False)
    run.write(exposures.select("exposure_id", patient_key, *EXPOSURE_COLUMNS[2:])
              .transform(lambda d: shift_dates(d, key, ["start_date", "end_date"])), expo_ref,
              keys=["exposure_id"], delete_missing=True, primary=False)
    run.write(lines.select(patient_key, "line_number", "treatment", "drugs", "start_date",
                           "end_date")
              .transform(lambda d: shift_dates(d, key, ["start_date", "end_date"])),
              run.table("silver", "treatment_lines"), keys=["patient_key", "line_number"],
              delete_missing=True, primary=False)
    if built.biomarker_observations is not None:
        _write_biomarker_observations(run, built.biomarker_observations)
    _write_outcomes(run, built.outcomes, built.outcome_rejects, patient_key)


def note_stages(spark, note_findings: DataFrame | None, base: DataFrame,
                key: bytes) -> DataFrame:
    """Per pid: ``note_stage`` from silver.note_findings (:func:`silver.note_stage`, on the
    notes' shifted calendar); no rows without the findings table."""
    if note_findings is None:
        return spark.createDataFrame([], "pid string, note_stage string")
    index = base.select("pid", pseudonymise_col(F.col("pid"), key).alias("patient_key"),
                        "index_date").transform(lambda d: shift_dates(d, key, ["index_date"]))
    return silver.note_stage(note_findings, index).join(index, "patient_key", "inner").select(
        "pid", "note_stage")


def _drop_identifying_columns(run: JobRun, ref, columns: tuple[str, ...]) -> None:
    """Rewrite an existing table without columns an earlier version of oncorank wrote and this
    one no longer may (``birth_year``); logged, and its old versions are purged by
    ``oncorank vacuum``."""
    dropped = delta.drop_columns(run.spark, ref, list(columns))
    if dropped:
        log.warning("%s: %s rewritten without %s (identifying); run `oncorank vacuum` to purge "
                    "its earlier versions", INGEST_STAGE, ref.key, ", ".join(dropped))


def _write_biomarker_observations(run: JobRun, parsed: DataFrame) -> None:
    """Accepted FHIR biomarker Observations → ``silver.biomarker_observations`` (a biomarker's
    third source beside the VCF and the notes; rejects are quarantined with the others)."""
    ref = run.table("silver", "biomarker_observations")
    patient_key = pseudonymise_col(F.col("pid"), run.settings.pseudonym_key)
    cols = ["observation_id", "patient_key", "concept", "context", "value", "comparator",
            "obs_date", "loinc"]
    run.write(parsed.where(F.col("_rule").isNull()).withColumn("patient_key", patient_key)
              .select(*cols)
              .transform(lambda d: shift_dates(d, run.settings.pseudonym_key, ["obs_date"])),
              ref, keys=["observation_id"], delete_missing=True, primary=False)


def _exposure_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("_rule").isNull()).select(
        "pid",
        F.substring(F.sha2(F.concat_ws("#", "record_id", F.coalesce("drug", F.lit(""))), 256),
                    1, 20).alias("exposure_id"),
        "drug", "rxcui", "display", "start_date", "end_date", "status", "antineoplastic",
        "source")


def outcome_frames(final: DataFrame, csv_out: DataFrame, activity: DataFrame,
                   diagnoses: DataFrame, exposures: DataFrame, key: bytes
                   ) -> tuple[DataFrame, DataFrame]:
    """(outcomes, rejects): survival labels per pid (:func:`silver.with_outcomes`; follow-up
    ends at the latest recorded care), and the deaths dated before the index date shaped for
    the silver.outcomes quarantine (pseudonymised, dates shifted)."""
    care = (activity.select("pid", F.col("last_activity_date").alias("d"))
            .unionByName(diagnoses.select("pid", F.col("onset_date").alias("d")))
            .unionByName(exposures.select("pid", F.col("start_date").alias("d")))
            .unionByName(csv_out.select("pid", F.col("last_followup_date").alias("d")))
            .groupBy("pid").agg(F.max("d").alias("followup_date")))
    df = (final.where(F.col("index_date").isNotNull())
          .select("pid", "index_date", "first_line_start", "first_line_treatment",
                  "line2_start", "deceased", F.col("death_date").alias("fhir_death"))
          .join(csv_out.select("pid", F.col("death_date").alias("csv_death")), "pid", "left")
          .join(care, "pid", "left")
          .withColumn("death_date", F.coalesce("fhir_death", "csv_death"))
          .withColumn("followup_date", F.greatest("followup_date", "index_date"))
          .transform(silver.with_outcomes))
    bad = df.where(F.col("death_date") < F.col("index_date")).select(
        F.concat(F.lit("outcome:"), pseudonymise_col(F.col("pid"), key)).alias("record_id"),
        pseudonymise_col(F.col("pid"), key).alias("patient_key"),
        "index_date", "death_date", F.lit("death_before_index").alias("_rule"),
        F.lit("death date is before the index date (first treatment or diagnosis)")
        .alias("_reason"), F.lit("silver").alias("_source"),
        F.lit(None).cast("long").alias("_record_index")).transform(
        lambda d: shift_dates(d, key, ["index_date", "death_date"]))
    good = df.where(F.col("death_date").isNull() | (F.col("death_date") >= F.col("index_date")))
    return good, bad


def _write_outcomes(run: JobRun, good: DataFrame, bad: DataFrame, patient_key) -> None:
    run.quarantine(bad, run.table("silver", "outcomes"), primary=False)
    run.write(good.select(
        patient_key, "index_date", "os_months", "os_event", "ttnt_months", "ttnt_event",
        F.col("last_followup_date_out").alias("last_followup_date"), "death_date",
        "first_line_treatment").transform(lambda d: shift_dates(
            d, run.settings.pseudonym_key, ["index_date", "last_followup_date", "death_date"])),
        run.table("silver", "outcomes"), keys=["patient_key"], delete_missing=True,
        primary=False)


# ============================================================================ comorbidities
def compute_comorbidities(spark, settings, parent_run_id: str | None = None) -> JobRun:
    """Run the comorbidities stage: one silver.comorbidities row per silver.patients row.

    Settings ``[comorbidities]``: ``lookback_days`` (365), ``include_undated`` (true).

    >>> compute_comorbidities(spark, settings).rows_written  # doctest: +SKIP
    40
    """
    from pipelines.clinical.comorbidity import (
        comorbidity_flags,
        contraindication_flags,
        filter_lookback,
        note_comorbidity_rows,
        note_only_components,
        usable_icd10,
    )

    section = settings.section("comorbidities")
    try:
        lookback = int(section.get("lookback_days", 365))
    except (TypeError, ValueError):
        raise ConfigError(f"[comorbidities] lookback_days must be a whole number of days, got "
                          f"{section.get('lookback_days')!r}.") from None
    include_undated = bool(section.get("include_undated", True))
    with job_run(spark, settings, COMORBIDITY_STAGE, parent_run_id) as run:
        pref = run.table("silver", "patients")
        if not (settings.inputs.fhir or settings.inputs.clinical_csv) and not delta.table_exists(
                spark, pref):
            log.info("%s: no clinical input configured; nothing to compute", COMORBIDITY_STAGE)
            return run
        patients = run.read(pref).select("patient_key", "index_date").persist()
        run.count_in(patients.count())
        diagnoses = run.read_optional(run.table("silver", "diagnoses"),
                                      consequence="no patient has a coded comorbidity")
        if diagnoses is None:
            diagnoses = spark.createDataFrame(
                [], "patient_key string, code string, code_system string, onset_date date, "
                    "abatement_date date, ongoing boolean, verification_status string")
        findings = run.read_optional(run.table("silver", "note_findings"),
                                     consequence="contraindications come from codes only")
        icd = usable_icd10(diagnoses).join(patients, "patient_key", "inner")
        windowed = filter_lookback(icd, lookback, include_undated)
        ids = patients.select("patient_key")
        # A comorbidity a note states counts like a code when the structured record lacks it;
        # note_components names the components only notes set.
        coded = windowed.select("patient_key", "code")
        noted = (note_comorbidity_rows(findings, patients, lookback) if findings is not None
                 else coded.limit(0))
        flags = comorbidity_flags(coded.unionByName(noted), id_col="patient_key", ids=ids)
        ci = contraindication_flags(icd, findings, ids)
        out = (patients.join(flags, "patient_key", "left").join(ci, "patient_key", "left")
               .join(note_only_components(coded, noted, ids), "patient_key", "left")
               .withColumn("lookback_days", F.lit(lookback)))
        ref = run.table("silver", "comorbidities")
        if delta.add_columns(spark, ref, out, _comorbidity_comments(lookback)):
            log.info("%s: %s gained note_components", COMORBIDITY_STAGE, ref.key)
        run.write(out, ref, keys=["patient_key"],
                  delete_missing=True, comments=_comorbidity_comments(lookback))
        patients.unpersist()
    return run


def _comorbidity_comments(lookback: int) -> dict[str, str]:
    from pipelines.clinical.codes import charlson_components, contraindication_rules
    from pipelines.clinical.codes import elixhauser_components as elix

    out = {c.column: f"Charlson: {c.label} (weight {c.weight})" for c in charlson_components()}
    out.update({c.column: f"Elixhauser: {c.label} (van Walraven {c.weight:+d})" for c in elix()})
    out.update({r.column: f"Contraindication: {r.label} (codes or notes, any time)"
                for r in contraindication_rules()})
    out["charlson_index"] = (f"Charlson index (1987 weights) from ICD-10 codes in the {lookback} "
                             "days up to the index date, hierarchy applied; no age points")
    out["elixhauser_vw"] = "van Walraven Elixhauser score (can be negative)"
    out["lookback_days"] = "Lookback window used for the cci_/elix_ components"
    out["note_components"] = ("cci_/elix_ components set only by a comorbidity a note states "
                              "(affirmed or historical, dated in the window); the coded record "
                              "lacks them. Empty when codes cover every component")
    return out

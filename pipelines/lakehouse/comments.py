"""Table and column comments: what every oncorank table and column means, in one place.

Writers pass them with the write, so Delta stores them in the table's schema and analysts see
them in ``DESCRIBE``, the Unity Catalog explorer, ``deltalake`` and DuckDB::

    run.write(df, ref, keys=["variant_key"], **comments_for(ref, df.columns))

``comments_for`` returns ``{"comments": {column: text}, "table_comment": text}`` (the
keyword arguments of ``JobRun.write`` / ``delta.write_table``). Comments cover the columns of
the table contracts; families of columns (``cci_*``, ``elix_*``, ``ci_*``, gene flags) are
described by prefix. Quarantine tables (``<schema>.quarantine_<table>``) share one set.

>>> comments_for("silver.outcomes", ["os_months"])["comments"]["os_months"][:31]
'Overall survival in months from'
>>> comments_for("silver.quarantine_variants")["table_comment"][:40]
'Rows rejected on the way into silver.var'
"""

from __future__ import annotations

from collections.abc import Iterable

# Shared phrases, so the same column reads the same in every table.
_PK = "Pseudonymised patient id: HMAC-SHA256 of the source patient id (20 hex chars); join key"
_TREATMENT = "Regimen name from the oncorank regimen catalog (pipelines/resources/regimens.yaml)"
_CANCER = "Cancer type as an OncoTree code (NSCLC, BRCA, COADREAD, MEL)"
_INDEX = "Index date: start of first-line treatment (date-shifted), time zero for survival"
_SOURCE = "Source file or system the row came from"

TABLE_COMMENTS: dict[str, str] = {
    # ---------------------------------------------------------------- bronze (as received)
    "bronze.variants_raw": (
        "Variant records as read from the VCF/BCF inputs, one row per record and sample; "
        "source sample names, not yet pseudonymised. Not for analysts."),
    "bronze.notes_raw": (
        "Clinical notes as received (raw text with identifiers). Input of the "
        "de-identification stage only; analysts use silver.notes_deid."),
    "bronze.vcf_headers": (
        "Header lines (INFO, FORMAT, FILTER, contig) of every ingested VCF/BCF, with what "
        "breaks the VCF specification, if anything."),
    "bronze.clinical_csv_patients": (
        "patients.csv rows as received: source patient id, name, MRN, birth date and the "
        "diagnosis fields. Contains identifiers."),
    "bronze.clinical_csv_diagnoses": "diagnoses.csv rows as received (source patient ids).",
    "bronze.clinical_csv_treatments": "treatments.csv rows as received (source patient ids).",
    "bronze.clinical_csv_outcomes": "outcomes.csv rows as received (source patient ids).",
    # ---------------------------------------------------------------- silver (clean, keyed)
    "silver.notes_deid": (
        "De-identified clinical notes: names, ids, contact details and exact dates replaced "
        "by Spark NLP de-identification; note dates shifted per patient."),
    "silver.note_findings": (
        "Oncology findings extracted from de-identified notes (biomarkers, metastatic sites, "
        "ECOG, therapies, adverse events, smoking) with their ConText status."),
    "silver.biomarker_observations": (
        "Biomarker results reported as FHIR Observations (ER, PR, HER2, PD-L1, MSI, TMB), "
        "one row per Observation, with their status and stated value."),
    "silver.patients": (
        "One row per patient: demographics, cancer type, stage and ECOG at diagnosis "
        "(pseudonymised; birth year only)."),
    "silver.diagnoses": "Coded diagnoses per patient (ICD-10-CM or SNOMED CT) with onset date.",
    "silver.treatment_lines": (
        "Lines of systemic therapy per patient, derived from medication records and mapped "
        "to catalog regimens."),
    "silver.outcomes": (
        "Survival outcomes per patient from the index date: overall survival and time to "
        "next treatment, with censoring indicators."),
    "silver.medication_exposures": (
        "Drug exposures per patient from FHIR MedicationRequests or treatments.csv, "
        "normalised to RxNorm ingredients; the input of treatment lines."),
    "silver.sequenced_samples": (
        "Which VCF sample belongs to which patient, with records ingested and quarantined "
        "per sample (pseudonymised file and sample names)."),
    "silver.comorbidities": (
        "Charlson (Quan ICD-10) and Elixhauser comorbidity components and scores per "
        "patient, and contraindication flags used by the ranking."),
    "silver.variants": (
        "Somatic and germline variants per patient, normalised and annotated "
        "(gene, consequence, HGVS), with VAF and depth."),
    "silver.biomarkers": (
        "Genomic biomarkers per patient: tumour mutational burden and gene-level "
        "alteration flags."),
    "silver.actionable_alterations": (
        "Patient alterations matched to knowledge-base evidence (CIViC): therapy, evidence "
        "level, sensitivity or resistance, on/off label."),
    # ---------------------------------------------------------------- gold (decision-ready)
    "gold.patient_features": (
        "Model features per patient and index date (demographics, stage, ECOG, comorbidities, "
        "biomarkers, note findings), the first-line treatment received and its outcome."),
    "gold.treatment_rankings": (
        "Ranked treatment options per patient under review: predicted restricted mean "
        "survival and survival at 12/24 months with intervals, evidence, contraindications."),
    "gold.model_metrics": (
        "Validation metrics of every training run, one row per run and metric (C-index "
        "overall and by subgroup, ...), with the registered version and whether it was promoted."),
    "gold.drift": (
        "Population drift per feature between the training cohort and the scored cohort "
        "(e.g. PSI, KS); the report warns when the population has moved."),
    # ---------------------------------------------------------------- ops, restricted
    "ops.job_runs": (
        "One row per job run: rows in / written / quarantined (they must reconcile), Delta "
        "versions read and written, git sha, config hash."),
    "ops.data_quality": (
        "One row per expectation evaluated by a data-quality gate: table, expectation, "
        "success, observed value and unexpected count."),
    "restricted.patient_identity": (
        "RESTRICTED. Maps patient_key to the source patient id, name, MRN and birth date for "
        "the care-team report variant. Never granted to analysts."),
}

COLUMN_COMMENTS: dict[str, dict[str, str]] = {
    "bronze.variants_raw": {
        "sample": "Sample name in the VCF header (a source identifier)",
        "chrom": "Chromosome as written in the VCF (with or without the chr prefix)",
        "pos": "1-based position (VCF POS)",
        "ref": "Reference allele",
        "alt": "Alternate allele(s)",
        "filter": "VCF FILTER value (PASS or the failed filters)",
        "source_file": "VCF/BCF file the record was read from",
    },
    "bronze.notes_raw": {
        "note_id": "Note id from the source system",
        "patient_id": "Source patient id (identifier; replaced by patient_key in silver)",
        "note_type": "Kind of note (e.g. pathology, oncology consult, radiology)",
        "note_date": "Date the note was written, as received",
        "text": "Raw note text, with identifiers",
        "source_file": _SOURCE,
    },
    "bronze.clinical_csv_patients": {
        "record_id": "Stable id of the source row (hash of file and content)",
        "source_file": _SOURCE,
        "record_index": "Position of the row in its source file",
        "patient_id": "Source patient id (identifier)",
        "name": "Patient name (identifier)",
        "mrn": "Medical record number (identifier)",
        "birth_date": "Date of birth (identifier)",
    },
    "silver.medication_exposures": {
        "exposure_id": "Stable id of the exposure",
        "patient_key": _PK,
        "drug": "Canonical ingredient name (null when the code maps to none)",
        "rxcui": "RxNorm concept id of the drug as recorded",
        "display": "Drug text as recorded",
        "start_date": "First administration or order (date-shifted)",
        "end_date": "Last administration (date-shifted); null if unknown",
        "status": "Order status as recorded (e.g. completed, active, stopped)",
        "antineoplastic": "True for anticancer drugs (the ones that form treatment lines)",
        "source": "Where the row came from: fhir or csv",
    },
    "gold.model_metrics": {
        "run_id": "MLflow run of the training",
        "model_name": "Registered model name",
        "family": "Model family, e.g. coxph, rsf, xgb_aft",
        "selected": "True for the family selected to register in this training run",
        "model_version": "Registered model version (null when not registered)",
        "promoted": "True when this version became the champion",
        "metric": "Metric name, e.g. harrell_c, uno_c, c_<subgroup>_<level>",
        "value": "Metric value on the held-out patients",
        "fingerprint": "Fingerprint of the training data and configuration",
        "trained_at": "When the model was trained (UTC)",
    },
    "silver.notes_deid": {
        "note_id": "Note id from the source system",
        "patient_key": _PK,
        "note_type": "Kind of note (e.g. pathology, oncology consult, radiology)",
        "note_date": "Note date shifted by the patient's date offset",
        "text_deid": "De-identified note text: identifiers replaced by typed placeholders",
        "phi_count": "Number of PHI spans the de-identifier replaced in the note",
    },
    "silver.note_findings": {
        "finding_id": "Stable id of the finding",
        "patient_key": _PK,
        "note_id": "Note the finding was read from",
        "note_type": "Kind of note the finding was read from",
        "note_date": "Shifted date of the note",
        "concept": "Normalised concept, e.g. 'EGFR L858R', 'PD-L1 TPS', 'ECOG', 'brain metastasis'",
        "category": ("biomarker | site | performance_status | therapy | adverse_event | "
                     "smoking | diagnosis | stage | comorbidity"),
        "value": ("Value when the concept has one (PD-L1 TPS percent, ECOG 0-4, HER2 IHC "
                  "score); a range as '1-49'; else null"),
        "comparator": "How the value was stated: < | <= | > | >= | range; null when exact",
        "context": ("Status: affirmed | negated | pending | equivocal | indeterminate | "
                    "possible | historical | hypothetical | family; features read affirmed "
                    "and negated findings dated on or before the index date"),
        "section": "Note section the finding sits in (e.g. assessment, family history)",
        "start": "Start character offset in text_deid",
        "end": "End character offset in text_deid (exclusive)",
        "snippet": "The de-identified sentence around the finding",
    },
    "silver.biomarker_observations": {
        "observation_id": "FHIR Observation id (the source of the fact, shown in reports)",
        "patient_key": _PK,
        "concept": ("Biomarker, named as in silver.note_findings: ER positive, PR positive, "
                    "ERBB2 amplification, PD-L1 TPS, MSI-H, TMB"),
        "context": "Result status: affirmed | negated | equivocal | indeterminate | pending",
        "value": ("Reported quantity (TPS percent, mutations/Mb, ER/PR percent, HER2/CEP17 "
                  "ratio); null for a coded answer"),
        "comparator": "FHIR valueQuantity.comparator: < | <= | > | >=; null when exact",
        "obs_date": "Effective date of the Observation (date-shifted)",
        "loinc": "LOINC code of the Observation",
    },
    "silver.patients": {
        "patient_key": _PK,
        "sex": "Administrative sex (female | male | other | unknown)",
        "age_at_diagnosis": ("Age in whole years at diagnosis; 90 means 90 or older (HIPAA "
                             "Safe Harbor)"),
        "cancer_type": _CANCER,
        "stage": "AJCC stage group at diagnosis: I | II | III | IV",
        "diagnosis_date": "Date of cancer diagnosis (date-shifted)",
        "index_date": _INDEX,
        "ecog": "ECOG performance status 0-4 at diagnosis",
        "zip3": ("First three digits of the home ZIP code; 000 for the small areas HIPAA Safe "
                 "Harbor names"),
        "source": "Where the row came from: fhir or csv",
    },
    "restricted.patient_identity": {
        "patient_key": _PK,
        "source_patient_id": "Patient id in the source system (identifier)",
        "name": "Patient name (identifier)",
        "mrn": "Medical record number (identifier)",
        "birth_date": "Date of birth (identifier)",
        "source": "Where the identity came from: fhir or csv",
    },
    "silver.diagnoses": {
        "patient_key": _PK,
        "code": "Diagnosis code, without dots for ICD-10-CM",
        "code_system": "icd10cm or snomedct",
        "onset_date": "Onset date (date-shifted)",
    },
    "silver.treatment_lines": {
        "patient_key": _PK,
        "line_number": "Line of therapy, 1 = first line",
        "treatment": _TREATMENT + "; null when the drugs match no catalog regimen",
        "drugs": "Drug ingredient names given in this line (RxNorm ingredients, lower case)",
        "start_date": "First administration in the line (date-shifted)",
        "end_date": "Last administration in the line (date-shifted); null if ongoing",
    },
    "silver.outcomes": {
        "patient_key": _PK,
        "index_date": _INDEX,
        "os_months": "Overall survival in months from the index date to death or last follow-up",
        "os_event": "1 = death observed, 0 = censored at last follow-up",
        "ttnt_months": "Months from the index date to the next line of therapy, death or censoring",
        "ttnt_event": "1 = next line started or death, 0 = censored",
        "last_followup_date": "Last date the patient was known alive (date-shifted)",
        "death_date": "Date of death (date-shifted); null if alive",
        "first_line_treatment": "First-line regimen received: " + _TREATMENT,
    },
    "silver.comorbidities": {
        "patient_key": _PK,
        "index_date": _INDEX,
        "charlson_index": "Charlson comorbidity index (ICD-10 coding after Quan et al.)",
        "elixhauser_vw": "Elixhauser comorbidity score, van Walraven weights",
    },
    "silver.variants": {
        "variant_key": "Stable id of the variant call (same call, same key on every run)",
        "patient_key": _PK,
        "sample": "Pseudonymised sample id",
        "chrom": "Chromosome, normalised without the chr prefix",
        "pos": "1-based position on the reference genome",
        "ref": "Reference allele (left-aligned, normalised)",
        "alt": "Alternate allele (one per row after splitting multiallelic sites)",
        "filter": "VCF FILTER value (PASS or the failed filters)",
        "gt": "Genotype, e.g. 0/1",
        "vaf": "Variant allele fraction in the tumour sample, 0-1",
        "dp": "Read depth at the position",
        "gene": "HGNC gene symbol",
        "consequence": "Sequence Ontology consequence, e.g. missense_variant",
        "hgvsc": "HGVS coding-DNA notation",
        "hgvsp": "HGVS protein notation, e.g. p.Leu858Arg",
        "transcript": "Transcript the annotation refers to (Ensembl or RefSeq id)",
        "source_file": "VCF/BCF file the record was read from",
    },
    "silver.biomarkers": {
        "patient_key": _PK,
        "tmb": "Tumour mutational burden, mutations per megabase",
    },
    "silver.actionable_alterations": {
        "patient_key": _PK,
        "gene": "HGNC gene symbol",
        "alteration": "Alteration as in the knowledge base, e.g. L858R, V600E, Amplification",
        "disease": "Disease of the evidence (knowledge-base wording)",
        "therapy": "Therapy (drug or combination) of the evidence",
        "regimen": _TREATMENT + " the therapy maps to; null if none",
        "evidence_level": "CIViC evidence level A (validated) to E (inferential)",
        "direction": "sensitivity or resistance",
        "on_label": "True when the evidence's disease matches the patient's cancer type",
        "citation": "Publication of the evidence (PubMed id or abstract)",
        "kb_version": "Knowledge-base release the evidence comes from",
        "vaf": "Variant allele fraction of the patient's alteration, 0-1",
    },
    "gold.patient_features": {
        "patient_key": _PK,
        "index_date": _INDEX,
        "cancer_type": _CANCER,
        "treatment": "First-line regimen received: " + _TREATMENT,
        "os_months": "Overall survival in months from the index date",
        "os_event": "1 = death observed, 0 = censored",
    },
    "gold.treatment_rankings": {
        "patient_key": _PK,
        "treatment": "Candidate regimen: " + _TREATMENT,
        "rank": ("Rank of the option for the patient, 1 = best (by predicted_rmst); null when "
                 "the option is not ranked (rank_status)"),
        "rank_status": ("ranked, or why not: insufficient comparable patients | too few "
                        "treated patients in training (an option that is not ranked never "
                        "ranks first)"),
        "predicted_rmst": ("Predicted restricted mean survival time in months up to the "
                           "horizon (default 24 months) under this treatment"),
        "rmst_lower": "Lower bound of the uncertainty interval of predicted_rmst (months)",
        "rmst_upper": "Upper bound of the uncertainty interval of predicted_rmst (months)",
        "surv_12": "Predicted probability of being alive 12 months after the index date",
        "surv_12_lower": "Lower bound of the uncertainty interval of surv_12",
        "surv_12_upper": "Upper bound of the uncertainty interval of surv_12",
        "surv_24": "Predicted probability of being alive 24 months after the index date",
        "surv_24_lower": "Lower bound of the uncertainty interval of surv_24",
        "surv_24_upper": "Upper bound of the uncertainty interval of surv_24",
        "benefit_vs_soc": ("predicted_rmst minus that of the standard of care for the "
                           "patient's cancer type (months); null when either is not ranked"),
        "benefit_lower": "Lower bound of the 95% interval of benefit_vs_soc (paired replicates)",
        "benefit_upper": "Upper bound of the 95% interval of benefit_vs_soc (paired replicates)",
        "prob_rank1": "Share of the model's replicates under which this option would be rank 1",
        "n_refits": "Replicates (bootstrap refits or coefficient draws) behind the intervals",
        "evidence_level": "Best knowledge-base evidence level for a matched biomarker, or null",
        "evidence_citation": "Citation of that evidence",
        "evidence_ids": "Knowledge-base evidence ids behind it (CIViC EID/AID, curated id)",
        "contraindications": "Reasons against this option (comorbidities, note findings)",
        "overlap_warning": ("True when few similar patients received this treatment (the "
                            "option is then not ranked)"),
        "model_name": "Registered model that scored the row",
        "model_version": "Version of the registered model",
        "mlflow_run_id": "MLflow run of the model (params, metrics, input table versions)",
        "scored_at": "When the row was scored (UTC)",
        "board_date": "Tumor-board date the ranking was prepared for",
    },
    "gold.drift": {
        "feature": "Feature compared",
        "psi": "Population stability index, training vs scored cohort",
        "ks_statistic": "Two-sample Kolmogorov-Smirnov statistic",
    },
    "ops.job_runs": {
        "run_id": "Unique id of this job run",
        "parent_run_id": "Id of the orchestrating run (oncorank run, or the Databricks job run)",
        "job": "Stage name, as in pipelines/stages.py",
        "started_at": "Start time (UTC)",
        "ended_at": "End time (UTC)",
        "status": "succeeded | failed",
        "rows_in": "Rows the job took in from its inputs",
        "rows_written": "Rows written to the job's primary output table",
        "rows_quarantined": "Rows moved to a quarantine table, with a reason",
        "tables_read": "Delta version of each table read (table -> version)",
        "tables_written": "Delta version of each table after the job wrote it",
        "git_sha": "Code version (git commit) of the run",
        "config_hash": "Hash of the settings that change results (no secrets)",
        "environment": "local | dev | prod",
        "message": "Error message when status is failed (never patient data)",
    },
    "ops.data_quality": {
        "run_id": "Job run the validation belongs to (ops.job_runs.run_id)",
        "table": "Table validated, as schema.table",
        "expectation": "Great Expectations expectation and its arguments",
        "success": "True when the expectation held",
        "observed_value": "Observed value reported by the expectation",
        "unexpected_count": "Number of rows that failed the expectation",
    },
}

# Families of columns, described by their prefix.
COLUMN_PREFIX_COMMENTS: dict[str, dict[str, str]] = {
    "silver.comorbidities": {
        "cci_": "Charlson component flag (Quan ICD-10 coding), 1 = present: ",
        "elix_": "Elixhauser component flag (Quan ICD-10 coding), 1 = present: ",
        "ci_": "Contraindication flag used by the ranking, 1 = present: ",
    },
    "gold.patient_features": {
        "cci_": "Charlson component flag, 1 = present: ",
        "elix_": "Elixhauser component flag, 1 = present: ",
        "ci_": "Contraindication flag, 1 = present: ",
    },
}

QUARANTINE_TABLE_COMMENT = (
    "Rows rejected on the way into {target}: the row as received, the rule it broke and why. "
    "`oncorank quarantine replay {target}` re-runs them.")
QUARANTINE_COLUMN_COMMENTS: dict[str, str] = {
    "quarantine_id": "Stable id of the rejected row (hash of table, source, record and rule)",
    "target_table": "Table the row was meant for, as schema.table",
    "source": "Input file or table the row came from",
    "record_index": "Position of the row in its source file, when known",
    "record": "The row as received, as JSON",
    "rule": "Expectation or parse rule that rejected the row",
    "reason": "Why the row was rejected, in words",
    "run_id": "Job run that rejected it (ops.job_runs.run_id)",
    "quarantined_at": "When it was rejected (UTC)",
}


def _key(table) -> str:
    return table if isinstance(table, str) else table.key


def table_comment(table) -> str | None:
    """The comment of ``table`` (a ``TableRef`` or ``"schema.table"``), or ``None``."""
    key = _key(table)
    schema, _, name = key.partition(".")
    if name.startswith("quarantine_"):
        return QUARANTINE_TABLE_COMMENT.format(target=f"{schema}.{name[len('quarantine_'):]}")
    return TABLE_COMMENTS.get(key)


def column_comments(table, columns: Iterable[str] | None = None) -> dict[str, str]:
    """Column comments of ``table``; with ``columns``, also the prefix families among them."""
    key = _key(table)
    if key.partition(".")[2].startswith("quarantine_"):
        out = dict(QUARANTINE_COLUMN_COMMENTS)
    else:
        out = dict(COLUMN_COMMENTS.get(key, {}))
    for column in () if columns is None else columns:
        if column in out:
            continue
        for prefix, text in COLUMN_PREFIX_COMMENTS.get(key, {}).items():
            if column.startswith(prefix):
                out[column] = text + column[len(prefix):].replace("_", " ")
                break
    return out


def comments_for(table, columns: Iterable[str] | None = None) -> dict:
    """Keyword arguments for ``JobRun.write`` / ``write_table``: comments and table comment.

    >>> sorted(comments_for("gold.treatment_rankings"))
    ['comments', 'table_comment']
    """
    return {"comments": column_comments(table, columns), "table_comment": table_comment(table)}

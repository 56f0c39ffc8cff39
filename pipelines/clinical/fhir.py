"""FHIR R4 input: NDJSON bulk-export files and Bundle / single-resource JSON files.

Why Spark JSON functions and not ``fhir.resources`` models: bulk NDJSON exports run to millions
of resources, and a pydantic model per resource in a Python worker is orders of magnitude slower
than Spark's JSON reader. We therefore (1) land every resource as received in
``bronze.fhir_resources`` (raw JSON text, resource type and id via ``get_json_object``), and
(2) read the few elements we need with ``from_json`` and explicit, partial schemas. Elements
outside those schemas (extensions, narrative, meta, contained...) are never touched, so unknown
or vendor-specific content cannot break parsing; an element of the wrong JSON type comes back
null and the resource is quarantined by the rule that needs it (e.g. a Condition whose
``subject`` is not a Reference has no subject). A Bundle's entries are split in Spark too:
``from_json`` with ``resource`` typed as STRING returns each entry's resource as JSON text.

References resolve by ``urn:uuid:`` (the entry's ``fullUrl``) or ``Patient/<id>`` (relative,
absolute or versioned ``.../Patient/<id>/_history/<v>``).
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.clinical.codes import fhir_codes
from pipelines.clinical.columns import code_system_label, smoking_label, stage_group, with_rules
from pipelines.clinical.dates import invalid_date, is_blank, parse_date
from pipelines.lakehouse.errors import InputNotFoundError

BRONZE_COLUMNS = ["record_id", "source_file", "record_index", "source_format", "resource_type",
                  "resource_id", "full_url", "resource"]

# ---------------------------------------------------------------------------- partial schemas
_CODING = "ARRAY<STRUCT<system: STRING, code: STRING, display: STRING>>"
_CONCEPT = f"STRUCT<coding: {_CODING}, text: STRING>"
_REF = "STRUCT<reference: STRING, display: STRING>"
_PERIOD = "STRUCT<start: STRING, end: STRING>"

PATIENT_SCHEMA = (
    "id STRING, gender STRING, birthDate STRING, deceasedBoolean BOOLEAN, "
    "deceasedDateTime STRING, "
    f"identifier ARRAY<STRUCT<system: STRING, value: STRING, type: {_CONCEPT}>>, "
    "name ARRAY<STRUCT<use: STRING, text: STRING, family: STRING, given: ARRAY<STRING>>>, "
    "address ARRAY<STRUCT<use: STRING, postalCode: STRING, country: STRING>>"
)
CONDITION_SCHEMA = (
    f"id STRING, subject {_REF}, code {_CONCEPT}, onsetDateTime STRING, onsetPeriod {_PERIOD}, "
    f"recordedDate STRING, abatementDateTime STRING, abatementPeriod {_PERIOD}, "
    f"clinicalStatus {_CONCEPT}, verificationStatus {_CONCEPT}, "
    f"stage ARRAY<STRUCT<summary: {_CONCEPT}>>"
)
MEDICATION_USE_SCHEMA = (
    f"id STRING, status STRING, subject {_REF}, medicationCodeableConcept {_CONCEPT}, "
    f"medicationReference {_REF}, authoredOn STRING, effectiveDateTime STRING, "
    f"effectivePeriod {_PERIOD}, "
    f"dosageInstruction ARRAY<STRUCT<timing: STRUCT<repeat: STRUCT<boundsPeriod: {_PERIOD}>>>>, "
    f"dispenseRequest STRUCT<validityPeriod: {_PERIOD}>"
)
MEDICATION_SCHEMA = f"id STRING, code {_CONCEPT}"
OBSERVATION_SCHEMA = (
    f"id STRING, status STRING, subject {_REF}, code {_CONCEPT}, effectiveDateTime STRING, "
    f"effectivePeriod {_PERIOD}, issued STRING, valueInteger BIGINT, "
    f"valueQuantity STRUCT<value: DOUBLE, comparator: STRING, unit: STRING>, "
    f"valueString STRING, valueCodeableConcept {_CONCEPT}, dataAbsentReason {_CONCEPT}"
)
# Observation.status of a result not yet reported (FHIR R4 ObservationStatus).
PENDING_OBSERVATION_STATUSES = ("registered", "preliminary")
MEDICATION_TYPES = ("MedicationRequest", "MedicationAdministration")
# Never administered: excluded from lines of therapy (kept in silver.medication_exposures).
NOT_TAKEN_STATUSES = ("entered-in-error", "cancelled", "draft", "not-done")
EXCLUDED_OBSERVATION_STATUSES = ("entered-in-error", "cancelled")
# Resources whose dates are plans, not care that happened: not evidence of follow-up.
NOT_ACTIVITY_TYPES = ("Patient", "Organization", "Practitioner", "PractitionerRole", "Location",
                      "CarePlan", "Goal", "Medication", "ServiceRequest", "Appointment")
ACTIVITY_DATE_PATHS = (
    "$.effectiveDateTime", "$.effectivePeriod.end", "$.effectivePeriod.start", "$.issued",
    "$.authoredOn", "$.onsetDateTime", "$.recordedDate", "$.abatementDateTime",
    "$.performedDateTime", "$.performedPeriod.end", "$.performedPeriod.start", "$.period.end",
    "$.period.start", "$.occurrenceDateTime", "$.billablePeriod.end", "$.created", "$.date",
)


# ============================================================================ raw files -> rows
def list_fhir_files(folder: str) -> tuple[list[Path], list[Path]]:
    """NDJSON files (``*.ndjson``, ``*.ndjson.gz``) and JSON files under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputNotFoundError(
            f"The FHIR input folder {root} does not exist; set [inputs] fhir to a folder of "
            "*.ndjson bulk-export files and/or Bundle *.json files, or leave it empty.")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    ndjson = [p for p in files if p.name.endswith((".ndjson", ".ndjson.gz"))]
    bundles = [p for p in files if p.name.endswith(".json")]
    return ndjson, bundles


def read_fhir_files(spark: SparkSession, folder: str) -> DataFrame:
    """One row per received record: an NDJSON line, a Bundle entry, or a single-resource file.

    Columns: ``source_file`` (path relative to ``folder``), ``record_index`` (1-based line or
    entry number), ``source_format`` (ndjson | bundle | resource), ``full_url``, ``resource``
    (JSON text), ``problem`` (why the record cannot be a resource, else null).
    """
    ndjson, bundles = list_fhir_files(folder)
    root = Path(folder).resolve()
    parts = []
    for path in ndjson:
        rel = str(path.resolve().relative_to(root))
        # zipWithIndex keeps each line's number: the quarantine can point at file:line.
        lines = spark.sparkContext.textFile(str(path)).zipWithIndex().map(
            lambda t: (t[0], t[1] + 1))
        df = spark.createDataFrame(lines, "resource string, record_index long")
        parts.append(df.where(F.trim("resource") != "").select(
            F.lit(rel).alias("source_file"), "record_index", F.lit("ndjson").alias("source_format"),
            F.lit(None).cast("string").alias("full_url"), F.trim("resource").alias("resource"),
        ))
    if bundles:
        parts.append(_read_bundles(spark, [str(p) for p in bundles], str(root)))
    if not parts:
        return spark.createDataFrame(
            [], "source_file string, record_index long, source_format string, full_url string, "
                "resource string, problem string")
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p, allowMissingColumns=True)
    if "problem" not in out.columns:
        out = out.withColumn("problem", F.lit(None).cast("string"))
    return out.withColumn("problem", F.coalesce("problem", _resource_problem(F.col("resource"))))


def _read_bundles(spark: SparkSession, paths: list[str], root: str) -> DataFrame:
    text = spark.read.text(paths, wholetext=True).select(
        F.col("value").alias("text"), _relative_path(F.col("_metadata.file_path"), root)
        .alias("source_file"))
    parsed = text.select(
        "source_file", "text",
        F.from_json("text", "resourceType STRING, entry ARRAY<STRUCT<fullUrl: STRING, "
                            "resource: STRING>>").alias("j"),
        F.get_json_object("text", "$.entry").isNotNull().alias("has_entry"),
    )
    is_bundle = F.col("j.resourceType") == "Bundle"
    entries = parsed.where(is_bundle & F.col("j.entry").isNotNull()).select(
        "source_file", F.posexplode("j.entry").alias("pos", "e")).select(
        "source_file", (F.col("pos") + 1).cast("long").alias("record_index"),
        F.lit("bundle").alias("source_format"), F.col("e.fullUrl").alias("full_url"),
        F.col("e.resource").alias("resource"),
        F.when(F.col("e.resource").isNull(), F.lit("bundle entry has no resource"))
        .alias("problem"))
    malformed = parsed.where(is_bundle & F.col("j.entry").isNull() & F.col("has_entry")).select(
        "source_file", F.lit(0).cast("long").alias("record_index"),
        F.lit("bundle").alias("source_format"), F.lit(None).cast("string").alias("full_url"),
        F.substring("text", 1, 20000).alias("resource"),
        F.lit("Bundle.entry is not an array of entries").alias("problem"))
    single = parsed.where(~is_bundle | F.col("j.resourceType").isNull()).select(
        "source_file", F.lit(1).cast("long").alias("record_index"),
        F.lit("resource").alias("source_format"), F.lit(None).cast("string").alias("full_url"),
        F.substring("text", 1, 20000).alias("resource"), F.lit(None).cast("string")
        .alias("problem"))
    return entries.unionByName(malformed).unionByName(single)


def _relative_path(file_path: Column, root: str) -> Column:
    """The path Spark reports (a URL-encoded ``file:`` URI) relative to the input folder."""
    decoded = F.regexp_replace(F.url_decode(file_path), r"^file:/*", "/")
    prefix = root.rstrip("/") + "/"
    return F.when(decoded.startswith(prefix),
                  F.substring(decoded, len(prefix) + 1, 1 << 20)).otherwise(decoded)


def _resource_problem(resource: Column) -> Column:
    is_object = F.from_json(resource, "MAP<STRING,STRING>").isNotNull()
    rtype = F.get_json_object(resource, "$.resourceType")
    return (F.when(~is_object, F.lit("not a JSON object (invalid or truncated JSON)"))
            .when(is_blank(rtype), F.lit("JSON object without resourceType")))


def with_bronze_columns(records: DataFrame) -> DataFrame:
    """Add ``record_id``, ``resource_type`` and ``resource_id`` to :func:`read_fhir_files` rows."""
    return records.select(
        F.substring(F.sha2(F.concat_ws("#", "source_file", F.col("record_index").cast("string")),
                           256), 1, 20).alias("record_id"),
        "source_file", "record_index", "source_format",
        F.get_json_object("resource", "$.resourceType").alias("resource_type"),
        F.get_json_object("resource", "$.id").alias("resource_id"),
        "full_url", "resource", "problem",
    )


# ============================================================================ bronze -> parsed
def normalise_reference(ref: Column, resource_type: str) -> Column:
    """``Patient/<id>`` for relative/absolute/versioned references, else the reference as is."""
    typed = F.regexp_extract(ref, rf"(?:^|/)({resource_type}/[^/]+)(?:/_history/[^/]+)?$", 1)
    return F.when(typed != "", typed).otherwise(F.trim(ref))


def reference_map(bronze: DataFrame, resource_type: str) -> DataFrame:
    """``ref_key`` -> ``target_id`` for every resource of a type: its fullUrl and Type/id."""
    rows = bronze.where(F.col("resource_type") == resource_type)
    by_url = rows.where(F.col("full_url").isNotNull()).select(
        F.col("full_url").alias("ref_key"), F.col("resource_id").alias("target_id"))
    by_id = rows.where(F.col("resource_id").isNotNull()).select(
        F.concat(F.lit(f"{resource_type}/"), "resource_id").alias("ref_key"),
        F.col("resource_id").alias("target_id"))
    return by_url.unionByName(by_id).dropDuplicates(["ref_key"])


def resolve_subject(df: DataFrame, ref_col: str, patients: DataFrame) -> DataFrame:
    """Add ``pid`` (the source Patient id) by resolving ``ref_col`` against ``patients``."""
    refs = patients.select(F.col("ref_key").alias("_ref"), F.col("target_id").alias("pid"))
    keyed = df.withColumn("_ref", normalise_reference(F.col(ref_col), "Patient"))
    return keyed.join(refs, "_ref", "left").drop("_ref")


def _of_type(bronze: DataFrame, *types: str) -> DataFrame:
    return bronze.where(F.col("resource_type").isin(*types))


def _pointer_cols() -> list[Column]:
    """Where a record came from, without the file name (Synthea names files after patients)."""
    return [F.col("record_id"), F.col("resource_type"), F.col("resource_id"),
            F.lit("bronze.fhir_resources").alias("_source"),
            F.col("record_index").alias("_record_index")]


def parse_patients(bronze: DataFrame) -> DataFrame:
    """Patient resources with the checks of silver.patients; ``_rule`` null when accepted.

    Columns: pid, name, mrn, birth_date, birth_raw, sex, deceased, death_date, postal_code
    (the home address's, else the first one's), record_id,
    source_file, record_index, resource (kept for the restricted quarantine), _rule, _reason.
    """
    mrn_type = fhir_codes()["mrn_identifier_type"]
    p = _of_type(bronze, "Patient").select(
        "*", F.from_json("resource", PATIENT_SCHEMA).alias("p"))
    official = F.filter("p.name", lambda n: n["use"] == "official")
    name = F.coalesce(official.getItem(0), F.col("p.name").getItem(0))
    mrn = F.filter("p.identifier", lambda i: F.exists(
        F.coalesce(i["type"]["coding"], F.array()), lambda c: c["code"] == mrn_type))
    out = p.select(
        "record_id", "source_file", "record_index", "resource_type", "resource_id", "resource",
        F.col("p.id").alias("pid"),
        F.coalesce(name["text"], F.concat_ws(" ", F.array_join(name["given"], " "),
                                             name["family"])).alias("name"),
        mrn.getItem(0)["value"].alias("mrn"),
        F.col("p.birthDate").alias("birth_raw"),
        F.lower(F.col("p.gender")).alias("sex"),
        (F.coalesce(F.col("p.deceasedBoolean"), F.lit(False))
         | F.col("p.deceasedDateTime").isNotNull()).alias("deceased"),
        F.col("p.deceasedDateTime").alias("death_raw"),
        F.coalesce(F.filter("p.address", lambda a: a["use"] == "home").getItem(0),
                   F.col("p.address").getItem(0))["postalCode"].alias("postal_code"),
    )
    out = out.select("*", parse_date(F.col("birth_raw")).alias("birth_date"),
                     parse_date(F.col("death_raw")).alias("death_date"))
    return with_rules(
        out,
        (is_blank(F.col("pid")), "missing_id", "Patient has no id"),
        (invalid_date(F.col("birth_raw"), F.col("birth_date")), "invalid_date", "Patient.birthDate is not a date"),
        (invalid_date(F.col("death_raw"), F.col("death_date")), "invalid_date",
         "Patient.deceasedDateTime is not a date"),
        (F.col("death_date") < F.col("birth_date"), "death_before_birth",
         "Patient.deceasedDateTime is before Patient.birthDate"),
    )


def parse_conditions(bronze: DataFrame, patients: DataFrame) -> DataFrame:
    """One row per Condition coding; ``_rule`` null when accepted.

    Columns: pid, code, code_system, display, onset_date, abatement_date, ongoing,
    verification_status, stage_text, coding_index, record pointers, _rule, _reason.
    """
    c = _of_type(bronze, "Condition").select(
        "*", F.from_json("resource", CONDITION_SCHEMA).alias("c"))
    c = resolve_subject(c, "c.subject.reference", patients)
    onset_raw = F.coalesce(F.col("c.onsetDateTime"), F.col("c.onsetPeriod.start"),
                           F.col("c.recordedDate"))
    abate_raw = F.coalesce(F.col("c.abatementDateTime"), F.col("c.abatementPeriod.end"))
    clinical = F.lower(F.col("c.clinicalStatus.coding").getItem(0)["code"])
    codings = F.filter(F.coalesce(F.col("c.code.coding"), F.array()),
                       lambda x: ~is_blank(x["code"]))
    stage_text = F.concat_ws(" ", F.flatten(F.transform(
        F.coalesce(F.col("c.stage"), F.array()),
        lambda s: F.concat(F.array(s["summary"]["text"]),
                           F.transform(F.coalesce(s["summary"]["coding"], F.array()),
                                       lambda x: F.coalesce(x["display"], x["code"]))))))
    base = c.select(
        *_pointer_cols(), "pid", F.col("c.subject.reference").isNull().alias("_no_subject"),
        onset_raw.alias("onset_raw"), abate_raw.alias("abatement_raw"),
        (abate_raw.isNull() & (clinical.isNull() | clinical.isin("active", "recurrence",
                                                                  "relapse"))).alias("ongoing"),
        F.lower(F.col("c.verificationStatus.coding").getItem(0)["code"])
        .alias("verification_status"),
        F.when(stage_text != "", stage_text).alias("stage_text"),
        codings.alias("codings"),
    )
    base = base.select("*", parse_date(F.col("onset_raw")).alias("onset_date"),
                       parse_date(F.col("abatement_raw")).alias("abatement_date"))
    base = with_rules(
        base,
        (F.col("_no_subject"), "unknown_subject", "Condition has no subject reference"),
        (F.col("pid").isNull(), "unknown_subject",
         "Condition.subject does not resolve to an ingested Patient"),
        (F.size("codings") == 0, "missing_code", "Condition.code has no coding"),
        (invalid_date(F.col("onset_raw"), F.col("onset_date")), "invalid_date", "Condition onset is not a date"),
        (invalid_date(F.col("abatement_raw"), F.col("abatement_date")), "invalid_date",
         "Condition abatement is not a date"),
    )
    good = base.where(F.col("_rule").isNull()).select(
        "*", F.posexplode("codings").alias("coding_index", "coding")).select(
        *[c for c in base.columns if c != "codings"], "coding_index",
        F.trim(F.col("coding.code")).alias("code"),
        code_system_label(F.col("coding.system")).alias("code_system"),
        F.col("coding.display").alias("display"))
    bad = base.where(F.col("_rule").isNotNull()).drop("codings").select(
        "*", F.lit(None).cast("int").alias("coding_index"),
        F.lit(None).cast("string").alias("code"), F.lit(None).cast("string").alias("code_system"),
        F.lit(None).cast("string").alias("display"))
    return good.unionByName(bad).drop("_no_subject")


def parse_medications(bronze: DataFrame, patients: DataFrame, drug_map: DataFrame,
                      rxcui_map: DataFrame, alias_pattern: str) -> DataFrame:
    """MedicationRequest / MedicationAdministration as drug exposures; ``_rule`` null if accepted.

    ``drug_map`` (alias, drug), ``rxcui_map`` (rxcui, drug) and ``alias_pattern`` (a regex
    alternation of aliases) recognise antineoplastic ingredients by RxNorm ingredient code or by
    name in the medication text. A record may name several ingredients: one row each.
    """
    meds = reference_map(bronze, "Medication").join(
        _of_type(bronze, "Medication").select(
            F.col("resource_id").alias("target_id"),
            F.from_json("resource", MEDICATION_SCHEMA)["code"].alias("med_code")),
        "target_id", "left").select(F.col("ref_key").alias("_med_ref"), "med_code")
    m = _of_type(bronze, *MEDICATION_TYPES).select(
        "*", F.from_json("resource", MEDICATION_USE_SCHEMA).alias("m"))
    m = resolve_subject(m, "m.subject.reference", patients)
    m = m.withColumn("_med_ref", normalise_reference(F.col("m.medicationReference.reference"),
                                                     "Medication"))
    m = m.join(meds, "_med_ref", "left")
    concept = F.coalesce(F.col("m.medicationCodeableConcept"), F.col("med_code"))
    codings = F.coalesce(concept["coding"], F.array())
    rx = F.filter(codings, lambda x: F.lower(x["system"]).contains("rxnorm"))
    display = F.coalesce(rx.getItem(0)["display"], concept["text"], codings.getItem(0)["display"],
                         F.col("m.medicationReference.display"))
    bounds = F.col("m.dosageInstruction").getItem(0)["timing"]["repeat"]["boundsPeriod"]
    validity = F.col("m.dispenseRequest.validityPeriod")
    start_raw = F.coalesce(bounds["start"], validity["start"], F.col("m.authoredOn"),
                           F.col("m.effectiveDateTime"), F.col("m.effectivePeriod.start"))
    end_raw = F.coalesce(bounds["end"], validity["end"], F.col("m.effectivePeriod.end"))
    base = m.select(
        *_pointer_cols(), "pid", F.col("m.subject.reference").isNull().alias("_no_subject"),
        F.lower(F.col("m.status")).alias("status"),
        rx.getItem(0)["code"].alias("rxcui"), display.alias("display"),
        start_raw.alias("start_raw"), end_raw.alias("end_raw"), F.lit("fhir").alias("source"),
    )
    base = base.select("*", parse_date(F.col("start_raw")).alias("start_date"),
                       parse_date(F.col("end_raw")).alias("end_date"))
    base = with_rules(
        base,
        (F.col("_no_subject"), "unknown_subject", "medication record has no subject"),
        (F.col("pid").isNull(), "unknown_subject",
         "medication subject does not resolve to an ingested Patient"),
        (F.col("rxcui").isNull() & is_blank(F.col("display")), "missing_medication",
         "no medication code or text"),
        (invalid_date(F.col("start_raw"), F.col("start_date")), "invalid_date", "medication start is not a date"),
        (invalid_date(F.col("end_raw"), F.col("end_date")), "invalid_date", "medication end is not a date"),
        (F.col("start_date").isNull(), "missing_start_date",
         "no authoredOn, dosage bounds, validity or effective date"),
        (F.col("end_date") < F.col("start_date"), "end_before_start",
         "medication end date is before its start date"),
    ).drop("_no_subject")
    return with_drug_names(base, drug_map, rxcui_map, alias_pattern, antineoplastic_only=True)


def with_drug_names(meds: DataFrame, drug_map: DataFrame, rxcui_map: DataFrame,
                    alias_pattern: str, antineoplastic_only: bool) -> DataFrame:
    """Add ``drug`` (canonical ingredient) and ``antineoplastic``; one row per ingredient.

    Matching order: RxNorm ingredient code (catalog RXCUIs), then whole-word names/aliases in
    the medication text. Unrecognised medications keep ``drug`` null (FHIR medication lists
    hold every drug a patient takes) unless ``antineoplastic_only`` is False, where the text
    itself, lower-cased, is the drug (a CSV treatments file lists cancer treatments only).
    """
    by_code = meds.join(rxcui_map, "rxcui", "left").withColumnRenamed("drug", "_code_drug")
    found = F.regexp_extract_all(F.lower(F.col("display")), F.lit(alias_pattern), F.lit(1))
    with_names = by_code.withColumn("_names", F.when(
        F.col("_code_drug").isNotNull(), F.array(F.col("_code_drug"))).otherwise(
        F.array_distinct(F.coalesce(found, F.array()))))
    exploded = with_names.select(
        "*", F.explode_outer(F.when(F.size("_names") > 0, F.col("_names"))).alias("_alias"))
    named = exploded.join(drug_map.withColumnRenamed("alias", "_alias"), "_alias", "left")
    fallback = F.lit(None).cast("string") if antineoplastic_only else F.lower(F.trim("display"))
    return named.select(
        *[c for c in meds.columns],
        F.coalesce(F.col("drug"), fallback).alias("drug"),
        F.col("drug").isNotNull().alias("antineoplastic") if antineoplastic_only
        else F.lit(True).alias("antineoplastic"),
    )


def parse_observations(bronze: DataFrame, patients: DataFrame) -> DataFrame:
    """ECOG, stage group, progression and smoking Observations; ``_rule`` null when accepted.

    Columns: pid, kind (ecog|stage|progression|smoking), obs_date, ecog, stage, smoking,
    progressed, record pointers, _rule, _reason.
    """
    codes = fhir_codes()

    def has_code(kind: str) -> Column:
        wanted = [f"{c['system']}|{c['code']}" for c in codes[kind]["codes"]]
        return F.exists(F.coalesce(F.col("o.code.coding"), F.array()),
                        lambda x: F.concat_ws("|", x["system"], x["code"]).isin(*wanted))

    o = _of_type(bronze, "Observation").select(
        "*", F.from_json("resource", OBSERVATION_SCHEMA).alias("o"))
    kind = (F.when(has_code("ecog"), "ecog").when(has_code("stage"), "stage")
            .when(has_code("progression"), "progression").when(has_code("smoking"), "smoking"))
    o = o.withColumn("kind", kind).where(F.col("kind").isNotNull()).where(
        ~F.coalesce(F.lower("o.status"), F.lit("")).isin(*EXCLUDED_OBSERVATION_STATUSES))
    o = resolve_subject(o, "o.subject.reference", patients)
    value_codings = F.coalesce(F.col("o.valueCodeableConcept.coding"), F.array())
    answers = codes["ecog"]["answers"]
    answer = None
    def is_answer(la: str):
        return lambda x: x["code"] == la

    for la, score in answers.items():
        hit = F.exists(value_codings, is_answer(la))
        answer = F.when(hit, F.lit(score)) if answer is None else answer.when(hit, F.lit(score))
    ecog_raw = F.coalesce(F.col("o.valueInteger"), F.col("o.valueQuantity.value").cast("bigint"),
                          F.regexp_extract("o.valueString", r"^\s*([0-9]+)\s*$", 1)
                          .cast("bigint"), answer.cast("bigint"))
    value_text = F.concat_ws(" ", F.col("o.valueCodeableConcept.text"), F.col("o.valueString"),
                             F.array_join(F.transform(value_codings, lambda x: F.coalesce(
                                 x["display"], x["code"])), " "))
    worsened = [f"{c['system']}|{c['code']}" for c in codes["progression"]["worsened"]]
    date_raw = F.coalesce(F.col("o.effectiveDateTime"), F.col("o.effectivePeriod.start"),
                          F.col("o.issued"))
    # Two selects: the value expressions are computed once, then read as columns.
    values = o.select(
        *_pointer_cols(), "pid", "kind", F.col("o.subject.reference").isNull().alias("_nosub"),
        date_raw.alias("date_raw"), ecog_raw.alias("ecog_raw"), value_text.alias("value_text"),
        ((F.col("kind") == "progression") & F.exists(
            value_codings, lambda x: F.concat_ws("|", x["system"], x["code"]).isin(*worsened)))
        .alias("progressed"),
    )
    base = values.select(
        "*", parse_date(F.col("date_raw")).alias("obs_date"),
        F.when(F.col("kind") == "ecog", F.col("ecog_raw").cast("int")).alias("ecog"),
        F.when(F.col("kind") == "stage", stage_group(F.col("value_text"))).alias("stage"),
        F.when(F.col("kind") == "smoking", smoking_label(F.col("value_text"))).alias("smoking"),
    ).drop("value_text")
    return with_rules(
        base,
        (F.col("_nosub") | F.col("pid").isNull(), "unknown_subject",
         "Observation.subject does not resolve to an ingested Patient"),
        (invalid_date(F.col("date_raw"), F.col("obs_date")) | F.col("obs_date").isNull(), "invalid_date",
         "Observation has no valid effective date"),
        ((F.col("kind") == "ecog") & (F.col("ecog_raw").isNull()
                                      | ~F.col("ecog_raw").between(0, 4)), "invalid_value",
         "ECOG observation value is not an integer 0-4"),
    ).drop("_nosub", "ecog_raw")


def parse_biomarker_observations(bronze: DataFrame, patients: DataFrame) -> DataFrame:
    """Biomarker results reported as Observations (ER, PR, HER2, PD-L1, MSI, TMB; codes in
    ``fhir_codes.yaml`` ``biomarkers``) as findings like the notes stage's: ``concept``,
    ``context`` (affirmed | negated | equivocal | indeterminate | pending), ``value`` and
    ``comparator`` (FHIR ``valueQuantity.comparator``), ``obs_date``; ``_rule`` null when
    accepted.

    The status comes from, in order: Observation.status registered/preliminary (pending), a
    ``dataAbsentReason`` without a value (indeterminate), a coded answer (SNOMED CT / LOINC
    positive, negative, equivocal, indeterminate), the answer's text, then a quantity under the
    concept's negative cut-off (negated; else affirmed).
    """
    spec = fhir_codes()["biomarkers"]
    by_code = {code: concept for concept, codes in spec["concepts"].items() for code in codes}
    loinc = F.filter(F.coalesce(F.col("o.code.coding"), F.array()),
                     lambda x: (x["system"] == "http://loinc.org")
                     & x["code"].isin(*by_code))
    code_map = F.create_map(*[F.lit(x) for kv in by_code.items() for x in kv])
    o = _of_type(bronze, "Observation").select(
        "*", F.from_json("resource", OBSERVATION_SCHEMA).alias("o"))
    o = o.withColumn("loinc", F.element_at(loinc, 1)["code"]).where(F.col("loinc").isNotNull())
    o = o.where(~F.coalesce(F.lower("o.status"), F.lit("")).isin(
        *EXCLUDED_OBSERVATION_STATUSES))
    o = resolve_subject(o, "o.subject.reference", patients)
    codings = F.coalesce(F.col("o.valueCodeableConcept.coding"), F.array())
    def coded(codes: list[str]):
        return lambda x: x["code"].isin(*codes)

    answer = None
    for status, codes in spec["answers"].items():
        hit = F.exists(codings, coded(codes))
        answer = (F.when(hit, F.lit(status)) if answer is None
                  else answer.when(hit, F.lit(status)))
    text = F.lower(F.concat_ws(" ", F.col("o.valueCodeableConcept.text"), F.col("o.valueString"),
                               F.array_join(F.transform(codings, lambda x: x["display"]), " ")))
    by_text = None
    for status, rx in spec["text"].items():
        hit = text.rlike(rx)
        by_text = F.when(hit, F.lit(status)) if by_text is None else by_text.when(
            hit, F.lit(status))
    concept = code_map[F.col("loinc")]
    qty = F.coalesce(F.col("o.valueQuantity.value"), F.col("o.valueInteger").cast("double"))
    cmp_ = F.col("o.valueQuantity.comparator")
    below = None
    for name, cut in spec["negative_below"].items():
        under = (F.when(cmp_ == "<", qty <= cut).when(cmp_ == "<=", qty < cut)
                 .when(cmp_.isin(">", ">="), F.lit(False)).otherwise(qty < cut))
        below = (F.when(concept == name, under) if below is None
                 else below.when(concept == name, under))
    by_qty = F.when(qty.isNotNull(), F.when(F.coalesce(below, F.lit(False)), "negated")
                    .otherwise("affirmed"))
    status = F.lower(F.coalesce(F.col("o.status"), F.lit("")))
    context = (F.when(status.isin(*PENDING_OBSERVATION_STATUSES), "pending")
               .when(F.col("o.dataAbsentReason").isNotNull() & qty.isNull(), "indeterminate")
               .otherwise(F.coalesce(answer, by_text, by_qty)))
    date_raw = F.coalesce(F.col("o.effectiveDateTime"), F.col("o.effectivePeriod.start"),
                          F.col("o.issued"))
    values = o.select(
        *_pointer_cols(), "pid", F.col("o.subject.reference").isNull().alias("_nosub"),
        F.col("resource_id").alias("observation_id"), "loinc", concept.alias("concept"),
        context.alias("context"),
        F.regexp_replace(qty.cast("string"), r"\.0$", "").alias("value"),  # 12.5, 1
        F.when(qty.isNotNull() & cmp_.isin("<", "<=", ">", ">="), cmp_).alias("comparator"),
        date_raw.alias("date_raw"))
    base = values.select("*", parse_date(F.col("date_raw")).alias("obs_date"))
    return with_rules(
        base,
        (F.col("_nosub") | F.col("pid").isNull(), "unknown_subject",
         "Observation.subject does not resolve to an ingested Patient"),
        (invalid_date(F.col("date_raw"), F.col("obs_date")) | F.col("obs_date").isNull(),
         "invalid_date", "Observation has no valid effective date"),
        (F.col("context").isNull(), "no_result",
         "biomarker Observation has no value, coded answer or status that states a result"),
    ).drop("_nosub")


def activity_dates(bronze: DataFrame, patients: DataFrame) -> DataFrame:
    """``pid``, ``last_activity_date``: the latest date of care recorded for each patient.

    Used as last follow-up for FHIR sources (the export has no explicit follow-up date).
    """
    rows = bronze.where(~F.col("resource_type").isin(*NOT_ACTIVITY_TYPES))
    subject = F.coalesce(F.get_json_object("resource", "$.subject.reference"),
                         F.get_json_object("resource", "$.patient.reference"),
                         F.get_json_object("resource", "$.beneficiary.reference"))
    # ISO dates compare as strings: take the greatest well-formed one, then parse it once.
    candidates = [F.get_json_object("resource", p) for p in ACTIVITY_DATE_PATHS]
    latest = F.greatest(*[F.when(c.rlike(r"^\d{4}(-\d{2}(-\d{2})?)?(T|$)"), F.substring(c, 1, 10))
                          for c in candidates])
    per_row = rows.select(subject.alias("ref"), latest.alias("raw")).select(
        "ref", parse_date(F.col("raw")).alias("d")).where(
        F.col("ref").isNotNull() & F.col("d").isNotNull())
    resolved = resolve_subject(per_row, "ref", patients)
    return resolved.where(F.col("pid").isNotNull()).groupBy("pid").agg(
        F.max("d").alias("last_activity_date"))

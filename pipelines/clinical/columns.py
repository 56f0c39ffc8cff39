"""Column functions shared by the FHIR and CSV paths (normalising codes, stages, ECOG, sex).

Each returns a :class:`~pyspark.sql.Column`; none reads or writes anything.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from pipelines.clinical.dates import is_blank

_SYSTEMS = {
    "ICD-10-CM": ("http://hl7.org/fhir/sid/icd-10-cm", "icd-10-cm", "icd10cm", "icd10-cm",
                  "icd-10cm", "icd_10_cm"),
    "ICD-10": ("http://hl7.org/fhir/sid/icd-10", "icd-10", "icd10", "icd_10",
               "http://terminology.hl7.org/codesystem/icd-10"),
    "SNOMED-CT": ("http://snomed.info/sct", "snomed", "snomed-ct", "snomedct", "snomed ct", "sct",
                  "snomed_ct"),
}

_ROMAN = r"(?:^|[^A-Z])(IV|III|II|I)(?:[ABC][0-9]?)?(?:$|[^A-Z])"
_ARABIC = r"^\s*(?:STAGE\s*)?([1-4])[ABC]?[0-9]?\s*$"
_UNKNOWN_STAGE = r"^\s*(UNKNOWN|UNK|NA|N/A|X|NONE|NOT STAGED|(STAGE\s*)?0(IS|A)?)\s*$"
_ECOG = r"^\s*(?:ECOG\s*)?([0-4])(?:\.0+)?\s*$"


def code_system_label(system: Column) -> Column:
    """``ICD-10-CM`` / ``ICD-10`` / ``SNOMED-CT`` for the usual spellings and FHIR URIs."""
    s = F.lower(F.trim(system))
    out = None
    for label, spellings in _SYSTEMS.items():
        cond = s.isin(*spellings)
        out = F.when(cond, F.lit(label)) if out is None else out.when(cond, F.lit(label))
    return out.otherwise(F.trim(system))


def stage_group(text: Column) -> Column:
    """Overall stage I-IV from free text or codes ("Stage IIIA", "3", "T2N1M0 IIB"), else null.

    Sub-stages collapse to the group (IIIA -> III); stage 0 / in situ and unknown are null.
    """
    s = F.upper(F.trim(text.cast("string")))
    roman = F.regexp_extract(s, _ROMAN, 1)
    arabic = F.regexp_extract(s, _ARABIC, 1)
    from_arabic = (F.when(arabic == "1", "I").when(arabic == "2", "II")
                   .when(arabic == "3", "III").when(arabic == "4", "IV"))
    return F.when(s.rlike(_UNKNOWN_STAGE), F.lit(None).cast("string")).otherwise(
        F.coalesce(F.when(roman != "", roman), from_arabic))


def invalid_stage(text: Column) -> Column:
    s = F.upper(F.trim(text.cast("string")))
    return ~is_blank(text) & ~s.rlike(_UNKNOWN_STAGE) & stage_group(text).isNull()


def ecog_value(text: Column) -> Column:
    """ECOG 0-4 from "1", "1.0" or "ECOG 1", else null."""
    digit = F.regexp_extract(F.upper(text.cast("string")), _ECOG, 1)
    return F.when(digit != "", digit.cast("int"))


def invalid_ecog(text: Column) -> Column:
    return ~is_blank(text) & ecog_value(text).isNull()


def sex_label(text: Column) -> Column:
    """FHIR administrative gender: male | female | other | unknown (null when absent)."""
    s = F.lower(F.trim(text))
    return (F.when(s.isin("male", "m"), "male").when(s.isin("female", "f"), "female")
            .when(s.isin("other", "o"), "other").when(s.isin("unknown", "u"), "unknown"))


def smoking_label(text: Column) -> Column:
    """never | former | current from a smoking-status text or display, else null."""
    s = F.lower(text)
    return (F.when(s.contains("never"), "never")
            .when(s.contains("former") | s.contains("ex-") | s.contains("quit"), "former")
            .when(s.contains("current") | s.contains("every day") | s.contains("some day")
                  | s.rlike(r"^\s*smoker\s*$"), "current"))


def blank_to_null(col: Column) -> Column:
    return F.when(~is_blank(col), F.trim(col))


def add_rule(df, failed: Column, name: str, why: str):
    """Reject, with ``name`` and ``why``, the rows that passed so far (``_rule`` null) and
    fail ``failed``; rows already rejected keep their first rule and reason.

    The decision is made once, into a helper column, because setting ``_rule`` first would
    change what a condition on ``_rule`` sees when ``_reason`` is set.
    """
    hit = F.col("_rule").isNull() & F.coalesce(failed, F.lit(False))
    return (df.withColumn("_hit", hit)
            .withColumn("_rule", F.when(F.col("_hit"), F.lit(name)).otherwise(F.col("_rule")))
            .withColumn("_reason", F.when(F.col("_hit"), F.lit(why))
                        .otherwise(F.col("_reason")))
            .drop("_hit"))


def with_rules(df, *rules: tuple[Column, str, str]):
    """Add ``_rule`` and ``_reason`` of the first failing check (null when all pass).

    Each rule is ``(failed, name, reason)``. The checks are evaluated in ONE CASE whose result is
    split afterwards, so each condition appears once in the plan.
    """
    check = None
    for failed, name, why in rules:
        value = F.lit(f"{name}\u241f{why}")
        check = F.when(failed, value) if check is None else check.when(failed, value)
    parts = F.split(F.col("_check"), "\u241f")
    return (df.withColumn("_check", check)
            .withColumn("_rule", parts.getItem(0)).withColumn("_reason", parts.getItem(1))
            .drop("_check"))

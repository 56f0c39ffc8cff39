"""Re-identification risk of the analyst tables: ``ops.privacy_risk``.

Pseudonyms and date shifts remove direct identifiers, but a patient can still be the only one
with a combination of ordinary facts (a 5-year age band, sex, ZIP3, cancer type, stage, year
of the index date) that an outsider may know. For growing sets of these quasi-identifiers,
``privacy_risk`` counts the equivalence classes (patients sharing every value) and how many
patients are alone in theirs (k = 1) or in a class under 5 (the usual k-anonymity floor). The
clinical stage writes it after each load; notebook 01 shows it.

Values are read as an analyst sees them: ages capped at 90, ZIP3 with the small areas as
000, and the index year of the shifted index date (the shift moves a date by at most 180
days, so a year can differ from the source year; the risk is the analyst's view).

>>> age_band_of(67), age_band_of(90), age_band_of(None)
('65-69', '90+', None)
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

K_FLOOR = 5
# Each set adds one quasi-identifier to the one before it.
QUASI_IDENTIFIERS = ("age_band", "sex", "zip3", "cancer_type", "stage", "index_year")


def age_band_of(age: float | None) -> str | None:
    """Python twin of :func:`age_band` (5-year bands; 90 means 90 or older)."""
    if age is None:
        return None
    if age >= 90:
        return "90+"
    low = int(age) // 5 * 5
    return f"{low}-{low + 4}"


def age_band(age: Column) -> Column:
    low = (F.floor(age / 5) * 5).cast("int")
    return (F.when(age.isNull(), F.lit(None).cast("string"))
            .when(age >= 90, F.lit("90+"))
            .otherwise(F.concat(low.cast("string"), F.lit("-"), (low + 4).cast("string"))))


def quasi_identifier_frame(patients: DataFrame) -> DataFrame:
    """One row per patient with the quasi-identifiers as an analyst reads them."""
    cols = set(patients.columns)

    def col(name: str) -> Column:
        return F.col(name).cast("string") if name in cols else F.lit(None).cast("string")

    age = F.col("age_at_diagnosis").cast("double") if "age_at_diagnosis" in cols else F.lit(
        None).cast("double")
    index_year = (F.year(F.col("index_date")).cast("string") if "index_date" in cols
                  else F.lit(None).cast("string"))
    return patients.select(age_band(age).alias("age_band"), col("sex").alias("sex"),
                           col("zip3").alias("zip3"), col("cancer_type").alias("cancer_type"),
                           col("stage").alias("stage"), index_year.alias("index_year"))


def privacy_risk(patients: DataFrame) -> list[dict]:
    """For each growing set of quasi-identifiers: classes, unique patients, patients under
    the k floor, smallest class (see the module docstring)."""
    qi = quasi_identifier_frame(patients).persist()
    n = qi.count()
    rows = []
    for i in range(1, len(QUASI_IDENTIFIERS) + 1):
        names = list(QUASI_IDENTIFIERS[:i])
        sizes = qi.groupBy(*names).count()
        agg = sizes.agg(
            F.count(F.lit(1)).alias("classes"),
            F.sum(F.when(F.col("count") == 1, 1).otherwise(0)).alias("unique_patients"),
            F.sum(F.when(F.col("count") < K_FLOOR, F.col("count")).otherwise(0))
            .alias("below_k_floor"),
            F.min("count").alias("min_class_size")).first()
        rows.append({"quasi_identifiers": " + ".join(names), "patients": n,
                     "classes": int(agg["classes"] or 0),
                     "unique_patients": int(agg["unique_patients"] or 0),
                     "share_unique": (agg["unique_patients"] or 0) / n if n else 0.0,
                     "below_k_floor": int(agg["below_k_floor"] or 0),
                     "min_class_size": int(agg["min_class_size"] or 0)})
    qi.unpersist()
    return rows


RISK_SCHEMA = ("quasi_identifiers string, patients long, classes long, unique_patients long, "
               "share_unique double, below_k_floor long, min_class_size long, "
               "measured_at timestamp")

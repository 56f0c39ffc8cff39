"""The README recipes: the lakehouse read without Spark, by `deltalake` and by DuckDB.

Tables are written by Spark through the pipeline's own writer (MERGE, then a MERGE that
updates and deletes rows), and every recipe must return what Spark returns.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.analytics.duck import connect, delta_tables
from pipelines.lakehouse import delta
from pipelines.lakehouse.comments import column_comments, comments_for

PATIENTS = pd.DataFrame({
    "patient_key": [f"{i:020x}" for i in range(1, 7)],
    "cancer_type": ["NSCLC", "NSCLC", "BRCA", "MEL", "NSCLC", "BRCA"],
    "stage": ["IV", "III", "II", "IV", "IV", "I"],
})
RANKINGS = pd.DataFrame({
    "patient_key": [k for k in PATIENTS["patient_key"] for _ in range(2)],
    "treatment": ["osimertinib", "platinum_pemetrexed", "pembrolizumab", "platinum_pemetrexed",
                  "letrozole_palbociclib", "ac_t", "nivolumab_ipilimumab", "dacarbazine",
                  "osimertinib", "pembrolizumab", "ac_t", "letrozole_palbociclib"],
    "rank": [1, 2] * 6,
    "predicted_rmst": [20.1, 15.2, 18.4, 16.0, 21.0, 19.5, 17.7, 9.8, 19.0, 18.2, 22.3, 21.9],
})


@pytest.fixture()
def lakehouse(spark, settings):
    for schema, name, frame, keys in (
        ("silver", "patients", PATIENTS, ["patient_key"]),
        ("gold", "treatment_rankings", RANKINGS, ["patient_key", "treatment"]),
        ("restricted", "patient_identity",
         pd.DataFrame({"patient_key": PATIENTS["patient_key"], "name": "x"}), ["patient_key"]),
    ):
        ref = settings.table(schema, name)
        delta.write_table(spark, spark.createDataFrame(frame), ref, keys=keys,
                          **comments_for(ref, frame.columns))
    # Version 1: patient 6 leaves the review list, patient 1's top option is re-scored.
    changed = RANKINGS[RANKINGS["patient_key"] != PATIENTS["patient_key"][5]].copy()
    changed.loc[0, "predicted_rmst"] = 25.0
    delta.write_table(spark, spark.createDataFrame(changed),
                      settings.table("gold", "treatment_rankings"),
                      keys=["patient_key", "treatment"], delete_missing=True)
    return settings


def _spark_top_options(spark, settings):
    rankings = delta.read_table(spark, settings.table("gold", "treatment_rankings"))
    patients = delta.read_table(spark, settings.table("silver", "patients"))
    rows = (rankings.filter("rank = 1").join(patients, "patient_key", "inner")
            .groupBy("cancer_type", "treatment").count().collect())
    return sorted((r["cancer_type"], r["treatment"], r["count"]) for r in rows)


def test_deltalake_recipe_reads_the_current_version_with_comments_and_history(spark,
                                                                              lakehouse):
    # --- recipe (README: "Reading the tables without Spark") ---------------------------
    from deltalake import DeltaTable

    path = f"{lakehouse.lakehouse}/gold/treatment_rankings"
    rankings = DeltaTable(path)
    top = rankings.to_pandas(columns=["patient_key", "treatment", "predicted_rmst"],
                             filters=[("rank", "=", 1)])
    comments = {f.name: f.metadata.get("comment") for f in rankings.schema().fields}
    first_load = DeltaTable(path, version=0).to_pandas()
    history = rankings.history()
    # -------------------------------------------------------------------------------------
    spark_top = delta.read_table(spark, lakehouse.table("gold", "treatment_rankings")).filter(
        "rank = 1").toPandas()
    assert sorted(top["patient_key"]) == sorted(spark_top["patient_key"])
    assert len(top) == 5 and top["predicted_rmst"].max() == 25.0
    assert rankings.version() == delta.current_version(
        spark, lakehouse.table("gold", "treatment_rankings")) == 1
    assert len(first_load) == len(RANKINGS)
    assert [h["version"] for h in history] == [1, 0]
    assert comments["predicted_rmst"] == column_comments("gold.treatment_rankings")[
        "predicted_rmst"]


def test_duckdb_recipe_joins_delta_tables_like_spark(spark, lakehouse):
    # --- recipe (README: "DuckDB") --------------------------------------------------------
    import duckdb
    from deltalake import DeltaTable

    lh = lakehouse.lakehouse
    rankings = DeltaTable(f"{lh}/gold/treatment_rankings").to_pyarrow_dataset()  # noqa: F841
    patients = DeltaTable(f"{lh}/silver/patients").to_pyarrow_dataset()  # noqa: F841
    result = duckdb.sql("""
        SELECT p.cancer_type, r.treatment, count(*) AS n
        FROM rankings r JOIN patients p USING (patient_key)
        WHERE r.rank = 1
        GROUP BY ALL ORDER BY ALL""").fetchall()
    # -------------------------------------------------------------------------------------
    assert sorted(result) == _spark_top_options(spark, lakehouse)


def test_duckdb_helper_attaches_analyst_tables_by_name(spark, lakehouse):
    con = connect(lakehouse.lakehouse)
    result = con.sql("""
        SELECT p.cancer_type, r.treatment, count(*) AS n
        FROM gold.treatment_rankings r JOIN silver.patients p USING (patient_key)
        WHERE r.rank = 1 GROUP BY ALL""").fetchall()
    assert sorted(result) == _spark_top_options(spark, lakehouse)
    names = {f"{s}.{t}" for s, t in con.sql(
        "SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE NOT internal AND schema_name <> 'main'").fetchall()}
    assert names == {"silver.patients", "gold.treatment_rankings"}  # no restricted schema
    assert "restricted.patient_identity" in delta_tables(lakehouse.lakehouse,
                                                         ("restricted",))

    # Time travel: the first load still had patient 6.
    old = connect(lakehouse.lakehouse, versions={"gold.treatment_rankings": 0})
    assert old.execute("SELECT count(*) FROM gold.treatment_rankings").fetchall() == [(12,)]
    with pytest.raises(KeyError):
        connect(lakehouse.lakehouse, versions={"gold.nope": 0})

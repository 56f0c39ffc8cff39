"""Runtime: settings and table names, session factory, idempotent writer, audit."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import job_run
from pipelines.lakehouse.errors import (
    ConfigError,
    DataQualityError,
    ReconciliationError,
    SchemaMismatchError,
)
from pipelines.lakehouse.privacy import (
    date_shift_days,
    date_shift_days_col,
    pseudonymise,
    pseudonymise_col,
)
from pipelines.lakehouse.settings import Settings


# ------------------------------------------------------------------ settings and table names
def test_local_tables_are_delta_folders_under_the_lakehouse(tmp_path):
    s = Settings(lakehouse=tmp_path / "lh")
    ref = s.table("silver", "variants")
    assert ref.path == str((tmp_path / "lh" / "silver" / "variants").absolute())
    assert ref.identifier == f"delta.`{ref.path}`"
    assert ref.key == "silver.variants"
    assert s.quarantine_table(ref).path.endswith("silver/quarantine_variants")


def test_unity_catalog_names_per_environment():
    dev = Settings(env="dev", catalog="dev_cat", schema_prefix="jdoe_onc_")
    prod = Settings(env="prod", catalog="main", schema_prefix="onc_")
    assert dev.table("gold", "treatment_rankings").identifier == (
        "`dev_cat`.`jdoe_onc_gold`.`treatment_rankings`")
    assert prod.table("restricted", "patient_identity").identifier == (
        "`main`.`onc_restricted`.`patient_identity`")
    assert prod.table("bronze", "x").path is None
    assert prod.registered_model_name == "main.onc_gold.oncorank_treatment_response"


def test_unknown_schema_and_bad_names_are_refused():
    s = Settings()
    with pytest.raises(ValueError):
        s.table("platinum", "x")
    with pytest.raises(ValueError):
        s.table("silver", "../etc")


def test_precedence_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "oncorank.toml"
    cfg.write_text(
        'lakehouse = "lh-from-file"\nhorizon_months = 36\n'
        '[inputs]\nnotes = "notes.jsonl"\n[genomics]\ntarget_size_mb = 35\n'
    )
    s = Settings.load(cfg, environ={})
    assert s.lakehouse == tmp_path / "lh-from-file"
    assert s.horizon_months == 36.0
    assert s.inputs.notes == str(tmp_path / "notes.jsonl")
    assert s.section("genomics") == {"target_size_mb": 35}
    s = Settings.load(cfg, environ={"ONCORANK_LAKEHOUSE": "/env/lh"})
    assert s.lakehouse == Path("/env/lh")
    s = Settings.load(cfg, {"lakehouse": "/flag/lh"}, environ={"ONCORANK_LAKEHOUSE": "/env/lh"})
    assert s.lakehouse == Path("/flag/lh")


def test_config_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("lakehouse = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(bad, environ={})
    with pytest.raises(ConfigError, match="Unity Catalog"):
        Settings.load(None, {"env": "prod"}, environ={})
    with pytest.raises(ConfigError, match="Unknown environment"):
        Settings.load(None, {"env": "staging"}, environ={})


def test_config_hash_changes_with_results_relevant_settings():
    assert Settings().config_hash == Settings(debug=True).config_hash
    assert Settings().config_hash != Settings(horizon_months=12).config_hash


# ------------------------------------------------------------------ session factory
def test_session_has_delta_and_spark_nlp(spark):
    from pipelines.lakehouse.session import require_spark_nlp

    conf = spark.sparkContext.getConf()
    assert "DeltaSparkSessionExtension" in conf.get("spark.sql.extensions")
    assert "spark-nlp_2.12" in conf.get("spark.jars")
    require_spark_nlp(spark)  # raises EnvironmentProblem when the jar is missing


def test_session_factory_returns_the_active_session(spark, spark_settings):
    from pipelines.lakehouse.session import spark_session

    assert spark_session(spark_settings) is spark


def test_jar_cache_starts_offline(tmp_path, monkeypatch):
    """With the jars already cached, resolution touches no network (a bad repo is never hit)."""
    from pipelines.lakehouse.session import JARS, ensure_jars, jars_dir

    paths = ensure_jars(jars_dir(), repo="http://127.0.0.1:9/unreachable")
    assert [p.name for p in paths] == [j.file_name for j in JARS]


def test_jar_download_failure_is_a_clear_message(tmp_path):
    from pipelines.lakehouse.errors import EnvironmentProblem
    from pipelines.lakehouse.session import ensure_jars

    with pytest.raises(EnvironmentProblem, match="Could not download the JVM jar"):
        ensure_jars(tmp_path / "empty", repo="http://127.0.0.1:9/unreachable")


# ------------------------------------------------------------------ pseudonymisation
def test_hmac_in_spark_equals_python_hmac(spark):
    key = b"test-key"
    ids = ["P0001", "TCGA-A6-2686", "ü-ñ", None]
    rows = spark.createDataFrame([(i,) for i in ids], "id string").select(
        "id", pseudonymise_col(F.col("id"), key).alias("k"),
        date_shift_days_col(F.col("id"), key).alias("d")).collect()
    for r in rows:
        if r.id is None:
            assert r.k is None
            continue
        assert r.k == hmac.new(key, r.id.encode(), hashlib.sha256).hexdigest()[:20]
        assert r.k == pseudonymise(r.id, key)
        assert r.d == date_shift_days(r.id, key) and 30 <= abs(r.d) <= 180


def test_date_shifts_keep_the_floor_and_spread():
    """No patient's dates move by less than 30 days; shifts go both ways and fill the range."""
    shifts = [date_shift_days(f"P{i:05d}", b"test-key") for i in range(3000)]
    assert min(abs(d) for d in shifts) == 30 and max(abs(d) for d in shifts) == 180
    assert 0.45 < sum(d > 0 for d in shifts) / len(shifts) < 0.55
    assert len(set(shifts)) == 2 * 151


# ------------------------------------------------------------------ idempotent writer
def _rows(spark, ref):
    return sorted((tuple(r) for r in delta.read_table(spark, ref).collect()), key=str)


def test_merge_is_idempotent_and_upserts(spark, settings):
    ref = settings.table("silver", "demo")
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    v0 = delta.write_table(spark, df, ref, keys=["id"])
    delta.write_table(spark, df, ref, keys=["id"])
    assert _rows(spark, ref) == [(1, "a"), (2, "b")]
    changed = spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string")
    v2 = delta.write_table(spark, changed, ref, keys=["id"])
    assert v2 > v0
    assert _rows(spark, ref) == [(1, "a"), (2, "B"), (3, "c")]
    delta.write_table(spark, changed, ref, keys=["id"], delete_missing=True)
    assert _rows(spark, ref) == [(2, "B"), (3, "c")]


def test_replace_partition_and_null_keys(spark, settings):
    ref = settings.table("gold", "by_day")
    df = spark.createDataFrame([("d1", 1), ("d2", 2), (None, 3)], "day string, n int")
    delta.write_table(spark, df, ref, mode="overwrite")
    delta.write_table(spark, spark.createDataFrame([("d1", 9)], "day string, n int"), ref,
                      mode="replace", replace_where="day = 'd1'")
    assert _rows(spark, ref) == sorted([("d1", 9), ("d2", 2), (None, 3)], key=str)
    # null-safe key equality: merging the null-key row twice keeps one row
    delta.write_table(spark, df.filter("day is null"), settings.table("gold", "nk"), keys=["day"])
    delta.write_table(spark, df.filter("day is null"), settings.table("gold", "nk"), keys=["day"])
    assert delta.read_table(spark, settings.table("gold", "nk")).count() == 1


def test_duplicate_keys_and_schema_drift_write_nothing(spark, settings):
    ref = settings.table("silver", "guarded")
    delta.write_table(spark, spark.createDataFrame([(1, "a")], "id int, v string"), ref,
                      keys=["id"])
    version = delta.current_version(spark, ref)
    dup = spark.createDataFrame([(5, "x"), (5, "y")], "id int, v string")
    with pytest.raises(DataQualityError, match="Duplicate natural keys"):
        delta.write_table(spark, dup, ref, keys=["id"])
    renamed = spark.createDataFrame([(1, "a")], "id int, value string")
    with pytest.raises(SchemaMismatchError, match=r"new column\(s\) \['value'\]"):
        delta.write_table(spark, renamed, ref, keys=["id"])
    assert delta.current_version(spark, ref) == version


def test_current_version_is_the_latest_commit_in_the_history(spark, settings):
    ref = settings.table("silver", "versioned")
    assert delta.current_version(spark, ref) is None
    df = spark.createDataFrame([(1, "a")], "id int, v string")
    seen = []
    for _ in range(3):
        seen.append(delta.write_table(spark, df, ref, mode="append"))
        latest = spark.sql(f"DESCRIBE HISTORY delta.`{ref.path}`").agg(
            F.max("version")).first()[0]
        assert delta.current_version(spark, ref) == latest == seen[-1]
    assert seen == [0, 1, 2]


def test_append_rows_without_spark_job_equals_sparks_append(spark, settings):
    import datetime as dt

    from pyspark.sql import types as T

    from pipelines.lakehouse.audit import JOB_RUNS_SCHEMA as schema

    at = dt.datetime(2026, 11, 27, 12, 30, 5, 123456)
    rows = [("r1", None, "job", at, at, "succeeded", 7, 5, 2, {"bronze.x": 3}, {}, "abc",
             "h", "dev", None),
            ("r2", "r0", "job", at, None, "failed", 0, 0, 0, None, None, None, None, None,
             "stopped: \u00e9")]
    direct, spark_ref = (settings.table("ops", "append_direct"),
                         settings.table("ops", "append_spark"))
    # the first write creates the table (Spark), later ones append directly or through Spark
    assert delta.append_rows(spark, direct, rows[:1], schema) == 0
    delta.write_table(spark, spark.createDataFrame(rows[:1], schema), spark_ref, mode="append")
    assert delta.append_rows(spark, direct, rows, schema) == 1
    delta.write_table(spark, spark.createDataFrame(rows, schema), spark_ref, mode="append")

    def content(ref):
        return sorted(map(repr, delta.read_table(spark, ref).collect()))
    assert content(direct) == content(spark_ref) and len(content(direct)) == 3
    last = spark.sql(f"DESCRIBE HISTORY delta.`{direct.path}`").orderBy(
        F.desc("version")).first()
    assert last["operation"] == "WRITE" and last["operationParameters"]["mode"] == "Append"
    assert last["isBlindAppend"]
    # ... and it was written without Spark: Arrow's Parquet writer made the file it added
    import json

    import pyarrow.parquet as pq
    (add,) = [json.loads(line)["add"] for line in (
        Path(direct.path) / "_delta_log" / f"{1:020d}.json").read_text().splitlines()
        if "add" in json.loads(line)]
    assert "arrow" in pq.ParquetFile(Path(direct.path) / add["path"]).metadata.created_by
    assert json.loads(add["stats"])["numRecords"] == 2
    # a NULL in a NOT NULL column goes through Spark's writer, which refuses it
    with pytest.raises(Exception, match="run_id"):
        delta.append_rows(spark, direct, [(None, *rows[0][1:])], schema)
    assert delta.current_version(spark, direct) == 1
    # another schema than the table's goes through write_table (whose append keeps the
    # table's columns): the row lands, the extra column does not
    wider = T.StructType([*schema.fields, T.StructField("extra", T.StringType())])
    assert delta.append_rows(spark, direct, [("r3", *rows[0][1:], "e")], wider) == 2
    assert "extra" not in delta.read_table(spark, direct).columns
    assert delta.read_table(spark, direct).filter("run_id = 'r3'").count() == 1


# ------------------------------------------------------------------ audit and reconciliation
def test_job_run_records_counts_versions_and_quarantine(spark, settings):
    src = spark.createDataFrame([(1, "ok"), (2, "ok"), (3, "bad")], "id int, v string")
    target = settings.table("bronze", "things")
    for _ in range(2):  # a re-run adds nothing anywhere but the audit log
        with job_run(spark, settings, "demo-job") as run:
            run.count_in(src.count())
            bad = src.filter("v = 'bad'").withColumn("_rule", F.lit("value_is_ok")).withColumn(
                "_reason", F.lit("v must be 'ok'"))
            run.quarantine(bad, target)
            run.write(src.filter("v = 'ok'"), target, keys=["id"])
    assert delta.read_table(spark, target).count() == 2
    q = delta.read_table(spark, settings.quarantine_table(target)).collect()
    assert len(q) == 1 and q[0].rule == "value_is_ok" and '"id":3' in q[0].record
    runs = delta.read_table(spark, settings.table("ops", "job_runs")).collect()
    assert len(runs) == 2
    for r in runs:
        assert (r.status, r.rows_in, r.rows_written, r.rows_quarantined) == (
            "succeeded", 3, 2, 1)
        assert r.tables_written["bronze.things"] >= 0
        assert r.config_hash == settings.config_hash


def test_reconciliation_failure_fails_the_job(spark, settings):
    with (pytest.raises(ReconciliationError, match="4 rows in, 3 written"),
          job_run(spark, settings, "leaky-job") as run):
        run.count_in(4)
        run.write(spark.range(3).withColumnRenamed("id", "k"),
                  settings.table("bronze", "leaky"), keys=["k"])
    (row,) = delta.read_table(spark, settings.table("ops", "job_runs")).collect()
    assert row.status == "failed" and "does not reconcile" in row.message


def test_read_optional_reads_a_table_or_says_once_that_it_is_absent(spark, settings, caplog):
    import logging

    present, absent = settings.table("silver", "present"), settings.table("silver", "absent")
    delta.write_table(spark, spark.range(2), present, mode="overwrite")
    with caplog.at_level(logging.INFO, logger="oncorank"), \
            job_run(spark, settings, "optional-job") as run:
        assert run.read_optional(present).count() == 2
        assert run.read_optional(absent, consequence="its columns are null") is None
        assert run.read_optional(absent) is None
    assert run.tables_read == {"silver.present": 0}
    said = [r.getMessage() for r in caplog.records if "silver.absent" in r.getMessage()]
    assert said == ["optional-job: optional input silver.absent is absent; its columns are null"]


def test_count_written_reconciles_an_output_that_is_not_a_table(spark, settings):
    with job_run(spark, settings, "files-job") as run:
        run.count_in(3)
        run.count_written(3)
    (row,) = delta.read_table(spark, settings.table("ops", "job_runs")).collect()
    assert (row.status, row.rows_in, row.rows_written, row.rows_quarantined) == (
        "succeeded", 3, 3, 0)

"""Privacy mechanics: the local pseudonym key, ZIP3, shifted raw dates, dropping an
identifying column and purging the versions that still hold it."""

from __future__ import annotations

import logging
import stat

import pytest
from pyspark.sql import functions as F

from pipelines.clinical.dates import shift_date_text
from pipelines.lakehouse import delta
from pipelines.lakehouse.privacy import RESTRICTED_ZIP3, zip3_col
from pipelines.lakehouse.settings import Settings, local_pseudonym_key


@pytest.fixture
def no_env_key(monkeypatch):
    monkeypatch.delenv("ONCORANK_PSEUDONYM_KEY", raising=False)


def test_a_local_lakehouse_gets_its_own_random_key_once(tmp_path, no_env_key, caplog):
    a, b = Settings(lakehouse=tmp_path / "a"), Settings(lakehouse=tmp_path / "b")
    with caplog.at_level(logging.WARNING, logger="oncorank"):
        key_a = a.pseudonym_key
        assert a.pseudonym_key == key_a                      # read back, not re-created
    said = [r for r in caplog.records if "random pseudonym key" in r.getMessage()]
    assert len(said) == 1 and "ONCORANK_PSEUDONYM_KEY" in said[0].getMessage()
    path = tmp_path / "a" / "restricted" / "pseudonym.key"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key_a) == 64 and int(key_a, 16)               # 32 random bytes, hex
    assert b.pseudonym_key != key_a                          # another lakehouse, another key
    assert local_pseudonym_key(tmp_path / "a") == key_a      # a later process reads the file
    assert a.pseudonym_key_source == str(path)


def test_the_environment_key_wins_and_dev_needs_one(tmp_path, monkeypatch):
    from pipelines.lakehouse.errors import ConfigError

    monkeypatch.setenv("ONCORANK_PSEUDONYM_KEY", "from-the-secret-scope")
    s = Settings(lakehouse=tmp_path / "l")
    assert s.pseudonym_key == b"from-the-secret-scope"
    assert not (tmp_path / "l" / "restricted" / "pseudonym.key").exists()
    monkeypatch.delenv("ONCORANK_PSEUDONYM_KEY")
    with pytest.raises(ConfigError, match="ONCORANK_PSEUDONYM_KEY"):
        _ = Settings(lakehouse=tmp_path / "l", env="dev").pseudonym_key


def test_an_empty_key_file_is_one_clear_error(tmp_path, no_env_key):
    from pipelines.lakehouse.errors import ConfigError

    path = tmp_path / "restricted" / "pseudonym.key"
    path.parent.mkdir(parents=True)
    path.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        local_pseudonym_key(tmp_path)


def test_zip3_keeps_three_digits_and_hides_the_small_areas(spark):
    values = ["02139", "02139-4307", " 10001 ", "05901", "89301", "2139", "abcde", None,
              "021394307"]
    out = [r.z for r in spark.createDataFrame([(v,) for v in values], "v string")
           .select(zip3_col(F.col("v")).alias("z")).collect()]
    assert out == ["021", "021", "100", "000", "000", None, None, None, None]
    assert len(RESTRICTED_ZIP3) == 17 and {"036", "893"} <= RESTRICTED_ZIP3


def test_raw_dates_move_and_what_is_no_date_stays(spark):
    rows = [("2020-02-01",), ("2019-06",), ("2019-02-30",), ("not a date",), (None,)]
    out = [r.d for r in spark.createDataFrame(rows, "v string")
           .select(shift_date_text(F.col("v"), F.lit(10)).alias("d")).collect()]
    assert out == ["2020-02-11", "2019-06-11", "2019-02-30", "not a date", None]


def test_a_dropped_column_is_gone_after_vacuum_and_time_travel_stops_there(spark, tmp_path):
    s = Settings(lakehouse=tmp_path / "lakehouse")
    ref = s.table("silver", "patients")
    delta.write_table(spark, spark.createDataFrame(
        [("k1", 1950, "NSCLC"), ("k2", 1961, "BRCA")],
        "patient_key string, birth_year int, cancer_type string"), ref, keys=["patient_key"])
    assert delta.drop_columns(spark, ref, ["birth_year", "not_there"]) == ["birth_year"]
    assert delta.drop_columns(spark, ref, ["birth_year"]) == []          # idempotent
    assert delta.read_table(spark, ref).columns == ["patient_key", "cancer_type"]
    old = delta.read_table(spark, ref, version=0)
    assert sorted(r.birth_year for r in old.collect()) == [1950, 1961]   # still in history

    assert delta.vacuum(spark, ref, retain_hours=0) >= 1
    with pytest.raises(Exception):  # noqa: B017 - Spark's own error for vacuumed files
        delta.read_table(spark, ref, version=0).collect()
    import pyarrow.parquet as pq

    left = list((tmp_path / "lakehouse" / "silver" / "patients").glob("*.parquet"))
    assert left and all("birth_year" not in pq.read_schema(f).names for f in left)


def test_vacuum_command(spark, tmp_path, capsys):
    from pipelines.cli import main

    s = Settings(lakehouse=tmp_path / "lakehouse")
    ref = s.table("gold", "t")
    for n in (1, 2):
        delta.write_table(spark, spark.createDataFrame([(n,)], "x int"), ref, mode="overwrite")
    main(["vacuum", "--lakehouse", str(s.lakehouse), "--retain-hours", "0"])
    assert "vacuumed 1 tables" in capsys.readouterr().err
    assert [r.x for r in delta.read_table(spark, ref).collect()] == [2]
    with pytest.raises(SystemExit):
        main(["vacuum", "--lakehouse", str(s.lakehouse), "--schema", "platinum"])
    assert "Unknown schema" in capsys.readouterr().err

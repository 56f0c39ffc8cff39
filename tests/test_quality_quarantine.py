"""``oncorank quarantine list|show|replay``: readable reasons, and rows a fix now accepts come back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines.cli import main
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import job_run
from pipelines.lakehouse.settings import Settings
from pipelines.quality.replay import register_replay

SCHEMA = "item_id long, patient_key string, vaf double"


def _suite(folder: Path, max_vaf: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "silver.qa_items.json"
    path.write_text(json.dumps({
        "table": "silver.qa_items", "keys": ["item_id"],
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "item_id"},
             "severity": "stop"},
            {"type": "expect_column_values_to_be_between", "severity": "quarantine",
             "kwargs": {"column": "vaf", "min_value": 0, "max_value": max_vaf}},
        ]}))
    # A rewrite within the same clock tick must still be seen as a new suite.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(max_vaf * 1e9)))


@register_replay("silver.qa_items", rules=["parse_error"])
def _reparse(spark, settings, rows):
    """The stage's parser, fixed: ``id|patient|vaf`` lines now parse."""
    parts = F.split(F.get_json_object("record", "$.line"), r"\|")
    return rows.select("quarantine_id", parts[0].cast("long").alias("item_id"),
                       parts[1].alias("patient_key"), parts[2].cast("double").alias("vaf"))


def _cli(capsys, *args) -> tuple[int, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture()
def lake(spark, tmp_path):
    cfg = tmp_path / "oncorank.toml"
    cfg.write_text(f'lakehouse = "{tmp_path / "lakehouse"}"\n\n[spark]\nshuffle_partitions = 2\n'
                   f'\n[quality]\nexpectations_dir = "{tmp_path / "suites"}"\n')
    _suite(tmp_path / "suites", max_vaf=1)
    settings = Settings.load(cfg)
    src = spark.createDataFrame([(1, "pk1", 0.5), (2, "pk1", 1.5), (3, "pk2", 3.0),
                                 (4, "pk2", None)], SCHEMA)
    unparsed = spark.createDataFrame(
        [('{"line": "7|pk3|0.25"}', "items.txt", 6)], "raw string, _source string, "
                                                       "_record_index long",
    ).select(F.get_json_object("raw", "$.line").alias("line"), "_source", "_record_index",
             F.lit("parse_error").alias("_rule"),
             F.lit("line 7: the vaf field uses '|' separators").alias("_reason"))
    with job_run(spark, settings, "qa-items") as run:
        run.count_in(5)
        run.quarantine(unparsed, settings.table("silver", "qa_items"))
        run.write(src, settings.table("silver", "qa_items"), keys=["item_id"])
    assert (run.rows_written, run.rows_quarantined) == (2, 3)
    return settings, cfg, tmp_path


def test_list_and_show_explain_why_rows_were_rejected(spark, lake, capsys):
    settings, cfg, _ = lake
    code, text = _cli(capsys, "quarantine", "list", "--config", str(cfg))
    assert code == 0, text
    assert "silver.qa_items" in text and "gx:expect_column_values_to_be_between(vaf)" in text
    assert "parse_error" in text and "Data Docs" in text

    code, text = _cli(capsys, "quarantine", "show", "silver.qa_items", "--config", str(cfg))
    assert code == 0, text
    assert "3 quarantined row(s)" in text
    assert "vaf = 1.5 is outside [0, 1]" in text and "vaf = 3.0 is outside [0, 1]" in text
    assert "items.txt#6" in text and "'|' separators" in text

    code, text = _cli(capsys, "quarantine", "show", "silver.nothing_here", "--config", str(cfg))
    assert code == 2 and "No rows were ever quarantined" in text and "Traceback" not in text
    code, text = _cli(capsys, "quarantine", "show", "variants", "--config", str(cfg))
    assert code == 2 and "is not schema.table" in text


def test_replay_writes_rows_a_fixed_rule_or_parser_accepts_and_counts_reconcile(spark, lake,
                                                                                 capsys):
    settings, cfg, tmp_path = lake
    target = settings.table("silver", "qa_items")
    qref = settings.quarantine_table(target)
    _suite(tmp_path / "suites", max_vaf=2)  # the rule was too strict

    code, text = _cli(capsys, "quarantine", "replay", "silver.qa_items", "--config", str(cfg))
    assert code == 0, text
    assert "replayed 3 quarantined row(s): 2 now accepted and written, 1 still quarantined" in text
    rows = {r.item_id: r.vaf for r in delta.read_table(spark, target).collect()}
    assert rows == {1: 0.5, 2: 1.5, 4: None, 7: 0.25}
    (left,) = delta.read_table(spark, qref).collect()
    assert json.loads(left.record)["item_id"] == 3
    assert left.reason == "vaf = 3.0 is outside [0, 2]"  # re-validated: the current reason
    replay_runs = [r for r in delta.read_table(spark, settings.table("ops", "job_runs"))
                   .collect() if r.job == "quarantine-replay"]
    assert [(r.status, r.rows_in, r.rows_written, r.rows_quarantined)
            for r in replay_runs] == [("succeeded", 3, 2, 1)]

    # Nothing more to take back: a second replay changes no table.
    version = delta.current_version(spark, target)
    code, text = _cli(capsys, "quarantine", "replay", "silver.qa_items", "--config", str(cfg))
    assert code == 0 and "1 still quarantined" in text
    assert {r.item_id for r in delta.read_table(spark, target).collect()} == {1, 2, 4, 7}
    assert delta.read_table(spark, qref).count() == 1
    assert delta.current_version(spark, target) >= version


def test_replay_needs_the_table_key(spark, lake, capsys):
    settings, cfg, tmp_path = lake
    suite = tmp_path / "suites" / "silver.qa_items.json"
    data = json.loads(suite.read_text())
    data.pop("keys")
    suite.write_text(json.dumps(data))
    code, text = _cli(capsys, "quarantine", "replay", "silver.qa_items", "--config", str(cfg))
    assert code == 2 and "natural key is unknown" in text

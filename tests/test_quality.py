"""Quality gate: suites as data, GX on Spark, quarantine with reasons, stop before commit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import job_run
from pipelines.lakehouse.errors import ConfigError, DataQualityError
from pipelines.quality import engine, suites
from pipelines.quality.gate import apply_gate
from pipelines.quality.predicates import COLUMN_PREDICATES, ROW_LEVEL, row_check
from pipelines.quality.status import quality_status

TODAY = dt.datetime.now(dt.UTC).date()
ITEMS_SCHEMA = "item_id long, patient_key string, vaf double, d date, name string"


def write_suite(folder: Path, table: str, expectations: list[dict], **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table}.json"
    path.write_text(json.dumps({"table": table, "expectations": expectations, **extra}))
    return path


@pytest.fixture()
def qsettings(settings, tmp_path):
    """Settings whose suites come from a test folder (plus the packaged ones)."""
    return settings.replace(sections={"quality": {"expectations_dir": str(tmp_path / "suites")}})


ITEMS_SUITE = [
    {"type": "expect_table_columns_to_match_set", "severity": "stop",
     "kwargs": {"column_set": ["item_id", "patient_key", "vaf", "d"], "exact_match": False}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "item_id"},
     "severity": "stop"},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "item_id"},
     "severity": "quarantine"},
    {"type": "expect_column_values_to_be_between", "severity": "quarantine",
     "kwargs": {"column": "vaf", "min_value": 0, "max_value": 1}},
    {"type": "expect_column_values_to_be_between", "name": "d not in the future",
     "severity": "quarantine", "kwargs": {"column": "d", "max_value": {"$PARAMETER": "today"}}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"},
     "severity": "warn"},
    {"type": "unexpected_rows_expectation", "name": "patient exists", "severity": "quarantine",
     "notes": "patient_key has no row in silver.qa_patients",
     "kwargs": {"unexpected_rows_query": "SELECT b.* FROM {batch} b LEFT ANTI JOIN "
                                         "{ref:silver.qa_patients} p USING (patient_key)"}},
]


def items(spark):
    tomorrow = TODAY + dt.timedelta(days=3)
    rows = [
        (1, "pk1", 0.5, TODAY, "a"),      # good
        (2, "pk1", 1.5, TODAY, None),     # vaf out of range (and a warning: name missing)
        (3, "pk9", 0.1, TODAY, "c"),      # unknown patient
        (4, "pk2", 0.2, tomorrow, "d"),   # date in the future
        (5, "pk2", 0.3, TODAY, "e"),      # exact duplicate pair: one kept
        (5, "pk2", 0.3, TODAY, "e"),
        (6, "pk2", 0.3, TODAY, "x"),      # conflicting duplicate pair: both quarantined
        (6, "pk2", 0.4, TODAY, "y"),
        (7, "pk1", None, None, "g"),      # nulls pass range checks
    ]
    return spark.createDataFrame(rows, ITEMS_SCHEMA)


# ---------------------------------------------------------------------------- suites as data
def test_every_packaged_suite_loads_and_is_valid_for_gx():
    found = suites.all_suites()
    assert len(found) >= 10
    for key, suite in found.items():
        assert Path(suite.source).name == f"{key}.json"
        assert suite.expectations, key
        for e in suite.expectations:
            assert e.severity in suites.SEVERITIES
            if e.severity == "quarantine":
                assert e.type in ROW_LEVEL


def test_packaged_schema_expectations_name_only_contract_columns():
    """A schema expectation stops the job, so it may only require the contract's columns."""
    for key, suite in suites.all_suites().items():
        raw = json.loads(Path(suite.source).read_text())
        contract = raw.get("contract", "")
        (schema,) = [e for e in suite.expectations
                     if e.type == "expect_table_columns_to_match_set"]
        assert schema.severity == "stop" and schema.kwargs["exact_match"] is False, key
        words = set(contract.replace(",", " ").replace(":", " ").replace("(", " ").split())
        missing = [c for c in schema.kwargs["column_set"] if c not in words]
        assert not missing, f"{key}: {missing} are not in its contract ({contract})"


@pytest.mark.parametrize("entry, message", [
    ({"type": "expect_column_values_to_be_purple", "kwargs": {"column": "a"},
      "severity": "warn"}, "rejects expect_column_values_to_be_purple"),
    ({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
      "severity": "quarantine"}, "not a row-level expectation"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
     "needs a severity"),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": "x",
                                                               "maximum": 3},
      "severity": "stop"}, "rejects"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "mostly": 0.5},
      "severity": "quarantine"}, "'mostly'"),
])
def test_bad_suite_entries_are_refused_when_loaded(entry, message):
    with pytest.raises(ConfigError, match=message):
        suites.parse_suite({"table": "silver.t", "expectations": [entry]}, "silver.t.json")


def test_duplicate_expectation_names_are_refused():
    e = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"},
         "severity": "warn"}
    with pytest.raises(ConfigError, match="names must be unique"):
        suites.parse_suite({"table": "silver.t", "expectations": [e, e]})


def test_suite_file_must_be_named_after_its_table(tmp_path, settings):
    write_suite(tmp_path / "s", "silver.other", [])
    (tmp_path / "s" / "silver.other.json").rename(tmp_path / "s" / "silver.mine.json")
    s = settings.replace(sections={"quality": {"expectations_dir": str(tmp_path / "s")}})
    with pytest.raises(ConfigError, match="must be named after its table"):
        suites.load_suite("silver.mine", s)


# ---------------------------------------------------------------------------- predicates vs GX
PREDICATE_CASES = [
    ("expect_column_values_to_not_be_null", {"column": "x"}),
    ("expect_column_values_to_be_null", {"column": "s"}),
    ("expect_column_values_to_be_between", {"column": "x", "min_value": 0, "max_value": 1}),
    ("expect_column_values_to_be_between", {"column": "x", "min_value": 0, "max_value": 1,
                                            "strict_min": True, "strict_max": True}),
    ("expect_column_values_to_be_between", {"column": "d", "max_value": "2024-06-30"}),
    ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["a", "b"]}),
    ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["a"],
                                           "row_condition": "x >= 0.5",
                                           "condition_parser": "spark"}),
    ("expect_column_values_to_not_be_in_set", {"column": "s", "value_set": ["a"]}),
    ("expect_column_values_to_match_regex", {"column": "s", "regex": "^[ab]$"}),
    ("expect_column_values_to_not_match_regex", {"column": "s", "regex": "c"}),
    ("expect_column_value_lengths_to_be_between", {"column": "s", "min_value": 1,
                                                   "max_value": 1}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "d2", "column_B": "d", "or_equal": True, "ignore_row_if": "neither"}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "d2", "column_B": "d", "ignore_row_if": "either_value_is_missing"}),
    ("expect_column_pair_values_to_be_equal", {"column_A": "d2", "column_B": "d"}),
    ("expect_column_pair_values_to_be_equal", {"column_A": "d2", "column_B": "d",
                                               "ignore_row_if": "either_value_is_missing"}),
]


def test_row_predicates_flag_exactly_the_rows_gx_counts(spark, settings):
    """Every supported type, on nulls and boundary values: our rows == GX's unexpected count."""
    assert {t for t, _ in PREDICATE_CASES} == set(COLUMN_PREDICATES)
    assert len(PREDICATE_CASES) == len({json.dumps(kw, sort_keys=True) + t
                                        for t, kw in PREDICATE_CASES})
    d = dt.date
    df = spark.createDataFrame([
        (0.0, "a", d(2024, 1, 1), d(2024, 1, 1)),
        (1.0, "b", d(2024, 6, 30), d(2024, 1, 2)),
        (1.5, "c", d(2024, 7, 1), d(2023, 12, 31)),
        (-0.1, "cc", None, d(2024, 1, 1)),
        (None, None, d(2024, 1, 1), None),
        (0.5, "", None, None),
    ], "x double, s string, d date, d2 date").persist()
    specs = []
    for i, (etype, kw) in enumerate(PREDICATE_CASES):
        specs.append((suites.ExpectationSpec(etype, kw, "warn", f"case{i}"), kw))
    gx, _ = engine.validate(settings, "silver.predicate_cases", specs, df, {}, "predicates")
    ours = df.select(*[F.sum(row_check(s.type, kw)[0].cast("int")).alias(s.name)
                       for s, kw in specs]).first().asDict()
    for spec, kw in specs:
        assert gx[spec.name].error is None, (spec.type, gx[spec.name].error)
        assert (ours[spec.name] or 0) == gx[spec.name].unexpected_count, (spec.type, kw)
    df.unpersist()


def test_same_suite_is_the_same_spark_query_every_time(spark, settings, monkeypatch):
    """GX's bundled aggregates come in one fixed order (engine._same_query_for_same_suite),
    whatever the order of the suite's expectations, so Spark reuses the compiled query; the
    counts stay paired with their expectations."""
    from pyspark.sql import DataFrame

    df = spark.createDataFrame([(1.0, "a"), (None, "b"), (-2.0, None), (3.0, "")],
                               "x double, s string")
    specs = [(suites.ExpectationSpec(etype, kw, "warn", f"case{i}"), kw)
             for i, (etype, kw) in enumerate([
                 ("expect_column_values_to_not_be_null", {"column": "x"}),
                 ("expect_column_values_to_not_be_null", {"column": "s"}),
                 ("expect_column_values_to_be_between", {"column": "x", "min_value": 0}),
                 ("expect_column_values_to_match_regex", {"column": "s", "regex": "^[a-z]+$"}),
                 ("expect_column_values_to_be_between", {"column": "x", "max_value": 2})])]
    runs: list[list[str]] = []
    counts = []
    real_agg = DataFrame.agg

    def agg(self, *cols):
        runs[-1].append("|".join(str(c) for c in cols))
        return real_agg(self, *cols)

    monkeypatch.setattr(DataFrame, "agg", agg)
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1]):
        runs.append([])
        gx, _ = engine.validate(settings, "silver.order_cases", [specs[i] for i in order],
                                df, {}, "order")
        counts.append({name: r.unexpected_count for name, r in gx.items()})
    assert runs[0] == runs[1] == runs[2] and "IS NOT NULL" in " ".join(runs[0])
    assert counts[0] == counts[1] == counts[2] == {
        "case0": 1, "case1": 1, "case2": 1, "case3": 1, "case4": 1}


def test_no_value_queries_only_when_no_values_are_asked(settings):
    """GX's ``unexpected_values`` on Spark is answered without a query exactly when the
    result format asks for no values; otherwise GX's own function runs."""
    from great_expectations.expectations import registry

    engine._context(settings)
    engine._no_queries_for_no_values()  # a second time changes nothing
    wrapped = {n: d["providers"]["SparkDFExecutionEngine"][1]
               for n, d in registry._registered_metrics.items()
               if n.endswith(".unexpected_values")
               and d["providers"].get("SparkDFExecutionEngine") is not None}
    assert "column_values.nonnull.unexpected_values" in wrapped
    assert all(fn.oncorank_no_values and not getattr(fn.__wrapped__, "oncorank_no_values",
                                                     False) for fn in wrapped.values())
    fn = wrapped["column_values.nonnull.unexpected_values"]
    kw = {"cls": None, "execution_engine": None, "metric_domain_kwargs": {}, "metrics": {},
          "runtime_configuration": None}
    assert fn(metric_value_kwargs={"result_format": engine.RESULT_FORMAT}, **kw) == []
    for asked in ({"result_format": "SUMMARY", "partial_unexpected_count": 3},
                  {"result_format": "COMPLETE", "partial_unexpected_count": 0}):
        with pytest.raises(KeyError, match="unexpected_condition"):  # GX's own code ran
            fn(metric_value_kwargs={"result_format": asked}, **kw)


# ---------------------------------------------------------------------------- the gate
def test_tables_without_a_suite_pass_unchanged(spark, settings):
    df = spark.range(3)
    with job_run(spark, settings, "no-suite") as run:
        assert apply_gate(run, df, settings.table("silver", "no_suite_here")) == (df, None)


def test_gate_quarantines_failing_rows_with_reasons_and_writes_the_rest(spark, qsettings, tmp_path):
    write_suite(tmp_path / "suites", "silver.qa_items", ITEMS_SUITE, keys=["item_id"])
    patients = spark.createDataFrame([("pk1",), ("pk2",)], "patient_key string")
    delta.write_table(spark, patients, qsettings.table("silver", "qa_patients"), mode="overwrite")
    target = qsettings.table("silver", "qa_items")
    src = items(spark)
    versions = []
    for _ in range(2):  # a second run changes nothing
        with job_run(spark, qsettings, "qa-items") as run:
            run.count_in(src.count())
            run.write(src, target, keys=["item_id"])
        versions.append(sorted(map(tuple, delta.read_table(spark, target).collect())))
        assert (run.rows_in, run.rows_written, run.rows_quarantined) == (9, 3, 6)
    assert versions[0] == versions[1]
    assert [r[0] for r in versions[1]] == [1, 5, 7]

    q = {json.loads(r.record)["item_id"]: r
         for r in delta.read_table(spark, qsettings.quarantine_table(target)).collect()
         if json.loads(r.record)["item_id"] != 6}
    assert len(delta.read_table(spark, qsettings.quarantine_table(target)).collect()) == 6
    assert q[2].rule == "gx:expect_column_values_to_be_between(vaf)"
    assert q[2].reason == "vaf = 1.5 is outside [0, 1]"
    assert q[3].rule == "gx:patient exists"
    assert q[3].reason == "patient_key has no row in silver.qa_patients"
    # the gate's maximum is the day it runs: the next one when the run crosses midnight (UTC)
    assert q[4].reason in {f"d = {TODAY + dt.timedelta(days=3)} is above the maximum {day}"
                           for day in (TODAY, dt.datetime.now(dt.UTC).date())}
    assert q[5].reason == "exact duplicate of another row with the same key (item_id=5)"
    sixes = [r.reason for r in delta.read_table(spark, qsettings.quarantine_table(target))
             .collect() if json.loads(r.record)["item_id"] == 6]
    assert sixes == ["key (item_id=6) is shared by 2 rows with different values"] * 2

    dq = delta.read_table(spark, qsettings.table("ops", "data_quality"))
    latest = dq.filter(F.col("run_id") == run.run_id).collect()
    by_name = {r.expectation: r for r in latest}
    assert set(by_name) == {e.get("name") or suites._default_name(e["type"], e["kwargs"])
                            for e in ITEMS_SUITE}
    assert by_name["expect_column_values_to_be_between(vaf)"].unexpected_count == 1
    assert by_name["expect_column_values_to_be_between(vaf)"].action == "quarantined"
    assert by_name["expect_column_values_to_not_be_null(name)"].action == "warned"
    assert by_name["expect_column_values_to_not_be_null(item_id)"].status == "passed"
    assert by_name["patient exists"].observed_value == "1"
    assert all(r.job == "qa-items" and r.rows_validated == 9 for r in latest)
    page = Path(by_name["patient exists"].data_docs)
    assert page.is_file() and "silver.qa_items" in page.read_text()
    assert engine.data_docs_index(qsettings).is_file()
    runs = delta.read_table(spark, qsettings.table("ops", "job_runs")).collect()
    assert [(r.status, r.rows_in, r.rows_written, r.rows_quarantined) for r in runs] == [
        ("succeeded", 9, 3, 6)] * 2
    assert runs[0].tables_read["silver.qa_patients"] == 0


def test_cross_table_check_is_skipped_until_the_referenced_table_exists(spark, qsettings,
                                                                        tmp_path):
    write_suite(tmp_path / "suites", "silver.qa_items", ITEMS_SUITE[-1:])
    target = qsettings.table("silver", "qa_items")
    with job_run(spark, qsettings, "qa-items") as run:
        run.count_in(1)
        run.write(items(spark).limit(1), target, keys=["item_id"])
    (row,) = delta.read_table(spark, qsettings.table("ops", "data_quality")).collect()
    assert (row.status, row.success) == ("skipped", None)
    assert "silver.qa_patients" in row.details and run.rows_written == 1
    # Once the referenced table exists, the same suite checks it (the cached GX suite is
    # rebuilt because the applicable expectations changed).
    delta.write_table(spark, spark.createDataFrame([("pk2",)], "patient_key string"),
                      qsettings.table("silver", "qa_patients"), mode="overwrite")
    with job_run(spark, qsettings, "qa-items") as run:
        run.count_in(1)
        run.write(items(spark).limit(1), target, keys=["item_id"])
    assert (run.rows_written, run.rows_quarantined) == (0, 1)
    (q,) = delta.read_table(spark, qsettings.quarantine_table(target)).collect()
    assert q.rule == "gx:patient exists"


def test_schema_drift_stops_before_anything_is_written(spark, qsettings, tmp_path):
    write_suite(tmp_path / "suites", "silver.qa_items", ITEMS_SUITE[:4], keys=["item_id"])
    target = qsettings.table("silver", "qa_items")
    good = items(spark).filter("item_id = 1")
    with job_run(spark, qsettings, "qa-items") as run:
        run.count_in(1)
        run.write(good, target, keys=["item_id"])
    version = delta.current_version(spark, target)
    renamed = items(spark).withColumnRenamed("vaf", "allele_fraction")
    with pytest.raises(DataQualityError) as err, job_run(spark, qsettings, "qa-items") as run:
        run.count_in(9)
        run.write(renamed, target, keys=["item_id"])
    msg = str(err.value)
    assert "silver.qa_items" in msg and "expect_table_columns_to_match_set" in msg
    assert "missing column(s) ['vaf']" in msg and "Nothing was written" in msg
    assert delta.current_version(spark, target) == version
    assert not delta.table_exists(spark, qsettings.quarantine_table(target))
    failed = [r for r in delta.read_table(spark, qsettings.table("ops", "job_runs")).collect()
              if r.status == "failed"]
    assert len(failed) == 1 and "expect_table_columns_to_match_set" in failed[0].message
    dq = delta.read_table(spark, qsettings.table("ops", "data_quality"))
    stopped = dq.filter("action = 'stopped'").collect()
    assert [r.expectation for r in stopped] == ["expect_table_columns_to_match_set"]
    # The vaf checks were skipped (their column is gone), not reported as errors.
    assert dq.filter((F.col("run_id") == run.run_id) & (F.col("status") == "skipped")).count() == 1


def test_stop_message_names_expectation_and_examples_but_redacts_identifiers(spark, qsettings,
                                                                            tmp_path):
    write_suite(tmp_path / "suites", "bronze.qa_people", [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id"},
         "severity": "stop"},
        {"type": "expect_column_values_to_be_between", "severity": "stop",
         "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
        {"type": "expect_column_proportion_of_non_null_values_to_be_between",
         "kwargs": {"column": "sex", "min_value": 0.1}, "severity": "stop"},
    ], sensitive_columns=["patient_id"])
    df = spark.createDataFrame([("PT000001", 130, None), ("PT000001", 40, None),
                                ("PT000002", 50, None)], "patient_id string, age int, sex string")
    target = qsettings.table("bronze", "qa_people")
    with pytest.raises(DataQualityError) as err, job_run(spark, qsettings, "qa-people") as run:
        run.count_in(3)
        run.write(df, target, keys=["patient_id"])
    msg = str(err.value)
    assert "expect_column_values_to_be_unique(patient_id) failed for 2 of 3 rows" in msg
    assert "patient_id=<redacted> (2 rows)" in msg and "PT000001" not in msg
    assert "age = 130 is outside [0, 120]" in msg
    assert "expect_column_proportion_of_non_null_values_to_be_between(sex) failed" in msg
    assert "observed 0.0" in msg
    assert not delta.table_exists(spark, target)


def test_an_empty_batch_is_not_stopped_by_share_of_rows_expectations(spark, qsettings,
                                                                      tmp_path):
    write_suite(tmp_path / "suites", "silver.qa_items", [
        ITEMS_SUITE[0],
        {"type": "expect_column_proportion_of_non_null_values_to_be_between",
         "kwargs": {"column": "vaf", "min_value": 0.1}, "severity": "stop"}])
    with job_run(spark, qsettings, "qa-items") as run:
        run.write(items(spark).limit(0), qsettings.table("silver", "qa_items"), keys=["item_id"])
    rows = {r.expectation_type: r for r in
            delta.read_table(spark, qsettings.table("ops", "data_quality")).collect()}
    assert rows["expect_table_columns_to_match_set"].status == "passed"
    skipped = rows["expect_column_proportion_of_non_null_values_to_be_between"]
    assert (skipped.status, skipped.details) == ("skipped", "no rows to measure")


def test_quality_status_summarises_the_latest_validation_per_table(spark, qsettings, tmp_path):
    assert quality_status(spark, qsettings)["status"] == "unknown"
    write_suite(tmp_path / "suites", "silver.qa_items", ITEMS_SUITE[:6], keys=["item_id"])
    write_suite(tmp_path / "suites", "silver.qa_clean", ITEMS_SUITE[1:2])
    with job_run(spark, qsettings, "qa-items") as run:
        run.count_in(9)
        run.write(items(spark), qsettings.table("silver", "qa_items"), keys=["item_id"])
        run.write(items(spark).filter("item_id = 1"), qsettings.table("silver", "qa_clean"),
                  keys=["item_id"], primary=False)
    status = quality_status(spark, qsettings)
    assert status["status"] == "quarantined"
    assert status["data_docs"].startswith("file://") and status["data_docs"].endswith(
        "index.html")
    items_status = status["tables"]["silver.qa_items"]
    assert items_status["status"] == "quarantined" and items_status["quarantined_rows"] == 5
    assert {f["expectation"] for f in items_status["failures"]} == {
        "expect_column_values_to_be_unique(item_id)", "expect_column_values_to_be_between(vaf)",
        "d not in the future", "expect_column_values_to_not_be_null(name)"}
    assert status["tables"]["silver.qa_clean"] == {
        **status["tables"]["silver.qa_clean"], "status": "pass", "passed": 1, "failed": 0,
        "quarantined_rows": 0}


def test_a_producer_proof_covers_only_uniqueness_on_the_same_columns():
    from pipelines.quality.gate import Verified
    from pipelines.quality.suites import ExpectationSpec

    proof = Verified("expect_compound_columns_to_be_unique", ("a", "b"), "checked upstream")

    def spec(etype, **kwargs):
        return ExpectationSpec(etype, kwargs, "stop", "x")

    assert proof.covers(spec("expect_compound_columns_to_be_unique", column_list=["b", "a"],
                             ignore_row_if="never"))
    assert not proof.covers(spec("expect_compound_columns_to_be_unique", column_list=["a"]))
    assert not proof.covers(spec("expect_compound_columns_to_be_unique",
                                 column_list=["a", "b", "c"]))
    # a type a whole-table check cannot settle is never covered, whatever the proof claims
    assert not Verified("expect_column_values_to_not_be_null", ("a",), "?").covers(
        spec("expect_column_values_to_not_be_null", column="a"))


def test_column_facts_settle_only_expectations_every_row_passes():
    from pipelines.quality.gate import ColumnFacts, settle
    from pipelines.quality.suites import ExpectationSpec

    def spec(etype, **kwargs):
        return ExpectationSpec(etype, {"column": "v", **kwargs}, "quarantine", "x")

    f = ColumnFacts("v", nulls=2, rows=10, min=0, max=7, matches=("^[0-9]+$",), how="counted")
    between = "expect_column_values_to_be_between"
    assert settle(spec(between, min_value=0, max_value=7), f) == "counted: v ranges over [0, 7]"
    assert settle(spec(between, min_value=0, mostly=0.5, row_condition='v>1'), f)
    assert settle(spec(between, max_value=7.5), f)
    assert settle(spec(between, min_value=1), f) is None       # a row is below: GX finds it
    assert settle(spec(between, max_value=6), f) is None
    assert settle(spec(between, min_value=0, strict_min=True), f) is None
    assert settle(spec(between, max_value=7, strict_max=True), f) is None
    assert settle(spec(between, min_value={"$PARAMETER": "today"}), f) is None
    assert settle(spec(between, min_value="2020-01-01"), f) is None
    assert settle(spec(between, min_value=True), f) is None
    assert settle(spec(between), f) is None                      # no bound: GX's own error
    unranged = ColumnFacts("v", nulls=2, rows=10, how="counted")
    assert settle(spec(between, min_value=0), unranged) is None
    assert settle(spec(between, min_value=0), ColumnFacts("v", 10, 10, how="c")) == (
        "c: every value of v is null")
    notnull = "expect_column_values_to_not_be_null"
    assert settle(spec(notnull), f) is None
    assert settle(spec(notnull), ColumnFacts("v", 0, 10, how="c")) == "c: no null in v"
    regex = "expect_column_values_to_match_regex"
    assert settle(spec(regex, regex="^[0-9]+$"), f) == "counted: every value of v matches ^[0-9]+$"
    assert settle(spec(regex, regex="^[0-9]*$"), f) is None     # another pattern: GX runs it
    assert settle(ExpectationSpec(notnull, {"column": "w"}, "stop", "x"),
                  ColumnFacts("v", 0, 10, how="c")) is None   # another column
    assert settle(spec("expect_column_values_to_be_unique"), f) is None


def test_the_gate_runs_in_gx_what_column_facts_leave_open(spark, qsettings, tmp_path):
    """Facts that settle an expectation keep it out of GX (recorded as passed, with how);
    facts that show a bound crossed leave it to GX, which quarantines the row as always."""
    from pipelines.quality.gate import ColumnFacts

    write_suite(tmp_path / "suites", "silver.qa_items", ITEMS_SUITE[:4], keys=["item_id"])
    target = qsettings.table("silver", "qa_items")
    df = items(spark).filter("item_id IN (1, 2, 3)")  # vaf 0.5, 1.5, 0.1
    facts = (ColumnFacts("item_id", 0, 3, 1, 3, how="counted by the test"),
             ColumnFacts("vaf", 0, 3, 0.1, 1.5, how="counted by the test"))
    with job_run(spark, qsettings, "qa-items") as run:
        good, bad = apply_gate(run, df, target, facts, n_rows=3)
        assert sorted(r.item_id for r in good.collect()) == [1, 3]
        assert [(r.item_id, r._rule) for r in bad.collect()] == [
            (2, "gx:expect_column_values_to_be_between(vaf)")]
    dq = {r.expectation: r for r in delta.read_table(
        spark, qsettings.table("ops", "data_quality")).collect()}
    settled = dq["expect_column_values_to_not_be_null(item_id)"]
    assert (settled.status, settled.details) == ("passed", "counted by the test: no null in item_id")
    ran = dq["expect_column_values_to_be_between(vaf)"]
    assert (ran.status, ran.action, ran.unexpected_count, ran.details) == (
        "failed", "quarantined", 1, None)

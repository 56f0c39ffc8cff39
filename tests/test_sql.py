"""`oncorank sql`: read-only queries over the local lakehouse, through the real CLI."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from rich.console import Console

from pipelines.analytics.sql import (
    ReadOnlyQueryError,
    check_plan,
    check_statement,
    function_refusal,
    run_query,
    sql_functions,
)
from pipelines.cli import main
from pipelines.lakehouse import delta
from pipelines.lakehouse.comments import comments_for
from pipelines.lakehouse.errors import ConfigError
from pipelines.lakehouse.settings import Settings

PATIENTS = pd.DataFrame({
    "patient_key": [f"{i:020x}" for i in range(1, 9)],
    "sex": ["female", "male", "female", "male", "female", "female", "male", "male"],
    "age_at_diagnosis": [70, 58, 50, 71, 67, 41, 54, 63],
    "cancer_type": ["NSCLC", "NSCLC", "BRCA", "COADREAD", "NSCLC", "BRCA", "MEL", "NSCLC"],
    "stage": ["IV", "III", "II", "IV", "IV", "I", "III", "IV"],
    "diagnosis_date": pd.to_datetime(["2020-01-05", "2020-03-17", "2021-06-01", "2019-11-20",
                                      "2022-02-14", "2021-09-09", "2020-07-30", "2023-01-02"]
                                     ).date,
    "ecog": [1, 0, 0, 2, 1, 0, 1, 3],
})
IDENTITY = pd.DataFrame({
    "patient_key": PATIENTS["patient_key"][:2],
    "source_patient_id": ["PT000001", "PT000002"],
    "name": ["Jane Roe", "John Doe"],
    "mrn": ["MRN-1", "MRN-2"],
})
RANKINGS = pd.DataFrame({
    "patient_key": [PATIENTS["patient_key"][0]] * 2,
    "treatment": ["osimertinib", "platinum_pemetrexed"],
    "rank": [1, 2],
    "predicted_rmst": [19.5, 14.25],
    "contraindications": [[], ["ci_renal_impairment", "ci_hearing_loss"]],
})


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    settings = Settings(lakehouse=tmp_path_factory.mktemp("sql") / "lakehouse")
    for schema, name, frame, keys in (
        ("silver", "patients", PATIENTS, ["patient_key"]),
        ("gold", "treatment_rankings", RANKINGS, ["patient_key", "treatment"]),
        ("restricted", "patient_identity", IDENTITY, ["patient_key"]),
        ("bronze", "notes_raw", pd.DataFrame({"note_id": ["n1"], "patient_id": ["PT000001"],
                                               "text": ["Jane Roe, MRN-1, EGFR L858R"]}),
         ["note_id"]),
    ):
        ref = settings.table(schema, name)
        delta.write_table(spark, spark.createDataFrame(frame), ref, keys=keys,
                          **comments_for(ref, frame.columns))
    return settings


def _sql(capsys, lakehouse, *args) -> tuple[int, str, str]:
    code = 0
    try:
        main(["sql", "--lakehouse", str(lakehouse.lakehouse), *args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_output_is_the_query_result(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse, "SELECT cancer_type, count(*) AS n FROM "
                        "silver.patients GROUP BY cancer_type ORDER BY cancer_type",
                        "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = PATIENTS.groupby("cancer_type").size().sort_index()
    assert [r["cancer_type"] for r in rows] == list(expected.index)
    assert [int(r["n"]) for r in rows] == list(expected.values)


def test_json_output_keeps_types_dates_and_arrays(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse,
                        "SELECT p.patient_key, p.diagnosis_date, r.treatment, r.predicted_rmst, "
                        "r.contraindications FROM gold.treatment_rankings r JOIN silver.patients "
                        "p USING (patient_key) ORDER BY r.rank", "--format", "json")
    assert code == 0
    records = json.loads(out)
    assert [r["treatment"] for r in records] == list(RANKINGS["treatment"])
    assert records[1]["contraindications"] == RANKINGS["contraindications"][1]
    assert records[0]["predicted_rmst"] == pytest.approx(19.5)
    assert records[0]["diagnosis_date"] == PATIENTS["diagnosis_date"][0].isoformat()


def test_table_output_names_columns_and_rows(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse, "SELECT treatment, contraindications "
                        "FROM gold.treatment_rankings ORDER BY rank")
    assert code == 0
    assert "treatment" in out and "osimertinib" in out and "2 rows" in out
    assert "ci_renal_impairment" in out  # brackets of the array printed, not eaten as markup


def test_a_long_result_is_cut_in_table_format_only(spark, lakehouse):
    console = Console(file=io.StringIO(), width=120)
    n = run_query(spark, lakehouse, "SELECT id FROM range(500)", "table", console,
                  max_table_rows=10)
    assert n == 500 and "first 10 of 500 rows" in console.file.getvalue()
    console = Console(file=io.StringIO())
    assert run_query(spark, lakehouse, "SELECT id FROM range(500)", "csv", console) == 500
    assert len(console.file.getvalue().splitlines()) == 501


def test_describe_shows_the_column_comments(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse, "DESCRIBE silver.patients", "--format", "csv")
    assert code == 0
    comments = {r["col_name"]: r["comment"] for r in csv.DictReader(io.StringIO(out))}
    expected = comments_for("silver.patients")["comments"]
    for column in PATIENTS.columns:
        assert comments[column] == expected[column]


def test_show_and_history_work(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse, "SHOW TABLES IN gold", "--format", "csv")
    assert code == 0 and "treatment_rankings" in out
    code, out, _ = _sql(capsys, lakehouse, "DESCRIBE HISTORY silver.patients", "--format",
                        "json")
    assert code == 0 and [h["version"] for h in json.loads(out)] == [0]


def test_literals_and_comments_do_not_count_as_statements(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse,
                        "SELECT 'DROP TABLE x; --' AS s -- a comment; DROP\n/* ; */;",
                        "--format", "csv")
    assert code == 0 and out.splitlines() == ["s", "DROP TABLE x; --"]


WRITES = [
    "INSERT INTO silver.patients SELECT * FROM silver.patients",
    "UPDATE silver.patients SET ecog = 4",
    "DELETE FROM silver.patients",
    "MERGE INTO silver.patients t USING silver.patients s ON t.patient_key = s.patient_key "
    "WHEN MATCHED THEN DELETE",
    "DROP TABLE silver.patients",
    "CREATE TABLE gold.copy AS SELECT * FROM silver.patients",
    "ALTER TABLE silver.patients ADD COLUMNS (x INT)",
    "TRUNCATE TABLE silver.patients",
    "OPTIMIZE silver.patients",
    "VACUUM silver.patients",
    "SET spark.sql.shuffle.partitions = 1",
    "WITH a AS (SELECT * FROM silver.patients) INSERT INTO silver.patients SELECT * FROM a",
    "SELECT 1; DROP TABLE silver.patients",
    "  ",
]


@pytest.mark.parametrize("statement", WRITES)
def test_anything_but_a_query_is_refused_and_changes_nothing(spark, capsys, lakehouse,
                                                            statement):
    ref = lakehouse.table("silver", "patients")
    version = delta.current_version(spark, ref)
    code, out, err = _sql(capsys, lakehouse, statement)
    assert code != 0 and out == ""
    message = " ".join(err.split())
    assert "read-only" in message or "one statement" in message or "empty" in message
    assert "Traceback" not in err
    assert delta.current_version(spark, ref) == version
    assert delta.read_table(spark, ref).count() == len(PATIENTS)


@pytest.mark.parametrize("statement", [
    "SELECT * FROM restricted.patient_identity",
    "SELECT p.* FROM silver.patients p WHERE p.patient_key IN "
    "(SELECT patient_key FROM restricted.patient_identity WHERE name LIKE 'J%')",
    "WITH ids AS (SELECT * FROM restricted.patient_identity) SELECT count(*) FROM ids",
    "SHOW TABLES IN restricted",
    "DESCRIBE restricted.patient_identity",
    "SELECT text FROM bronze.notes_raw",
])
def test_identifiers_are_refused_without_the_flag(capsys, lakehouse, statement):
    code, out, err = _sql(capsys, lakehouse, statement, "--format", "csv")
    message = " ".join(err.split())
    assert code != 0 and out == ""
    assert "not available to analysts" in message
    assert "Jane Roe" not in out + err and "PT000001" not in out + err


@pytest.mark.parametrize("statement", [
    "SELECT reflect('java.lang.System','getenv','HOME'), "
    "java_method('java.lang.System','getProperty','user.name')",
    "SELECT reflect('java.lang.System', 'getenv', 'ONCORANK_PSEUDONYM_KEY')",
    "SELECT upper(java_method('java.lang.System', 'getenv', 'HOME')) FROM silver.patients",
    "SELECT transform(array(1), x -> reflect('java.lang.System', 'getenv', 'HOME'))",
    "SELECT * FROM silver.patients WHERE stage IN (SELECT reflect('java.util.UUID', "
    "'randomUUID'))",
    "WITH a AS (SELECT java_method('java.lang.System', 'getenv', 'HOME') AS h) SELECT * FROM a",
    "SELECT current_user()",
    "SELECT input_file_name() FROM silver.patients",
    "SELECT xpath_string('<a>x</a>', 'a')",
    "SELECT TRANSFORM(stage) USING 'cat' AS (s) FROM silver.patients",
    "SELECT my_udf(stage) FROM silver.patients",
    "SELECT * FROM silver.patients LATERAL VIEW my_generator(stage) t AS s",
])
def test_only_pure_functions_run(capsys, lakehouse, statement):
    code, out, err = _sql(capsys, lakehouse, statement, "--format", "csv")
    message = " ".join(err.split())
    assert code != 0 and out == "", out
    assert "refused" in message and "Traceback" not in err
    assert "/root" not in out + err and "HOME=" not in out + err


def test_every_function_spark_registers_is_allowed_or_refused(spark):
    """Every function of this session (Spark's built-ins, and whatever the Delta and Spark NLP
    extensions register) is classified in sql_functions.yaml: a Spark upgrade that adds one
    fails here until someone decides. Unknown names are refused."""
    registered = {r[0].lower() for r in spark.sql("SHOW FUNCTIONS").collect()}
    lists = sql_functions()
    assert not lists["allowed"] & set(lists["refused"])
    assert registered - lists["allowed"] - set(lists["refused"]) == set()
    for name in registered:
        assert (function_refusal(name) is None) == (name in lists["allowed"])
    assert function_refusal("no_such_function_xyz").startswith("no_such_function_xyz is refused")
    for name in ("reflect", "java_method", "current_user", "input_file_name", "version"):
        assert function_refusal(name), name


def test_ordinary_analyst_queries_still_run(spark, capsys, lakehouse):
    code, out, err = _sql(capsys, lakehouse,
                          "SELECT upper(cancer_type) AS t, count(*) AS n, "
                          "round(avg(length(stage)), 1) AS l, date_format(current_date(), 'y') "
                          "AS y FROM silver.patients LATERAL VIEW explode(array(1)) e AS one "
                          "GROUP BY cancer_type ORDER BY t", "--format", "csv")
    assert code == 0, err
    check_plan(spark, "SELECT transform(array(1, 2), x -> x + 1), coalesce(null, 1), "
                      "percentile_approx(1, 0.5) FROM range(3)")


def test_reading_a_table_folder_by_path_is_refused(capsys, lakehouse):
    path = lakehouse.table("restricted", "patient_identity").path
    code, out, err = _sql(capsys, lakehouse, f"SELECT * FROM delta.`{path}`")
    assert code != 0 and "by path" in " ".join(err.split()) and "Jane" not in out + err


def test_hidden_schemas_are_not_even_listed(capsys, lakehouse):
    code, out, _ = _sql(capsys, lakehouse, "SHOW DATABASES", "--format", "csv")
    assert code == 0
    names = set(out.split()[1:])
    assert {"silver", "gold"} <= names and not names & {"restricted", "bronze"}


def test_the_explicit_flag_allows_the_restricted_schema(spark, lakehouse):
    console = Console(file=io.StringIO())
    n = run_query(spark, lakehouse, "SELECT source_patient_id FROM restricted.patient_identity "
                  "ORDER BY 1", "csv", console, allow_restricted=True)
    assert n == 2 and console.file.getvalue().split() == [
        "source_patient_id", "PT000001", "PT000002"]
    # ... and only for that call: the next query without the flag is refused again.
    with pytest.raises(ReadOnlyQueryError):
        run_query(spark, lakehouse, "SELECT * FROM restricted.patient_identity", "csv",
                  Console(file=io.StringIO()))


def test_time_travel_reads_analyst_tables_only(spark, lakehouse):
    console = Console(file=io.StringIO())
    n = run_query(spark, lakehouse, "SELECT count(*) AS n FROM silver.patients VERSION AS OF 0",
                  "csv", console)
    assert n == 1 and console.file.getvalue().split() == ["n", "8"]
    for statement in ("SELECT * FROM restricted.patient_identity VERSION AS OF 0",
                      "SELECT * FROM bronze.notes_raw TIMESTAMP AS OF '2000-01-01'",
                      "WITH x AS (SELECT * FROM restricted.patient_identity VERSION AS OF 0) "
                      "SELECT * FROM x"):
        # Even a data steward's --allow-restricted does not reach earlier versions.
        with pytest.raises(ReadOnlyQueryError, match="Time travel"):
            run_query(spark, lakehouse, statement, "csv", Console(file=io.StringIO()),
                      allow_restricted=True)


def test_the_flag_works_on_the_command_line_too(capsys, lakehouse):
    code, out, err = _sql(capsys, lakehouse, "SELECT mrn FROM restricted.patient_identity "
                          "ORDER BY 1", "--format", "csv", "--allow-restricted")
    assert code == 0 and out.split() == ["mrn", "MRN-1", "MRN-2"]
    assert "restricted tables exposed" in " ".join(err.split())


def test_a_missing_table_is_one_clear_sentence(capsys, lakehouse):
    code, _, err = _sql(capsys, lakehouse, "SELECT * FROM silver.variants")
    message = " ".join(err.split())
    assert code != 0 and "no such table" in message and "Traceback" not in err


def test_unity_catalog_environments_are_pointed_elsewhere(spark):
    settings = Settings(env="prod", catalog="main", schema_prefix="onc_")
    with pytest.raises(ConfigError, match="Unity Catalog"):
        run_query(spark, settings, "SELECT 1", "csv", Console(file=io.StringIO()))


def test_statement_check_without_spark():
    assert check_statement("  select 1 ;  ") == "select 1"
    assert check_statement("(SELECT 1) UNION (SELECT 2)").startswith("(SELECT")
    with pytest.raises(ReadOnlyQueryError, match="GRANT"):
        check_statement("GRANT SELECT ON silver.patients TO analysts")

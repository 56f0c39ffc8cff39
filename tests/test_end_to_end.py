"""End to end on a generated cohort: `oncorank demo`, then a second `oncorank run`.

Checks the runtime's acceptance: Delta tables per layer, a report per patient, an MLflow
SQLite store with a run, a reconciled ops.job_runs row per stage, and that re-running the
pipeline leaves every table's content unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipelines.stages import STAGE_NAMES

pytestmark = pytest.mark.slow

PATIENTS, SEED = 40, 7


@pytest.fixture(scope="module")
def demo(demo_run):
    """The session's `oncorank demo` run (conftest: 40 patients, seed 7)."""
    return demo_run


def _tables(lakehouse: Path) -> list[Path]:
    return sorted(p.parent for p in lakehouse.glob("*/*/_delta_log"))


def _content_digest(spark, path: Path) -> str:
    df = spark.read.format("delta").load(str(path))
    rows = sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str)
                  for r in df.collect())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_demo_leaves_tables_per_layer(demo):
    out, settings = demo
    lakehouse = out / "lakehouse"
    assert settings.lakehouse == lakehouse
    for schema in ("bronze", "silver", "gold", "ops"):
        tables = [p for p in _tables(lakehouse) if p.parent.name == schema]
        assert tables, f"no Delta table under {lakehouse / schema}"
    names = {f"{p.parent.name}.{p.name}" for p in _tables(lakehouse)}
    for required in ("bronze.variants_raw", "bronze.notes_raw", "silver.patients",
                     "silver.variants", "silver.note_findings", "silver.comorbidities",
                     "gold.patient_features", "gold.treatment_rankings", "ops.job_runs",
                     "restricted.patient_identity"):
        assert required in names


def test_demo_writes_a_report_per_patient(demo, spark):
    out, settings = demo
    keys = {r.patient_key for r in spark.read.format("delta").load(
        str(settings.table("gold", "treatment_rankings").path)).select("patient_key").collect()}
    assert len(keys) >= PATIENTS * 0.8  # patients without a first-line treatment are not ranked
    reports = {p.stem for p in (out / "reports").rglob("*.html")}
    assert keys <= reports


def test_demo_records_an_mlflow_run(demo):
    import mlflow

    out, settings = demo
    assert (out / "lakehouse" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(settings.tracking_uri, settings.registry_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs, "no MLflow run recorded"
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert champion.run_id in {r.info.run_id for r in runs}


def test_every_stage_ran_once_and_reconciles(demo, spark):
    _, settings = demo
    runs = spark.read.format("delta").load(settings.table("ops", "job_runs").path).collect()
    assert sorted(r.job for r in runs) == sorted(STAGE_NAMES)
    for r in runs:
        assert r.status == "succeeded", (r.job, r.message)
        assert r.rows_in == r.rows_written + r.rows_quarantined, r.job
        assert len({r.parent_run_id for r in runs}) == 1


def test_second_run_changes_no_table_content(demo, spark):
    from pipelines.runner import run_stages

    out, settings = demo
    lakehouse = out / "lakehouse"
    # ops.* are logs: a run appends its own rows there by design.
    tables = [p for p in _tables(lakehouse) if p.parent.name != "ops"]
    before = {p: _content_digest(spark, p) for p in tables}
    run_stages(settings, spark=spark)
    after = {p: _content_digest(spark, p) for p in _tables(lakehouse) if p.parent.name != "ops"}
    assert set(after) == set(before)
    changed = [str(p.relative_to(lakehouse)) for p in tables if before[p] != after[p]]
    assert not changed, f"tables changed on re-run: {changed}"

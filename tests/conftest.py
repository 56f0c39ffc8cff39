"""One SparkSession (Delta + Spark NLP jars) for the whole test session; real parts only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ONCORANK_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# One pseudonym key for the whole suite, so tests that build expected keys and the lakehouses
# they check agree (locally, without it, each lakehouse creates its own random key: that
# behaviour is tested in test_privacy.py with the variable removed).
os.environ.setdefault("ONCORANK_PSEUDONYM_KEY", "oncorank-test-suite-key-not-for-real-data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's public test data (real VCFs, Synthea FHIR, NegEx, CIViC): tests that need
    it skip with one line when it is absent (README, "Tests")."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared public test data at {SHARED_DATA} "
                    "(set ONCORANK_SHARED_DATA to its folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark_settings(tmp_path_factory):
    from pipelines.lakehouse.settings import Settings

    root = tmp_path_factory.mktemp("lakehouse-root")
    # One JVM serves the whole suite (~500 tests); at 2 GB its heap was seen full near the
    # end (garbage collection using every core, the suite stalling), so it gets 3 GB.
    memory = os.environ.get("ONCORANK_TEST_DRIVER_MEMORY", "3g")
    return Settings(lakehouse=root / "lakehouse", driver_memory=memory, shuffle_partitions=2,
                    spark_master="local[2]")


@pytest.fixture(scope="session")
def spark(spark_settings):
    from pipelines.lakehouse.session import spark_session

    session = spark_session(spark_settings, app_name="oncorank-tests")
    yield session
    session.stop()


@pytest.fixture()
def settings(spark, tmp_path):
    """Fresh lakehouse folder per test, same SparkSession."""
    from pipelines.lakehouse.settings import Settings

    return Settings(lakehouse=tmp_path / "lakehouse", shuffle_partitions=2,
                    spark_master="local[2]", reports_dir=str(tmp_path / "reports"))


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """One `oncorank demo` (40 patients, seed 7) per test session, shared by the end-to-end
    and notebook tests: (output folder, settings). Its console output goes to demo.log."""
    from rich.console import Console

    from pipelines.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    with open(out.parent / f"{out.name}.log", "w") as log:
        settings = run_demo(patients=40, seed=7, out=out, console=Console(file=log))
    return out, settings


ORACLE_PATIENTS, ORACLE_SEED, ORACLE_SCENARIO = 400, 21, "realistic"


@pytest.fixture(scope="session")
def oracle_run(spark, tmp_path_factory):
    """A generated cohort (``realistic`` world) through every stage but ``report``, as
    ``oncorank run`` runs them, with the truth folder moved out of the raw inputs first:
    (settings, cohort folder holding ``truth/``). Console output goes to run.log."""
    import shutil

    from rich.console import Console

    from pipelines.lakehouse.settings import Settings
    from pipelines.runner import run_stages
    from pipelines.stages import STAGE_NAMES
    from pipelines.synth import generate_cohort

    out = tmp_path_factory.mktemp("oracle")
    generate_cohort(out / "raw", patients=ORACLE_PATIENTS, seed=ORACLE_SEED, workers=1,
                    scenario=ORACLE_SCENARIO)
    shutil.move(str(out / "raw" / "truth"), str(out / "truth"))
    config = out / "oncorank.toml"
    config.write_text(
        f'env = "local"\nlakehouse = "{out / "lakehouse"}"\nhorizon_months = 24\n'
        f'[inputs]\nvcf = ["{out / "raw" / "vcf"}"]\nclinical_csv = "{out / "raw" / "csv"}"\n'
        f'notes = "{out / "raw" / "notes" / "notes.jsonl"}"\nfhir = ""\nsample_map = ""\n')
    settings = Settings.load(config)
    with open(out / "run.log", "w") as log:
        run_stages(settings, only=[s for s in STAGE_NAMES if s != "report"], spark=spark,
                   console=Console(file=log))
    return settings, out

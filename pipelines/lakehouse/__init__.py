"""Lakehouse runtime: settings, Spark session, table names, Delta I/O, audit.

Every job uses the same few entry points::

    settings = Settings.load(argv_overrides)
    spark = spark_session(settings)
    with job_run(spark, settings, "ingest-variants") as run:
        raw = run.read(settings.table("bronze", "variants_raw"))
        patients = run.read_optional(settings.table("silver", "patients"))  # None if absent
        run.count_in(raw.count())
        run.write(clean, settings.table("silver", "variants"), keys=["variant_key"])
"""

from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.errors import (
    ConfigError,
    DataQualityError,
    EnvironmentProblem,
    InputNotFoundError,
    OncorankError,
    ReconciliationError,
    SchemaMismatchError,
)
from pipelines.lakehouse.session import spark_session
from pipelines.lakehouse.settings import Settings, TableRef

__all__ = [
    "ConfigError",
    "DataQualityError",
    "EnvironmentProblem",
    "InputNotFoundError",
    "JobRun",
    "OncorankError",
    "ReconciliationError",
    "SchemaMismatchError",
    "Settings",
    "TableRef",
    "job_run",
    "spark_session",
]

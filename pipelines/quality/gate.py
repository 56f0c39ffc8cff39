"""The data-quality gate every ``JobRun.write`` passes through.

``apply_gate(run, df, ref)`` returns ``(good, bad)``: ``bad`` holds rows that failed a
row-level expectation, with ``_rule`` and ``_reason`` columns, or is ``None``. Table-level
failures raise :class:`~pipelines.lakehouse.errors.DataQualityError` before anything is
written. Tables without a suite in ``expectations/`` pass unchanged.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from pipelines.lakehouse.settings import TableRef


def apply_gate(run, df: DataFrame, ref: TableRef) -> tuple[DataFrame, DataFrame | None]:
    from pipelines.quality import suites

    suite = suites.load_suite(ref.key)
    if suite is None:
        return df, None
    return suites.run_suite(run, df, ref, suite)

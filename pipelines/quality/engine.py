"""Great Expectations 1.x on Spark DataFrames, with as little overhead per table as we can get.

* One GX context per process (per Data Docs folder), created on first use and kept: creating
  it, importing GX and the first validation cost seconds; later validations do not.
* In that context: one Spark data source, one dataframe asset and one whole-dataframe batch
  definition per table, one suite and one ``ValidationDefinition`` per table. They are
  rebuilt only when the set of expectations that applies changes (e.g. a referenced table
  appeared), never per write.
* ``ValidationDefinition.run(batch_parameters={"dataframe": df})`` validates the Spark frame
  where it lives: no pandas round trip.
* Results use the SUMMARY format with ``partial_unexpected_count = 0``: GX then computes
  counts but collects no example values, which halves its Spark jobs and keeps patient
  values out of the stored results and Data Docs. The gate computes examples itself, only
  when an expectation fails.
* Validation results go to a filesystem store next to the Data Docs site, so the site's
  index lists every job's results, whichever process ran it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.quality.suites import GX_SEVERITY, ExpectationSpec

log = logging.getLogger("oncorank.quality")

DATASOURCE = "oncorank_spark"
SITE = "oncorank"
BATCH_DEFINITION = "whole_dataframe"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}

_lock = threading.Lock()
_contexts: dict[str, _Context] = {}


def results_store_path(settings) -> Path:
    """Where GX validation results (JSON) are kept, beside the Data Docs site."""
    return settings.data_docs_path.absolute().parent / "data_quality_results"


def data_docs_index(settings) -> Path:
    """The Data Docs page to open in a browser (exists once a gate has run)."""
    return settings.data_docs_path.absolute() / "index.html"


@dataclass
class _Context:
    ctx: Any
    datasource: Any
    # table -> (signature of the applicable expectations, ValidationDefinition)
    validations: dict[str, tuple[str, Any]] = field(default_factory=dict)


def _new_context(docs: Path, results: Path) -> _Context:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    config.stores["validation_results_store"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(results)},
    }
    config.data_docs_sites = {
        SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    _no_queries_for_no_values()
    _same_query_for_same_suite()
    # persist=False: the frame the gate validates is already cached by JobRun.write.
    datasource = ctx.data_sources.add_spark(DATASOURCE, persist=False)
    return _Context(ctx, datasource)


def _no_queries_for_no_values() -> None:
    """Answer GX's ``*.unexpected_values`` metrics on Spark without a query when the result
    format asks for no values.

    GX 1.24 computes a map expectation's ``unexpected_values`` whatever the result format
    but BOOLEAN_ONLY; with ``partial_unexpected_count = 0`` (:data:`RESULT_FORMAT`) that is a
    ``limit(0)`` query per expectation, which returns nothing but is still analysed and
    planned by Spark: ~65 ms each on one core, ~0.6 s for bronze.variants_raw's nine.
    Counts, success and everything else GX computes are unchanged; any other result format
    runs GX's own query. Idempotent; GX metrics registered later are left as they are.
    """
    import functools

    from great_expectations.expectations import registry

    for name, definition in registry._registered_metrics.items():
        provider = definition.get("providers", {}).get("SparkDFExecutionEngine")
        if not name.endswith(".unexpected_values") or provider is None:
            continue
        cls, fn = provider
        if fn is None or getattr(fn, "oncorank_no_values", False):
            continue

        @functools.wraps(fn)
        def metric_fn(*args, _fn=fn, **kwargs):
            fmt = (kwargs.get("metric_value_kwargs") or {}).get("result_format") or {}
            if (isinstance(fmt, dict) and fmt.get("result_format") != "COMPLETE"
                    and fmt.get("partial_unexpected_count") == 0):
                return []
            return _fn(*args, **kwargs)

        metric_fn.oncorank_no_values = True
        definition["providers"]["SparkDFExecutionEngine"] = (cls, metric_fn)


def _same_query_for_same_suite() -> None:
    """Bundle GX's Spark aggregate metrics in a fixed order, so that one suite over one
    layout is the same Spark query every time.

    GX 1.24 collects a validation's aggregate metrics into one ``df.agg(...)`` in the order
    of a set of metric configurations, which changes from run to run. Each new order is a
    new query to Spark: its generated code compiled again (Janino) and the new class run
    cold until the JVM's JIT compiles it anew. In the same order, Spark reuses the compiled
    class and the JIT keeps its machine code: on one core, the ten aggregates of the bronze
    variants gate over 1M rows, 0.75 s a query in a new order each time, 0.40 s in the same
    order. Each metric still gets its own value (GX pairs them by id). Idempotent.
    """
    import functools

    from great_expectations.execution_engine import SparkDFExecutionEngine

    fn = SparkDFExecutionEngine.resolve_metric_bundle
    if getattr(fn, "oncorank_sorted", False):
        return

    @functools.wraps(fn)
    def resolve_metric_bundle(self, metric_fn_bundle):
        ordered = sorted(metric_fn_bundle, key=lambda c: repr(c.metric_configuration.id))
        return fn(self, ordered)

    resolve_metric_bundle.oncorank_sorted = True
    SparkDFExecutionEngine.resolve_metric_bundle = resolve_metric_bundle


def _context(settings) -> _Context:
    docs = settings.data_docs_path.absolute()
    key = str(docs)
    with _lock:
        if key not in _contexts:
            # Tests use a fresh lakehouse (and docs folder) each; keep only the latest few.
            while len(_contexts) >= 2:
                _contexts.pop(next(iter(_contexts)))
            _contexts[key] = _new_context(docs, results_store_path(settings))
        return _contexts[key]


def _expectation(spec: ExpectationSpec, kwargs: dict[str, Any]):
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    return ExpectationConfiguration(
        type=spec.type,
        kwargs=kwargs,
        meta={"oncorank_name": spec.name, "oncorank_severity": spec.severity,
              **({"notes": spec.notes} if spec.notes else {})},
        severity=GX_SEVERITY[spec.severity],
    ).to_domain_obj()


def _validation_definition(c: _Context, table: str, active: list[tuple[ExpectationSpec, dict]]):
    import great_expectations as gx

    signature = json.dumps([(s.name, s.severity, kw) for s, kw in active], sort_keys=True,
                           default=str)
    cached = c.validations.get(table)
    if cached and cached[0] == signature:
        return cached[1]
    if cached:  # the applicable set changed: replace suite and definition
        c.ctx.validation_definitions.delete(table)
        c.ctx.suites.delete(table)
    try:
        asset = c.datasource.get_asset(table)
    except LookupError:
        asset = c.datasource.add_dataframe_asset(table)
    try:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    suite = gx.ExpectationSuite(name=table, expectations=[_expectation(s, kw) for s, kw in active])
    suite = c.ctx.suites.add(suite)
    vd = c.ctx.validation_definitions.add(
        gx.ValidationDefinition(name=table, data=batch_definition, suite=suite))
    c.validations[table] = (signature, vd)
    return vd


@dataclass(frozen=True)
class GXResult:
    """What the gate needs from one expectation's GX result."""

    name: str
    success: bool
    observed_value: Any
    unexpected_count: int | None
    element_count: int | None
    error: str | None


def validate(settings, table: str, active: list[tuple[ExpectationSpec, dict]], df,
             parameters: dict[str, Any], run_name: str) -> tuple[dict[str, GXResult], Any]:
    """Run the table's suite (only ``active`` expectations) on the Spark frame ``df``.

    Returns the results by expectation name and the GX result identifier (for Data Docs).
    """
    from great_expectations.core.run_identifier import RunIdentifier

    if not active:
        return {}, None
    c = _context(settings)
    vd = _validation_definition(c, table, active)
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    result = vd.run(batch_parameters={"dataframe": df}, expectation_parameters=parameters,
                    result_format=RESULT_FORMAT, run_id=run_id)
    out: dict[str, GXResult] = {}
    for r in result.results:
        name = r.expectation_config.meta.get("oncorank_name")
        info = r.exception_info or {}
        error = info.get("exception_message") if info.get("raised_exception") else None
        res = r.result or {}
        out[name] = GXResult(
            name=name,
            success=bool(r.success) and error is None,
            observed_value=res.get("observed_value"),
            unexpected_count=res.get("unexpected_count"),
            element_count=res.get("element_count"),
            error=error,
        )
    return out, _result_identifier(vd, table, run_id)


def _result_identifier(vd, table: str, run_id):
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    batch_id = f"{DATASOURCE}-{table}"
    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=table),
        run_id=run_id,
        batch_identifier=batch_id,
    )


def build_docs(settings, identifiers: list) -> Path:
    """Render the pages of these validation results and the site index; returns the index."""
    c = _context(settings)
    if identifiers:
        c.ctx.build_data_docs(site_names=[SITE], resource_identifiers=identifiers)
    return data_docs_index(settings)


def page_for(settings, identifier) -> Path:
    """The Data Docs page of one validation result."""
    parts = identifier.to_tuple()
    suite_parts = identifier.expectation_suite_identifier.to_tuple()
    rest = parts[len(suite_parts):]
    return (settings.data_docs_path.absolute() / "validations" / Path(*suite_parts)
            / Path(*rest[:-1]) / f"{rest[-1]}.html")

"""Replay functions: how a stage re-reads rows it quarantined itself.

Rows the quality gate quarantined (rule ``gx:…``) hold the row exactly as it was about to be
written, so ``oncorank quarantine replay`` can re-validate them against the current suite
without help. Rows a stage rejected while *parsing* (a truncated VCF record, a FHIR resource
without a subject) hold the raw input instead; only the stage knows how to parse them, so it
registers a replay function here::

    from pipelines.quality.replay import register_replay

    @register_replay("bronze.variants_raw", keys=["variant_key"])
    def replay_vcf_records(spark, settings, rows):
        # rows: quarantine rows (quarantine_id, source, record_index, record, rule, reason)
        # return the rows the parser now accepts: quarantine_id + the target table's columns
        ...

Registrations happen when the stage module is imported; :func:`discover` imports every
``pipelines/<domain>/stage.py`` so the command line finds them.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("oncorank.quality")

ReplayFn = Callable[[SparkSession, object, DataFrame], DataFrame]


@dataclass(frozen=True)
class ReplayEntry:
    """A stage's replay function for one table, and the table's natural key."""

    table: str
    fn: ReplayFn
    keys: tuple[str, ...] = ()
    # Quarantine rules the function understands; None means every non-gate rule.
    rules: tuple[str, ...] | None = None

    def handles(self, rule: str) -> bool:
        return self.rules is None or rule in self.rules


_registry: dict[str, ReplayEntry] = {}


def register_replay(table: str, fn: ReplayFn | None = None, *, keys: list[str] | tuple = (),
                    rules: list[str] | tuple | None = None):
    """Register ``fn`` as the replay function for ``table`` (usable as a decorator)."""

    def deco(f: ReplayFn) -> ReplayFn:
        _registry[table] = ReplayEntry(table, f, tuple(keys),
                                       None if rules is None else tuple(rules))
        return f

    return deco(fn) if fn is not None else deco


def get_replay(table: str) -> ReplayEntry | None:
    return _registry.get(table)


def discover() -> None:
    """Import every ``pipelines.<domain>.stage`` module so its registrations run."""
    import pipelines

    for info in pkgutil.iter_modules(pipelines.__path__):
        if not info.ispkg:
            continue
        name = f"pipelines.{info.name}.stage"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the stage exists but one of its imports is missing
                log.warning("could not import %s: %s", name, exc)

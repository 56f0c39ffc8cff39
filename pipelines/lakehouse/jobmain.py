"""Shared entry point plumbing for ``jobs/<stage>.py``.

A Databricks python task calls ``jobs.<stage>.main(argv)``; the flags below are the same for
every stage, so the bundle passes one parameter list everywhere::

    --env prod --catalog main --schema-prefix onc_ [--config FILE] [--board-date 2026-12-03]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from pipelines.lakehouse.errors import OncorankError
from pipelines.lakehouse.settings import Settings


def common_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--env", choices=["local", "dev", "prod"])
    p.add_argument("--lakehouse", help="local lakehouse folder")
    p.add_argument("--catalog", help="Unity Catalog catalog (dev/prod)")
    p.add_argument("--schema-prefix", dest="schema_prefix")
    p.add_argument("--board-date", dest="board_date")
    p.add_argument("--reports-dir", dest="reports_dir")
    p.add_argument("--mlflow-uri", dest="mlflow_tracking_uri")
    p.add_argument("--parent-run-id", dest="parent_run_id",
                   help="id of the orchestrating run (the Databricks job run id)")
    p.add_argument("--debug", action="store_true", default=None)
    return p


def settings_from_args(ns: argparse.Namespace) -> Settings:
    keys = ("env", "lakehouse", "catalog", "schema_prefix", "board_date", "reports_dir",
            "mlflow_tracking_uri", "debug")
    return Settings.load(ns.config, {k: getattr(ns, k, None) for k in keys})


def job_main(
    stage: str,
    run: Callable[..., Any],
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse the common flags, start the session, run the stage; one clear line on error."""
    from pipelines.lakehouse.session import spark_session

    parser = common_parser(f"oncorank-{stage}")
    if add_arguments:
        add_arguments(parser)
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if ns.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = settings_from_args(ns)
        extra = {k: v for k, v in vars(ns).items() if k not in _COMMON}
        run(spark_session(settings), settings, parent_run_id=ns.parent_run_id, **extra)
    except OncorankError as exc:
        if ns.debug:
            raise
        print(f"oncorank {stage}: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


_COMMON = {"config", "env", "lakehouse", "catalog", "schema_prefix", "board_date", "reports_dir",
           "mlflow_tracking_uri", "debug", "parent_run_id"}

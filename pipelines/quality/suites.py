"""Expectation suites as data: ``expectations/<schema>.<table>.json``."""

from __future__ import annotations

import json
from importlib import resources


def load_suite(table_key: str) -> dict | None:
    path = resources.files("expectations").joinpath(f"{table_key}.json")
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def run_suite(run, df, ref, suite):  # replaced by the Great Expectations runner (issue 6)
    return df, None

"""Render report contexts to self-contained HTML, and place files safely.

Every page carries a Content-Security-Policy that forbids any fetch except inline styles and
``data:`` images, so a report opens (and prints) the same with or without a network, and a
value that slipped HTML into a field could not load anything. Jinja autoescaping is on.

>>> safe_report_name("3fa2c0d1e4b5a6978812")
'3fa2c0d1e4b5a6978812'
>>> safe_report_name("../../etc/passwd")
'etc_passwd-3754d6cb3a'
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pipelines.lakehouse.errors import ConfigError

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; " \
      "form-action 'none'"

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESERVED = {"index"}


def safe_report_name(patient_key: str) -> str:
    """A file stem for ``patient_key`` that cannot leave its folder.

    A pseudonymised key (hex) is used as is; anything else has every character outside
    ``[A-Za-z0-9_-]`` replaced and a hash of the original appended, so two odd keys never share
    a file.
    """
    key = str(patient_key)
    if _SAFE.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", key)[:40].strip("_") or "patient"
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def report_file(folder: Path, patient_key: str, suffix: str) -> Path:
    """``folder/<safe name><suffix>``, checked to lie inside ``folder``."""
    folder = Path(folder).resolve()
    path = (folder / f"{safe_report_name(patient_key)}{suffix}").resolve()
    if path.parent != folder:
        raise ConfigError(f"Refusing to write a report outside {folder} for id {patient_key!r}.")
    return path


def board_folder(reports_path: Path, board_date: str, care_team: bool = False) -> Path:
    """``reports_path/<board_date>/`` (``…/care-team/`` for the identified variant)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(board_date)):
        raise ConfigError(f"Board date {board_date!r} is not an ISO date (YYYY-MM-DD).")
    folder = Path(reports_path) / str(board_date)
    return folder / "care-team" if care_team else folder


# ---------------------------------------------------------------------------- formatting
def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_num(v, digits: int = 1) -> str:
    """Months and other quantities: one decimal, an en dash when missing."""
    return "–" if _missing(v) else f"{float(v):.{digits}f}"


def fmt_signed(v, digits: int = 1) -> str:
    if _missing(v):
        return "–"
    return f"{float(v):+.{digits}f}".replace("-", "−")


def fmt_pct(v) -> str:
    """A probability or fraction as a whole percentage."""
    return "–" if _missing(v) else f"{100 * float(v):.0f}%"


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("pipelines.reports", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt_num=fmt_num, fmt_signed=fmt_signed, fmt_pct=fmt_pct)
    return env


@cache
def stylesheet() -> Markup:
    """The report CSS, marked safe: a <style> element is raw text, so HTML-escaping its quotes
    would silently drop declarations such as font-family."""
    return Markup(environment().loader.get_source(environment(), "report.css")[0])


def render_report(context: dict) -> str:
    return environment().get_template("report.html").render(csp=CSP, css=stylesheet(), **context)


def render_index(context: dict) -> str:
    return environment().get_template("board_index.html").render(csp=CSP, css=stylesheet(),
                                                                 **context)

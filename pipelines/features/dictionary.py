"""The feature dictionary (``resources/features.yaml``): column meanings, FEATURES.md, comments.

>>> describe("kb_sensitive_osimertinib")["source"]
'silver.actionable_alterations'
>>> describe("egfr_mut_source")["name"]
'<flag>_source'
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

FEATURES_MD = Path(__file__).resolve().parent / "FEATURES.md"


@cache
def dictionary() -> dict:
    text = resources.files("pipelines.features.resources").joinpath("features.yaml").read_text()
    return yaml.safe_load(text)


def _pattern(name: str) -> re.Pattern:
    if name == "<gene flag>":
        return re.compile(r"^[a-z0-9]+_[a-z0-9_]+$")
    return re.compile("^" + re.sub(r"<[^>]+>", r"[A-Za-z0-9_]+", re.escape(name)
                                   .replace(r"\<", "<").replace(r"\>", ">")) + "$")


def describe(column: str) -> dict | None:
    """The dictionary entry documenting ``column`` (exact name first, then patterns)."""
    cols = dictionary()["columns"]
    for entry in cols:
        if entry["name"] == column:
            return entry
    for entry in cols:
        if "<" in entry["name"] and entry["name"] != "<gene flag>" and _pattern(
                entry["name"]).match(column):
            return entry
    return None


def comments(columns: list[str]) -> dict[str, str]:
    """Delta column comments for ``columns`` (passed-through gene flags get the generic one)."""
    generic = next(e for e in dictionary()["columns"] if e["name"] == "<gene flag>")
    out = {}
    for c in columns:
        entry = describe(c) or generic
        out[c] = f"{entry['meaning']} [source: {entry['source']}]"
    return out


def render_markdown() -> str:
    """FEATURES.md as generated from the dictionary."""
    d = dictionary()
    lines = [
        "# gold.patient_features — feature dictionary",
        "",
        "<!-- Generated from pipelines/features/resources/features.yaml by",
        "     `python -m pipelines.features.dictionary`; edit the YAML, not this file. -->",
        "",
        f"Table `{d['table']}`: {d['grain']}.",
        "",
        "How the features are built (`build-features` stage, `pipelines/features/stage.py`):",
        "",
        "* **Spine**: every patient of `silver.patients` (or, without it, every `patient_key` "
        "seen in the other inputs). Duplicate patient rows are quarantined, keeping the latest "
        "diagnosis.",
        "* **Missing inputs**: each silver input is read only if it exists; an absent table "
        "gives typed nulls, so the core columns below are always present.",
        "* **Time zero**: only facts dated on or before the patient's index date (start of "
        "first-line therapy) are used; a patient not treated yet is scored on every fact.",
        "* **Notes count when they state a result**: an affirmed finding sets a flag, a "
        "negated one clears it; pending, equivocal, indeterminate, possible, historical, "
        "hypothetical and family-history findings never set a feature "
        "(`resources/note_concepts.yaml` maps note concepts to features).",
        "* **Sources never silently overridden**: a sequenced position decides its own variant; "
        "a note that says otherwise, or notes that disagree with each other (then the flag is "
        "unknown), are listed in `biomarker_conflicts` with both sources. A biomarker found "
        "only in the notes of an unsequenced tumour still reaches the features; "
        "`<flag>_source` says whether it came from the VCF, the notes or both.",
        "* **Training rows** for the models are the rows with a `treatment` and an outcome "
        "(`os_months`, `os_event`); rows without one are kept for scoring.",
        "* **Not model inputs**: `patient_key`, `index_date`, `treatment`, the outcome columns, "
        "`biomarker_conflicts` and every `*_source` column.",
        "",
        "| column | type | source | meaning |",
        "|---|---|---|---|",
    ]
    for e in d["columns"]:
        meaning = str(e["meaning"]).replace("|", "\\|")
        lines.append(f"| `{e['name']}` | {e['type']} | {e['source']} | {meaning} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # regenerate FEATURES.md
    FEATURES_MD.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {FEATURES_MD}")

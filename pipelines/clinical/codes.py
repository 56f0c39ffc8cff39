"""Code lists of the clinical domain, loaded from the data files in ``resources/``.

The files are written the way the source papers print them ("I42.5-I42.9", "C00-C26", "I50");
this module expands them into plain, dot-free prefixes that a diagnosis code is matched against.

>>> expand_codes("I21, I25.2, N03.2-N03.4")
('I21', 'I252', 'N032', 'N033', 'N034')
>>> [c.column for c in charlson_components()][:3]
['cci_mi', 'cci_chf', 'cci_pvd']
>>> normalise_icd10(" e11.21 ")
'E1121'
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

_RESOURCES = "pipelines.clinical.resources"
_RANGE = re.compile(r"^([A-Z])(\d+)$")


def _text(name: str) -> str:
    return resources.files(_RESOURCES).joinpath(name).read_text(encoding="utf-8")


def _tsv(name: str) -> list[dict[str, str]]:
    """Rows of a TSV resource; lines starting with '#' are its citation block."""
    lines = [ln for ln in _text(name).splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter="\t"))


def normalise_icd10(code: str) -> str:
    """Upper case, no dots, no spaces: the form every prefix comparison uses."""
    return code.replace(".", "").replace(" ", "").strip().upper()


def expand_codes(spec: str | list[str]) -> tuple[str, ...]:
    """Expand a printed code list into dot-free prefixes (ranges become every code between)."""
    items = spec if isinstance(spec, list) else spec.split(",")
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if "-" not in item:
            out.append(normalise_icd10(item))
            continue
        lo, hi = (normalise_icd10(x) for x in item.split("-", 1))
        mlo, mhi = _RANGE.match(lo), _RANGE.match(hi)
        if not (mlo and mhi) or mlo.group(1) != mhi.group(1) or len(lo) != len(hi):
            raise ValueError(f"Cannot expand the code range {item!r}: the ends must share the "
                             "letter and the length (e.g. N03.2-N03.7).")
        width = len(mlo.group(2))
        start, stop = int(mlo.group(2)), int(mhi.group(2))
        if stop < start:
            raise ValueError(f"Code range {item!r} runs backwards.")
        out.extend(f"{mlo.group(1)}{n:0{width}d}" for n in range(start, stop + 1))
    return tuple(out)


@dataclass(frozen=True)
class Component:
    """One comorbidity component: its column, weight, prefixes and the milder one it replaces."""

    column: str
    label: str
    weight: int
    prefixes: tuple[str, ...]
    supersedes: str | None


def _components(name: str, weight_col: str) -> tuple[Component, ...]:
    return tuple(
        Component(
            column=row["column"],
            label=row["label"],
            weight=int(row[weight_col]),
            prefixes=expand_codes(row["icd10"]),
            supersedes=row["supersedes"] or None,
        )
        for row in _tsv(name)
    )


@cache
def charlson_components() -> tuple[Component, ...]:
    """Charlson components (Quan 2005 ICD-10 codes, Charlson 1987 weights)."""
    return _components("charlson_quan2005.tsv", "weight")


@cache
def elixhauser_components() -> tuple[Component, ...]:
    """Elixhauser components (Quan 2005 ICD-10 codes, van Walraven 2009 weights)."""
    return _components("elixhauser_quan2005.tsv", "vw_weight")


@cache
def snomed_to_icd10cm() -> dict[str, str]:
    """SNOMED CT concept id -> ICD-10-CM code (dotted, as in the tabular list)."""
    return {row["snomed_code"]: row["icd10cm"] for row in _tsv("snomed_icd10cm.tsv")}


@dataclass(frozen=True)
class ContraindicationRule:
    column: str
    label: str
    prefixes: tuple[str, ...]
    exclude: tuple[str, ...]
    note_concepts: tuple[str, ...]
    applies_to: dict


@cache
def contraindication_rules() -> tuple[ContraindicationRule, ...]:
    data = yaml.safe_load(_text("contraindications.yaml"))
    return tuple(
        ContraindicationRule(
            column=name,
            label=spec["label"],
            prefixes=expand_codes(spec.get("icd10") or []),
            exclude=expand_codes(spec.get("exclude_icd10") or []),
            note_concepts=tuple(c.lower() for c in spec.get("note_concepts") or []),
            applies_to=dict(spec.get("applies_to") or {}),
        )
        for name, spec in data["flags"].items()
    )


@cache
def note_contexts() -> tuple[str, ...]:
    return tuple(yaml.safe_load(_text("contraindications.yaml"))["note_contexts"])


@cache
def note_comorbidity_codes() -> dict[str, str]:
    """Lower-case note concept (category "comorbidity") -> the ICD-10-CM code it counts as
    (``note_comorbidities.tsv``)."""
    return {row["concept"].strip().lower(): row["icd10"].strip()
            for row in _tsv("note_comorbidities.tsv")}


@cache
def fhir_codes() -> dict:
    return yaml.safe_load(_text("fhir_codes.yaml"))


@cache
def drug_aliases() -> dict[str, str]:
    """Lower-case name or alias -> canonical ingredient, for catalog and other antineoplastics.

    The catalog's drug names are canonical; ``antineoplastics.tsv`` adds other L01/L02
    ingredients and aliases (USAN/INN spellings, "5-FU").
    """
    from pipelines.catalog import regimen_catalog

    aliases = {name.lower(): name.lower() for name in regimen_catalog().drugs}
    for row in _tsv("antineoplastics.tsv"):
        drug = row["drug"].strip().lower()
        aliases.setdefault(drug, drug)
        for alias in (row.get("aliases") or "").split(","):
            if alias.strip():
                aliases[alias.strip().lower()] = drug
    return aliases

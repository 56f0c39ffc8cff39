"""The regimen catalog (``pipelines/resources/regimens.yaml``) as typed objects.

>>> cat = regimen_catalog()
>>> [r.name for r in cat.for_cancer_type("NSCLC")][:2]
['platinum_pemetrexed', 'pembrolizumab']
>>> cat.standard_of_care("COADREAD").name
'folfox'
>>> cat.match_drugs("NSCLC", {"osimertinib"}).name
'osimertinib'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Requirement:
    """A label requirement: ``feature`` of gold.patient_features must be ``value``."""

    feature: str
    value: bool
    unmet: str      # what a board reads when the patient has the other value ("HER2-negative")
    unknown: str    # ... when the feature is unknown ("HER2 status unknown")


@dataclass(frozen=True)
class Label:
    """What a targeted regimen's label requires of the patient (regimens.yaml ``label``)."""

    source: str
    requires: tuple[Requirement, ...]
    prior_lines: int = 0


@dataclass(frozen=True)
class Regimen:
    name: str
    cancer_type: str
    drugs: tuple[str, ...]
    drug_class: str
    standard_of_care: bool = False
    label: Label | None = None


@dataclass(frozen=True)
class RegimenCatalog:
    version: str
    regimens: tuple[Regimen, ...]
    cancer_types: dict
    drugs: dict

    def for_cancer_type(self, cancer_type: str) -> list[Regimen]:
        return [r for r in self.regimens if r.cancer_type == cancer_type]

    def get(self, name: str) -> Regimen:
        for r in self.regimens:
            if r.name == name:
                return r
        raise KeyError(f"Unknown regimen {name!r}; see pipelines/resources/regimens.yaml.")

    def standard_of_care(self, cancer_type: str) -> Regimen:
        return next(r for r in self.for_cancer_type(cancer_type) if r.standard_of_care)

    def match_drugs(self, cancer_type: str | None, drugs: set[str]) -> Regimen | None:
        """The catalog regimen whose drug set equals ``drugs`` (best overlap otherwise).

        Matching prefers the patient's cancer type; a drug set that shares no drug with any
        regimen returns ``None`` (the line is kept, with ``treatment`` null).
        """
        drugs = {d.lower() for d in drugs}
        pool = self.for_cancer_type(cancer_type) if cancer_type else list(self.regimens)
        pool = pool or list(self.regimens)
        best, best_score = None, 0.0
        for r in pool:
            inter = len(drugs & set(r.drugs))
            if not inter:
                continue
            score = inter / len(drugs | set(r.drugs))
            if score > best_score:
                best, best_score = r, score
        return best

    def cancer_type_for_icd10(self, code: str) -> str | None:
        code = code.replace(".", "").upper()
        for ct, meta in self.cancer_types.items():
            if any(code.startswith(p) for p in meta.get("icd10_prefixes", [])):
                return ct
        return None

    def drug_for_rxcui(self, rxcui: str) -> str | None:
        for name, meta in self.drugs.items():
            if str(meta.get("rxcui")) == str(rxcui):
                return name
        return None


def _label(spec: dict | None) -> Label | None:
    if not spec:
        return None
    return Label(str(spec["source"]), tuple(
        Requirement(str(q["feature"]), bool(q["value"]), str(q["unmet"]), str(q["unknown"]))
        for q in spec.get("requires", [])), int(spec.get("prior_lines", 0)))


@cache
def regimen_catalog() -> RegimenCatalog:
    text = resources.files("pipelines.resources").joinpath("regimens.yaml").read_text()
    data = yaml.safe_load(text)
    regimens = tuple(
        Regimen(
            name=r["name"],
            cancer_type=r["cancer_type"],
            drugs=tuple(r["drugs"]),
            drug_class=r.get("class", ""),
            standard_of_care=bool(r.get("standard_of_care", False)),
            label=_label(r.get("label")),
        )
        for r in data["regimens"]
    )
    return RegimenCatalog(str(data["version"]), regimens, data["cancer_types"], data["drugs"])

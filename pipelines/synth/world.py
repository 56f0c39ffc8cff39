"""The generator's world: the resource files under ``pipelines/synth/resources`` as one object.

Three YAML files describe everything the simulation draws from: ``genome.yaml`` (GRCh38
contigs, driver alterations at their real positions, passenger genes), ``clinical.yaml``
(case mix, comorbidities, tumour biology, the outcome model with its planted treatment
effects, the treatment-choice model) and ``notes.yaml`` (lexicon and phrasing of notes).
Regimens and drugs come from the shared catalog, never from these files.

>>> w = load_world()
>>> w.candidates("MEL")[:2]
['nivolumab_ipilimumab', 'pembrolizumab_mel']
>>> w.drivers["KRAS_G12C"]["pos"]
25245351
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from pipelines.catalog import RegimenCatalog, regimen_catalog
from pipelines.lakehouse.errors import ConfigError


def _read_yaml(name: str) -> dict:
    text = resources.files("pipelines.synth.resources").joinpath(name).read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class World:
    genome: dict
    clinical: dict
    notes: dict
    catalog: RegimenCatalog

    @property
    def drivers(self) -> dict:
        return self.genome["drivers"]

    @property
    def cohort(self) -> dict:
        return self.clinical["cohort"]

    @property
    def contigs(self) -> list[str]:
        return list(self.genome["contigs"])

    def candidates(self, cancer_type: str) -> list[str]:
        """Regimen names the catalog lists for a cancer type, in catalog order."""
        return [r.name for r in self.catalog.for_cancer_type(cancer_type)]

    def standard_of_care(self, cancer_type: str) -> str:
        return self.catalog.standard_of_care(cancer_type).name

    def rxcui(self, drug: str) -> str:
        return str(self.catalog.drugs[drug]["rxcui"])

    def concept_category(self, concept: str) -> str:
        for category, concepts in self.notes["categories"].items():
            if concept in concepts:
                return category
        return "therapy"


def _check(world: World) -> None:
    """Fail fast when a resource file names a cancer type or regimen the catalog lacks."""
    catalog_types = set(world.catalog.cancer_types)
    mix = set(world.cohort["cancer_type_mix"])
    if not mix <= catalog_types:
        raise ConfigError(
            f"clinical.yaml cancer_type_mix names {sorted(mix - catalog_types)}, which the "
            f"regimen catalog does not list (it has {sorted(catalog_types)}); fix the YAML.")
    for section in ("treatment_effects", "treatment_choice"):
        for cancer_type, table in world.clinical[section].items():
            known = set(world.candidates(cancer_type))
            unknown = set(table) - known
            if unknown:
                raise ConfigError(
                    f"clinical.yaml {section}.{cancer_type} names regimens {sorted(unknown)} "
                    f"that pipelines/resources/regimens.yaml does not have; use catalog names.")
    for cancer_type in mix:
        missing = set(world.candidates(cancer_type)) - set(
            world.clinical["treatment_choice"].get(cancer_type, {}))
        if missing:
            raise ConfigError(
                f"clinical.yaml treatment_choice.{cancer_type} lacks {sorted(missing)}; every "
                f"catalog regimen needs a choice model so that it can be given.")


@cache
def load_world() -> World:
    world = World(_read_yaml("genome.yaml"), _read_yaml("clinical.yaml"),
                  _read_yaml("notes.yaml"), regimen_catalog())
    _check(world)
    return world

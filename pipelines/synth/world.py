"""The generator's world: the resource files under ``pipelines/synth/resources`` as one object.

Three YAML files describe everything the simulation draws from: ``genome.yaml`` (GRCh38
contigs, driver alterations at their real positions, passenger genes), ``clinical.yaml``
(case mix, comorbidities, tumour biology, the outcome model with its planted treatment
effects, the treatment-choice model) and ``notes.yaml`` (lexicon and phrasing of notes).
Regimens and drugs come from the shared catalog, never from these files.

A *scenario* (``resources/scenarios/<name>.yaml``) is a partial ``clinical.yaml`` deep-merged
over the default: it can change any parameter, and switches on the mechanisms of the
``mechanisms`` block (guideline-bound care, an unmeasured frailty, delayed effects and
treatment switching, informative missingness). ``default`` is today's world, unchanged.

>>> w = load_world()
>>> w.candidates("MEL")[:2]
['nivolumab_ipilimumab', 'pembrolizumab_mel']
>>> w.drivers["KRAS_G12C"]["pos"]
25245351
>>> load_world("guideline").mechanisms["choice_sharpness"] > 1
True
>>> scenario_names()[:2]
['default', 'guideline']
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from pipelines.catalog import RegimenCatalog, regimen_catalog
from pipelines.lakehouse.errors import ConfigError

SCENARIO_ORDER = ("default", "guideline", "unmeasured", "nonph", "informative-missing",
                  "realistic")


def _read_yaml(name: str) -> dict:
    text = resources.files("pipelines.synth.resources").joinpath(name).read_text()
    return yaml.safe_load(text)


def _scenario_files() -> dict[str, object]:
    folder = resources.files("pipelines.synth.resources").joinpath("scenarios")
    return {f.name.removesuffix(".yaml"): f for f in folder.iterdir()
            if f.name.endswith(".yaml")}


def scenario_names() -> list[str]:
    """Names ``oncorank synth --scenario`` accepts: ``default`` first, then the files."""
    found = {n for n in _scenario_files() if not n.startswith("_")} | {"default"}
    known = [n for n in SCENARIO_ORDER if n in found]
    return known + sorted(found - set(known))


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``: mappings merge key by key, anything else
    (numbers, lists, strings) replaces.

    >>> deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]})
    {'a': {'b': 1, 'c': 3}, 'd': [2]}
    """
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def scenario_overlay(name: str, _base: bool = False) -> dict:
    """The scenario file as written (``{}`` for ``default``); unknown names are refused."""
    if name == "default":
        return {}
    files = _scenario_files()
    if name not in files or (name.startswith("_") and not _base):
        raise ConfigError(f"Unknown scenario {name!r}; scenarios are: "
                          f"{', '.join(scenario_names())}.")
    data = yaml.safe_load(files[name].read_text()) or {}
    for base in data.pop("extends", []):
        data = deep_merge(scenario_overlay(base, _base=True), data)
    return data


@dataclass(frozen=True)
class World:
    genome: dict
    clinical: dict
    notes: dict
    catalog: RegimenCatalog
    scenario: str = "default"
    scenario_spec: dict | None = None

    @property
    def mechanisms(self) -> dict:
        """Scenario mechanisms (all off in the default world; see clinical.yaml)."""
        return self.clinical["mechanisms"]

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
def load_world(scenario: str = "default") -> World:
    """The generator's world under ``scenario`` (cached per name)."""
    overlay = scenario_overlay(scenario)
    clinical = deep_merge(_read_yaml("clinical.yaml"), overlay.get("clinical", {}))
    spec = {k: v for k, v in overlay.items() if k != "clinical"}
    world = World(_read_yaml("genome.yaml"), clinical, _read_yaml("notes.yaml"),
                  regimen_catalog(), scenario=scenario, scenario_spec=spec)
    _check(world)
    return world

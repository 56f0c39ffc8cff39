"""Rules the ranking attaches beside each option (never applies): evidence order and
contraindications.

* Evidence-level order: ``resources/evidence.yaml``.
* Contraindications: the ``ci_*`` flags of silver.comorbidities and the drugs each speaks
  against come from ONE rule file, ``pipelines/clinical/resources/contraindications.yaml``
  (label, ICD-10 codes, note concepts, ``applies_to`` drug → reason), read through
  :func:`pipelines.clinical.codes.contraindication_rules`. The ranking fires a flag for a
  regimen when the regimen contains a drug in the flag's ``applies_to`` and either the patient's
  comorbidity row has the flag set, or silver.note_findings holds one of the flag's note
  concepts in a counting context (affirmed or historical); the reason names the sources.
  Knowledge-base resistance markers are added from silver.actionable_alterations.

>>> book = rule_book()
>>> "osimertinib" in {d for f in book.flags if f.flag == "ci_ild" for d, _ in f.applies_to}
True
>>> book.level_rank("B") < book.level_rank("C") < book.level_rank("unheard-of")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class FlagRule:
    flag: str
    label: str
    applies_to: tuple[tuple[str, str], ...]  # (drug, why)
    note_concepts: tuple[str, ...]


@dataclass(frozen=True)
class RuleBook:
    version: str
    evidence_level_order: tuple[str, ...]
    flags: tuple[FlagRule, ...]
    note_contexts: tuple[str, ...]

    def level_rank(self, level: str | None) -> int:
        """Position of an evidence level (0 = strongest); unknown levels sort last."""
        order = [lv.lower() for lv in self.evidence_level_order]
        if level is None:
            return len(order) + 1
        try:
            return order.index(str(level).strip().lower())
        except ValueError:
            return len(order)


@cache
def rule_book() -> RuleBook:
    from pipelines.clinical.codes import contraindication_rules, note_contexts

    data = yaml.safe_load(resources.files("pipelines.ranking.resources")
                          .joinpath("evidence.yaml").read_text())
    flags = tuple(
        FlagRule(flag=r.column, label=r.label,
                 applies_to=tuple((str(d).lower(), str(why)) for d, why in r.applies_to.items()),
                 note_concepts=tuple(c.lower() for c in r.note_concepts))
        for r in contraindication_rules())
    return RuleBook(str(data["version"]), tuple(str(x) for x in data["evidence_level_order"]),
                    flags, tuple(c.lower() for c in note_contexts()))

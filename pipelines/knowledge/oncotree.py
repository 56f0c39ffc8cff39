"""The OncoTree tumour-type hierarchy (cBioPortal/oncotree, CC BY 4.0), for deciding whether
a knowledge-base indication covers a patient's tumour type.

>>> t = OncoTree({"TISSUE": None, "LUNG": "TISSUE", "NSCLC": "LUNG", "LUAD": "NSCLC"}, {})
>>> t.relation(evidence="NSCLC", patient="LUAD")
'ancestor'
>>> t.relation(evidence="LUAD", patient="NSCLC")
'descendant'
>>> t.relation(evidence="TISSUE", patient="LUAD")
'ancestor'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = "TISSUE"


@dataclass(frozen=True)
class OncoTree:
    parents: dict[str, str | None]
    names: dict[str, str]
    version: str = ""

    @classmethod
    def load(cls, path: Path) -> OncoTree:
        """Read an OncoTree JSON export (nested ``children`` from the ``TISSUE`` root)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        parents: dict[str, str | None] = {}
        names: dict[str, str] = {}
        stack = [(node, None) for node in data.values()]
        while stack:
            node, parent = stack.pop()
            code = node["code"]
            parents[code] = parent
            names[code] = node.get("name") or code
            stack.extend((child, code) for child in (node.get("children") or {}).values())
        version = Path(path).stem.replace("oncotree_", "")
        return cls(parents, names, version)

    @classmethod
    def minimal(cls) -> OncoTree:
        """A root-only tree, used when the OncoTree file is not available: only exact codes
        and tumour-agnostic (root) indications can then be related."""
        return cls({ROOT: None}, {ROOT: "Tissue"}, "none")

    def __contains__(self, code: object) -> bool:
        return code in self.parents

    def ancestors(self, code: str) -> list[str]:
        """``code`` and every ancestor up to the root (empty for an unknown code)."""
        out = []
        seen = set()
        while code is not None and code in self.parents and code not in seen:
            out.append(code)
            seen.add(code)
            code = self.parents[code]
        return out

    def relation(self, evidence: str | None, patient: str | None) -> str:
        """How an indication's tumour type relates to the patient's.

        ``exact``; ``ancestor`` (the indication is broader, e.g. a tumour-agnostic label);
        ``descendant`` (narrower, e.g. lung adenocarcinoma evidence for an NSCLC patient);
        ``none``; ``unknown`` when either side is missing or not in the tree.
        """
        if not evidence or not patient:
            return "unknown"
        if evidence == ROOT and patient not in self.parents:
            return "ancestor"
        if evidence not in self.parents or patient not in self.parents:
            return "unknown"
        if evidence == patient:
            return "exact"
        if evidence in self.ancestors(patient):
            return "ancestor"
        if patient in self.ancestors(evidence):
            return "descendant"
        return "none"

    def within(self, code: str | None, targets: list[str]) -> list[str]:
        """The ``targets`` that ``code`` falls under (self or ancestor), or, when it falls
        under none, the targets it is the nearest non-root ancestor of (``BREAST`` -> BRCA).
        """
        if not code:
            return []
        lineage = set(self.ancestors(code))
        hit = [t for t in targets if t in lineage]
        if hit or code == ROOT:
            return hit
        return [t for t in targets if code in self.ancestors(t)]

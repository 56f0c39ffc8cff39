"""What an FDA label asks of the patient beyond the alteration, and what that means for one
patient: the label context a board reads beside each on-label therapy.

A curated entry's ``label`` (``resources/curated_biomarkers.yaml``) names the line of therapy
(``line: first``, ``line: any``, or ``prior_lines: N`` with ``after``: the prior therapy as
the label words it), the co-requirements oncorank can check from the patient's features
(``requires``: hormone-receptor and HER2 status, RAS wild-type) and those it cannot
(``check``: germline origin, "no satisfactory alternative"), which the board confirms.

:func:`label_context` turns an entry's terms and one patient's features into one phrase, in
the order a board would rule an option out: a requirement the patient does not meet, one that
is unknown, a label for a later (or only the first) line, else "on label now". The ranking's
regimen labels (``regimens.yaml``; :func:`pipelines.ranking.steps.label_status`) use the same
words.

>>> terms = LabelTerms(line="later", prior_lines=1, after="endocrine therapy",
...                    requires=("HR-positive", "HER2-negative"))
>>> label_context(True, "sensitivity", terms, {"er_pos": True, "erbb2_amp": False,
...                                             "n_prior_lines": 1})
'on label now'
>>> label_context(True, "sensitivity", terms, {"er_pos": False, "erbb2_amp": False})
'requirement not met: HR-negative'
>>> label_context(True, "sensitivity", terms, {"erbb2_amp": False, "n_prior_lines": 0})
'requirement unknown: HR status unknown'
>>> label_context(True, "sensitivity", terms, {"er_pos": True, "erbb2_amp": False,
...                                             "n_prior_lines": 0})
'on label at a later line (after endocrine therapy)'
>>> label_context(False, "sensitivity", terms, {})
'off label'
>>> label_context(True, "resistance", None, {})
'evidence against, this tumour type'
>>> label_context(False, "sensitivity", None, {}, approved=False)
'no label (study evidence)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from pipelines.catalog import Requirement
from pipelines.lakehouse.errors import ConfigError

# silver.actionable_alterations.label_terms
LABEL_TERMS_DDL = ("struct<line: string, prior_lines: int, after: string, "
                   "requires: array<string>, check: array<string>>")


@dataclass(frozen=True)
class LabelTerms:
    """One label's terms: ``line`` is first, any or later (``prior_lines`` lines before,
    ``after`` what they were); ``requires`` names of :func:`requirements`; ``check`` what
    the board confirms."""

    line: str = "any"
    prior_lines: int = 0
    after: str | None = None
    requires: tuple[str, ...] = ()
    check: tuple[str, ...] = ()

    def as_row(self) -> tuple:
        return (self.line, self.prior_lines, self.after, list(self.requires), list(self.check))

    @classmethod
    def from_value(cls, value) -> LabelTerms | None:
        """From a ``label_terms`` value as Spark or pandas hands it back (Row, dict or
        None)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        d = value.asDict() if hasattr(value, "asDict") else dict(value)

        def texts(key: str) -> tuple[str, ...]:  # a list, or a numpy array via pandas
            items = d.get(key)
            return () if items is None else tuple(str(x) for x in items)

        return cls(line=str(d.get("line") or "any"), prior_lines=int(d.get("prior_lines") or 0),
                   after=d.get("after"), requires=texts("requires"), check=texts("check"))


@cache
def requirements() -> dict[str, Requirement]:
    """The named co-requirements of ``curated_biomarkers.yaml`` (``HR-positive``...)."""
    from pipelines.knowledge.kb import _resource

    spec = _resource("curated_biomarkers.yaml").get("requirements") or {}
    return {name: Requirement(str(q["feature"]), bool(q["value"]), str(q["unmet"]),
                              str(q["unknown"])) for name, q in spec.items()}


def parse_label(spec: dict | None, entry_id: str) -> LabelTerms | None:
    """An entry's ``label`` mapping; a requirement name that is not defined is a config
    error naming the entry."""
    if not spec:
        return None
    known = requirements()
    for name in spec.get("requires", []):
        if name not in known:
            raise ConfigError(f"Curated entry {entry_id}: label requirement {name!r} is not "
                              f"one of {', '.join(sorted(known))} (requirements: at the top "
                              "of curated_biomarkers.yaml).")
    prior = int(spec.get("prior_lines", 0))
    line = "later" if prior > 0 else str(spec.get("line", "any"))
    if line not in ("first", "any", "later"):
        raise ConfigError(f"Curated entry {entry_id}: label line {line!r} must be first or "
                          "any (or give prior_lines).")
    return LabelTerms(line=line, prior_lines=prior, after=spec.get("after"),
                      requires=tuple(spec.get("requires", [])),
                      check=tuple(spec.get("check", [])))


def _known(value) -> object | None:
    """A feature value, or None when it is missing (None, NaN, pandas NA)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):  # pandas NA refuses comparison
        return None
    return value


def label_context(on_label: bool | None, direction: str | None, terms: LabelTerms | None,
                  features: Mapping, approved: bool | None = True) -> str:
    """The label context of one knowledge-base match for one patient (module docstring).

    ``features``: the patient's gold.patient_features row (or the flags known so far), with
    ``n_prior_lines``; a feature that is absent or null is unknown. ``approved``: the
    evidence is a label or guideline at all (a clinical study is "no label", not "off
    label")."""
    if on_label is None:
        return "tumour type unknown"
    if not on_label:
        return "off label" if approved else "no label (study evidence)"
    if direction == "resistance":
        # A resistance statement is no label: level A here is a validated association (a
        # guideline, or a phase III trial without benefit), not an approval.
        return "evidence against, this tumour type"
    if terms is None:
        return "on label (line and co-requirements not curated)"
    known = requirements()
    unmet, unknown = [], []
    for name in terms.requires:
        req = known[name]
        have = _known(features.get(req.feature))
        if have is None:
            unknown.append(req.unknown)
        elif bool(have) != req.value:
            unmet.append(req.unmet)
    prior = _known(features.get("n_prior_lines"))
    if unmet:
        text = "requirement not met: " + ", ".join(unmet)
    elif unknown:
        text = "requirement unknown: " + ", ".join(unknown)
    elif terms.line == "first" and prior is not None and float(prior) > 0:
        n = int(float(prior))
        text = f"label is for first-line treatment ({n} prior line{'s' if n != 1 else ''})"
    elif terms.line == "later" and (prior is None or float(prior) < terms.prior_lines):
        after = terms.after or (f"{terms.prior_lines} prior line"
                                f"{'s' if terms.prior_lines != 1 else ''}")
        text = f"on label at a later line (after {after})"
        if prior is None:
            text += "; prior lines unknown"
    else:
        text = "on label now"
    if terms.check and not unmet:
        text += "; confirm: " + "; ".join(terms.check)
    return text


# How far each context is from "give it now": a board's order among the same therapy's
# evidence rows (a tumour-specific label before a tumour-agnostic one for a later line).
_CONTEXT_ORDER = ("on label now", "on label (line", "on label at a later line",
                  "label is for first-line", "requirement unknown", "on label (resistance",
                  "requirement not met", "off label", "no label", "tumour type unknown")


def context_rank(text: str) -> int:
    """Position of a :func:`label_context` phrase in :data:`_CONTEXT_ORDER`.

    >>> context_rank("on label now; confirm: x") < context_rank("requirement not met: y")
    True
    """
    return next((i for i, prefix in enumerate(_CONTEXT_ORDER) if text.startswith(prefix)),
                len(_CONTEXT_ORDER))

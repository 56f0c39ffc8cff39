"""Evidence tiers of the AMP/ASCO/CAP somatic-variant guideline (Li et al., J Mol Diagn
2017;19:4-23), from a knowledge-base row's evidence level and how its tumour type relates to the
patient's.

* Tier I, level A: FDA-approved therapy or professional guideline, this tumour type;
* Tier I, level B: well-powered clinical studies with expert consensus, this tumour type;
* Tier II, level C: level A/B evidence in another tumour type (an off-label use), or
  multiple small published studies with some consensus (CIViC level C, case studies) in this
  type;
* Tier II, level D: preclinical studies, case reports or inferential evidence (CIViC D/E), or
  case studies in another tumour type.

A tumour type "matches" when the evidence's disease is the patient's or a descendant of it
(``disease_match`` of silver.actionable_alterations), or an ancestor of it for an approval
(a tumour-agnostic label covers the patient's type); a study in "solid tumours" or "cancer"
that is no approval is evidence from other tumour types. An unknown match (no cancer type on
record) is treated as another tumour type: evidence is never promoted on what is not known.

>>> amp_tier("A", "exact"), amp_tier("A", "ancestor", approved=True), amp_tier("A", "none")
('IA', 'IA', 'IIC')
>>> amp_tier("B", "ancestor"), amp_tier("C", "exact"), amp_tier("C", "none")
('IIC', 'IIC', 'IID')
"""

from __future__ import annotations

TIER_ORDER = {"IA": 0, "IB": 1, "IIC": 2, "IID": 3}
TIER_TEXT = {"IA": "Tier I-A", "IB": "Tier I-B", "IIC": "Tier II-C", "IID": "Tier II-D"}


def amp_tier(level: str | None, disease_match: str | None, approved: bool = False) -> str:
    """The tier-and-level code (IA, IB, IIC, IID) of one piece of evidence; ``approved``:
    an FDA label or guideline statement (``on_label`` of the row)."""
    level = (level or "").strip().upper()
    in_type = disease_match in ("exact", "descendant") or (
        disease_match == "ancestor" and approved)
    if level in ("A", "B"):
        return f"I{level}" if in_type else "IIC"
    if level == "C" and in_type:
        return "IIC"
    return "IID"

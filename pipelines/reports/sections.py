"""Pure builders of the report's sections: plain rows (dicts) in, template context out.

Nothing here reads a table or a file; :mod:`pipelines.reports.stage` collects the rows.
Every number leaves with its unit, every missing input with a sentence saying what is missing.

>>> age_text({"age_at_diagnosis": 63})
'63 years at diagnosis'
>>> humanise("cci_chronic_pulmonary")
'chronic pulmonary'
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources

import yaml

from pipelines.catalog import RegimenCatalog
from pipelines.clinical.codes import charlson_components
from pipelines.genomics.proteins import beyond_protein, protein_lengths
from pipelines.knowledge.labels import LabelTerms, context_rank, label_context
from pipelines.knowledge.tiers import TIER_ORDER, TIER_TEXT, amp_tier


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _val(v):
    return None if _missing(v) else v


def humanise(name: str) -> str:
    """A column name as words (prefix such as ``cci_``/``ci_``/``elix_`` dropped)."""
    name = re.sub(r"^(cci|ci|elix|feat|nlp|bm|gene)_", "", str(name))
    return name.replace("_", " ").strip()


@cache
def driver_genes() -> tuple[set[str], tuple[str, ...]]:
    text = (resources.files("pipelines.reports.resources").joinpath("driver_genes.yaml")
            .read_text())
    data = yaml.safe_load(text)
    return {g.upper() for g in data["genes"]}, tuple(data["protein_altering"])


# ---------------------------------------------------------------------------- header
def age_text(patient: dict | None) -> str:
    patient = patient or {}
    age = _val(patient.get("age_at_diagnosis"))
    if age is not None:
        # HIPAA Safe Harbor: an exact age over 89 identifies; it is never shown.
        return "90 or older at diagnosis" if age >= 90 else f"{int(age)} years at diagnosis"
    return "not recorded"


# silver.patients.stage_source -> how the header names it
STAGE_SOURCES = {"csv": "clinical CSV", "fhir condition": "FHIR Condition",
                 "fhir observation": "FHIR Observation", "note": "clinical note",
                 "metastasis codes": "inferred from metastasis codes"}


def header_context(key: str, patient: dict | None, features: dict | None, board_date: str,
                   catalog: RegimenCatalog, identity: dict | None = None) -> dict:
    """Who the patient is. ``identity`` (name, MRN) only for the care-team variant."""
    patient = patient or {}
    features = features or {}

    def pick(name):
        v = _val(patient.get(name))
        return v if v is not None else _val(features.get(name))

    cancer = pick("cancer_type") or "unknown"
    ecog = pick("ecog")
    out = {
        "key": key,
        "age_text": age_text(patient or features),
        "sex": pick("sex"),
        "cancer_type": cancer,
        "cancer_type_name": catalog.cancer_types.get(cancer, {}).get("name", cancer),
        "stage": pick("stage"),
        "stage_source": STAGE_SOURCES.get(pick("stage_source") or "", pick("stage_source")),
        "ecog": int(ecog) if isinstance(ecog, int | float) else ecog,
        "board_date": board_date,
        "age": _val(patient.get("age_at_diagnosis")),
    }
    if identity is not None:
        out["name"] = identity.get("name")
        out["mrn"] = identity.get("mrn")
    return out


# ---------------------------------------------------------------------------- options
def _is_ranked(r: dict) -> bool:
    status = r.get("rank_status")
    return _val(r.get("rank")) is not None and (status is None or status == "ranked")


def options_context(rankings: list[dict], catalog: RegimenCatalog) -> list[dict]:
    """The options table: ranked options in rank order, then those the ranking abstained on
    (``ranked`` false, by name), each with the reason in ``rank_status``."""
    out = []
    ordered = sorted(rankings, key=lambda r: (not _is_ranked(r),
                                              _val(r.get("rank")) or 0, str(r["treatment"])))
    for r in ordered:
        try:
            regimen = catalog.get(r["treatment"])
            drugs = " + ".join(regimen.drugs)
        except KeyError:
            drugs = ""
        o = {k: _val(v) for k, v in r.items()}
        o["drugs"] = drugs
        o["is_soc"] = r.get("treatment") == r.get("standard_of_care")
        found = r.get("contraindications")
        o["contraindications"] = [] if found is None else [str(c) for c in found]
        ids = r.get("evidence_ids")  # a numpy array when read via pandas
        o["evidence_ids"] = [] if _missing(ids) else [str(i) for i in ids]
        o["overlap_warning"] = bool(r.get("overlap_warning"))
        o["ranked"] = _is_ranked(r)
        # a nullable rank column arrives as float: 1, not 1.0
        o["rank"] = int(o["rank"]) if o["ranked"] else None
        o["rank_status"] = r.get("rank_status") or ("ranked" if o["ranked"] else "not ranked")
        out.append(o)
    return out


def ranked_options(options: list[dict]) -> list[dict]:
    """The options that carry a rank number, in rank order."""
    return [o for o in options if o["ranked"]]


def ranking_notice(options: list[dict], card: dict) -> str:
    """One sentence when the ranking abstains for this patient as a whole: nothing ranked (the
    cohort too small, or no option with comparable patients), or only the standard of care."""
    ranked = ranked_options(options)
    if not options or (ranked and not all(o["is_soc"] for o in ranked)):
        return ""
    cohort = card.get("training_cohort") or {}
    n, d = cohort.get("n_patients"), cohort.get("n_events")
    trained = (f"the model was trained on {int(n)} patients ({int(d)} deaths)"
               if n is not None and d is not None else "the model's training cohort")
    if ranked:
        return (f"Only the standard of care ({ranked[0]['treatment']}) has enough comparable "
                "treated patients to be estimated for this patient; the other options are "
                "listed without a rank.")
    if all(o["rank_status"] == "too few treated patients in training" for o in options):
        return (f"The cohort is too small to rank: {trained}, and no candidate regimen for "
                "this cancer type was received by enough patients with enough deaths to "
                "estimate its survival. The options are listed with their evidence, without "
                "a rank.")
    return ("No option can be ranked for this patient: none was received by enough patients "
            "comparable to this one. The options are listed with their evidence, without a "
            "rank.")


def close_call(options: list[dict]) -> bool:
    """True when the runner-up's predicted RMST lies inside the top option's interval: the
    order of the two is within the model's uncertainty."""
    options = ranked_options(options)
    if len(options) < 2:
        return False
    lower, second = options[0].get("rmst_lower"), options[1].get("predicted_rmst")
    return lower is not None and second is not None and second >= lower


def red_flags(options: list[dict], drift: dict, quality: dict,
              conflicts: str | None = None) -> list[str]:
    """Short flags for the header and the board index (top option first; then sources that
    disagree on a biomarker, each with both sources)."""
    flags = []
    ranked = ranked_options(options)
    if ranked:
        top = ranked[0]
        flags.extend(top["contraindications"])  # each names the drug it speaks against
        if top["overlap_warning"]:
            flags.append(f"{top['treatment']}: poor overlap (few similar patients treated)")
        if str(top.get("label_status") or "").startswith("requirement "):
            flags.append(f"{top['treatment']}: {top['label_status']} (no option can be "
                         "given on label now)")
    for c in str(conflicts or "").split(" | "):
        if c.strip():
            flags.append("sources disagree: " + c.strip())
    if drift.get("drifted"):
        flags.append("population drift: " + ", ".join(drift["drifted"][:4]))
    if not quality.get("ok", True):
        flags.append("data-quality check failed")
    return flags


# ---------------------------------------------------------------------------- genomics
def vcf_record(v: dict) -> str:
    """The VCF record a variant came from, as a reader finds it again: "chr7:55191822 T>G"
    (the sample name is left out: a file's sample column may carry a source id)."""
    return f"{v.get('chrom')}:{v.get('pos')} {v.get('ref')}>{v.get('alt')}"


def genomics_context(actionable: list[dict] | None, biomarkers: dict | None,
                     variants: list[dict] | None, features: dict | None = None) -> dict:
    """Actionable alterations and other driver variants, each with the VCF record(s) it
    comes from (``variants`` holds silver.variants rows of the patient, ``variant_key`` keyed)
    and, for a label, its context for this patient (``features``: the patient's
    gold.patient_features row).
    """
    genes, altering = driver_genes()
    out: dict = {"actionable": [], "actionable_more": [], "drivers": [], "flags": [],
                 "annotation_errors": []}
    records = {v.get("variant_key"): vcf_record(v) for v in variants or []}
    if actionable is None:
        out["actionable_missing"] = "Knowledge-base matching has not run (no " \
                                    "silver.actionable_alterations table)."
    else:
        tiered = tiered_evidence(actionable, records, features or {})
        out["actionable"] = [e for e in tiered if e["tier"] in ("IA", "IB")]
        out["actionable_more"] = [e for e in tiered if e["tier"] not in ("IA", "IB")]
        out["actionable_missing"] = (
            "No tier I evidence (level A or B in this tumour type) for this patient's "
            "alterations." if tiered else
            "No actionable alteration matched the knowledge base.")
    if biomarkers and _val(biomarkers.get("tmb")) is not None:
        out["tmb_text"] = f"{float(biomarkers['tmb']):.1f} mutations/Mb"
    else:
        out["tmb_text"] = "not available"
    for k, v in sorted((biomarkers or {}).items()):
        if k in ("patient_key", "tmb") or _missing(v):
            continue
        if isinstance(v, bool) and v:
            out["flags"].append(humanise(k))
    actionable_genes = {str(a.get("gene")).upper() for a in actionable or []}
    if variants is None:
        out["drivers_missing"] = "Variant calls are not available (no silver.variants table)."
    else:
        for v in variants:
            gene = str(v.get("gene") or "").upper()
            consequence = str(v.get("consequence") or "")
            if gene not in genes or gene in actionable_genes:
                continue
            if str(v.get("filter") or "PASS").upper() not in ("PASS", "."):
                continue
            if not any(term in consequence for term in altering):
                continue
            if beyond_protein(gene, v.get("protein_position")):
                # An impossible residue is an annotation error, never a finding to act on.
                out["annotation_errors"].append(
                    f"{gene} {v.get('hgvsp') or ''} names residue {v.get('protein_position')} "
                    f"of a {protein_lengths()[gene]}-residue protein: annotation not shown; "
                    "check the VCF's transcript and annotation.")
                continue
            out["drivers"].append({"gene": gene, "hgvsp": v.get("hgvsp") or v.get("hgvsc") or "",
                                   "consequence": consequence.replace("_", " ").replace("&", ", "),
                                   "vaf": _val(v.get("vaf")), "dp": _val(v.get("dp")),
                                   "source": "VCF " + vcf_record(v)})
        out["drivers"].sort(key=lambda d: (d["gene"], str(d["hgvsp"])))
        out["drivers_missing"] = "No other protein-altering PASS variant in a cancer gene."
    return out


def tiered_evidence(actionable: list[dict], records: dict, features: dict | None = None
                    ) -> list[dict]:
    """One row per (gene, the patient's alteration, therapy, direction): its best evidence,
    with its AMP/ASCO/CAP tier (:func:`pipelines.knowledge.tiers.amp_tier`), its label
    context for this patient (:func:`pipelines.knowledge.labels.label_context`) and the
    number of other evidence rows merged into it; tier I first, sensitivity before
    resistance."""
    best: dict[tuple, dict] = {}
    merged: dict[tuple, int] = {}
    for a in actionable:
        on_label = _val(a.get("on_label"))
        # on label implies the patient's tumour type (a table written before disease_match)
        match = _val(a.get("disease_match")) or ("exact" if on_label is True else None)
        tier = amp_tier(_val(a.get("evidence_level")), match, approved=on_label is True)
        # The patient's own change ("E545K") names the row: knowledge-base entries that name
        # it differently ("E545", "Mutation") are the same finding for the board.
        listed = _val(a.get("patient_alterations"))  # a numpy array when read via pandas
        mine = sorted(str(x) for x in (listed if listed is not None else ()))
        alteration = ", ".join(mine) if mine else a.get("alteration")
        # One therapy however the sources spell it ("Binimetinib + Encorafenib" in CIViC,
        # "Encorafenib + Binimetinib" on the label): merged by its set of drugs.
        drugs = _val(a.get("drugs"))
        same = (frozenset(str(d).lower() for d in drugs) if drugs is not None and len(drugs)
                else str(a.get("therapy")))
        key = (a.get("gene"), alteration, same, a.get("direction"))
        row = {"gene": a.get("gene"), "alteration": alteration,
               "therapy": a.get("therapy"), "direction": a.get("direction"),
               "evidence_level": a.get("evidence_level"), "tier": tier,
               "tier_text": TIER_TEXT[tier], "disease": a.get("disease"),
               "label": "" if on_label is None else ("on-label" if on_label else "off-label"),
               "label_context": "" if on_label is None else label_context(
                   on_label, a.get("direction"), LabelTerms.from_value(_val(a.get("label_terms"))),
                   features or {}, approved=_val(a.get("approved")) is not False),
               "vaf": _val(a.get("vaf")), "citation": a.get("citation"),
               "source": _actionable_source(a, records)}
        merged[key] = merged.get(key, -1) + 1
        # Best first: tier, then on label, then the curated label entry (an FDA label, not
        # the trial behind it), level, citation.
        # A label whose terms are curated says what it asks of the patient: it speaks for the
        # row before evidence that cannot (a CIViC item), then the one nearest to "now".
        row["_rank"] = (TIER_ORDER[tier], row["label"] != "on-label",
                        _val(a.get("label_terms")) is None,
                        context_rank(row["label_context"]), a.get("source") != "curated", str(row["evidence_level"]),
                        str(row["citation"]))
        if key not in best or row["_rank"] < best[key]["_rank"]:
            best[key] = row
    order = {"sensitivity": 0, "resistance": 1}
    out = []
    for key, row in best.items():
        row["more_evidence"] = merged[key]
        del row["_rank"]
        out.append(row)
    return sorted(out, key=lambda r: (TIER_ORDER[r["tier"]], order.get(str(r["direction"]), 2),
                                      str(r["gene"]), str(r["therapy"])))


def _actionable_source(a: dict, records: dict) -> str:
    """Where an actionable alteration comes from: its VCF record(s), or the patient-level
    measure (TMB, MSI) of the VCF stage."""
    keys = _val(a.get("variant_keys"))
    found = [records[k] for k in (list(keys) if keys is not None else []) if k in records]
    if found:
        return "VCF " + "; ".join(sorted(found))
    kind = str(_val(a.get("match_kind")) or "").replace("_", " ")
    return f"VCF, patient-level ({kind})" if kind else "VCF"


def observations_context(rows: list[dict] | None, index_date=None) -> list[dict]:
    """FHIR biomarker Observations of the patient (silver.biomarker_observations), newest
    first, each with its Observation id; those after the index date are marked (they are not
    model inputs)."""
    out = []
    for r in sorted(rows or [], key=lambda r: str(r.get("obs_date") or ""), reverse=True):
        when = _val(r.get("obs_date"))
        out.append({"concept": r.get("concept"), "status": r.get("context"),
                    "value": value_text(r.get("value"), r.get("comparator")),
                    "date": when, "observation_id": r.get("observation_id"),
                    "after_index": bool(index_date is not None and when is not None
                                        and str(when) > str(index_date))})
    return out


# ---------------------------------------------------------------------------- notes
CONTEXT_ORDER = {"affirmed": 0, "negated": 1, "pending": 2, "equivocal": 3, "indeterminate": 4,
                 "historical": 5, "possible": 6, "hypothetical": 7, "family": 8}
_COMPARATOR_TEXT = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def value_text(value, comparator) -> str:
    """A stated value as the report shows it: "<50", "≥50", "1–49", "80"."""
    if _missing(value):
        return ""
    if comparator == "range":
        return str(value).replace("-", "–")
    return _COMPARATOR_TEXT.get(str(comparator or ""), "") + str(value)


def notes_context(findings: list[dict] | None, index_date=None, limit: int = 40
                  ) -> tuple[list[dict], str]:
    """Note findings with their status, stated value and de-identified sentence (never the
    note text). Facts of notes dated after the index date come last and are marked: they are
    not features (time zero) but a board should see them."""
    if findings is None:
        return [], "Notes have not been processed (no silver.note_findings table)."
    index = str(index_date) if index_date and not _missing(index_date) else None

    def after(f) -> bool:
        return bool(index and f.get("note_date") and str(f["note_date"]) > index)

    rows = []
    seen = set()
    for f in sorted(findings, key=lambda f: (after(f),
                                             CONTEXT_ORDER.get(str(f.get("context")), 9),
                                             str(f.get("category")), str(f.get("concept")),
                                             str(f.get("note_date")), str(f.get("finding_id")))):
        key = (f.get("concept"), f.get("value"), f.get("context"), f.get("snippet"))
        if key in seen:
            continue
        seen.add(key)
        rows.append({"concept": f.get("concept"), "category": f.get("category") or "",
                     "value": value_text(f.get("value"), f.get("comparator")),
                     "context": f.get("context"), "note_type": f.get("note_type") or "",
                     "note_date": str(f["note_date"]) if f.get("note_date") else "",
                     "after_index": after(f), "snippet": f.get("snippet") or ""})
    return rows[:limit], "No findings were extracted from this patient's notes."


# ---------------------------------------------------------------------------- comorbidities
def comorbidity_context(row: dict | None, table_exists: bool) -> dict:
    if row is None:
        return {"available": False,
                "missing": "Comorbidities have not been computed (no silver.comorbidities "
                           "table)." if not table_exists else
                           "No comorbidity record for this patient."}
    noted = _val(row.get("note_components"))  # a numpy array when read through pandas
    from_notes = set() if noted is None else {str(c) for c in noted}
    labels = {c.column: c.label for c in charlson_components()}
    conditions = [labels.get(k, humanise(k)) + (" (clinical note)" if k in from_notes else "")
                  for k, v in sorted(row.items())
                  if k.startswith("cci_") and not _missing(v) and bool(v)]
    ci = [humanise(k) for k, v in sorted(row.items())
          if k.startswith("ci_") and not _missing(v) and bool(v)]
    charlson = _val(row.get("charlson_index"))
    elix = _val(row.get("elixhauser_vw"))
    return {"available": True, "charlson": "not computed" if charlson is None else int(charlson),
            "elixhauser": None if elix is None else int(elix), "conditions": conditions,
            "ci_flags": ci}


# ---------------------------------------------------------------------------- why
def _fmt_value(v) -> str:
    """A feature value for people: yes/no for flags, no trailing .0, two decimals at most.

    >>> [_fmt_value(x) for x in (True, "False", "84.0", 0.125, "III", None)]
    ['yes', 'no', '84', '0.12', 'III', 'missing']
    """
    if _missing(v) or v == "nan":
        return "missing"
    if isinstance(v, str):
        if v in ("True", "False"):
            return "yes" if v == "True" else "no"
        try:
            v = float(v)
        except ValueError:
            return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        v = float(v)
        return f"{v:.0f}" if v.is_integer() else f"{v:.2f}"
    return str(v)


def why_context(options: list[dict], explanations: dict[str, list[dict]],
                labels: dict[str, str], top_n: int = 2) -> list[dict]:
    """Top drivers (SHAP) of the prediction for the ``top_n`` options."""
    out = []
    for o in ranked_options(options)[:top_n]:
        rows = explanations.get(o["treatment"], [])
        biggest = max([abs(float(r["contribution"])) for r in rows
                       if not _missing(r.get("contribution"))] or [0.0])
        drivers = []
        for r in sorted(rows, key=lambda r: -abs(float(r.get("contribution") or 0.0))):
            c = _val(r.get("contribution"))
            if c is None:
                continue
            description = labels.get(r["feature"]) or ""
            drivers.append({"label": humanise(r["feature"]),
                            "description": description if len(description) <= 120 else
                            description[:117] + "…",
                            "value": _fmt_value(_val(r.get("value"))), "contribution": float(c),
                            "positive": float(c) >= 0,
                            "width": 0 if biggest == 0 else round(100 * abs(float(c)) / biggest)})
        scale = next((r.get("scale") for r in rows if r.get("scale")), None)
        out.append({"treatment": o["treatment"], "rank": o["rank"],
                    "predicted_rmst": o.get("predicted_rmst"), "drivers": drivers,
                    "unit": CONTRIBUTION_UNITS.get(str(scale), str(scale or "model units")),
                    "missing": "The model gave no explanation for this option."})
    return out


# ---------------------------------------------------------------------------- model card
# Model card fields: pipelines.models.registry.build_card.
FAMILY_NAMES = {"coxph": "Cox proportional hazards", "rsf": "random survival forest",
                "gbsa": "gradient-boosted survival model", "xgb_cox": "XGBoost (Cox objective)",
                "xgb_aft": "XGBoost (accelerated failure time)",
                "xgb_spark_cox": "XGBoost on Spark (Cox objective)"}
CONTRIBUTION_UNITS = {
    "log_hazard": "log hazard ratio, sign flipped: + means longer predicted survival",
    "log_time": "log survival time: + means longer predicted survival",
    "rmst": "months of predicted RMST",
}


def _num(v):
    return None if v is None or _missing(v) else float(v)


def _age_in_band(age: float, band: str) -> bool:
    """Whether ``age`` falls in a band label such as ``<50``, ``50-64`` or ``75+``."""
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", band)]
    if not nums:
        return False
    if band.strip().startswith("<"):
        return age < nums[0]
    if band.strip().endswith("+"):
        return age >= nums[0]
    if len(nums) >= 2:
        return nums[0] <= age < nums[1] + 1
    return False


def subgroup_lines(card: dict, patient: dict) -> list[str]:
    """Validation Harrell's C in each subgroup the patient belongs to (card
    ``subgroup_c_index``: records of subgroup, level, n, events, harrell_c)."""
    values = {"cancer_type": patient.get("cancer_type"), "sex": patient.get("sex"),
              "stage": patient.get("stage")}
    lines = []
    for e in card.get("subgroup_c_index") or []:
        group, level = str(e.get("subgroup")), str(e.get("level"))
        if group == "age_band":
            age = patient.get("age")
            mine = age is not None and _age_in_band(float(age), level)
        else:
            mine = values.get(group) is not None and str(values[group]) == level
        if not mine:
            continue
        n, events, c = e.get("n"), e.get("events"), _num(e.get("harrell_c"))
        size = f"{int(n)} validation patients, {int(events or 0)} deaths" if n is not None else ""
        label = humanise(group).capitalize()
        if c is None:
            lines.append(f"{label} {level}: too few deaths to measure ({size})")
        else:
            lines.append(f"{label} {level}: Harrell's C {c:.2f} ({size})")
    return lines


def interval_text(n_configured, n_refits, method: str | None = "bootstrap") -> str:
    """What the intervals come from, with the refits that succeeded when fewer than asked.

    >>> interval_text(200, 197)
    '95% bootstrap percentile intervals from 197 refits (3 of 200 failed)'
    >>> interval_text(200, 200, "wald")
    "95% percentile intervals from 200 draws of the Cox model's coefficients (Wald)"
    >>> interval_text(0, 0)
    'no interval: the model was trained without bootstrap refits'
    """
    n_refits = _num(n_refits)
    n_conf = _num(n_configured)
    if n_refits is None:
        n_refits = n_conf
    if not n_refits:
        return "no interval: the model was trained without bootstrap refits"
    if method == "wald":
        return (f"95% percentile intervals from {int(n_refits)} draws of the Cox model's "
                "coefficients (Wald)")
    text = f"95% bootstrap percentile intervals from {int(n_refits)} refits"
    if n_conf is not None and n_conf > n_refits:
        text += f" ({int(n_conf - n_refits)} of {int(n_conf)} failed)"
    return text


def card_context(card: dict, champion_meta: dict, scored: dict, patient: dict) -> dict:
    """The model-card rows of the report."""
    cohort = card.get("training_cohort") or {}
    val = card.get("validation") or {}
    parts = []
    if cohort.get("n_patients") is not None:
        parts.append(f"{int(cohort['n_patients'])} patients")
    if cohort.get("n_events") is not None:
        parts.append(f"{int(cohort['n_events'])} deaths")
    lo, hi = (list(cohort.get("index_date_range") or []) + [None, None])[:2]
    if lo and hi:
        parts.append(f"index dates {lo} to {hi}")
    counts = cohort.get("treatment_counts") or {}
    events = cohort.get("treatment_events") or {}
    validation = []
    for key, label, fmt in (("harrell_c", "Harrell's C", "{:.2f}"), ("uno_c", "Uno's C", "{:.2f}"),
                            ("integrated_brier", "integrated Brier score", "{:.3f}"),
                            ("td_auc", "time-dependent AUC", "{:.2f}")):
        if _num(val.get(key)) is not None:
            validation.append(f"{label} {fmt.format(float(val[key]))}")
    if val.get("n") is not None:
        validation.append(f"on {int(val['n'])} held-out patients")
    calib = []
    pred, obs = _num(val.get("predicted_surv_horizon")), _num(val.get("observed_surv_horizon"))
    if pred is not None and obs is not None:
        calib.append(f"predicted survival {100 * pred:.0f}% vs observed (Kaplan-Meier) "
                     f"{100 * obs:.0f}%")
    if _num(val.get("calibration_ici")) is not None:
        calib.append(f"integrated calibration index {float(val['calibration_ici']):.3f}")
    family = FAMILY_NAMES.get(str(card.get("model_family")), str(card.get("model_family") or
                                                                  "not recorded"))
    if card.get("learner"):
        family += f", {card['learner']}"
    n_boot = card.get("n_bootstrap")
    mismatch = ""
    if scored.get("model_version") and str(scored["model_version"]) != str(
            champion_meta.get("version")):
        mismatch = (f"Rankings were scored with version {scored['model_version']}; curves and "
                    f"explanations come from the current champion, version "
                    f"{champion_meta.get('version')}. Re-run `score` for this board date.")
    return {
        "name": champion_meta.get("name"), "version": champion_meta.get("version"),
        "run_id": scored.get("mlflow_run_id") or champion_meta.get("run_id"),
        "family": family,
        "scored_at": scored.get("scored_at") or "unknown",
        "cohort_text": ", ".join(parts) or "not recorded",
        "treatment_counts": ", ".join(
            f"{k} {int(v)}" + (f" ({int(events[k])} deaths)" if k in events else "")
            for k, v in sorted(counts.items())),
        "validation_text": ", ".join(validation) or "not recorded",
        "calibration_text": "; ".join(calib) or "not recorded",
        "subgroups": subgroup_lines(card, patient),
        "version_mismatch": mismatch,
        "interval_text": interval_text(n_boot, scored.get("n_refits"),
                                       card.get("interval_method") or "bootstrap"),
        "estimand": card.get("estimand") or "",
        "limitations": card.get("limitations") or _limitations(),
    }


def _limitations() -> str:
    """A model card from before cards named their limitations gets today's text."""
    from pipelines.models.registry import LIMITATIONS

    return LIMITATIONS


# ---------------------------------------------------------------------------- board-level status
def drift_context(rows: list[dict] | None) -> dict:
    if rows is None:
        return {"available": False, "drifted": [],
                "missing": "Drift has not been computed for this board date."}
    if not rows:
        return {"available": False, "drifted": [],
                "missing": "Drift has not been computed for this board date."}
    drifted = sorted(str(r["feature"]) for r in rows if r.get("drifted"))
    return {"available": True, "drifted": drifted, "n_features": len(rows)}


def quality_context(data_quality: list[dict] | None, job_runs: list[dict] | None) -> dict:
    """Data-quality status: the latest validation of each table in ops.data_quality (issue 6's
    gate: run_id, table, expectation, success, action, validated_at), else the job audit."""
    if data_quality:
        by_table: dict[str, list[dict]] = {}
        for r in data_quality:
            by_table.setdefault(str(r.get("table")), []).append(r)
        details, failed_tables = [], 0
        for table, rows in sorted(by_table.items()):
            newest = max(rows, key=lambda r: str(r.get("validated_at")))
            rows = [r for r in rows if r.get("run_id") == newest.get("run_id")]
            failed = [r for r in rows if r.get("success") is False]
            if failed:
                failed_tables += 1
                what = sorted({f"{r.get('expectation')} ({r.get('action')})" for r in failed})
                details.append(f"{table}: {len(failed)} of {len(rows)} checks failed: "
                               + "; ".join(what)[:240])
        if failed_tables:
            return {"ok": False, "status": f"checks failed on {failed_tables} table(s)",
                    "details": details}
        return {"ok": True, "status": f"latest checks passed on {len(by_table)} table(s)",
                "details": []}
    # The report job itself is not a source of the data it shows (and re-rendering must not
    # change the page).
    job_runs = [r for r in job_runs or [] if r.get("job") != "report"]
    if job_runs:
        latest: dict[str, dict] = {}
        for r in sorted(job_runs, key=lambda r: str(r.get("started_at"))):
            latest[str(r.get("job"))] = r
        bad = [j for j, r in latest.items() if r.get("status") != "succeeded"]
        quarantined = sum(int(r.get("rows_quarantined") or 0) for r in latest.values())
        details = [f"{j}: last run {latest[j].get('status')}" for j in sorted(bad)]
        if quarantined:
            details.append(f"{quarantined} rows quarantined by the latest runs "
                           "(`oncorank quarantine list`)")
        if bad:
            return {"ok": False, "status": f"{len(bad)} job(s) did not succeed",
                    "details": details}
        return {"ok": True, "status": f"latest runs of {len(latest)} jobs succeeded and "
                                      "reconciled (rows in = written + quarantined)",
                "details": details}
    return {"ok": True, "status": "no data-quality record available", "details": []}

"""One simulated patient: demographics, tumour biology, comorbidities, treatment and survival.

The outcome model is Weibull proportional hazards with time in months from the index date
(first-line start)::

    S_a(t) = exp(-(t / scale)^shape * exp(lp_a)),   lp_a = lp_prognostic + log HR_a(patient)

``lp_prognostic`` holds stage, ECOG, age, sex, comorbidity burden, metastatic sites and
prognostic biomarkers; ``HR_a`` is the planted effect of regimen ``a`` versus the standard of
care, which depends on the patient's biomarkers (and contraindicating conditions). Because
every candidate's survival function is known, the restricted mean survival time at the
horizon is computed exactly (:func:`weibull_rmst`) for the oracle ranking.

Scenarios (``world.mechanisms``) add, each only when switched on:

* an unmeasured frailty ``z`` added to every arm's log hazard and to the choice utilities;
* delayed separation: the cumulative hazard is piecewise, ``H_a(t) = e^lp0 [HR_early
  Lambda(min(t, d)) + HR_a (Lambda(t) - Lambda(d))+]`` with ``Lambda(t) = (t / scale)^shape``;
* treatment switching at progression, an illness-death model in which progression has hazard
  ``k h_a(t)`` after the first restaging ``t0``, a second line ``b`` starts at progression with
  probability ``q`` and then multiplies the hazard by ``m_b``. Survival stays a closed form of
  ``H = H_a(t)`` (:func:`switching_survival`), so true RMST is still exact up to the time grid.

>>> round(weibull_rmst(0.0, shape=1.0, scale=12.0, tau=24.0), 3)  # 12 * (1 - e^-2)
10.376
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from scipy.special import gamma as gamma_fn
from scipy.special import gammainc

from pipelines.synth.world import World

# Independent random streams per patient, so that one part of the generator can change
# without reshuffling the others (and so patients can be generated in any order).
STREAM_CLINICAL, STREAM_GENOME, STREAM_NOTES, STREAM_IDENTITY, STREAM_RECORDS = 1, 2, 3, 4, 5
STREAM_COURSES = 6
STREAM_SCENARIO = 7     # draws that only scenarios make (frailty, clinic, testing)
RMST_GRID_STEP = 0.05   # months; the numeric RMST of a scenario world integrates on it


def patient_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def weibull_scale(median_months: float, shape: float) -> float:
    """Scale that puts the median of a Weibull(shape, scale) at ``median_months``."""
    return median_months / math.log(2.0) ** (1.0 / shape)


def weibull_survival(t: float, lp: float, shape: float, scale: float) -> float:
    return math.exp(-((t / scale) ** shape) * math.exp(lp))


def weibull_rmst(lp: float, shape: float, scale: float, tau: float) -> float:
    """Restricted mean survival time: the integral of S(t) from 0 to ``tau`` (closed form).

    With c = exp(lp) / scale^shape, the integral of exp(-c t^k) over [0, tau] is
    c^(-1/k) * Gamma(1 + 1/k) * P(1/k, c tau^k), P the regularised lower incomplete gamma.
    """
    c = math.exp(lp) / scale**shape
    a = 1.0 / shape
    return float(c ** (-a) * gamma_fn(1.0 + a) * gammainc(a, c * tau**shape))


@dataclass
class Patient:
    """Everything true about one patient (what the raw files show is derived from this)."""

    index: int
    patient_id: str
    cancer_type: str
    sex: str
    age: int
    birth_date: date
    stage: str
    ecog: int
    smoking: str
    pack_years: int
    icd10: str
    histology: str
    comorbidities: list[str]
    comorbidity_onsets: dict[str, tuple[str, date]]
    flags: set[str]
    charlson: int
    metastases: dict[str, bool]
    drivers: list[str]
    vcf_drivers: list[str]
    outside_lab_driver: str | None
    tmb: float
    pdl1_tps: int | None
    er_positive: bool | None
    msi_h: bool | None
    erbb2_amp: bool
    features: dict[str, bool]
    diagnosis_date: date
    index_date: date
    first_line: str
    candidates: list[str]
    hr: dict[str, float]
    lp: dict[str, float]
    rmst: dict[str, float]
    surv12: dict[str, float]
    surv24: dict[str, float]
    shape: float
    scale: float
    lp_prognostic: float
    event_time: float            # true death time (months), whether observed or not
    censor_time: float           # min(administrative, loss to follow-up) (months)
    censor_reason: str
    os_days: int
    os_event: int
    second_line: str | None
    second_line_start: float | None   # months from index
    choice_probabilities: dict[str, float]
    adverse_events: list[str] = field(default_factory=list)
    # Scenario mechanisms (defaults: the default world's patient).
    frailty: float = 0.0
    clinic: str = ""
    ngs_tested: bool = True
    sequenced_in_house: bool = True     # False: no VCF (untested, or outside-lab NGS)
    ecog_recorded: bool = True
    off_guideline: bool = False
    known_features: dict[str, bool] | None = None
    overlap: dict[str, bool] = field(default_factory=dict)

    @property
    def os_months(self) -> float:
        return self.os_days / 30.4375

    @property
    def last_followup_date(self) -> date:
        return self.index_date + timedelta(days=self.os_days)

    @property
    def death_date(self) -> date | None:
        return self.last_followup_date if self.os_event else None

    def date_at(self, months: float) -> date:
        return self.index_date + timedelta(days=int(round(months * 30.4375)))


def _pick(rng: np.random.Generator, weights: dict):
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _smoking_conditional_egfr(prevalence: float, never_share: float, odds: float) -> tuple:
    """EGFR prevalence in never- and ever-smokers with the given odds ratio, keeping the
    overall prevalence (EGFR mutations are ~5x likelier in never-smokers)."""
    lo, hi = 1e-6, prevalence
    for _ in range(60):
        p_ever = (lo + hi) / 2
        p_never = odds * p_ever / (1 + (odds - 1) * p_ever)
        if never_share * p_never + (1 - never_share) * p_ever > prevalence:
            hi = p_ever
        else:
            lo = p_ever
    return p_never, p_ever


def _draw_group(rng, spec: dict, blocked: bool, p_blocked: float) -> str | None:
    """Draw one alteration of a mutually exclusive group (or none).

    The conditional probability is scaled by 1 / (1 - P(blocked)) so that the marginal
    prevalence stays at ``spec['prevalence']`` despite the exclusivity.
    """
    if blocked:
        return None
    p = min(0.95, spec["prevalence"] / max(1e-9, 1.0 - p_blocked))
    if rng.random() >= p:
        return None
    return _pick(rng, spec["split"])


def _biology(world: World, rng, cancer_type: str, smoking: str) -> dict:
    cfg = world.clinical["biomarkers"][cancer_type]
    drivers: list[str] = []
    out = {"pdl1_tps": None, "er_positive": None, "msi_h": None, "erbb2_amp": False}
    if cancer_type == "NSCLC":
        never_share = world.clinical["smoking_mix"]["NSCLC"]["never"]
        p_never, p_ever = _smoking_conditional_egfr(
            cfg["egfr"]["prevalence"], never_share, cfg["egfr"]["never_smoker_odds"])
        egfr = None
        if rng.random() < (p_never if smoking == "never" else p_ever):
            egfr = _pick(rng, cfg["egfr"]["split"])
        kras = _draw_group(rng, cfg["kras"], egfr is not None, cfg["egfr"]["prevalence"])
        drivers += [d for d in (egfr, kras) if d]
        tier = _pick(rng, cfg["pdl1"])
        if tier == "negative":
            out["pdl1_tps"] = 0
        elif tier == "low":
            out["pdl1_tps"] = int(rng.integers(1, 50))
        else:
            out["pdl1_tps"] = int(min(100, 50 + rng.gamma(2.0, 9.0)))
        median = cfg["tmb_median"][smoking]
    elif cancer_type == "BRCA":
        out["erbb2_amp"] = bool(rng.random() < cfg["erbb2_amp"])
        p_er = cfg["er_positive"]["erbb2_amp" if out["erbb2_amp"] else "default"]
        out["er_positive"] = bool(rng.random() < p_er)
        pik = _draw_group(rng, cfg["pik3ca"], False, 0.0)
        drivers += [d for d in (pik,) if d]
        if out["erbb2_amp"]:
            drivers.append("ERBB2_AMP")
        median = cfg["tmb_median"]
    elif cancer_type == "COADREAD":
        kras = _draw_group(rng, cfg["kras"], False, 0.0)
        nras = _draw_group(rng, cfg["nras"], kras is not None, cfg["kras"]["prevalence"])
        p_ras = cfg["kras"]["prevalence"] + cfg["nras"]["prevalence"]
        braf = _draw_group(rng, cfg["braf"], bool(kras or nras), p_ras)
        drivers += [d for d in (kras, nras, braf) if d]
        p_msi = cfg["msi_h"]["braf" if braf else "default"]
        out["msi_h"] = bool(rng.random() < p_msi)
        median = cfg["tmb_median_msi_h"] if out["msi_h"] else cfg["tmb_median"]
    elif cancer_type == "MEL":
        braf = _draw_group(rng, cfg["braf"], False, 0.0)
        nras = _draw_group(rng, cfg["nras"], braf is not None, cfg["braf"]["prevalence"])
        drivers += [d for d in (braf, nras) if d]
        median = cfg["tmb_median"]
    else:  # pragma: no cover - the world check rejects unknown types
        raise ValueError(cancer_type)
    if rng.random() < cfg["tp53"]:
        drivers.append(str(rng.choice(["TP53_R175H", "TP53_R248Q", "TP53_R273H"])))
    lo, hi = world.clinical["biomarkers"]["tmb_range"]
    out["tmb"] = float(np.clip(median * math.exp(cfg["tmb_sigma"] * rng.standard_normal()), lo, hi))
    out["drivers"] = drivers
    return out


def _features(world: World, cancer_type: str, bio: dict, drivers: list[str], ecog: int,
              age: int, flags: set[str], mets: dict[str, bool]) -> dict[str, bool]:
    ras = any(d.startswith(("KRAS", "NRAS")) for d in drivers)
    tmb_high = bio["tmb"] >= world.clinical["biomarkers"]["tmb_high_threshold"]
    f = {
        "egfr_sensitizing": any(d in ("EGFR_L858R", "EGFR_EX19DEL") for d in drivers),
        "kras_g12c": "KRAS_G12C" in drivers,
        "pdl1_high": (bio["pdl1_tps"] or 0) >= 50,
        "tmb_high": tmb_high,
        "erbb2_amp": bool(bio["erbb2_amp"]),
        "er_positive": bool(bio["er_positive"]),
        "pik3ca_mutant": any(d.startswith("PIK3CA") for d in drivers),
        "ras_mutant": ras,
        "ras_wild_type": not ras,
        "braf_v600e": "BRAF_V600E" in drivers,
        "msi_h": bool(bio["msi_h"]),
        "ecog2plus": ecog >= 2,
        "age75plus": age >= 75,
        "brain_metastasis": mets.get("brain", False),
    }
    f["pik3ca_mutant_er_positive"] = f["pik3ca_mutant"] and f["er_positive"]
    for flag in ("autoimmune", "ild", "ckd", "chf", "diabetes", "arterial_thrombosis",
                 "liver_disease"):
        f[flag] = flag in flags
    return f


def effect_hr(world: World, cancer_type: str, treatment: str,
              features: dict[str, bool]) -> float:
    """The planted hazard ratio of ``treatment`` versus standard of care for these features."""
    spec = world.clinical["treatment_effects"].get(cancer_type, {}).get(treatment)
    if spec is None:
        return 1.0
    hr = spec["otherwise"]["hr"]
    for rule in spec["rules"]:
        if features[rule["when"]]:
            hr = rule["hr"]
            break
    for mod in spec.get("modifiers", []):
        if features[mod["when"]]:
            hr *= mod["hr"]
    return float(hr)


def _utilities(world: World, cancer_type: str, names: list[str], features: dict[str, bool],
               frailty: float) -> np.ndarray:
    table = world.clinical["treatment_choice"][cancer_type]
    mech = world.mechanisms
    util = np.array([table[n].get("intercept", 0.0)
                     + sum(v for k, v in table[n].items() if k != "intercept" and features[k])
                     for n in names])
    if frailty:
        util = util + frailty * np.array([mech["frailty"]["choice"].get(n, 0.0) for n in names])
    return util * mech["choice_sharpness"]


def _epsilon(world: World, features: dict[str, bool]) -> float:
    eps = world.cohort["off_guideline_epsilon"]
    for stratum in world.mechanisms["off_guideline_strata"]:
        if features[stratum["when"]]:
            eps += stratum["epsilon"]
    return min(eps, 1.0)


def choice_probabilities(world: World, cancer_type: str, features: dict[str, bool],
                         exclude: tuple[str, ...] = (), frailty: float = 0.0) -> dict[str, float]:
    """Multinomial-logit treatment choice mixed with a uniform off-guideline draw.

    ``features`` are what the treating clinician knows (a biomarker nobody tested is not
    known); ``frailty`` is the unmeasured frailty of the scenarios that have one.
    """
    names = [n for n in world.candidates(cancer_type) if n not in exclude]
    util = _utilities(world, cancer_type, names, features, frailty)
    soft = np.exp(util - util.max())
    soft /= soft.sum()
    eps = _epsilon(world, features)
    p = (1 - eps) * soft + eps / len(names)
    return {n: float(x) for n, x in zip(names, p, strict=True)}


def guideline_probabilities(world: World, cancer_type: str, features: dict[str, bool],
                            frailty: float = 0.0) -> dict[str, float]:
    """The choice model without its off-guideline mixture: what guideline care gives."""
    names = world.candidates(cancer_type)
    util = _utilities(world, cancer_type, names, features, frailty)
    soft = np.exp(util - util.max())
    return {n: float(x) for n, x in zip(names, soft / soft.sum(), strict=True)}


# ------------------------------------------------------------------ scenario survival
def _lambda(t, shape: float, scale: float):
    return (np.asarray(t, dtype=float) / scale) ** shape


def cumulative_hazard(t, lp0: float, hr: float, shape: float, scale: float,
                      delay: float = 0.0, early_hr: float = 1.0):
    """H_a(t) with an effect that starts after ``delay`` months (``early_hr`` before it).

    >>> float(cumulative_hazard(12.0, 0.0, 0.5, 1.0, 12.0))          # no delay: HR * t/scale
    0.5
    >>> float(cumulative_hazard(12.0, 0.0, 0.5, 1.0, 12.0, 6.0))     # half the time at HR 1
    0.75
    """
    lam = _lambda(t, shape, scale)
    if delay <= 0:
        return math.exp(lp0) * hr * lam
    lam_d = float(_lambda(delay, shape, scale))
    return math.exp(lp0) * np.where(lam <= lam_d, early_hr * lam,
                                    early_hr * lam_d + hr * (lam - lam_d))


def inverse_cumulative_hazard(h: float, lp0: float, hr: float, shape: float, scale: float,
                              delay: float = 0.0, early_hr: float = 1.0) -> float:
    """The time t at which :func:`cumulative_hazard` reaches ``h`` (closed form)."""
    c = math.exp(lp0)
    lam_d = float(_lambda(delay, shape, scale)) if delay > 0 else 0.0
    if delay > 0 and h <= c * early_hr * lam_d:
        lam = h / (c * early_hr)
    elif delay > 0:
        lam = lam_d + (h - c * early_hr * lam_d) / (c * hr)
    else:
        lam = h / (c * hr)
    return float(scale * lam ** (1.0 / shape))


def switching_survival(H, k: float, q: float, multipliers: dict[str, float],
                       second_probs: dict[str, float]):
    """Overall survival at cumulative first-line hazard ``H`` under switching at progression.

    Progression has hazard ``k h(t)``; at progression a second line ``b`` (probability ``q``
    times ``second_probs[b]``) multiplies the death hazard by ``multipliers[b]``. With
    ``phi(H, m) = k e^{-mH} (1 - e^{-(1+k-m)H}) / (1+k-m)``::

        S = e^{-(1+k)H} + (1 - q) phi(H, 1) + q sum_b pi_b phi(H, m_b)

    With every multiplier 1 this is e^{-H}, the survival without switching:

    >>> round(float(switching_survival(0.7, 1.5, 0.6, {"b": 1.0}, {"b": 1.0})), 6)
    0.496585
    >>> round(math.exp(-0.7), 6)
    0.496585
    """
    H = np.asarray(H, dtype=float)

    def phi(m: float):
        a = 1.0 + k - m
        if abs(a) < 1e-9:
            return k * np.exp(-m * H) * H
        return k * np.exp(-m * H) * (-np.expm1(-a * H)) / a

    out = np.exp(-(1.0 + k) * H) + (1.0 - q) * phi(1.0)
    for b, pi in second_probs.items():
        out = out + q * pi * phi(multipliers[b])
    return out


def _trapezoid(y: np.ndarray, dx: float) -> float:
    return float(dx * (y.sum() - 0.5 * (y[0] + y[-1])))


def _prognostic_lp(world: World, cancer_type: str, stage: str, ecog: int, age: int, sex: str,
                   charlson: int, mets: dict[str, bool], drivers: list[str],
                   smoking: str) -> float:
    b = world.clinical["outcome"]["log_hr"]
    lp = b["stage"][stage] + b["ecog"][ecog]
    lp += b["age_per_decade_over_65"] * (age - 65) / 10.0
    lp += b["male"] * (sex == "M") + b["comorbidity_point"] * charlson
    lp += sum(b["metastasis"][s] for s, present in mets.items() if present)
    lp += b["tp53_mutant"] * any(d.startswith("TP53") for d in drivers)
    lp += b["current_smoker"] * (smoking == "current")
    if cancer_type == "COADREAD":
        lp += b["coadread_braf_v600e"] * ("BRAF_V600E" in drivers)
        lp += b["coadread_ras_mutant"] * any(d.startswith(("KRAS", "NRAS")) for d in drivers)
    return float(lp)


# A regimen the guideline model gives this patient with less than this probability is
# "off guideline" when received (truth/patients.csv column `off_guideline`).
OFF_GUIDELINE_BELOW = 0.05
# Features that only tumour sequencing tells (unknown to the clinician when nobody tested).
NGS_FEATURES = ("egfr_sensitizing", "kras_g12c", "braf_v600e", "pik3ca_mutant",
                "pik3ca_mutant_er_positive", "ras_mutant", "ras_wild_type", "tmb_high")


def _testing(world: World, srng, lp0: float, actionable: list[str]) -> dict | None:
    """Clinic, whether the tumour was sequenced (in house, or outside with the result in the
    notes only) and whether ECOG was recorded; None when the scenario has no missingness."""
    spec = world.mechanisms["missingness"]
    if not spec["enabled"]:
        return None
    clinics = spec["clinics"]
    clinic = _pick(srng, {k: v["share"] for k, v in clinics.items()})
    c = clinics[clinic]

    def happens(p: float, per_lp: float) -> bool:
        return bool(srng.random() < _expit(_logit(p) + per_lp * lp0))

    tested = happens(c["ngs"], spec["ngs_log_odds_per_lp"])
    outside = happens(c["outside"], spec["outside_log_odds_per_lp"]) and tested
    ecog_recorded = happens(c["ecog"], spec["ecog_log_odds_per_lp"])
    return {"clinic": clinic, "tested": tested, "in_house": tested and not outside,
            "outside_driver": actionable[0] if (outside and actionable) else None,
            "ecog_recorded": ecog_recorded}


def _known_features(features: dict[str, bool], testing: dict | None) -> dict[str, bool]:
    """What the treating clinician knows: without sequencing, no sequencing result."""
    if testing is None or testing["tested"]:
        return features
    return {k: (False if k in NGS_FEATURES else v) for k, v in features.items()}


class _SurvivalLaw:
    """Survival under each candidate when a scenario delays effects or switches treatment."""

    def __init__(self, world: World, cancer_type: str, known: dict[str, bool], frailty: float,
                 ecog: int, hr: dict[str, float], lp0: float, shape: float, scale: float):
        mech = world.mechanisms
        self.world, self.cancer_type, self.known, self.frailty = world, cancer_type, known, frailty
        self.hr, self.lp0, self.shape, self.scale = hr, lp0, shape, scale
        delayed = mech["delayed_effect"]
        self.delay = {a: (float(delayed["months"]) if world.catalog.get(a).drug_class
                          in delayed["drug_classes"] else 0.0) for a in hr}
        self.early_hr = float(delayed["early_hr"])
        sw = mech["switching"]
        self.switching = bool(sw["enabled"])
        self.k = float(sw["progression_hazard_factor"])
        self.q = world.cohort["second_line_probability"] if ecog < 3 else 0.0
        self.fraction, self.washout = sw["second_line_effect_fraction"], sw["first_line_washout"]
        self.t0 = float(sw.get("progression_not_before_months", 0.0))
        self.closed_form = not self.switching and not any(self.delay.values())

    def H(self, a: str, t):
        return cumulative_hazard(t, self.lp0, self.hr[a], self.shape, self.scale,
                                 self.delay[a], self.early_hr)

    def second_line(self, a: str) -> tuple[dict[str, float], dict[str, float]]:
        probs = choice_probabilities(self.world, self.cancer_type, self.known, exclude=(a,),
                                     frailty=self.frailty)
        mult = {b: self.hr[b] ** self.fraction / self.hr[a] ** self.washout for b in probs}
        return probs, mult

    def survival(self, a: str, t):
        """S_a(t). With switching, progression is possible only after the first restaging
        (``t0``): S = e^{-H} up to t0, then e^{-H(t0)} times the switching survival of the
        cumulative hazard accrued since t0."""
        cum = self.H(a, t)
        if not self.switching:
            return np.exp(-cum) if np.ndim(cum) else float(np.exp(-cum))
        probs, mult = self.second_line(a)
        h0 = float(self.H(a, self.t0))
        after = switching_survival(np.maximum(cum - h0, 0.0), self.k, self.q, mult, probs)
        out = np.where(cum <= h0, np.exp(-cum), np.exp(-h0) * after)
        return out if np.ndim(cum) else float(out)

    def rmst(self, a: str, tau: float) -> float:
        n = int(round(tau / RMST_GRID_STEP))
        grid = np.linspace(0.0, tau, n + 1)
        return _trapezoid(self.survival(a, grid), tau / n)

    def _time_at(self, a: str, h: float) -> float:
        return inverse_cumulative_hazard(h, self.lp0, self.hr[a], self.shape, self.scale,
                                         self.delay[a], self.early_hr)

    def draw(self, a: str, e_death: float, srng) -> tuple[float, tuple | None]:
        """(death time, (second line or None, progression time) or None without switching)."""
        if not self.switching:
            return self._time_at(a, e_death), None
        h_prog = float(self.H(a, self.t0)) + srng.exponential() / self.k
        progression = self._time_at(a, h_prog)
        switched = srng.random() < self.q
        probs, mult = self.second_line(a)
        b = _pick(srng, probs)
        if e_death <= h_prog or not switched:
            return self._time_at(a, e_death), (None, progression)
        return self._time_at(a, h_prog + (e_death - h_prog) / mult[b]), (b, progression)


def _days(d0: date, d1: date) -> int:
    return (d1 - d0).days


def simulate_patient(world: World, seed: int, index: int) -> Patient:
    """Draw patient ``index`` (0-based) of the cohort with this seed. Pure and deterministic."""
    rng = patient_rng(seed, index, STREAM_CLINICAL)
    cohort, clin = world.cohort, world.clinical
    cancer_type = _pick(rng, cohort["cancer_type_mix"])
    sex = ("F" if rng.random() < 0.99 else "M") if cancer_type == "BRCA" else (
        "F" if rng.random() < 0.47 else "M")
    age = int(np.clip(round(rng.normal(cohort["age_mean"], cohort["age_sd"])),
                      cohort["age_min"], cohort["age_max"]))
    stage = _pick(rng, cohort["stage_mix"])
    # Older patients are frailer: shift the ECOG draw up by age.
    ecog_p = np.asarray(cohort["ecog_mix"], dtype=float)
    ecog_p = ecog_p * np.exp(np.arange(4) * 0.025 * (age - 66))
    ecog = int(rng.choice(4, p=ecog_p / ecog_p.sum()))
    smoking = _pick(rng, clin["smoking_mix"].get(cancer_type, clin["smoking_mix"]["default"]))
    pack_years = 0 if smoking == "never" else int(np.clip(rng.gamma(4.0, 9.0), 3, 120))

    codes = clin["cancer_codes"][cancer_type]
    icd10 = _pick(rng, codes["icd10"])
    histology = str(rng.choice(codes["histology"]))

    start = date.fromisoformat(cohort["index_start"])
    span = _days(start, date.fromisoformat(cohort["index_end"]))
    index_date = start + timedelta(days=int(rng.integers(0, span + 1)))
    diagnosis_date = index_date - timedelta(days=int(rng.integers(14, 76)))
    birth_date = diagnosis_date - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    age = (diagnosis_date.year - birth_date.year
           - ((diagnosis_date.month, diagnosis_date.day) < (birth_date.month, birth_date.day)))

    # Comorbidities, present before the index date (they drive treatment choice).
    comorbidities, onsets, flags, charlson = [], {}, set(), 0
    slope = clin["comorbidity_age_slope"]
    for name, spec in clin["comorbidities"].items():
        prev = spec.get("by_cancer", {}).get(cancer_type, spec["prevalence"])
        if rng.random() < _expit(_logit(prev) + slope * (age - 66)):
            comorbidities.append(name)
            onset = diagnosis_date - timedelta(days=int(rng.integers(60, 15 * 365)))
            onsets[name] = (str(rng.choice(spec["codes"])), onset)
            flags.update(spec.get("flags", []))
            charlson += spec["charlson"]
    if "diabetes" in comorbidities and "diabetes_complicated" in comorbidities:
        # Quan's Charlson counts the worse diabetes category once.
        charlson -= clin["comorbidities"]["diabetes"]["charlson"]

    mets = {site: False for site in ("brain", "liver", "bone")}
    if stage == "IV":
        for site, p in clin["metastasis_sites"][cancer_type].items():
            mets[site] = bool(rng.random() < p)

    bio = _biology(world, rng, cancer_type, smoking)
    drivers = bio["drivers"]
    outside = None
    frac = clin["biomarkers"]["outside_lab_fraction"]
    actionable = [d for d in drivers if d.startswith(("EGFR", "BRAF"))]
    if actionable and rng.random() < frac:
        outside = actionable[0]
    vcf_drivers = [d for d in drivers if d != outside]
    features = _features(world, cancer_type, bio, drivers, ecog, age, flags, mets)
    lp0 = _prognostic_lp(world, cancer_type, stage, ecog, age, sex, charlson, mets, drivers,
                         smoking)

    # Scenario draws come from their own stream, so the default world is unchanged.
    mech = world.mechanisms
    srng = patient_rng(seed, index, STREAM_SCENARIO)
    frailty = float(srng.standard_normal())
    if not (mech["frailty"]["log_hr_per_sd"] or mech["frailty"]["choice"]):
        frailty = 0.0
    testing = _testing(world, srng, lp0, actionable)
    if testing is not None:
        outside = testing["outside_driver"]
        vcf_drivers = drivers if testing["in_house"] else []
    known = _known_features(features, testing)

    # Treatment choice (confounded by indication, and by frailty where a scenario has one).
    candidates = world.candidates(cancer_type)
    probs = choice_probabilities(world, cancer_type, known, frailty=frailty)
    first_line = _pick(rng, probs)
    guideline = guideline_probabilities(world, cancer_type, known, frailty)
    min_p = mech["overlap_min_propensity"]
    base = clin["outcome"]["baseline"][cancer_type]
    shape = float(base["shape"])
    scale = weibull_scale(base["median_months"], shape)
    lp_total = lp0 + mech["frailty"]["log_hr_per_sd"] * frailty
    tau = float(cohort["horizon_months"])
    hr = {a: effect_hr(world, cancer_type, a, features) for a in candidates}
    lp = {a: lp_total + math.log(hr[a]) for a in candidates}
    law = _SurvivalLaw(world, cancer_type, known, frailty, ecog, hr, lp_total, shape, scale)
    if law.closed_form:
        rmst = {a: weibull_rmst(lp[a], shape, scale, tau) for a in candidates}
        surv12 = {a: weibull_survival(12.0, lp[a], shape, scale) for a in candidates}
        surv24 = {a: weibull_survival(24.0, lp[a], shape, scale) for a in candidates}
    else:
        rmst = {a: law.rmst(a, tau) for a in candidates}
        surv12 = {a: law.survival(a, 12.0) for a in candidates}
        surv24 = {a: law.survival(a, 24.0) for a in candidates}

    if law.closed_form:
        c = math.exp(lp[first_line]) / scale**shape
        event_time = max((rng.exponential() / c) ** (1.0 / shape), 1.0 / 30.4375)
        switch = None
    else:
        event_time, switch = law.draw(first_line, rng.exponential(), srng)
        event_time = max(event_time, 1.0 / 30.4375)
    dpm = cohort["days_per_month"]
    admin = _days(index_date, date.fromisoformat(cohort["data_cutoff"])) / dpm
    ltfu = rng.exponential(12.0 / cohort["loss_to_followup_per_year"])
    censor_time = min(admin, ltfu)
    censor_reason = "administrative" if admin <= ltfu else "lost_to_follow_up"
    observed = min(event_time, censor_time)
    os_event = int(event_time <= censor_time)
    os_days = max(1, int(round(observed * dpm)))

    # Second line at progression, which comes before death (or censoring).
    second_line, second_start = None, None
    if switch is not None:
        if switch[0] is not None and switch[1] < observed:
            second_line, second_start = switch[0], float(switch[1])
    else:
        progression = event_time * rng.beta(4.0, 3.0)
        if (progression < observed - 0.5 and progression > 1.5 and ecog < 3
                and rng.random() < cohort["second_line_probability"]):
            probs2 = choice_probabilities(world, cancer_type, known, exclude=(first_line,),
                                          frailty=frailty)
            second_line = _pick(rng, probs2)
            second_start = float(progression)

    adverse_events = []
    klass = world.catalog.get(first_line).drug_class
    if klass == "immunotherapy" and rng.random() < 0.25:
        adverse_events.append(str(rng.choice(["pneumonitis", "colitis", "hepatitis"])))
    elif klass == "chemotherapy" and rng.random() < 0.30:
        adverse_events.append(str(rng.choice(["neutropenia", "peripheral neuropathy"])))

    return Patient(
        index=index, patient_id=f"PT{index + 1:06d}", cancer_type=cancer_type, sex=sex,
        age=age, birth_date=birth_date, stage=stage, ecog=ecog, smoking=smoking,
        pack_years=pack_years, icd10=icd10, histology=histology, comorbidities=comorbidities,
        comorbidity_onsets=onsets, flags=flags, charlson=charlson, metastases=mets,
        drivers=drivers, vcf_drivers=vcf_drivers, outside_lab_driver=outside, tmb=bio["tmb"],
        pdl1_tps=bio["pdl1_tps"], er_positive=bio["er_positive"], msi_h=bio["msi_h"],
        erbb2_amp=bio["erbb2_amp"], features=features, diagnosis_date=diagnosis_date,
        index_date=index_date, first_line=first_line, candidates=candidates, hr=hr, lp=lp,
        rmst=rmst, surv12=surv12, surv24=surv24, shape=shape, scale=scale, lp_prognostic=lp0,
        event_time=float(event_time), censor_time=float(censor_time),
        censor_reason=censor_reason, os_days=os_days, os_event=os_event,
        second_line=second_line, second_line_start=second_start,
        choice_probabilities=probs, adverse_events=adverse_events, frailty=frailty,
        clinic=testing["clinic"] if testing else "",
        ngs_tested=testing["tested"] if testing else True,
        sequenced_in_house=testing["in_house"] if testing else True,
        ecog_recorded=testing["ecog_recorded"] if testing else True,
        off_guideline=guideline[first_line] < OFF_GUIDELINE_BELOW,
        known_features=known, overlap={a: probs[a] >= min_p for a in candidates},
    )

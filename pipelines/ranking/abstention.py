"""When the ranking abstains, and the paired uncertainty of what it ranks.

A model fitted on observational data can only compare a regimen for a patient when patients
like this one received it. Outside that support its prediction is extrapolation, and an
extrapolated option at rank 1 is the most dangerous line a tumor board can read. So each
(patient, candidate regimen) gets a ``rank_status``:

``ranked``
    estimable: it gets a rank number;
``too few treated patients in training``
    fewer than ``min_arm_patients`` training patients received the regimen, or they had
    fewer than ``min_arm_events`` deaths (a model on such an arm is a handful of patients;
    on the 40-patient demo every arm is like this, and the report then says the cohort is too
    small to rank);
``insufficient comparable patients``
    the estimated propensity of the regimen for this patient is below ``min_propensity``, or
    fewer than ``min_similar_treated`` training patients who received it have a propensity
    logit within the matching caliper of this patient's (Austin, Pharm Stat 2011;10:150-161).

The default ``min_propensity`` of 0.10 ("at least one in ten patients like this one received
it") was read off two 2,000-patient cohorts (default and realistic worlds, seed 1): the
normalised policy value rises as the threshold rises from 0 to 0.20 (realistic: -0.90 without
abstention, 0.48 at 0.05, 0.55 at 0.10, 0.60 at 0.20) while the share of options left unranked
grows (61%, 63%, 68%); 0.10 is a round threshold inside that trade-off, not its maximum, and
the other worlds and seeds check it (benchmarks/RESULTS.md).

Options that are not ranked keep their predictions in gold for analysts, get no rank number
and never rank first; the report lists them with their knowledge-base evidence and says why
they are not ranked. The thresholds are the ``[ranking]`` section of the configuration::

    [ranking]
    min_propensity = 0.10        # estimated P(regimen | patient) below this: not ranked
    min_similar_treated = 5      # treated patients within the caliper, below this: not ranked
    min_arm_patients = 20        # patients who received the regimen in training
    min_arm_events = 10          # deaths among them

Paired uncertainty comes from the model's bootstrap refits: each refit predicts every option
of a patient, so the difference from the standard of care and "which option is first" are
computed refit by refit (:func:`paired_uncertainty`), not from two independent intervals.

>>> rule = AbstentionRule()
>>> pred = pd.DataFrame({"treatment": ["a", "b", "c"], "predicted_rmst": [10.0, 12.0, 11.0],
...                      "propensity": [0.6, 0.01, 0.3], "n_similar_treated": [40, 3, 25]})
>>> list(rank_status(pred, {"a": 300, "b": 80, "c": 12}, {"a": 90, "b": 30, "c": 4}, rule))
['ranked', 'insufficient comparable patients', 'too few treated patients in training']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.lakehouse.errors import ConfigError

RANKED = "ranked"
ARM_TOO_SMALL = "too few treated patients in training"
NO_OVERLAP = "insufficient comparable patients"
# Options the label or an approval-grade resistance statement rules out for this patient: shown
# with their reason, never ranked (pipelines/ranking/steps.py, the ranking rule).
LABEL_NOT_MET = "label requirement not met"
RESISTANCE_A = "level-A resistance marker"


@dataclass(frozen=True)
class AbstentionRule:
    """Thresholds of the abstention rule (module docstring)."""

    min_propensity: float = 0.10
    min_similar_treated: int = 5
    min_arm_patients: int = 20
    min_arm_events: int = 10

    @classmethod
    def from_config(cls, conf: dict) -> AbstentionRule:
        """The rule from the ``[ranking]`` configuration section (defaults for absent keys)."""
        try:
            rule = cls(min_propensity=float(conf.get("min_propensity", cls.min_propensity)),
                       min_similar_treated=int(conf.get("min_similar_treated",
                                                        cls.min_similar_treated)),
                       min_arm_patients=int(conf.get("min_arm_patients", cls.min_arm_patients)),
                       min_arm_events=int(conf.get("min_arm_events", cls.min_arm_events)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[ranking] abstention thresholds must be numbers ({exc}).") from None
        if not 0 <= rule.min_propensity < 1:
            raise ConfigError(f"[ranking] min_propensity must lie in [0, 1), got "
                              f"{rule.min_propensity}.")
        return rule

    def describe(self) -> str:
        """The rule in one sentence, for the report and the model card."""
        return (f"an option is ranked only when at least {self.min_arm_patients} training "
                f"patients received it with at least {self.min_arm_events} deaths, its "
                f"estimated probability for a patient like this one is at least "
                f"{self.min_propensity:.0%}, and at least {self.min_similar_treated} treated "
                "patients are similar to this one")


def rank_status(pred: pd.DataFrame, arm_patients: dict, arm_events: dict,
                rule: AbstentionRule) -> pd.Series:
    """``rank_status`` of each prediction row (columns ``treatment``, ``predicted_rmst``,
    ``propensity``, ``n_similar_treated``); arm counts are the model's training counts per
    regimen (a regimen missing from them was never received in training)."""
    treat = pred["treatment"].astype(str)
    n_arm = treat.map(lambda t: arm_patients.get(t, 0)).astype(float)
    d_arm = treat.map(lambda t: arm_events.get(t, 0)).astype(float)
    rmst = pd.to_numeric(pred["predicted_rmst"], errors="coerce")
    small = ((n_arm < rule.min_arm_patients) | (d_arm < rule.min_arm_events)
             | rmst.isna()).to_numpy()
    prop = pd.to_numeric(pred["propensity"], errors="coerce").fillna(0.0)
    n_sim = pd.to_numeric(pred["n_similar_treated"], errors="coerce").fillna(0)
    no_overlap = ((prop < rule.min_propensity) | (n_sim < rule.min_similar_treated)).to_numpy()
    out = np.where(small, ARM_TOO_SMALL, np.where(no_overlap, NO_OVERLAP, RANKED))
    return pd.Series(out, index=pred.index, name="rank_status")


def paired_uncertainty(frame: pd.DataFrame, reps: np.ndarray, level: float = 0.95
                       ) -> pd.DataFrame:
    """Interval of the benefit vs standard of care and probability of rank 1, refit by refit.

    ``frame`` has one row per (patient, option): ``patient_key, treatment, standard_of_care,
    rank_status, rank_tier, rep`` where ``rep`` is the option's column in ``reps`` (bootstrap
    refits × rows, RMST) and ``rank_tier`` the ranking's tier (0 = can be given now; null when
    not ranked). Returns ``patient_key, treatment, benefit_lower, benefit_upper, prob_rank1``:

    * the benefit interval: percentiles of (option − standard of care) over the refits, for
      ranked options when the standard of care is ranked too (null otherwise, and null without
      refits: no interval is better than a point posing as one); widened to hold the point
      estimate ``benefit_vs_soc`` when the frame has it;
    * ``prob_rank1``: the share of refits under which the option would be rank 1 — the highest
      RMST among the patient's ranked options of the best tier present (an option outside that
      pool has 0; one not ranked has null); null without refits.
    """
    out = frame[["patient_key", "treatment"]].copy()
    out["benefit_lower"] = np.nan
    out["benefit_upper"] = np.nan
    out["prob_rank1"] = np.nan
    n_rep = reps.shape[0] if reps.ndim == 2 else 0
    if n_rep < 2 or frame.empty:
        return out
    a = (1 - level) / 2
    rep_col = frame["rep"].to_numpy(dtype=int)
    ranked = (frame["rank_status"] == RANKED).to_numpy()
    tier = pd.to_numeric(frame["rank_tier"], errors="coerce").to_numpy()
    soc_name = frame["standard_of_care"].astype(object).to_numpy()
    treat = frame["treatment"].astype(str).to_numpy()
    lower = np.full(len(frame), np.nan)
    upper = np.full(len(frame), np.nan)
    prob = np.full(len(frame), np.nan)
    groups = frame.groupby("patient_key", sort=False).indices
    for idx in groups.values():
        soc = [i for i in idx if treat[i] == soc_name[i] and ranked[i]]
        sub = reps[:, rep_col[idx]]
        if soc:
            diff = sub - reps[:, [rep_col[soc[0]]]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
                lo, hi = np.nanpercentile(diff, [100 * a, 100 * (1 - a)], axis=0)
            keep = ranked[idx]
            lower[idx[keep]], upper[idx[keep]] = lo[keep], hi[keep]
        prob[idx[ranked[idx]]] = 0.0
        pool_tiers = tier[idx][ranked[idx]]
        if len(pool_tiers) == 0:
            prob[idx] = np.nan
            continue
        pool = idx[ranked[idx] & (tier[idx] == np.nanmin(pool_tiers))]
        vals = np.nan_to_num(reps[:, rep_col[pool]], nan=-np.inf)
        wins = np.bincount(vals.argmax(axis=1), minlength=len(pool))
        prob[pool] = wins / n_rep
    if "benefit_vs_soc" in frame.columns:  # the interval holds its point estimate
        point = pd.to_numeric(frame["benefit_vs_soc"], errors="coerce").to_numpy()
        has = ~np.isnan(lower) & ~np.isnan(point)
        lower[has], upper[has] = np.minimum(lower[has], point[has]), np.maximum(upper[has],
                                                                                point[has])
        lower[~has], upper[~has] = np.nan, np.nan
    out["benefit_lower"], out["benefit_upper"], out["prob_rank1"] = lower, upper, prob
    return out

"""Doubly robust benefit vs the standard of care (DR-learner with IPCW), per cancer type.

The S-learner predicts each regimen's survival from one outcome model, so its benefit
estimates are only as good as that model's extrapolation; under confounding by indication and
thin overlap it ranks confidently and wrongly (benchmarks/RESULTS.md, "end-to-end oracle").
The DR-learner (Kennedy, arXiv:2004.14497; econml's ``LinearDRLearner``) estimates the
difference in restricted mean survival time (RMST) between each regimen and the cancer type's
standard of care from doubly robust pseudo-outcomes

    φ_a(x) = μ_a(x) + 1{A=a} (Y − μ_a(x)) / π_a(x),

which stay unbiased when either the outcome regression μ or the propensity π is right, and
regresses φ_a − φ_soc on the effect modifiers (the biomarkers) in a final linear model.

* **Outcome**: Y = min(T, τ), the survival time restricted to the horizon τ. A patient
  censored before τ has no known Y; those whose Y is known (death before τ, or followed to τ)
  are weighted by the inverse probability of remaining uncensored, 1 / G(Y−), with G the
  Kaplan–Meier estimate of the censoring distribution (scikit-survival
  ``CensoringDistributionEstimator``), clipped at 0.05 (IPCW; Bai, Tsiatis & O'Brien,
  Biometrics 2013;69:45-52 give the augmented form). The Kaplan–Meier censoring model assumes
  censoring does not depend on the patient (administrative end of follow-up, loss to
  follow-up); a censoring model that depends on covariates is left for later.
* **Nuisances** (cross-fitted, ``cv`` folds): multinomial logistic propensity, clipped at
  ``min_propensity`` = 0.10 (trimming: the ranking does not rank options below 0.05 anyway,
  and at 0.02 the pseudo-outcomes' variance made 95% intervals of the benefit 23-25 months
  wide on the realistic 2,000-patient world, against 13 at 0.10); histogram gradient
  boosting for the outcome regression on all features and the received regimen.
* **Final model**: linear in the effect modifiers (``X``: the biomarker and knowledge-base
  columns), with heteroskedasticity-robust covariance; the other features enter only the
  nuisances (``W``).
* **Uncertainty**: draws of the final model's coefficients from their asymptotic normal
  distribution (``draw_effects``), paired with the outcome model's bootstrap refits of the
  standard of care's RMST, so the report's intervals and probability of rank 1 come from one
  set of replicates. Coverage is measured against the generator's truth (RESULTS.md).

Only regimens received by at least ``min_arm`` patients of the cancer type get a DR estimate;
the others keep the outcome model's prediction and are, by the same counts, left unranked by
the ranking's abstention rule.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("oncorank.models")

MIN_CENSORING_SURVIVAL = 0.05


@dataclass
class GroupDR:
    """A fitted DR-learner of one cancer type."""

    standard_of_care: str
    arms: tuple[str, ...]          # regimens with a DR estimate (the standard of care excluded)
    estimator: object              # econml LinearDRLearner
    modifier_cols: np.ndarray      # columns of the encoded features used as effect modifiers
    control_cols: np.ndarray       # the other encoded columns (nuisances only)
    mean: np.ndarray               # standardisation of the encoded features (training rows)
    scale: np.ndarray

    def _std(self, Xe: np.ndarray) -> np.ndarray:
        return (Xe - self.mean) / self.scale

    def effect(self, Xe: np.ndarray, arm: str) -> np.ndarray:
        """Estimated RMST difference (months) of ``arm`` vs the standard of care."""
        if not len(self.modifier_cols):  # constant effect
            value = self.estimator.effect(None, T0=self.standard_of_care, T1=arm)
            return np.full(len(Xe), float(np.ravel(value)[0]))
        return np.asarray(self.estimator.effect(self._std(Xe)[:, self.modifier_cols],
                                                T0=self.standard_of_care, T1=arm), dtype=float)

    def draw_effects(self, Xe: np.ndarray, arm: str, n: int, seed: int = 0) -> np.ndarray:
        """(n, rows) draws of the effect from the final model's coefficient distribution.

        The coefficient draws depend only on (seed, standard of care, arm): every batch of
        patients scored sees the same n draws, so draw b is one coherent replicate."""
        import zlib

        rng = np.random.default_rng(
            [seed, zlib.crc32(f"{self.standard_of_care}|{arm}".encode())])
        final = self.estimator.model_cate(T=arm)
        # StatsModelsLinearRegression keeps [intercept, coefficients] and their robust
        # covariance in _param / _param_var (econml 0.17.0, pinned).
        mean = np.asarray(final._param, dtype=float)
        cov = np.asarray(final._param_var, dtype=float)
        x = self._std(Xe)[:, self.modifier_cols]
        design = np.hstack([np.ones((len(x), 1)), x]) if len(mean) == x.shape[1] + 1 else x
        beta = rng.multivariate_normal(mean, (cov + cov.T) / 2, size=n, method="svd")
        return beta @ design.T


def ipcw_rmst_outcome(event: np.ndarray, time: np.ndarray, horizon: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(Y, weight): Y = min(T, τ) and its IPCW weight (0 when Y is unknown)."""
    from sksurv.nonparametric import CensoringDistributionEstimator

    event = np.asarray(event, dtype=bool)
    time = np.asarray(time, dtype=float)
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event, time
    restricted = np.minimum(time, horizon)
    known = event | (time >= horizon)
    if event.all():
        return restricted, known.astype(float)
    cens = CensoringDistributionEstimator().fit(y)
    g = cens.predict_proba(np.maximum(restricted - 1e-9, 0.0))
    weight = np.where(known, 1.0 / np.clip(g, MIN_CENSORING_SURVIVAL, None), 0.0)
    return restricted, weight


def fit_group_dr(Xe: np.ndarray, treat: np.ndarray, event: np.ndarray, time: np.ndarray,
                 horizon: float, standard_of_care: str, modifier_cols: np.ndarray,
                 min_arm: int = 20, cv: int = 2, min_propensity: float = 0.10,
                 seed: int = 0) -> GroupDR | None:
    """Fit the DR-learner of one cancer type; None when it cannot be estimated (no standard of
    care among the received regimens, or no other arm with ``min_arm`` patients)."""
    from econml.dr import LinearDRLearner
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression

    y, w = ipcw_rmst_outcome(event, time, horizon)
    known = w > 0
    counts = {t: int(((treat == t) & known).sum()) for t in np.unique(treat)}
    if counts.get(standard_of_care, 0) < min_arm:
        return None
    arms = tuple(sorted(t for t, c in counts.items() if t != standard_of_care and c >= min_arm))
    if not arms:
        return None
    keep = known & np.isin(treat, (standard_of_care, *arms))
    modifier_cols = np.asarray(modifier_cols, dtype=int)
    control_cols = np.setdiff1d(np.arange(Xe.shape[1]), modifier_cols)
    # Modifiers constant within the cancer type carry no heterogeneity (a singular final model).
    varying = modifier_cols[np.ptp(Xe[keep][:, modifier_cols], axis=0) > 0] if len(
        modifier_cols) else modifier_cols
    mean = Xe[keep].mean(axis=0)
    scale = Xe[keep].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Xs = (Xe - mean) / scale
    est = LinearDRLearner(
        model_propensity=LogisticRegression(max_iter=2000),
        model_regression=HistGradientBoostingRegressor(max_iter=100, random_state=seed),
        categories=[standard_of_care, *arms], cv=cv, min_propensity=min_propensity,
        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # econml's co-linearity and convergence chatter
        est.fit(y[keep], treat[keep], X=Xs[keep][:, varying] if len(varying) else None,
                W=Xs[keep][:, control_cols] if len(control_cols) else None,
                sample_weight=w[keep])
    if not len(varying):
        log.info("DR-learner for %s: no varying effect modifier; constant effects",
                 standard_of_care)
    return GroupDR(standard_of_care, arms, est, varying, control_cols, mean, scale)

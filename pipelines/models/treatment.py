"""Treatment response: each patient's survival under every candidate treatment.

:class:`TreatmentResponseModel` wraps any survival estimator family
(:mod:`pipelines.models.estimators`) as

* an **S-learner** (one model; the treatment is a feature, with treatment × biomarker
  interaction columns so that e.g. "EGFR-mutant *and* osimertinib" can carry its own effect), or
* a **T-learner** (one model per treatment arm, trained on the patients who received it).

Uncertainty comes from ``n_bootstrap`` replicates of the outcome model: refits on bootstrap
resamples of the patients, or for a Cox model draws of its coefficients from their asymptotic
normal distribution (``interval_method``); intervals are the 2.5/97.5 percentiles of the
replicates' predictions (the point estimate is the fit on all patients).

``learner="dr"`` adds a doubly robust benefit vs the standard of care per cancer type
(:mod:`pipelines.models.doubly_robust`): the DR-estimated regimens' RMST is the standard of
care's (outcome model) plus the DR benefit.

Overlap: a multinomial logistic propensity model per cancer type gives P(treatment | patient).
A candidate is flagged (``overlap_warning``) when its propensity is below ``overlap_threshold``,
or when fewer than ``min_similar`` training patients received it with a propensity logit
within ``caliper_sd`` standard deviations of this patient's (the matching caliper of Austin,
Pharm Stat 2011;10:150-161) — the model is then extrapolating, and the report says so.

Times are in the unit of the training data (months in the pipeline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from pipelines.lakehouse.errors import ConfigError, SchemaMismatchError
from pipelines.models.design import (
    FeatureEncoder,
    rmst_from_curves,
    split_target,
    time_grid,
    value_at,
)
from pipelines.models.estimators import CoxPH, XGBSurvival, make_estimator

log = logging.getLogger("oncorank.models")

# Columns that are never model inputs: identifiers, outcomes, dates, provenance strings.
NON_FEATURES = frozenset({
    "patient_key", "index_date", "treatment", "os_months", "os_event", "ttnt_months",
    "ttnt_event", "last_followup_date", "death_date", "first_line_treatment", "diagnosis_date",
    "zip3", "board_date", "source", "built_at", "biomarker_conflicts",
})
TREATMENT_SOURCE = "__treatment__"
PREDICT_CHUNK = 20_000  # (patient, candidate) rows per batch of survival curves

PREDICTION_COLUMNS = [
    "patient_key", "treatment", "predicted_rmst", "rmst_lower", "rmst_upper", "surv_12",
    "surv_12_lower", "surv_12_upper", "surv_24", "surv_24_lower", "surv_24_upper",
    "propensity", "overlap_warning", "n_similar_treated",
]


def infer_feature_columns(frame: pd.DataFrame, exclude=()) -> list[str]:
    """Model inputs of a features frame: everything but identifiers, outcomes, dates and
    ``*_source`` provenance columns."""
    skip = set(NON_FEATURES) | set(exclude)
    out = []
    for c in frame.columns:
        if c in skip or c.endswith("_source") or c.endswith("_date"):
            continue
        if pd.api.types.is_datetime64_any_dtype(frame[c]):
            continue
        if frame[c].dtype == object and len(frame[c].dropna()) and all(
            hasattr(v, "isoformat") for v in frame[c].dropna().head(20)
        ):
            continue  # python date objects
        out.append(c)
    return out


@dataclass
class _Propensity:
    classes: list[str]
    model: LogisticRegression | None
    mean: np.ndarray
    scale: np.ndarray
    treated_logits: dict[str, np.ndarray]
    logit_sd: dict[str, float]

    def proba(self, Xe: np.ndarray) -> np.ndarray:
        if self.model is None:
            return np.ones((len(Xe), 1))
        return self.model.predict_proba((Xe - self.mean) / self.scale)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class TreatmentResponseModel(BaseEstimator):
    """Predicted survival under each candidate treatment (S-/T-learner + bootstrap).

    Parameters
    ----------
    family : str
        Base estimator family: coxph, rsf, gbsa, xgb_cox, xgb_aft, xgb_spark_cox.
    learner : {"s", "t"}
        S-learner (treatment as a feature) or T-learner (one model per arm).
    base_params : dict
        Parameters of the base estimator.
    feature_cols : list of str, optional
        Input columns; default: every column but identifiers/outcomes/dates/provenance.
    interactions : bool
        S-learner only: add treatment × modifier columns.
    modifiers : list of str, optional
        Raw columns that may modify the treatment effect (biomarkers); None = all features.
    min_interaction_count : int
        An interaction column is kept only if at least this many training rows are non-zero
        (a biomarker never seen with a treatment has no estimable interaction).
    n_bootstrap : int
        Bootstrap refits for the intervals (0 = no intervals: lower = upper = point).
    horizon_months : float
        Horizon of the restricted mean survival time.
    landmarks : tuple of float
        Survival probabilities reported at these times (``surv_12``, ``surv_24``).
    treatment_col, group_col : str
        Received treatment; grouping of candidates and propensity (cancer type).
    candidates : {"catalog", "levels"}
        Candidate treatments of a patient: the regimen catalog's regimens for the patient's
        ``group_col`` value, or every treatment level seen in training.
    min_arm_size : int
        T-learner: arms with fewer patients get no model (their predictions are missing and
        flagged).
    overlap_threshold, min_similar, caliper_sd : overlap rule (see module docstring).
    interval_method : {"auto", "bootstrap", "wald"}
        How the ``n_bootstrap`` replicates behind the intervals are made: refits on
        bootstrap resamples, or (Cox S-/DR-learner only) draws of the coefficients from their
        asymptotic normal distribution; ``auto`` = wald for Cox, bootstrap otherwise.
    per_group, min_group_size : with several ``group_col`` values (cancer types), fit one
        learner per group of at least ``min_group_size`` patients (and 10 deaths) — each with
        its own baseline hazard, like a Cox model stratified by cancer type — and one pooled
        learner for the smaller groups. Off by default: on a 2,000-patient generated cohort the
        pooled model (prognostic effects shared across cancer types, treatment effects by
        their own indicators) had the better policy value (benchmarks/RESULTS.md).
    """

    def __init__(self, family: str = "coxph", learner: str = "s", base_params: dict | None = None,
                 feature_cols: list[str] | None = None, interactions: bool = True,
                 modifiers: list[str] | None = None, min_interaction_count: int = 5,
                 n_bootstrap: int = 20, horizon_months: float = 24.0,
                 landmarks: tuple[float, ...] = (12.0, 24.0), treatment_col: str = "treatment",
                 group_col: str | None = "cancer_type", candidates: str = "catalog",
                 min_arm_size: int = 20, overlap_threshold: float = 0.05, min_similar: int = 5,
                 caliper_sd: float = 0.2, max_categorical_levels: int = 30,
                 per_group: bool = False, min_group_size: int = 50,
                 interval_method: str = "auto", random_state: int = 0):
        self.family = family
        self.learner = learner
        self.base_params = base_params
        self.feature_cols = feature_cols
        self.interactions = interactions
        self.modifiers = modifiers
        self.min_interaction_count = min_interaction_count
        self.n_bootstrap = n_bootstrap
        self.horizon_months = horizon_months
        self.landmarks = landmarks
        self.treatment_col = treatment_col
        self.group_col = group_col
        self.candidates = candidates
        self.min_arm_size = min_arm_size
        self.overlap_threshold = overlap_threshold
        self.min_similar = min_similar
        self.caliper_sd = caliper_sd
        self.max_categorical_levels = max_categorical_levels
        self.per_group = per_group
        self.min_group_size = min_group_size
        self.interval_method = interval_method
        self.random_state = random_state

    # ================================================================== fitting
    def fit(self, X: pd.DataFrame, y) -> TreatmentResponseModel:
        """Fit on a features frame ``X`` (with the received treatment) and target ``y``."""
        if self.learner not in ("s", "t", "dr"):
            raise ConfigError(f"learner must be 's', 't' or 'dr', got {self.learner!r}.")
        if self.candidates not in ("catalog", "levels"):
            raise ConfigError(f"candidates must be 'catalog' or 'levels', got {self.candidates!r}.")
        if self.treatment_col not in X.columns:
            raise SchemaMismatchError(
                f"The training frame has no treatment column {self.treatment_col!r}; "
                f"columns are {sorted(X.columns)[:20]}."
            )
        event, time = split_target(y)
        treat = X[self.treatment_col].astype(object).to_numpy()
        if pd.isna(treat).any():
            raise ValueError("the received treatment is missing for some training rows")
        treat = treat.astype(str)
        self.feature_names_ = list(self.feature_cols) if self.feature_cols is not None else (
            infer_feature_columns(X, exclude=[self.treatment_col]))
        self.feature_names_ = [c for c in self.feature_names_ if c != self.treatment_col]
        self.use_groups_ = bool(self.group_col and self.group_col in X.columns)
        groups = self._groups(X)
        self.group_models_: dict[str, TreatmentResponseModel] = {}
        self.pooled_: TreatmentResponseModel | None = None
        if self.per_group and self.use_groups_ and len(set(groups)) > 1:
            return self._fit_grouped(X, y, event, time, treat, groups)

        self.encoder_ = FeatureEncoder(self.max_categorical_levels).fit(X[self.feature_names_])
        Xe = self.encoder_.transform(X[self.feature_names_])
        self.levels_ = sorted(set(treat))
        self.treatment_counts_ = pd.Series(treat).value_counts().to_dict()
        self.arm_events_ = pd.Series(event.astype(int)).groupby(treat).sum().to_dict()
        self.times_ = time_grid(self.horizon_months, self.landmarks)
        self.n_train_ = len(treat)
        self.n_events_ = int(event.sum())
        self.max_followup_ = float(time.max())

        if self._single_model:
            self._choose_interactions(Xe, treat)
        self.point_ = self._fit_learner(Xe, treat, event, time, seed=self.random_state)
        self._fit_replicates(Xe, treat, event, time)
        self.dr_: dict = {}
        if self.learner == "dr":
            self._fit_dr(Xe, treat, event, time, groups)
        self._fit_propensity(Xe, treat, groups)
        self.group_levels_ = {g: sorted(set(treat[groups == g])) for g in np.unique(groups)}
        return self

    def _interval_method(self) -> str:
        if self.interval_method not in ("auto", "bootstrap", "wald"):
            raise ConfigError(f"interval_method must be auto, bootstrap or wald, got "
                              f"{self.interval_method!r}.")
        wald_ok = self._single_model and self.family == "coxph"
        if self.interval_method == "wald" and not wald_ok:
            raise ConfigError("interval_method 'wald' needs the coxph family with an S- or "
                              "DR-learner; use 'bootstrap'.")
        if self.interval_method == "auto":
            return "wald" if wald_ok else "bootstrap"
        return self.interval_method

    def _fit_replicates(self, Xe, treat, event, time) -> None:
        """``n_bootstrap`` replicates of the outcome model: refits on patient resamples
        (``bootstrap``), or for a Cox S-learner draws of its coefficients from their
        asymptotic distribution (``wald``; :meth:`CoxPH.coefficient_draws`), the default
        there because a Cox refit on hundreds of design columns takes seconds. A refit that
        fails (e.g. a resample without deaths in an arm) is counted in ``bootstrap_failed_``
        and said in the log: the report states how many replicates its intervals come from."""
        rng = np.random.default_rng(self.random_state)
        self.replicates_ = []
        self.bootstrap_failed_ = 0
        self.interval_method_ = self._interval_method()
        if self.interval_method_ == "wald" and int(self.n_bootstrap) > 0:
            self.replicates_ = self.point_.coefficient_draws(
                self._design(Xe, treat), event, time, int(self.n_bootstrap),
                seed=self.random_state + 1)
            return
        for b in range(int(self.n_bootstrap)):
            idx = rng.integers(0, len(treat), len(treat))
            try:
                self.replicates_.append(self._fit_learner(
                    Xe[idx], treat[idx], event[idx], time[idx], seed=self.random_state + b + 1))
            except (ValueError, np.linalg.LinAlgError) as exc:
                self.bootstrap_failed_ += 1
                log.debug("bootstrap replicate %d failed: %s", b, exc)
        if self.bootstrap_failed_:
            log.warning("%d of %d bootstrap refits failed; intervals come from %d",
                        self.bootstrap_failed_, self.n_bootstrap, len(self.replicates_))

    def add_bootstrap(self, X: pd.DataFrame, y, n_bootstrap: int) -> TreatmentResponseModel:
        """Refit the bootstrap replicates (``n_bootstrap`` of them) on the patients the model
        was fitted on, keeping the point fit: selection between families needs no intervals,
        so the train stage bootstraps the selected family only."""
        self.n_bootstrap = int(n_bootstrap)
        if self._grouped():
            for m in [*self.group_models_.values(), *([self.pooled_] if self.pooled_ else [])]:
                rows = self._rows_of(m, X)
                m.add_bootstrap(X.iloc[rows], y[rows], n_bootstrap)
            return self
        event, time = split_target(y)
        treat = X[self.treatment_col].astype(object).to_numpy().astype(str)
        Xe = self.encoder_.transform(X[self.feature_names_])
        self._fit_replicates(Xe, treat, event, time)
        return self

    @property
    def _single_model(self) -> bool:
        """One outcome model with the treatment as a feature (S-learner; also the outcome
        model of the DR-learner)."""
        return self.learner in ("s", "dr")

    def _fit_dr(self, Xe, treat, event, time, groups) -> None:
        """One DR-learner per cancer type (:mod:`pipelines.models.doubly_robust`)."""
        from pipelines.catalog import regimen_catalog
        from pipelines.models.doubly_robust import fit_group_dr

        cat = regimen_catalog()
        src = self.encoder_.source_
        mods = set(self.modifiers) if self.modifiers is not None else set(src)
        modifier_cols = np.array([j for j, c in enumerate(src) if c in mods], dtype=int)
        for g in np.unique(groups):
            on = groups == g
            try:
                soc = cat.standard_of_care(g).name
            except (StopIteration, KeyError, ValueError, AttributeError):
                soc = pd.Series(treat[on]).mode().iloc[0]  # no catalog: the commonest regimen
            fitted = fit_group_dr(Xe[on], treat[on], event[on], time[on], self.horizon_months,
                                  soc, modifier_cols, min_arm=self.min_arm_size,
                                  seed=self.random_state)
            if fitted is not None:
                self.dr_[g] = fitted
        log.info("DR-learner fitted for %d cancer type(s): %s", len(self.dr_),
                 {g: list(d.arms) for g, d in self.dr_.items()})

    def _apply_dr(self, frame, Xe, rows, treat, point, reps) -> None:
        """Replace the outcome model's RMST of every DR-estimated regimen by the standard of
        care's RMST (outcome model) plus the DR benefit, in ``point`` and each replicate (the
        replicate's own standard-of-care RMST plus one draw of the benefit)."""
        if not getattr(self, "dr_", None):
            return
        groups = self._groups(frame) if self.use_groups_ else np.full(len(frame), "")
        g_rows = groups[rows]
        n_rep = len(self.replicates_)
        for g, dr in self.dr_.items():
            in_g = np.flatnonzero(g_rows == g)
            if not len(in_g):
                continue
            patients = np.unique(rows[in_g])
            Xp = Xe[patients]
            where = {p: i for i, p in enumerate(patients)}
            # The standard of care is one of each patient's candidates: its rows already hold
            # the outcome model's RMST, point and replicates; compute only what is missing.
            soc_row = {rows[i]: i for i in in_g if treat[i] == dr.standard_of_care}
            if len(soc_row) == len(patients):
                at = np.array([soc_row[p] for p in patients])
                soc_point, soc_reps = point[at, 0].copy(), reps[:n_rep, at, 0].copy()
            else:
                soc = np.full(len(Xp), dr.standard_of_care)
                soc_point = rmst_from_curves(self.times_, self._curves(self.point_, Xp, soc),
                                             self.horizon_months)
                soc_reps = np.array([rmst_from_curves(
                    self.times_, self._curves(r, Xp, soc), self.horizon_months)
                    for r in self.replicates_]).reshape(n_rep, len(Xp))
            for arm in dr.arms:
                sel = in_g[treat[in_g] == arm]
                if not len(sel):
                    continue
                pos = np.array([where[p] for p in rows[sel]])
                effect = dr.effect(Xp[pos], arm)
                point[sel, 0] = np.clip(soc_point[pos] + effect, 0.0, self.horizon_months)
                if n_rep:
                    draws = dr.draw_effects(Xp[pos], arm, n_rep, self.random_state)
                    reps[:n_rep, sel, 0] = np.clip(soc_reps[:, pos] + draws, 0.0,
                                                   self.horizon_months)

    @property
    def n_replicates(self) -> int:
        """Bootstrap refits that succeeded (what the intervals come from)."""
        if self._grouped():
            ms = [*self.group_models_.values(), *([self.pooled_] if self.pooled_ else [])]
            return min((m.n_replicates for m in ms), default=0)
        return len(getattr(self, "replicates_", []))

    # ------------------------------------------------------------ one learner per group
    def _fit_grouped(self, X, y, event, time, treat, groups) -> TreatmentResponseModel:
        params = {**self.get_params(), "per_group": False}
        X = X.reset_index(drop=True)
        small = []
        for g in sorted(set(groups)):
            on = groups == g
            if on.sum() >= self.min_group_size and event[on].sum() >= 10:
                self.group_models_[g] = TreatmentResponseModel(**params).fit(X[on], y[on])
            else:
                small.append(g)
        if small:
            self.pooled_ = TreatmentResponseModel(**params).fit(X, y)
            log.info("groups %s have too few patients for their own model; pooled", small)
        first = self.pooled_ or next(iter(self.group_models_.values()))
        self.encoder_ = first.encoder_
        self.levels_ = sorted(set(treat))
        self.treatment_counts_ = pd.Series(treat).value_counts().to_dict()
        self.arm_events_ = pd.Series(event.astype(int)).groupby(treat).sum().to_dict()
        self.times_ = first.times_
        self.n_train_, self.n_events_ = len(treat), int(event.sum())
        self.max_followup_ = float(time.max())
        self.group_levels_ = {g: sorted(set(treat[groups == g])) for g in np.unique(groups)}
        self.point_, self.replicates_, self.interactions_ = None, [], []
        self.interval_method_ = first.interval_method_
        return self

    def _rows_of(self, model: TreatmentResponseModel, X: pd.DataFrame) -> np.ndarray:
        """Row positions of ``X`` that ``model`` (a group's or the pooled one) was fitted on."""
        if model is self.pooled_:
            return np.arange(len(X))
        g = next(k for k, m in self.group_models_.items() if m is model)
        return np.flatnonzero(self._groups(X.reset_index(drop=True)) == g)

    def _grouped(self) -> bool:
        return bool(getattr(self, "group_models_", None)) or getattr(self, "pooled_", None) \
            is not None

    def _route(self, frame: pd.DataFrame) -> list[tuple[TreatmentResponseModel, np.ndarray]]:
        """(model, row positions) for each model that serves some rows of ``frame``."""
        groups = self._groups(frame) if self.group_col in frame.columns else np.full(len(frame),
                                                                                     "")
        out: dict[int, tuple[TreatmentResponseModel, list[int]]] = {}
        for i, g in enumerate(groups):
            m = self.group_models_.get(g) or self.pooled_ or next(
                iter(self.group_models_.values()))
            out.setdefault(id(m), (m, []))[1].append(i)
        return [(m, np.asarray(rows)) for m, rows in out.values()]

    def _model_for(self, treatment: str) -> TreatmentResponseModel:
        for m in self.group_models_.values():
            if treatment in m.levels_:
                return m
        if self.pooled_ is not None:
            return self.pooled_
        raise ValueError(f"unknown treatment {treatment!r}")

    def _stack_rows(self, features: pd.DataFrame, fn, width: int | None = None) -> np.ndarray:
        frame = features.reset_index(drop=True)
        parts = [(rows, fn(m, frame.iloc[rows])) for m, rows in self._route(frame)]
        shape = (len(frame),) + parts[0][1].shape[1:] if parts else (0,)
        out = np.full(shape, np.nan)
        for rows, val in parts:
            out[rows] = val
        return out

    def _groups(self, X: pd.DataFrame) -> np.ndarray:
        if self.use_groups_:
            return X[self.group_col].astype(object).where(X[self.group_col].notna(), "").astype(
                str).to_numpy()
        return np.full(len(X), "", dtype=object)

    def _base(self, seed: int):
        params = dict(self.base_params or {})
        est = make_estimator(self.family, **params)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        return est

    # ------------------------------------------------------------ S-learner design
    def _choose_interactions(self, Xe: np.ndarray, treat: np.ndarray) -> None:
        self.interactions_: list[tuple[str, int]] = []
        if not self.interactions:
            return
        src = self.encoder_.source_
        names = self.encoder_.feature_names_
        mods = set(self.modifiers) if self.modifiers is not None else set(src)
        cols = [j for j, s in enumerate(src) if s in mods and not names[j].endswith("_missing")]
        for t in self.levels_[1:]:
            on = treat == t
            for j in cols:
                if np.count_nonzero(Xe[on, j]) >= self.min_interaction_count and np.count_nonzero(
                        Xe[on, j] != Xe[on, j][0]) > 0:
                    self.interactions_.append((t, j))

    def _design(self, Xe: np.ndarray, treat: np.ndarray) -> np.ndarray:
        dummies = np.column_stack([(treat == t).astype(float) for t in self.levels_[1:]]) if len(
            self.levels_) > 1 else np.empty((len(Xe), 0))
        inter = np.column_stack([(treat == t) * Xe[:, j] for t, j in self.interactions_]) if (
            self.interactions_) else np.empty((len(Xe), 0))
        return np.hstack([Xe, dummies, inter])

    def design_names(self) -> tuple[list[str], list[str]]:
        """(column names, source feature) of the S-learner design matrix."""
        names = list(self.encoder_.feature_names_)
        src = list(self.encoder_.source_)
        for t in self.levels_[1:]:
            names.append(f"treatment={t}")
            src.append(TREATMENT_SOURCE)
        for t, j in self.interactions_:
            names.append(f"{self.encoder_.feature_names_[j]}:treatment={t}")
            src.append(self.encoder_.source_[j])
        return names, src

    def _fit_learner(self, Xe, treat, event, time, seed: int):
        y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
        y["event"], y["time"] = event, time
        if self._single_model:
            return self._base(seed).fit(self._design(Xe, treat), y)
        arms = {}
        for t in self.levels_:
            on = treat == t
            if on.sum() < self.min_arm_size or event[on].sum() < 3:
                continue
            arms[t] = self._base(seed).fit(Xe[on], y[on])
        if not arms:
            raise ValueError("no treatment arm is large enough for a T-learner")
        return arms

    # ------------------------------------------------------------ propensity
    def _fit_propensity(self, Xe: np.ndarray, treat: np.ndarray, groups: np.ndarray) -> None:
        self.propensity_: dict[str, _Propensity] = {}
        for g in np.unique(groups):
            on = groups == g
            Xg, tg = Xe[on], treat[on]
            classes = sorted(set(tg))
            mean, scale = Xg.mean(axis=0), Xg.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            if len(classes) < 2:
                self.propensity_[g] = _Propensity(classes, None, mean, scale,
                                                  {classes[0]: np.zeros(on.sum())}, {classes[0]: 1.0})
                continue
            model = LogisticRegression(C=1.0, max_iter=2000).fit((Xg - mean) / scale, tg)
            p = model.predict_proba((Xg - mean) / scale)
            treated, sds = {}, {}
            for k, c in enumerate(model.classes_):
                lg = _logit(p[:, k])
                treated[c] = np.sort(lg[tg == c])
                sds[c] = float(lg.std()) or 1.0
            self.propensity_[g] = _Propensity(list(model.classes_), model, mean, scale,
                                              treated, sds)

    # ================================================================== prediction
    def _prepare(self, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        if not hasattr(self, "encoder_"):
            raise ValueError("TreatmentResponseModel is not fitted")
        frame = features.copy()
        absent = [c for c in self.feature_names_ if c not in frame.columns]
        if len(absent) > len(self.feature_names_) // 2:
            raise SchemaMismatchError(
                f"The features lack {len(absent)} of the model's {len(self.feature_names_)} "
                f"inputs (e.g. {absent[:5]}); score with features built like the training set."
            )
        for c in absent:  # imputed like a missing value, and said so
            frame[c] = np.nan
        if absent:
            log.warning("features lack %d model input(s) %s; imputed", len(absent), absent[:5])
        return frame, self.encoder_.transform(frame[self.feature_names_])

    def _candidates(self, frame: pd.DataFrame) -> list[list[str]]:
        if self.candidates == "levels":
            return [list(self.levels_)] * len(frame)
        from pipelines.catalog import regimen_catalog

        cat = regimen_catalog()
        groups = self._groups(frame) if self.use_groups_ else np.full(len(frame), "")
        cache: dict[str, list[str]] = {}
        out = []
        for g in groups:
            if g not in cache:
                names = [r.name for r in cat.for_cancer_type(g)]
                cache[g] = names or list(self.group_levels_.get(g, []))
            out.append(cache[g])
        return out

    def _curves(self, learner, Xe: np.ndarray, treat: np.ndarray) -> np.ndarray:
        """Survival curves on ``times_`` (NaN rows where the learner cannot predict ``treat``)."""
        out = np.full((len(Xe), len(self.times_)), np.nan)
        if self._single_model:
            ok = np.isin(treat, self.levels_)
            if ok.any():
                out[ok] = learner.predict_survival(self._design(Xe[ok], treat[ok]), self.times_)
            return out
        for t, model in learner.items():
            on = treat == t
            if on.any():
                out[on] = model.predict_survival(Xe[on], self.times_)
        return out

    def survival_curves(self, features: pd.DataFrame, treatment: str):
        """(times, S) — each patient's predicted survival curve on ``treatment``.

        ``S`` has shape (n_patients, n_times); rows are NaN when the model never saw the
        treatment.
        """
        if self._grouped():
            return self.times_.copy(), self._stack_rows(
                features, lambda m, f: m.survival_curves(f, treatment)[1])
        _, Xe = self._prepare(features)
        return self.times_.copy(), self._curves(self.point_, Xe, np.full(len(Xe), treatment))

    def predict_survival_received(self, features: pd.DataFrame) -> np.ndarray:
        """Survival curves under the treatment each patient actually received."""
        if self._grouped():
            return self._stack_rows(features, lambda m, f: m.predict_survival_received(f))
        frame, Xe = self._prepare(features)
        treat = frame[self.treatment_col].astype(str).to_numpy()
        return self._curves(self.point_, Xe, treat)

    def predict_risk(self, features: pd.DataFrame) -> np.ndarray:
        """Risk score under the received treatment (for C-index): the base model's risk for
        an S-learner, minus the predicted RMST for a T-learner (arms share no risk scale)."""
        if self._grouped():  # group models share no risk scale: rank by predicted RMST
            s = self.predict_survival_received(features)
            return -rmst_from_curves(self.times_, s, self.horizon_months)
        frame, Xe = self._prepare(features)
        treat = frame[self.treatment_col].astype(str).to_numpy()
        if self._single_model:
            return self.point_.predict(self._design(Xe, treat))
        return -rmst_from_curves(self.times_, self._curves(self.point_, Xe, treat),
                                 self.horizon_months)

    def predict_rmst(self, features: pd.DataFrame, treatment: str) -> np.ndarray:
        times, s = self.survival_curves(features, treatment)
        return rmst_from_curves(times, s, self.horizon_months)

    def predict_treatments(self, features: pd.DataFrame, return_replicates: bool = False):
        """One row per (patient, candidate treatment) with RMST, landmark survival, intervals,
        propensity and the overlap flag (columns: :data:`PREDICTION_COLUMNS`).

        With ``return_replicates``: ``(frame, reps)`` where ``reps[b, i]`` is bootstrap refit
        ``b``'s RMST for row ``i`` of the frame (shape (0, n) without refits): the score stage
        derives paired quantities from it (benefit vs standard of care, probability of rank 1).
        """
        if self._grouped():
            frame = features.reset_index(drop=True).copy()
            keys = (frame["patient_key"].astype(str).to_numpy() if "patient_key" in frame
                    else np.arange(len(frame)).astype(str))
            frame["patient_key"] = np.arange(len(frame)).astype(str)  # row ids while routing
            parts = [m.predict_treatments(frame.iloc[rows], return_replicates=True)
                     for m, rows in self._route(frame)]
            if not parts:
                empty = pd.DataFrame(columns=PREDICTION_COLUMNS)
                return (empty, np.empty((0, 0))) if return_replicates else empty
            out = pd.concat([p for p, _ in parts], ignore_index=True)
            n_rep = min(r.shape[0] for _, r in parts)
            reps = np.hstack([r[:n_rep] for _, r in parts])
            row = out["patient_key"].astype(int).to_numpy()
            order = np.argsort(row, kind="mergesort")
            out = out.iloc[order]
            out["patient_key"] = keys[row[order]]
            out = out[PREDICTION_COLUMNS].reset_index(drop=True)
            return (out, reps[:, order]) if return_replicates else out
        frame, Xe = self._prepare(features)
        keys = (frame["patient_key"].astype(str).to_numpy() if "patient_key" in frame.columns
                else np.arange(len(frame)).astype(str))
        cands = self._candidates(frame)
        rows = np.repeat(np.arange(len(frame)), [len(c) for c in cands])
        treat = np.array([t for c in cands for t in c], dtype=object).astype(str)
        if len(rows) == 0:
            empty = pd.DataFrame(columns=PREDICTION_COLUMNS)
            return (empty, np.empty((0, 0))) if return_replicates else empty
        # Each learner's curves are reduced at once to (RMST, S(12), S(24)): holding every
        # replicate's full curves would need rows x times x replicates floats (GBs at 100k).
        point = np.empty((len(rows), 3))
        reps = np.empty((max(len(self.replicates_), 1), len(rows), 3))
        for start in range(0, len(rows), PREDICT_CHUNK):
            sl = slice(start, start + PREDICT_CHUNK)
            Xl, tl = Xe[rows[sl]], treat[sl]
            point[sl] = self._summaries(self._curves(self.point_, Xl, tl))
            for b, r in enumerate(self.replicates_):
                reps[b, sl] = self._summaries(self._curves(r, Xl, tl))
        if not self.replicates_:
            reps[0] = point
        if self.learner == "dr":
            self._apply_dr(frame, Xe, rows, treat, point, reps)

        def summarise(k):
            p, r = point[:, k], reps[:, :, k]
            if len(r) < 2:
                return p, p, p
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: unseen treatment
                pct = np.nanpercentile if np.isnan(r).any() else np.percentile
                lo, hi = pct(r, [2.5, 97.5], axis=0)
            return p, np.minimum(lo, p), np.maximum(hi, p)

        rm, s12, s24 = summarise(0), summarise(1), summarise(2)
        prop, n_sim = self._overlap(frame, Xe, rows, treat)
        unseen = np.isnan(rm[0])
        out = pd.DataFrame({
            "patient_key": keys[rows], "treatment": treat,
            "predicted_rmst": rm[0], "rmst_lower": rm[1], "rmst_upper": rm[2],
            "surv_12": s12[0], "surv_12_lower": s12[1], "surv_12_upper": s12[2],
            "surv_24": s24[0], "surv_24_lower": s24[1], "surv_24_upper": s24[2],
            "propensity": prop,
            "overlap_warning": (prop < self.overlap_threshold) | (n_sim < self.min_similar)
            | unseen,
            "n_similar_treated": n_sim.astype(int),
        })
        if return_replicates:
            return out[PREDICTION_COLUMNS], (reps[:, :, 0] if self.replicates_
                                             else np.empty((0, len(rows))))
        return out[PREDICTION_COLUMNS]

    def _summaries(self, curves: np.ndarray) -> np.ndarray:
        """(RMST at the horizon, S at the two landmarks) of each curve: (n, 3)."""
        l12, l24 = self.landmarks_()
        return np.column_stack([rmst_from_curves(self.times_, curves, self.horizon_months),
                                value_at(self.times_, curves, l12),
                                value_at(self.times_, curves, l24)])

    def landmarks_(self) -> tuple[float, float]:
        """The two landmark times reported as ``surv_12`` / ``surv_24``."""
        if len(self.landmarks) != 2:
            raise ConfigError(f"landmarks must hold two times, got {self.landmarks!r}.")
        return float(self.landmarks[0]), float(self.landmarks[1])

    def _overlap(self, frame, Xe, rows, treat) -> tuple[np.ndarray, np.ndarray]:
        groups = self._groups(frame) if self.use_groups_ else np.full(len(frame), "")
        prop = np.zeros(len(rows))
        n_sim = np.zeros(len(rows), dtype=int)
        for g in np.unique(groups[rows]):
            model = self.propensity_.get(g)
            sel = np.flatnonzero(groups[rows] == g)
            if model is None:
                continue
            p = model.proba(Xe[rows[sel]])
            for k, c in enumerate(model.classes):
                on = treat[sel] == c
                if not on.any():
                    continue
                idx = sel[on]
                prop[idx] = p[on, k]
                lg = _logit(p[on, k])
                treated = model.treated_logits[c]
                width = self.caliper_sd * model.logit_sd[c]
                if model.model is None:
                    n_sim[idx] = len(treated)
                else:  # treated logits are sorted: count those within the caliper by bisection
                    n_sim[idx] = (np.searchsorted(treated, lg + width, side="right")
                                  - np.searchsorted(treated, lg - width, side="left"))
        return prop, n_sim

    def propensity(self, features: pd.DataFrame) -> np.ndarray:
        """P(received treatment | features) for each row (for IPW evaluation)."""
        if self._grouped():
            return self._stack_rows(features, lambda m, f: m.propensity(f))
        frame, Xe = self._prepare(features)
        treat = frame[self.treatment_col].astype(str).to_numpy()
        rows = np.arange(len(frame))
        prop, _ = self._overlap(frame, Xe, rows, treat)
        return prop

    # ================================================================== explanation
    def explain(self, features: pd.DataFrame, treatment: str, top_k: int = 5) -> pd.DataFrame:
        """The ``top_k`` features that moved each patient's prediction on ``treatment``.

        ``contribution`` > 0 means the feature *lengthens* predicted survival relative to the
        average training patient; ``scale`` names its unit: ``log_hazard`` (Cox: −coef ×
        (x − mean); XGBoost Cox: −TreeSHAP), ``log_time`` (XGBoost AFT: TreeSHAP) or
        ``rmst`` (forests: permutation SHAP of the predicted RMST, in time units).
        Treatment indicator columns are left out: they are the same for every patient on
        ``treatment``; treatment × biomarker interactions count towards the biomarker.
        """
        if self._grouped():
            frame = features.reset_index(drop=True)
            parts = [m.explain(frame.iloc[rows], treatment, top_k)
                     for m, rows in self._route(frame)]
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
                columns=["patient_key", "treatment", "feature", "value", "contribution",
                         "scale"])
        frame, Xe = self._prepare(features)
        treat = np.full(len(frame), treatment, dtype=object).astype(str)
        learner = self.point_ if self._single_model else self.point_.get(treatment)
        if learner is None or (self._single_model and treatment not in self.levels_):
            return pd.DataFrame(columns=["patient_key", "treatment", "feature", "value",
                                         "contribution", "scale"])
        if self._single_model:
            X = self._design(Xe, treat)
            _, src = self.design_names()
        else:
            X = Xe
            src = list(self.encoder_.source_)
        contrib, scale = self._contributions(learner, X, Xe, treat)
        src = np.asarray(src, dtype=object)
        feats = [f for f in dict.fromkeys(src) if f != TREATMENT_SOURCE]
        agg = np.column_stack([contrib[:, src == f].sum(axis=1) for f in feats])
        keys = (frame["patient_key"].astype(str).to_numpy() if "patient_key" in frame.columns
                else np.arange(len(frame)).astype(str))
        records = []
        for i in range(len(frame)):
            order = np.argsort(-np.abs(agg[i]))[:top_k]
            for j in order:
                v = frame[feats[j]].iloc[i]
                records.append((keys[i], treatment, feats[j], None if pd.isna(v) else str(v),
                                float(agg[i, j]), scale))
        return pd.DataFrame.from_records(
            records, columns=["patient_key", "treatment", "feature", "value", "contribution",
                              "scale"])

    def _contributions(self, learner, X, Xe, treat) -> tuple[np.ndarray, str]:
        if isinstance(learner, CoxPH):
            return -learner.contributions(X), "log_hazard"
        if isinstance(learner, XGBSurvival):
            sv = learner.shap_values(X)
            if learner.objective == "survival:cox":
                return -sv, "log_hazard"
            return sv, "log_time"
        return self._permutation_shap(learner, X, Xe, treat), "rmst"

    def _permutation_shap(self, learner, X, Xe, treat) -> np.ndarray:
        import shap

        rng = np.random.default_rng(self.random_state)
        bg = self._background
        if bg is None or len(bg) == 0:
            bg = Xe[rng.choice(len(Xe), min(len(Xe), 30), replace=False)]
        t0 = treat[0]

        def f(rows: np.ndarray) -> np.ndarray:
            t = np.full(len(rows), t0, dtype=object).astype(str)
            d = self._design(rows, t) if self._single_model else rows
            return rmst_from_curves(self.times_, learner.predict_survival(d, self.times_),
                                    self.horizon_months)

        explainer = shap.explainers.Permutation(f, shap.maskers.Independent(bg, max_samples=30),
                                                seed=self.random_state)
        values = explainer(Xe, max_evals=2 * Xe.shape[1] + 1, silent=True).values
        if self._single_model:  # pad: design columns beyond Xe carry no separate credit
            values = np.hstack([values, np.zeros((len(Xe), X.shape[1] - Xe.shape[1]))])
        return values

    _background: np.ndarray | None = None

    def set_background(self, features: pd.DataFrame, n: int = 30) -> None:
        """Reference sample for permutation SHAP (the training patients, by default)."""
        if self._grouped():
            frame = features.reset_index(drop=True)
            for m, rows in self._route(frame):
                m.set_background(frame.iloc[rows], n)
            return
        _, Xe = self._prepare(features)
        rng = np.random.default_rng(self.random_state)
        self._background = Xe[rng.choice(len(Xe), min(n, len(Xe)), replace=False)]

    # ================================================================== summaries
    def feature_importance(self) -> pd.DataFrame:
        """Global importance per source feature (|coef × sd| for Cox, gain for trees)."""
        if self._grouped():
            parts = [m.feature_importance() for m in [*self.group_models_.values(),
                                                       *([self.pooled_] if self.pooled_ else [])]]
            parts = [p for p in parts if len(p)]
            if not parts:
                return pd.DataFrame(columns=["feature", "importance"])
            return (pd.concat(parts).groupby("feature", as_index=False)["importance"].mean()
                    .sort_values("importance", ascending=False, ignore_index=True))
        learners = [self.point_] if self._single_model else list(self.point_.values())
        names, src = self.design_names() if self._single_model else (
            list(self.encoder_.feature_names_), list(self.encoder_.source_))
        total = np.zeros(len(names))
        for m in learners:
            try:
                total += np.asarray(m.feature_importances_)
            except AttributeError:
                return pd.DataFrame(columns=["feature", "importance"])
        df = pd.DataFrame({"feature": src, "importance": total})
        df = df[df["feature"] != TREATMENT_SOURCE]
        return (df.groupby("feature", as_index=False)["importance"].sum()
                .sort_values("importance", ascending=False, ignore_index=True))

    def treatment_log_hr(self, treatment: str, reference: str,
                         at: dict[str, float] | None = None) -> tuple[float, float]:
        """Cox S-learner: log hazard ratio of ``treatment`` vs ``reference`` (and its standard
        error) for a patient with modifier values ``at`` (raw feature name → value; others 0).

        Uses the Wald covariance of the point fit when it was computed, else the bootstrap
        replicates' spread.
        """
        if self._grouped():
            return self._model_for(treatment).treatment_log_hr(treatment, reference, at)
        if not self._single_model or not isinstance(self.point_, CoxPH):
            raise ConfigError("treatment_log_hr needs a Cox S-learner (family='coxph', learner='s').")
        names, _ = self.design_names()
        c = np.zeros(len(names))
        at = at or {}
        enc_names = self.encoder_.feature_names_
        for t, sign in ((treatment, 1.0), (reference, -1.0)):
            if t == self.levels_[0]:
                continue
            if t not in self.levels_:
                raise ValueError(f"unknown treatment {t!r}")
            c[names.index(f"treatment={t}")] += sign
            for k, (ti, j) in enumerate(self.interactions_):
                if ti == t:
                    v = at.get(self.encoder_.source_[j])
                    if v is not None and (enc_names[j] == self.encoder_.source_[j]):
                        c[len(enc_names) + len(self.levels_) - 1 + k] += sign * float(v)
        est = float(c @ self.point_.coef_)
        if self.point_.cov_ is not None:
            se = float(np.sqrt(max(c @ self.point_.cov_ @ c, 0.0)))
        elif self.replicates_:
            se = float(np.std([c @ r.coef_ for r in self.replicates_], ddof=1))
        else:
            se = float("nan")
        return est, se

"""Survival estimators behind one sklearn-style interface.

Every estimator follows the scikit-learn contract (parameters stored by ``__init__``, ``fit``
validates and returns ``self``, fitted attributes end in ``_``) and the scikit-survival one
(``y`` is a structured (event, time) array, ``predict`` returns a *risk* score — higher means
shorter survival — and ``score`` is Harrell's C-index). On top, each one predicts whole
survival curves on a time grid: ``predict_survival(X, times) -> (n_samples, n_times)``.

=================  =============================================================  ==========
family             model                                                          curves
=================  =============================================================  ==========
``coxph``          scikit-survival ``CoxPHSurvivalAnalysis`` (ridge, Breslow ties)  Breslow
``rsf``            scikit-survival ``RandomSurvivalForest``                         forest KM
``gbsa``           scikit-survival ``GradientBoostingSurvivalAnalysis`` (Cox loss)  Breslow
``xgb_cox``        XGBoost ``survival:cox`` (hist; ``device`` cuda/cpu)             Breslow
``xgb_aft``        XGBoost ``survival:aft`` (hist; GPU-capable)                     parametric
``xgb_spark_cox``  ``xgboost.spark.SparkXGBRegressor(objective="survival:cox")``   Breslow
=================  =============================================================  ==========

Cox-objective models predict only a relative risk; their survival curve needs the baseline
hazard, estimated here by Breslow's estimator on the training data (:class:`Breslow`).

>>> import numpy as np
>>> from pipelines.models.design import make_target
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 2)); t = rng.exponential(np.exp(-X[:, 0])); y = make_target(t < 2, np.minimum(t, 2))
>>> m = CoxPH().fit(X, y)
>>> bool(m.coef_[0] > 0.5) and m.predict_survival(X[:3], [0.0, 1.0]).shape == (3, 2)
True
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from pipelines.lakehouse.errors import ConfigError
from pipelines.models.design import MIN_TIME, split_target
from pipelines.models.device import resolve_device

log = logging.getLogger("oncorank.models")


# ------------------------------------------------------------------------------ Breslow
class Breslow:
    """Breslow's estimator of the cumulative baseline hazard for a fitted linear predictor.

    H0(t) = sum over event times s <= t of d(s) / sum_{j at risk at s} exp(eta_j).
    """

    def fit(self, eta: np.ndarray, event: np.ndarray, time: np.ndarray) -> Breslow:
        eta = np.asarray(eta, float)
        shift = eta.max() if len(eta) else 0.0  # exp() overflow guard; undone below
        w = np.exp(eta - shift)
        order = np.argsort(time, kind="mergesort")
        t, d, w = np.asarray(time, float)[order], np.asarray(event, bool)[order], w[order]
        uniq, first = np.unique(t, return_index=True)
        at_risk = np.cumsum(w[::-1])[::-1][first]
        deaths = np.add.reduceat(d.astype(float), first)
        keep = deaths > 0
        self.times_ = uniq[keep]
        self.cumhaz_ = np.cumsum(deaths[keep] / at_risk[keep]) * np.exp(-shift)
        return self

    def cumulative_hazard(self, times) -> np.ndarray:
        idx = np.searchsorted(self.times_, np.asarray(times, float), side="right") - 1
        return np.where(idx >= 0, self.cumhaz_[np.clip(idx, 0, None)], 0.0)

    def survival(self, eta: np.ndarray, times) -> np.ndarray:
        h0 = self.cumulative_hazard(times)
        return np.exp(-np.outer(np.exp(np.asarray(eta, float)), h0))


# ------------------------------------------------------------------------------ base class
class SurvivalEstimator(BaseEstimator):
    """Shared ``fit``/``score`` plumbing; subclasses implement ``_fit``, ``predict`` and
    ``_survival``."""

    family = "base"

    def fit(self, X, y, sample_weight=None):
        X = check_array(X, dtype=float, ensure_all_finite=True)
        event, time = split_target(y)
        if len(event) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(event)}")
        if not event.any():
            raise ValueError("the training data contain no events; survival models need some")
        self.n_features_in_ = X.shape[1]
        self.event_times_ = np.unique(time[event])
        self._fit(X, event, np.maximum(time, MIN_TIME))
        return self

    def predict_survival(self, X, times) -> np.ndarray:
        """S(t | x) for every row of ``X`` at every time in ``times``: (n_samples, n_times)."""
        check_is_fitted(self, "n_features_in_")
        X = check_array(X, dtype=float, ensure_all_finite=True)
        times = np.asarray(times, float)
        s = self._survival(X, times)
        s[:, times <= 0] = 1.0
        return np.clip(s, 0.0, 1.0)

    def score(self, X, y) -> float:
        """Harrell's concordance index of ``predict(X)`` on ``y``."""
        from sksurv.metrics import concordance_index_censored

        event, time = split_target(y)
        return float(concordance_index_censored(event, time, self.predict(X))[0])

    # subclasses
    def _fit(self, X, event, time):  # pragma: no cover - abstract
        raise NotImplementedError

    def _survival(self, X, times):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def feature_importances_(self) -> np.ndarray:
        raise AttributeError(f"{type(self).__name__} has no feature importances")


# ------------------------------------------------------------------------------ Cox PH
COV_RTOL = 1e-6  # eigenvalues of the information below this share of the largest: dropped

class CoxPH(SurvivalEstimator):
    """Cox proportional hazards (scikit-survival), standardised inputs, ridge penalty.

    Parameters
    ----------
    alpha : float
        Ridge penalty on the standardised coefficients (scikit-survival's ``alpha``); a small
        value keeps near-collinear designs (e.g. one-hot treatments within cancer types)
        solvable without visibly shrinking well-supported effects.
    compute_cov : bool
        Also compute the coefficients' covariance (inverse observed information) for Wald
        confidence intervals; costs one extra pass over the data.

    Attributes
    ----------
    coef_ : log hazard ratio per unit of each original (unstandardised) column.
    cov_ : covariance of ``coef_`` (when ``compute_cov``).
    mean_ : column means of the training data (the reference point of ``explain``).
    """

    family = "coxph"

    def __init__(self, alpha: float = 1e-2, ties: str = "breslow", compute_cov: bool = False,
                 n_iter: int = 100):
        self.alpha = alpha
        self.ties = ties
        self.compute_cov = compute_cov
        self.n_iter = n_iter

    def _fit(self, X, event, time):
        from sksurv.linear_model import CoxPHSurvivalAnalysis
        from sksurv.linear_model.coxph import CoxPHOptimizer

        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (X - self.mean_) / self.scale_
        y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
        y["event"], y["time"] = event, time
        model = CoxPHSurvivalAnalysis(alpha=self.alpha, ties=self.ties, n_iter=self.n_iter)
        with warnings.catch_warnings():
            # Convergence chatter on separable designs; the ridge term keeps coefs finite.
            warnings.simplefilter("ignore")
            model.fit(Z, y)
        beta_z = np.asarray(model.coef_, float)
        self.coef_ = beta_z / self.scale_
        self.cov_ = None
        if self.compute_cov:
            self.cov_ = self._covariance(Z, event, time, beta_z, CoxPHOptimizer)
        self.breslow_ = Breslow().fit(self.predict(X), event, time)

    def _covariance(self, Z, event, time, beta_z, optimizer) -> np.ndarray:
        opt = optimizer(Z, event, time, np.full(Z.shape[1], float(self.alpha)), self.ties)
        opt.update(beta_z)
        info = opt.hessian * len(time)
        # Directions the data barely determine (near-collinear standardised columns, e.g. an
        # interaction almost equal to its main effect) get no variance instead of an
        # astronomically large one: a prediction for data like the training data does not
        # load on them, and drawing along them would move every prediction at once.
        cov_z = np.linalg.pinv((info + info.T) / 2, rtol=COV_RTOL, hermitian=True)
        return cov_z / np.outer(self.scale_, self.scale_)

    def coefficient_draws(self, X, event, time, n: int, seed: int = 0) -> list[CoxPH]:
        """``n`` copies of this fit with coefficients drawn from their asymptotic normal
        distribution N(coef_, cov_) (the inverse penalised information; computed here when
        the fit did not), each with the point fit's Breslow baseline: the replicates of a
        Wald/parametric interval, without a refit per bootstrap sample. The baseline is not
        refitted per draw: on a wide design a few rare columns are barely determined, a draw
        moves their patients' linear predictor by tens of units, and a baseline refitted to
        them collapses every other patient's hazard (survival 100% at 24 months for all).
        The baseline's own sampling error is therefore not drawn."""
        import copy

        from sksurv.linear_model.coxph import CoxPHOptimizer

        X = check_array(X, dtype=float)
        event = np.asarray(event, bool)
        time = np.asarray(time, float)
        if self.cov_ is None:
            Z = (X - self.mean_) / self.scale_
            self.cov_ = self._covariance(Z, event, time, self.coef_ * self.scale_,
                                         CoxPHOptimizer)
        cov = (self.cov_ + self.cov_.T) / 2
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self.coef_, cov, size=n, method="svd")
        out = []
        for beta in draws:
            rep = copy.copy(self)
            rep.coef_ = beta
            rep.cov_ = None
            out.append(rep)  # the baseline hazard stays the point fit's (see above)
        return out

    def predict(self, X) -> np.ndarray:
        """Linear predictor relative to the training mean (log hazard ratio)."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=float)
        return (X - self.mean_) @ self.coef_

    def _survival(self, X, times):
        return self.breslow_.survival(self.predict(X), times)

    @property
    def feature_importances_(self) -> np.ndarray:
        return np.abs(self.coef_ * self.scale_)

    def contributions(self, X) -> np.ndarray:
        """Per-feature share of the linear predictor, coef_j × (x_j − mean_j) (log-hazard)."""
        X = check_array(X, dtype=float)
        return (X - self.mean_) * self.coef_


# ------------------------------------------------------------------------------ RSF / GBSA
class RandomSurvivalForest(SurvivalEstimator):
    """scikit-survival's random survival forest (log-rank splits, Nelson–Aalen/KM leaves)."""

    family = "rsf"

    def __init__(self, n_estimators: int = 200, min_samples_split: int = 10,
                 min_samples_leaf: int = 15, max_features="sqrt", max_samples=None,
                 n_jobs: int | None = None, random_state: int | None = 0):
        self.n_estimators = n_estimators
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _fit(self, X, event, time):
        from sksurv.ensemble import RandomSurvivalForest as _RSF

        y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
        y["event"], y["time"] = event, time
        self.model_ = _RSF(
            n_estimators=self.n_estimators, min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            max_samples=self.max_samples, n_jobs=self.n_jobs, random_state=self.random_state,
        ).fit(X, y)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(check_array(X, dtype=float))

    def _survival(self, X, times):
        grid = self.model_.unique_times_
        s = self.model_.predict_survival_function(X, return_array=True)
        idx = np.searchsorted(grid, times, side="right") - 1
        out = np.where(idx[None, :] >= 0, s[:, np.clip(idx, 0, None)], 1.0)
        return out

    @property
    def feature_importances_(self) -> np.ndarray:
        raise AttributeError("RandomSurvivalForest has no impurity importances; use explain()")


class GradientBoostedSurvival(SurvivalEstimator):
    """scikit-survival gradient-boosted trees with the Cox partial-likelihood loss."""

    family = "gbsa"

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.1, max_depth: int = 3,
                 subsample: float = 1.0, random_state: int | None = 0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def _fit(self, X, event, time):
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
        y["event"], y["time"] = event, time
        self.model_ = GradientBoostingSurvivalAnalysis(
            loss="coxph", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            max_depth=self.max_depth, subsample=self.subsample, random_state=self.random_state,
        ).fit(X, y)
        self.breslow_ = Breslow().fit(self.model_.predict(X), event, time)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(check_array(X, dtype=float))

    def _survival(self, X, times):
        return self.breslow_.survival(self.predict(X), times)

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.model_.feature_importances_


# ------------------------------------------------------------------------------ XGBoost
_AFT_CDF = {
    "normal": stats.norm.cdf,
    "logistic": stats.logistic.cdf,
    # XGBoost's "extreme" is the Gumbel-minimum law of log T (Weibull T): F(z) = 1 - exp(-e^z)
    "extreme": lambda z: -np.expm1(-np.exp(np.clip(z, -50, 50))),
}


class XGBSurvival(SurvivalEstimator):
    """XGBoost survival trees: ``survival:cox`` (Breslow curves) or ``survival:aft``.

    ``device="auto"`` trains on CUDA when a GPU is present (see :mod:`~pipelines.models.device`)
    and on the CPU otherwise. XGBoost has no GPU gradient for ``survival:cox`` — its trees are
    still built on the GPU — while ``survival:aft`` runs fully on the GPU.
    """

    family = "xgb"

    def __init__(self, objective: str = "survival:cox", n_estimators: int = 300,
                 learning_rate: float = 0.05, max_depth: int = 3, min_child_weight: float = 5.0,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 aft_distribution: str = "normal", aft_scale: float = 1.0,
                 device: str = "auto", n_jobs: int | None = None, random_state: int = 0):
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.aft_distribution = aft_distribution
        self.aft_scale = aft_scale
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self) -> dict:
        if self.objective not in ("survival:cox", "survival:aft"):
            raise ConfigError(
                f"XGBSurvival objective must be survival:cox or survival:aft, got "
                f"{self.objective!r}."
            )
        params = {
            "objective": self.objective, "tree_method": "hist",
            "device": resolve_device(self.device), "eta": self.learning_rate,
            "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda, "seed": self.random_state, "verbosity": 0,
        }
        # Thread count settable per process (ONCORANK_XGB_THREADS); see also OMP_WAIT_POLICY
        # in pipelines/models/__init__.py for busy machines.
        threads = self.n_jobs or int(os.environ.get("ONCORANK_XGB_THREADS", "0") or 0)
        if threads:
            params["nthread"] = threads
        if self.objective == "survival:aft":
            if self.aft_distribution not in _AFT_CDF:
                raise ConfigError(
                    f"aft_distribution must be one of {sorted(_AFT_CDF)}, got "
                    f"{self.aft_distribution!r}."
                )
            params.update(aft_loss_distribution=self.aft_distribution,
                          aft_loss_distribution_scale=self.aft_scale,
                          eval_metric="aft-nloglik")
        else:
            params["eval_metric"] = "cox-nloglik"
        return params

    def _fit(self, X, event, time):
        import xgboost as xgb

        params = self._params()
        self.device_ = params["device"]
        if self.objective == "survival:cox":
            dtrain = xgb.DMatrix(X, label=np.where(event, time, -time))
        else:
            dtrain = xgb.DMatrix(X)
            dtrain.set_float_info("label_lower_bound", time)
            dtrain.set_float_info("label_upper_bound", np.where(event, time, np.inf))
        self.booster_ = xgb.train(params, dtrain, num_boost_round=self.n_estimators)
        if self.device_ == "cuda":
            # Scoring happens on CPU workers and driver; keep the fitted booster portable.
            self.booster_.set_param({"device": "cpu"})
        if self.objective == "survival:cox":
            self.breslow_ = Breslow().fit(self._margin(X), event, time)

    def _margin(self, X) -> np.ndarray:
        import xgboost as xgb

        return self.booster_.predict(xgb.DMatrix(X), output_margin=True)

    def predict(self, X) -> np.ndarray:
        """Risk score: the log hazard ratio (Cox) or minus the predicted log time (AFT)."""
        check_is_fitted(self, "booster_")
        m = self._margin(check_array(X, dtype=float))
        return m if self.objective == "survival:cox" else -m

    def _survival(self, X, times):
        if self.objective == "survival:cox":
            return self.breslow_.survival(self._margin(X), times)
        mu = self._margin(X)
        with np.errstate(divide="ignore"):
            logt = np.log(np.maximum(times, 1e-12))
        z = (logt[None, :] - mu[:, None]) / self.aft_scale
        return 1.0 - _AFT_CDF[self.aft_distribution](z)

    @property
    def feature_importances_(self) -> np.ndarray:
        gain = self.booster_.get_score(importance_type="total_gain")
        out = np.zeros(self.n_features_in_)
        for k, v in gain.items():
            out[int(k[1:])] = v
        total = out.sum()
        return out / total if total > 0 else out

    def shap_values(self, X) -> np.ndarray:
        """TreeSHAP contributions to the margin (log hazard for Cox, log time for AFT)."""
        import shap

        explainer = shap.TreeExplainer(self.booster_)
        return np.asarray(explainer.shap_values(check_array(X, dtype=float)))


class SparkXGBSurvival(XGBSurvival):
    """XGBoost ``survival:cox`` trained by ``xgboost.spark`` across Spark tasks.

    For cohorts that outgrow the driver (the Databricks GPU job-cluster route). Training is
    distributed; the Breslow baseline hazard is aggregated in Spark (group by time, reverse
    cumulative sums) so no step collects the training rows. The fitted booster is then a plain
    XGBoost booster: the model pickles and scores without Spark.

    Notes
    -----
    * ``disable_default_eval_metric=True`` is required for ``survival:cox`` in xgboost.spark.
    * With several workers XGBoost computes the Cox gradient per worker partition, an
      approximation of the full partial likelihood (risk sets are partition-local).
    * ``survival:aft`` is not offered: xgboost.spark 3.2 has no label lower/upper bound column
      parameters (only xgboost.dask does), so interval-censored labels cannot be passed.
    """

    family = "xgb_spark"

    def __init__(self, objective: str = "survival:cox", n_estimators: int = 300,
                 learning_rate: float = 0.05, max_depth: int = 3, min_child_weight: float = 5.0,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 num_workers: int = 2, device: str = "auto", random_state: int = 0):
        super().__init__(objective=objective, n_estimators=n_estimators,
                         learning_rate=learning_rate, max_depth=max_depth,
                         min_child_weight=min_child_weight, subsample=subsample,
                         colsample_bytree=colsample_bytree, reg_lambda=reg_lambda,
                         device=device, random_state=random_state)
        self.num_workers = num_workers

    def _fit(self, X, event, time):
        import pandas as pd
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F
        from pyspark.sql.window import Window
        from xgboost.spark import SparkXGBRegressor

        if self.objective != "survival:cox":
            raise ConfigError(
                "xgboost.spark cannot train survival:aft (xgboost.spark 3.2 has no label "
                "lower/upper bound columns); use objective='survival:cox' or the single-node "
                "XGBSurvival for AFT."
            )
        spark = SparkSession.getActiveSession()
        if spark is None:
            raise ConfigError("SparkXGBSurvival needs an active SparkSession (start one first).")
        self.device_ = resolve_device(self.device)
        cols = [f"f{i}" for i in range(X.shape[1])]
        pdf = pd.DataFrame(X.astype("float32"), columns=cols)
        pdf["label"] = np.where(event, time, -time)
        pdf["_t"] = time
        pdf["_d"] = event.astype("int32")
        sdf = spark.createDataFrame(pdf).repartition(self.num_workers).cache()
        est = SparkXGBRegressor(
            features_col=cols, label_col="label", objective="survival:cox",
            disable_default_eval_metric=True, num_workers=self.num_workers,
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            max_depth=self.max_depth, min_child_weight=self.min_child_weight,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda, device=self.device_, random_state=self.random_state,
            tree_method="hist",
        )
        model = est.fit(sdf)
        self.booster_ = model.get_booster()
        self.booster_.set_param({"device": "cpu"})
        # Spark named the columns f0..fN; local scoring passes plain arrays.
        self.booster_.feature_names = None
        self.booster_.feature_types = None
        # survival:cox predictions are hazard ratios exp(margin); Breslow aggregated in Spark.
        scored = model.transform(sdf).select("_t", "_d", F.col("prediction").alias("hr"))
        per_time = scored.groupBy("_t").agg(F.sum("hr").alias("w"), F.sum("_d").alias("d"))
        desc = Window.orderBy(F.col("_t").desc()).rowsBetween(Window.unboundedPreceding, 0)
        steps = (per_time.withColumn("at_risk", F.sum("w").over(desc))
                 .filter(F.col("d") > 0).orderBy("_t").select("_t", "d", "at_risk").toPandas())
        sdf.unpersist()
        b = Breslow()
        b.times_ = steps["_t"].to_numpy(float)
        b.cumhaz_ = np.cumsum(steps["d"].to_numpy(float) / steps["at_risk"].to_numpy(float))
        self.breslow_ = b


FAMILIES: dict[str, tuple[type[SurvivalEstimator], dict]] = {
    "coxph": (CoxPH, {}),
    "rsf": (RandomSurvivalForest, {}),
    "gbsa": (GradientBoostedSurvival, {}),
    "xgb_cox": (XGBSurvival, {"objective": "survival:cox"}),
    "xgb_aft": (XGBSurvival, {"objective": "survival:aft"}),
    "xgb_spark_cox": (SparkXGBSurvival, {"objective": "survival:cox"}),
}


def make_estimator(family: str, **params) -> SurvivalEstimator:
    """A fresh estimator of ``family`` (see the table above) with ``params`` overriding defaults.

    >>> make_estimator("xgb_aft", n_estimators=10).objective
    'survival:aft'
    """
    if family not in FAMILIES:
        raise ConfigError(
            f"Unknown model family {family!r}; choose one of {', '.join(FAMILIES)}."
        )
    cls, defaults = FAMILIES[family]
    return cls(**{**defaults, **params})

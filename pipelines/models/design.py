"""From a pandas frame to model matrices: the survival target, feature encoding, time grids.

Everything here is plain numpy/pandas so it runs the same on the driver, in a test, or in a
model served from MLflow.

>>> import pandas as pd
>>> enc = FeatureEncoder().fit(pd.DataFrame({"age": [50.0, None, 70.0], "sex": ["F", "M", "F"]}))
>>> enc.feature_names_
['age', 'age_missing', 'sex=M']
>>> enc.transform(pd.DataFrame({"age": [None], "sex": ["M"]})).tolist()
[[60.0, 1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from pipelines.lakehouse.errors import SchemaMismatchError

# Survival times are clipped to this floor: log-time models (AFT) and the sign-coded Cox label
# of XGBoost both break on a zero time (a same-day death or censoring).
MIN_TIME = 1e-3


def make_target(event, time) -> np.ndarray:
    """The scikit-survival structured target ``[('event', bool), ('time', float)]``.

    >>> make_target([1, 0], [5.0, 7.5])["time"].tolist()
    [5.0, 7.5]
    """
    event = np.asarray(event)
    time = np.asarray(time, dtype=float)
    if event.shape != time.shape:
        raise ValueError(f"event and time differ in length: {event.shape} vs {time.shape}")
    if np.isnan(time).any():
        raise ValueError("survival times contain missing values; drop those rows first")
    if (time < 0).any():
        raise ValueError(f"survival times must be >= 0, found {time.min()}")
    out = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    out["event"] = event.astype(bool)
    out["time"] = time
    return out


def split_target(y) -> tuple[np.ndarray, np.ndarray]:
    """(event bool array, time float array) of any 2-field structured survival target."""
    if getattr(y, "dtype", None) is None or y.dtype.names is None or len(y.dtype.names) != 2:
        raise ValueError(
            "y must be a structured array with an event (bool) and a time (float) field, "
            "e.g. from pipelines.models.design.make_target(event, time)"
        )
    ev, tm = y.dtype.names
    if y.dtype[ev] != np.bool_:
        ev, tm = tm, ev
    return np.asarray(y[ev], dtype=bool), np.asarray(y[tm], dtype=float)


class FeatureEncoder(TransformerMixin, BaseEstimator):
    """Numeric columns kept (median-imputed, plus a ``<col>_missing`` indicator when training
    data had gaps), booleans as 0/1, categoricals one-hot with the first (sorted) level as the
    reference, so that a Cox model without an intercept stays identifiable.

    Parameters
    ----------
    max_levels : int
        Categorical columns with more distinct values than this are dropped (identifiers,
        free text); the dropped names are kept in ``dropped_``.
    """

    def __init__(self, max_levels: int = 30):
        self.max_levels = max_levels

    def fit(self, X: pd.DataFrame, y=None) -> FeatureEncoder:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("FeatureEncoder expects a pandas DataFrame")
        self.columns_ = list(X.columns)
        self.numeric_: list[str] = []
        self.medians_: dict[str, float] = {}
        self.with_missing_: list[str] = []
        self.levels_: dict[str, list[str]] = {}
        self.dropped_: list[str] = []
        for col in self.columns_:
            s = X[col]
            if _is_numeric(s):
                values = pd.to_numeric(s.astype("float64"), errors="coerce")
                self.numeric_.append(col)
                med = float(values.median()) if values.notna().any() else 0.0
                self.medians_[col] = med
                if values.isna().any() and values.notna().any():
                    self.with_missing_.append(col)
                continue
            values = s.dropna().astype(str)
            levels = sorted(values.unique().tolist())
            if len(levels) < 2 or len(levels) > self.max_levels:
                self.dropped_.append(col)
                continue
            self.levels_[col] = levels
        names: list[str] = []
        source: list[str] = []
        for col in self.columns_:
            if col in self.medians_:
                names.append(col)
                source.append(col)
                if col in self.with_missing_:
                    names.append(f"{col}_missing")
                    source.append(col)
            elif col in self.levels_:
                for lev in self.levels_[col][1:]:
                    names.append(f"{col}={lev}")
                    source.append(col)
        self.feature_names_ = names
        self.source_ = source
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns and c not in self.dropped_]
        if missing:
            raise SchemaMismatchError(
                f"The features lack column(s) {missing} that the model was trained on; "
                "rebuild the features or retrain the model."
            )
        n = len(X)
        blocks: list[np.ndarray] = []
        for col in self.columns_:
            if col in self.medians_:
                v = pd.to_numeric(_as_float(X[col]), errors="coerce").to_numpy(dtype=float)
                miss = np.isnan(v)
                blocks.append(np.where(miss, self.medians_[col], v)[:, None])
                if col in self.with_missing_:
                    blocks.append(miss.astype(float)[:, None])
            elif col in self.levels_:
                s = X[col].astype(object).where(X[col].notna(), None)
                vals = np.array([None if v is None else str(v) for v in s], dtype=object)
                for lev in self.levels_[col][1:]:
                    blocks.append((vals == lev).astype(float)[:, None])
        if not blocks:
            return np.empty((n, 0))
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_, dtype=object)


def _is_numeric(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return True
    if s.dtype == object:
        nonnull = s.dropna()
        return len(nonnull) > 0 and all(isinstance(v, bool | int | float | np.number)
                                        for v in nonnull)
    return False


def _as_float(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or s.dtype == object:
        return s.map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v))
                     else float(v) if isinstance(v, bool | int | float | np.number) else v)
    return s.astype("float64")


def time_grid(horizon: float, landmarks=(), n: int = 241) -> np.ndarray:
    """Evaluation times 0..max(horizon, landmarks) with the horizon and landmarks exactly on it."""
    end = float(max([horizon, *landmarks]))
    grid = np.linspace(0.0, end, n)
    return np.unique(np.concatenate([grid, np.asarray(landmarks, float), [float(horizon)]]))


def rmst_from_curves(times: np.ndarray, surv: np.ndarray, horizon: float) -> np.ndarray:
    """Restricted mean survival time: the area under step curves ``surv`` up to ``horizon``.

    ``surv[..., k]`` is S(times[k]) and holds until times[k+1] (right-continuous step), so the
    left Riemann sum is exact for step functions sampled at their jump points and converges
    for smooth ones.

    >>> float(rmst_from_curves(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.5, 0.5]), 2.0))
    1.5
    """
    times = np.asarray(times, float)
    upto = times <= horizon
    t = times[upto]
    widths = np.diff(np.append(t, horizon))
    return np.sum(np.asarray(surv)[..., upto] * widths, axis=-1)


def value_at(times: np.ndarray, surv: np.ndarray, t: float) -> np.ndarray:
    """S(t) from curves sampled on ``times`` (step: the last grid time <= t)."""
    idx = int(np.searchsorted(times, t, side="right")) - 1
    if idx < 0:
        return np.ones(np.asarray(surv).shape[:-1])
    return np.asarray(surv)[..., idx]


def step_eval(x: np.ndarray, y: np.ndarray, t: np.ndarray, before: float = 1.0) -> np.ndarray:
    """Evaluate a right-continuous step function (jumps at sorted ``x``) at ``t``."""
    idx = np.searchsorted(x, t, side="right") - 1
    out = np.where(idx >= 0, np.asarray(y)[np.clip(idx, 0, None)], before)
    return out


def kaplan_meier(event: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate: (distinct times, S(t) just after each)."""
    event = np.asarray(event, bool)
    time = np.asarray(time, float)
    uniq, inv = np.unique(time, return_inverse=True)
    deaths = np.bincount(inv, weights=event.astype(float), minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    at_risk = counts[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
    return uniq, np.cumprod(factor)


def censoring_survival(event: np.ndarray, time: np.ndarray):
    """G(t−): probability of remaining uncensored just before t (KM of the censoring times).

    Returned as a function; used for inverse-probability-of-censoring weights.
    """
    t, g = kaplan_meier(~np.asarray(event, bool), time)

    def G_minus(at: np.ndarray) -> np.ndarray:
        at = np.asarray(at, float)
        idx = np.searchsorted(t, at, side="left") - 1
        return np.where(idx >= 0, g[np.clip(idx, 0, None)], 1.0)

    return G_minus

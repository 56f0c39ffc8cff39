"""Bring your own cohort: ``oncorank train --cohort FILE --time-col C --event-col C
--treatment-col C [--feature-cols …] [--horizon T] [--out DIR]``.

Trains and evaluates the treatment-response method on any tabular cohort (CSV or Parquet, one
row per patient) and returns one JSON-able summary:

* ``n_patients``, ``n_events`` (after dropping rows without time, event or treatment);
* per model family, the **test** Harrell's C, Uno's C and integrated Brier score (75/25 split
  stratified by event; S-learners with treatment × feature interactions);
* per treatment level, the average effect versus the reference level (the first level in
  sorted order): the **hazard ratio** from a Cox model adjusted for every feature (Wald 95%
  CI), and the **RMST difference** at the horizon by standardisation (g-computation: every
  patient's predicted RMST under the level minus under the reference, averaged) from the
  adjusted Cox model, with a 95% percentile-bootstrap CI;
* the share of patients for whom each treatment ranks first under the best model.

Times stay in the cohort's unit; the default horizon is the smallest of the per-treatment
maximum follow-up times (Tian et al., BMC Med Res Methodol 2020;20:1-8), so every arm is
observed up to it. Categorical features are one-hot encoded automatically; identifier-like
columns (more than 30 text levels) are dropped. Everything is logged to MLflow under ``out``
(default ``./oncorank-train``): one run per model family and the summary.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.lakehouse.errors import ConfigError, InputNotFoundError, SchemaMismatchError

log = logging.getLogger("oncorank.models")

FAMILIES = ("coxph", "rsf", "xgb_cox", "xgb_aft")
DEFAULT_PARAMS = {
    "rsf": {"n_estimators": 200, "min_samples_leaf": 15, "min_samples_split": 10},
    "xgb_cox": {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 3},
    "xgb_aft": {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 3},
    "coxph": {"alpha": 1e-2},
}
N_EFFECT_BOOTSTRAP = 100
EVENT_WORDS = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "dead": 1,
               "deceased": 1, "death": 1, "alive": 0, "event": 1, "censored": 0}


# ------------------------------------------------------------------------------ reading
def read_cohort(path: Path) -> pd.DataFrame:
    """A CSV or Parquet cohort; unreadable or unknown formats give one clear error."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Cohort file {path} does not exist; check the path.")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        raise SchemaMismatchError(
            f"Cohort file {path} could not be read as {suffix[1:]} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); pass a valid CSV or Parquet file."
        ) from None
    raise ConfigError(
        f"Cohort file {path} has extension {path.suffix!r}; expected .csv or .parquet."
    )


def _event_values(s: pd.Series, col: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        vals = set(pd.unique(s.dropna()))
        if not vals <= {0, 1}:
            raise SchemaMismatchError(
                f"Event column {col!r} must be 0/1 (1 = event), found values "
                f"{sorted(vals)[:6]}; recode it or pass the right column."
            )
        return s.astype(float)
    words = s.astype(str).str.strip().str.lower()
    mapped = words.map(EVENT_WORDS)
    bad = sorted(set(words[mapped.isna() & s.notna()]))
    if bad:
        raise SchemaMismatchError(
            f"Event column {col!r} has values {bad[:6]} that are not 0/1, true/false, yes/no "
            "or dead/alive; recode it."
        )
    return mapped.where(s.notna())


def prepare(df: pd.DataFrame, time_col: str, event_col: str, treatment_col: str,
            feature_cols: list[str] | None) -> tuple[pd.DataFrame, list[str], int]:
    """Validated frame (columns time, event, treatment + features), features, dropped rows."""
    need = [time_col, event_col, treatment_col, *(feature_cols or [])]
    missing = [c for c in dict.fromkeys(need) if c not in df.columns]
    if missing:
        raise SchemaMismatchError(
            f"The cohort has no column(s) {missing}; its columns are {list(df.columns)[:30]}."
        )
    features = list(feature_cols) if feature_cols else [
        c for c in df.columns if c not in (time_col, event_col, treatment_col)]
    out = df[features].copy()
    time = pd.to_numeric(df[time_col], errors="coerce")
    if time.notna().sum() == 0:
        raise SchemaMismatchError(f"Time column {time_col!r} has no numeric values.")
    if (time < 0).any():
        raise SchemaMismatchError(f"Time column {time_col!r} has negative values.")
    out["__time"] = time
    out["__event"] = _event_values(df[event_col], event_col)
    out["__treatment"] = df[treatment_col].astype(object).where(df[treatment_col].notna())
    out["__treatment"] = out["__treatment"].map(lambda v: None if v is None else str(v))
    keep = out[["__time", "__event", "__treatment"]].notna().all(axis=1)
    dropped = int((~keep).sum())
    out = out.loc[keep].reset_index(drop=True)
    levels = out["__treatment"].value_counts()
    if len(levels) < 2:
        raise SchemaMismatchError(
            f"Treatment column {treatment_col!r} has {len(levels)} level(s) "
            f"({list(levels.index)}); a treatment comparison needs at least two."
        )
    if out["__event"].sum() < 5:
        raise SchemaMismatchError(f"The cohort has {int(out['__event'].sum())} events; "
                                  "at least 5 are needed to fit survival models.")
    return out, features, dropped


# ------------------------------------------------------------------------------ effects
def _model(family: str, features: list[str], horizon: float, seed: int, **kw):
    from pipelines.models.treatment import TreatmentResponseModel

    return TreatmentResponseModel(
        family=family, learner="s", base_params=dict(DEFAULT_PARAMS.get(family, {})),
        feature_cols=features, treatment_col="__treatment", group_col=None,
        candidates="levels", horizon_months=horizon, landmarks=(horizon / 2, horizon),
        random_state=seed, **kw)


def treatment_effects(frame: pd.DataFrame, features: list[str], horizon: float,
                      seed: int) -> tuple[str, dict]:
    """Adjusted HR (Wald CI) and standardised RMST difference (bootstrap CI) per level."""
    from pipelines.models.design import make_target, rmst_from_curves

    y = make_target(frame["__event"], frame["__time"])
    levels = sorted(frame["__treatment"].unique())
    ref = levels[0]
    # Hazard ratios: one adjusted Cox model, no interactions, observed information for the CI.
    cox = _model("coxph", features, horizon, seed, interactions=False, n_bootstrap=0)
    cox.base_params = {"alpha": 1e-4, "compute_cov": True}
    cox.fit(frame, y)
    # RMST differences: the same adjusted model, standardised over the cohort, bootstrapped.
    boot = _model("coxph", features, horizon, seed, interactions=False,
                  n_bootstrap=N_EFFECT_BOOTSTRAP).fit(frame, y)
    _, Xe = boot._prepare(frame)

    def mean_rmst(learner, level):
        t = np.full(len(Xe), level, dtype=object).astype(str)
        return float(np.nanmean(rmst_from_curves(boot.times_, boot._curves(learner, Xe, t),
                                                 horizon)))

    out = {}
    for level in levels[1:]:
        log_hr, se = cox.treatment_log_hr(level, ref)
        diff = mean_rmst(boot.point_, level) - mean_rmst(boot.point_, ref)
        reps = [mean_rmst(r, level) - mean_rmst(r, ref) for r in boot.replicates_]
        lo, hi = np.percentile(reps, [2.5, 97.5]) if len(reps) >= 2 else (np.nan, np.nan)
        out[level] = {
            "n": int((frame["__treatment"] == level).sum()),
            "hazard_ratio": math.exp(log_hr),
            "hazard_ratio_lower": math.exp(log_hr - 1.96 * se),
            "hazard_ratio_upper": math.exp(log_hr + 1.96 * se),
            "rmst_difference": diff, "rmst_difference_lower": float(lo),
            "rmst_difference_upper": float(hi),
        }
    return ref, out


# ------------------------------------------------------------------------------ command
def default_horizon(frame: pd.DataFrame) -> float:
    """Smallest per-treatment maximum follow-up time (every arm observed up to it)."""
    return float(frame.groupby("__treatment")["__time"].max().min())


def train_cohort(path, time_col: str, event_col: str, treatment_col: str,
                 feature_cols: list[str] | None = None, horizon: float | None = None,
                 out: Path | None = None, seed: int = 0) -> dict:
    """Train and evaluate on a tabular cohort; log to MLflow under ``out``; return the summary.

    >>> summary = train_cohort("gbsg2.csv", "time", "cens", "horTh")  # doctest: +SKIP
    >>> summary["treatment_effects"]["yes"]["hazard_ratio"]  # doctest: +SKIP
    0.70...
    """
    from sklearn.model_selection import train_test_split

    from pipelines.models.design import make_target
    from pipelines.models.metrics import recommendations, survival_metrics

    if feature_cols:  # `--feature-cols a,b --feature-cols c` → [a, b, c]
        feature_cols = [c.strip() for f in feature_cols for c in str(f).split(",") if c.strip()]
    df = read_cohort(Path(path))
    frame, features, dropped = prepare(df, time_col, event_col, treatment_col, feature_cols)
    if horizon is None:
        horizon = default_horizon(frame)
    if not horizon or horizon <= 0:
        raise ConfigError(f"The horizon must be positive, got {horizon}.")
    y = make_target(frame["__event"], frame["__time"])
    tr, te = train_test_split(np.arange(len(frame)), test_size=0.25, random_state=seed,
                              stratify=y["event"])
    train, test = frame.iloc[tr].reset_index(drop=True), frame.iloc[te].reset_index(drop=True)
    y_tr, y_te = y[tr], y[te]

    models, fitted = {}, {}
    for family in FAMILIES:
        m = _model(family, features, horizon, seed, n_bootstrap=0).fit(train, y_tr)
        met, _ = survival_metrics(y_tr, y_te, m.predict_risk(test), m.times_,
                                  m.predict_survival_received(test), horizon)
        models[family] = {"test_c_index": met["harrell_c"], "test_uno_c": met["uno_c"],
                          "test_integrated_brier": met["integrated_brier"]}
        fitted[family] = m
    best = max(FAMILIES, key=lambda f: _finite(models[f]["test_c_index"]))
    ref, effects = treatment_effects(frame, features, horizon, seed)

    everyone = frame.copy()
    everyone["patient_key"] = np.arange(len(everyone)).astype(str)
    rec = recommendations(fitted[best].predict_treatments(everyone))
    shares = rec["recommended"].value_counts(normalize=True)
    levels = sorted(frame["__treatment"].unique())
    summary = {
        "cohort": str(path),
        "n_patients": int(len(frame)),
        "n_events": int(frame["__event"].sum()),
        "n_rows_dropped": dropped,
        "horizon": float(horizon),
        "time_unit": f"as in column {time_col!r}",
        "features": features,
        "encoded_features": fitted["coxph"].encoder_.feature_names_,
        "treatment_levels": {lv: int((frame["__treatment"] == lv).sum()) for lv in levels},
        "reference_treatment": ref,
        "models": models,
        "selected_model": best,
        "treatment_effects": effects,
        "rank_first_share": {lv: float(shares.get(lv, 0.0)) for lv in levels},
    }
    summary["mlflow"] = _log(summary, fitted, Path(out) if out else Path("oncorank-train"),
                             Path(path).stem)
    return _clean(summary)


def _log(summary: dict, fitted: dict, out: Path, cohort_name: str) -> dict:
    import mlflow

    from pipelines.lakehouse.settings import Settings
    from pipelines.models import registry

    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(lakehouse=out.absolute(), mlflow_experiment="oncorank-byoc")
    exp_name = f"oncorank-byoc/{cohort_name}"
    exp_id = registry.ensure_experiment(settings, exp_name)
    run_ids = {}
    with mlflow.start_run(experiment_id=exp_id, run_name=f"byoc-{cohort_name}") as parent:
        mlflow.log_params({"n_patients": summary["n_patients"], "horizon": summary["horizon"],
                           "reference": summary["reference_treatment"],
                           "selected_model": summary["selected_model"]})
        mlflow.log_dict(_clean(summary), "summary.json")
        for level, eff in summary["treatment_effects"].items():
            mlflow.log_metrics({f"hr.{level}": eff["hazard_ratio"],
                                f"rmst_diff.{level}": eff["rmst_difference"]}
                               if all(np.isfinite([eff["hazard_ratio"], eff["rmst_difference"]]))
                               else {})
        for family, m in fitted.items():
            with mlflow.start_run(experiment_id=exp_id, run_name=family, nested=True) as child:
                mlflow.log_params({"family": family, "learner": "s",
                                   **{f"base.{k}": v for k, v in (m.base_params or {}).items()}})
                mlflow.log_metrics({k: v for k, v in summary["models"][family].items()
                                    if v is not None and np.isfinite(v)})
                run_ids[family] = child.info.run_id
        run_ids["summary"] = parent.info.run_id
    return {"tracking_uri": settings.tracking_uri, "experiment": exp_name, "run_ids": run_ids}


def _finite(v) -> float:
    return v if v is not None and np.isfinite(v) else -np.inf


def _clean(obj):
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(json.dumps(train_cohort(*sys.argv[1:5]), indent=2))

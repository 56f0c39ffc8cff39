"""MLflow tracking, the model card, the registry and the ``champion`` alias.

Locally the tracking and registry store is SQLite under the lakehouse folder
(``settings.tracking_uri``) and artifacts land in ``<lakehouse>/mlruns/<experiment>``
(``settings.mlflow_artifact_root``): each experiment is created with that artifact location,
so a lakehouse folder carries its own models. On Databricks the workspace tracking server and
Unity Catalog registry are used as they are.

Promotion rule (:data:`PROMOTION_RULE`)
    The registered model ``settings.registered_model_name`` has an alias ``champion``: the
    version that scores. A newly trained version becomes champion when there is no champion
    yet, or when — evaluated on the *new run's validation patients*, which the new model never
    saw — it is not worse than the champion: Harrell's C and Uno's C at most
    ``PROMOTION_TOLERANCE`` below the champion's and the integrated Brier score at most
    ``PROMOTION_TOLERANCE`` above. The champion is re-scored on those same patients (it may
    have been trained on some of them, which favours the champion: the rule is conservative).
    If the champion cannot score the new features (its inputs changed), its own recorded
    validation metrics are compared instead, and the card says so.

The pyfunc flavour wraps :class:`~pipelines.models.treatment.TreatmentResponseModel`; its
``predict`` is ``predict_treatments``. The pickled model refers to the ``pipelines`` package,
so a serving environment needs the oncorank wheel installed (the Databricks bundle installs it
on the job clusters).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lakehouse.errors import OncorankError
from pipelines.lakehouse.settings import Settings

log = logging.getLogger("oncorank.models")

CHAMPION = "champion"
PROMOTION_TOLERANCE = 0.005
PROMOTION_RULE = (
    "A new model version becomes champion if there is no champion, or if on the new run's "
    f"validation patients its Harrell's C and Uno's C are at most {PROMOTION_TOLERANCE} below "
    f"the champion's and its integrated Brier score at most {PROMOTION_TOLERANCE} above "
    "(the champion is re-scored on the same patients; if it cannot score the new features, its "
    "recorded validation metrics are used)."
)
CARD_ARTIFACT = "model_card.json"
FEATURES_ARTIFACT = "training_features.parquet"
MAX_FEATURE_SAMPLE = 5000


class NoChampionError(OncorankError):
    """The registry has no model with the ``champion`` alias."""


@dataclass
class ChampionModel:
    """The model that scores, with everything the ranking and the reports need."""

    model: Any
    name: str
    version: str
    run_id: str
    card: dict = field(default_factory=dict)
    training_features: pd.DataFrame = field(default_factory=pd.DataFrame)


# ------------------------------------------------------------------------------ plumbing
def configure(settings: Settings):
    """Point MLflow at this environment's tracking/registry store; return a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    # Progress bars would interleave with the CLI's own output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.is_local:
        settings.lakehouse.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def experiment_name(settings: Settings, family: str) -> str:
    """One experiment per model family, e.g. ``oncorank/coxph``."""
    return f"{settings.mlflow_experiment}/{family}"


def ensure_experiment(settings: Settings, name: str) -> str:
    """The experiment id, creating it with its artifacts under the lakehouse folder."""
    import mlflow

    client = configure(settings)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if settings.tracking_uri.startswith(("sqlite:", "file:")) or settings.is_local:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        location = (Path(settings.mlflow_artifact_root) / safe).absolute().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in ("mlflow", "scikit-survival", "scikit-learn", "xgboost", "shap", "pandas",
                "numpy", "scipy", "cloudpickle", "pyyaml"):
        try:
            pins.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return pins


# ------------------------------------------------------------------------------ model card
def feature_distributions(frame: pd.DataFrame, columns: list[str]) -> dict:
    """Per-feature summary of the training distribution (for drift checks).

    Numeric: quantiles (5, 25, 50, 75, 95), mean, sd, missing share and 10 histogram bins;
    categorical: share of each level.
    """
    from pipelines.models.design import _as_float, _is_numeric

    out = {}
    for c in columns:
        s = frame[c]
        miss = float(s.isna().mean()) if len(s) else 0.0
        if _is_numeric(s):
            v = pd.to_numeric(_as_float(s), errors="coerce").dropna()
            if v.empty:
                out[c] = {"type": "numeric", "missing_share": miss}
                continue
            q = v.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
            counts, edges = np.histogram(v, bins=10)
            out[c] = {"type": "numeric", "missing_share": miss, "mean": float(v.mean()),
                      "sd": float(v.std(ddof=0)),
                      "quantiles": {f"{k:.2f}": float(x) for k, x in q.items()},
                      "histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}
        else:
            shares = s.dropna().astype(str).value_counts(normalize=True)
            out[c] = {"type": "categorical", "missing_share": miss,
                      "shares": {str(k): float(x) for k, x in shares.items()}}
    return out


ESTIMAND = ("For each patient and candidate regimen of the patient's cancer type: the restricted "
            "mean survival time (RMST) up to {h:g} months had the patient started that regimen "
            "as first-line therapy, and its difference from the cancer type's standard of care; "
            "each with a 95% interval. Estimated from observational data under no unmeasured "
            "confounding and positivity: options without comparable treated patients are not "
            "ranked.")

# What no validation figure shows, in the words the report prints (TRIPOD+AI: limitations).
LIMITATIONS = ("The model learns from observational records: confounding by what no record "
               "holds (frailty, the patient's wishes, the clinic's habits) cannot be excluded. "
               "Where it steers the choice of regimen, a ranked option can be one that patients "
               "like this one almost never receive, and its interval is too narrow: in "
               "oncorank's hardest generated world about one first-ranked option in ten was, "
               "and intervals covered the truth for three pairs in four "
               "(benchmarks/RESULTS.md).")


def build_card(model, name: str, train: pd.DataFrame, metrics: dict,
               subgroups: pd.DataFrame, extra: dict | None = None) -> dict:
    """The model card: what the model is, what it saw, how well it did, where it is weak."""
    dates = pd.to_datetime(train["index_date"], errors="coerce") if "index_date" in train else \
        pd.Series(dtype="datetime64[ns]")
    date_range = ([str(dates.min().date()), str(dates.max().date())]
                  if dates.notna().any() else [None, None])
    validation = {k: metrics[k] for k in (
        "n", "events", "harrell_c", "uno_c", "integrated_brier", "td_auc", "calibration_ici",
        "calibration_in_the_large", "predicted_surv_horizon", "observed_surv_horizon",
        "policy_value", "policy_value_lower", "policy_value_upper", "received_value",
        "policy_gain", "policy_gain_lower", "policy_gain_upper", "autoc", "autoc_lower",
        "autoc_upper", "normalised_policy_value", "regret") if k in metrics}
    card = {
        "model_name": name,
        "model_family": model.family,
        "learner": {"s": "S-learner", "t": "T-learner",
                    "dr": "DR-learner (doubly robust benefit vs standard of care, IPCW; "
                          "survival curves from the S-learner outcome model)"}[model.learner],
        "n_bootstrap": int(model.n_bootstrap),
        "n_refits": int(getattr(model, "n_replicates", model.n_bootstrap)),
        "interval_method": getattr(model, "interval_method_", "bootstrap"),
        "estimand": ESTIMAND.format(h=float(model.horizon_months)),
        "limitations": LIMITATIONS,
        "horizon_months": float(model.horizon_months),
        "landmarks_months": [float(x) for x in model.landmarks],
        "training_cohort": {
            "n_patients": int(model.n_train_), "n_events": int(model.n_events_),
            "index_date_range": date_range,
            "treatment_counts": {str(k): int(v) for k, v in model.treatment_counts_.items()},
            "treatment_events": {str(k): int(v) for k, v in
                                 getattr(model, "arm_events_", {}).items()},
            "max_followup": float(model.max_followup_),
        },
        "validation": {k: _jsonable(v) for k, v in validation.items()},
        "subgroup_c_index": [
            {k: _jsonable(v) for k, v in r.items()} for r in subgroups.to_dict("records")
        ],
        "features": list(model.feature_names_),
        "feature_distributions": feature_distributions(train, list(model.feature_names_)),
        "promotion_rule": PROMOTION_RULE,
    }
    card.update(extra or {})
    return card


def _jsonable(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def training_feature_sample(model, train: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Up to ``MAX_FEATURE_SAMPLE`` training rows of the model inputs (no identifiers)."""
    cols = [c for c in model.feature_names_ if c in train.columns]
    sample = train[cols]
    if len(sample) > MAX_FEATURE_SAMPLE:
        sample = sample.sample(MAX_FEATURE_SAMPLE, random_state=seed)
    sample = sample.reset_index(drop=True).copy()
    for c in sample.columns:  # parquet needs one type per column
        if sample[c].dtype == object:
            sample[c] = sample[c].map(lambda v: None if v is None or (isinstance(v, float)
                                                                     and np.isnan(v)) else str(v))
    return sample


# ------------------------------------------------------------------------------ logging
def log_model_run(settings: Settings, model, *, train: pd.DataFrame, metrics: dict,
                  tables: dict[str, pd.DataFrame], card: dict, params: dict | None = None,
                  tags: dict | None = None, figures: dict | None = None,
                  experiment: str | None = None) -> str:
    """Log one trained model to MLflow (params, metrics, tables, figures, card, features
    sample, pyfunc model with signature); return the run id."""
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.models.pyfunc import TreatmentResponsePyfunc

    configure(settings)
    exp_id = ensure_experiment(settings, experiment or experiment_name(settings, model.family))
    with mlflow.start_run(experiment_id=exp_id) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: str(v)[:500] for k, v in (params or {}).items()})
        mlflow.set_tags({k: str(v)[:5000] for k, v in (tags or {}).items()})
        mlflow.log_metrics({_metric_key(k): float(v) for k, v in metrics.items()
                            if v is not None and np.isfinite(v)})
        tdir = Path(tmp)
        for name, table in tables.items():
            p = tdir / f"{name}.csv"
            table.to_csv(p, index=False)
            mlflow.log_artifact(str(p), artifact_path="evaluation")
        for name, fig in (figures or {}).items():
            p = tdir / f"{name}.png"
            fig.savefig(p, dpi=110, bbox_inches="tight")
            mlflow.log_artifact(str(p), artifact_path="plots")
        (tdir / CARD_ARTIFACT).write_text(json.dumps(card, indent=2, default=_jsonable))
        mlflow.log_artifact(str(tdir / CARD_ARTIFACT))
        sample = training_feature_sample(model, train)
        sample.to_parquet(tdir / FEATURES_ARTIFACT, index=False)
        mlflow.log_artifact(str(tdir / FEATURES_ARTIFACT))
        example = _signature_frame(model, train.head(50))
        out = model.predict_treatments(example)
        pyfunc_log = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_log.level
        with warnings.catch_warnings():
            # No input example on purpose: it would store patient rows in the artifact store;
            # the pickled python_model is our own class (the cloudpickle warning is expected).
            warnings.simplefilter("ignore", UserWarning)
            pyfunc_log.setLevel(logging.ERROR)
            try:
                signature = infer_signature(example, out)
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=TreatmentResponsePyfunc(model),
                    signature=signature, pip_requirements=_pip_requirements(),
                )
            finally:
                pyfunc_log.setLevel(level)
        mlflow.set_tag("oncorank.model_uri", info.model_uri)
        return run.info.run_id


def _metric_key(k: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", k)[:250]


def _signature_frame(model, frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["patient_key"] + [c for c in model.feature_names_ if c != "patient_key"]
    if model.use_groups_ and model.group_col not in cols:
        cols.append(model.group_col)
    cols = [c for c in dict.fromkeys(cols) if c in frame.columns]
    ex = frame[cols].copy()
    for c in ex.columns:
        if ex[c].dtype == object or pd.api.types.is_bool_dtype(ex[c]):
            if ex[c].dropna().map(lambda v: isinstance(v, bool | np.bool_)).all():
                ex[c] = ex[c].map(lambda v: np.nan if v is None else float(v)).astype(float)
            else:
                ex[c] = ex[c].map(lambda v: "" if v is None else str(v))
        elif pd.api.types.is_integer_dtype(ex[c]):
            ex[c] = ex[c].astype(float)
    return ex


# ------------------------------------------------------------------------------ registry
def register(settings: Settings, run_id: str) -> str:
    """Register the run's model as a new version of the registered model; return it."""
    import mlflow

    client = configure(settings)
    uri = client.get_run(run_id).data.tags.get("oncorank.model_uri", f"runs:/{run_id}/model")
    mv = mlflow.register_model(uri, settings.registered_model_name)
    return str(mv.version)


def current_champion_version(settings: Settings):
    from mlflow.exceptions import MlflowException

    client = configure(settings)
    try:
        return client.get_model_version_by_alias(settings.registered_model_name, CHAMPION)
    except MlflowException:
        return None


def promotion_decision(new: dict, champion: dict | None,
                       tolerance: float = PROMOTION_TOLERANCE) -> tuple[bool, str]:
    """Apply :data:`PROMOTION_RULE` to validation metrics; return (promote, reason).

    >>> promotion_decision({"harrell_c": 0.70, "uno_c": 0.69, "integrated_brier": 0.18}, None)
    (True, 'no champion yet')
    >>> promotion_decision({"harrell_c": 0.60, "uno_c": 0.69, "integrated_brier": 0.18},
    ...                    {"harrell_c": 0.70, "uno_c": 0.69, "integrated_brier": 0.18})[0]
    False
    """
    if champion is None:
        return True, "no champion yet"
    worse = []
    for k in ("harrell_c", "uno_c"):
        a, b = new.get(k), champion.get(k)
        if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
            continue
        if a < b - tolerance:
            worse.append(f"{k} {a:.4f} < champion {b:.4f} - {tolerance}")
    a, b = new.get("integrated_brier"), champion.get("integrated_brier")
    if a is not None and b is not None and np.isfinite(a) and np.isfinite(b) and \
            a > b + tolerance:
        worse.append(f"integrated_brier {a:.4f} > champion {b:.4f} + {tolerance}")
    if worse:
        return False, "worse than the champion: " + "; ".join(worse)
    return True, "not worse than the champion on validation metrics"


def set_champion(settings: Settings, version: str) -> None:
    client = configure(settings)
    client.set_registered_model_alias(settings.registered_model_name, CHAMPION, str(version))


def load_champion(settings: Settings) -> ChampionModel:
    """The ``champion`` version: fitted model, name, version, run id, card, training features.

    Raises
    ------
    NoChampionError
        When the registry has no champion yet.
    """
    import mlflow

    client = configure(settings)
    name = settings.registered_model_name
    mv = current_champion_version(settings)
    if mv is None:
        raise NoChampionError(
            f"No champion version of model {name!r} in the MLflow registry at "
            f"{settings.registry_uri}; run `oncorank run --only train` first."
        )
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    model = pyfunc.unwrap_python_model().model
    with tempfile.TemporaryDirectory() as tmp:
        card = json.loads(Path(client.download_artifacts(mv.run_id, CARD_ARTIFACT, tmp))
                          .read_text())
        features = pd.read_parquet(client.download_artifacts(mv.run_id, FEATURES_ARTIFACT, tmp))
    return ChampionModel(model=model, name=name, version=str(mv.version), run_id=mv.run_id,
                         card=card, training_features=features)


def find_run_by_fingerprint(settings: Settings, fingerprint: str) -> dict | None:
    """The newest finished training run tagged with ``fingerprint`` (same inputs, code and
    config), so a re-run of the stage can reuse it instead of adding a duplicate version."""
    import mlflow

    configure(settings)
    prefix = f"{settings.mlflow_experiment}/"
    client = configure(settings)
    exps = [e.experiment_id for e in client.search_experiments() if e.name.startswith(prefix)]
    if not exps:
        return None
    runs = mlflow.search_runs(
        experiment_ids=exps, output_format="list", max_results=1,
        filter_string=f"tags.`oncorank.fingerprint` = '{fingerprint}' and "
                      "tags.`oncorank.selected` = 'true' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        return None
    r = runs[0]
    return {"run_id": r.info.run_id, "tags": dict(r.data.tags), "metrics": dict(r.data.metrics)}

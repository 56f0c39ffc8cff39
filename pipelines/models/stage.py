"""The ``train`` stage: ``gold.patient_features`` → MLflow models and the ``champion`` alias.

1. Training rows are the patients with a first-line treatment and an outcome. They are split
   once (stratified by event) into training and validation patients; every metric is computed
   on the validation patients only, with the model fitted on the training patients — and that
   same fitted model is the one registered, so the card describes the model that scores.
2. One model per configured family (default: Cox S-learner with biomarker × treatment
   interactions, and XGBoost AFT), each logged as an MLflow run in the experiment of its
   family, with the Delta versions of its inputs, the git sha, the configuration, metrics,
   evaluation tables, plots (calibration, targeting curve, feature importance, SHAP summary),
   the model card and a sample of the training features (for drift).
3. The family with the best validation Harrell's C is registered as a new version of
   ``settings.registered_model_name``; it becomes ``champion`` only under the promotion rule
   of :mod:`pipelines.models.registry`. Families are fitted and validated without bootstrap;
   only the selected one gets its ``n_bootstrap`` refits (the intervals, the probability of
   rank 1); the card records how many succeeded.
4. A run whose inputs (training rows' content), code (git sha) and configuration are unchanged reuses
   the previous training (a fingerprint tag), so re-running the stage registers nothing new.

Audit (``ops.job_runs``): rows in = the training rows (patients of ``gold.patient_features``
with a first-line treatment and a usable outcome) = rows written, the rows the models were
fitted and validated on (a reused training counts the same rows: its fingerprint says they are
the rows it was trained on). Patients without a treatment or an outcome are not training input
— they have no label to learn from and are the ones ``score`` ranks — so nothing is
quarantined here: rows whose label cannot be trusted were quarantined by the gate of
``gold.patient_features``. ``gold.model_metrics`` is a derived output (``primary=False``).

Configuration (``[models]`` section of the config file, all optional)::

    families = ["coxph", "xgb_aft"]   # see pipelines.models.estimators.FAMILIES
    learner = "s"                     # or "t"
    n_bootstrap = 200                 # refits of the selected family (or a table per family)
    validation_fraction = 0.25
    seed = 0
    min_training_rows = 20            # a demo cohort is small; real use wants hundreds
    min_events = 5
    spark_min_rows = 500000           # at or above: train xgboost.spark (survival:cox)
    exclude_features = ["stage"]      # stage_num carries the stage
    oracle = ""                       # truth/treatment_oracle.csv of a generated cohort
    force = false                     # retrain even if nothing changed
    [models.base_params.xgb_aft]      # per-family estimator parameters
    n_estimators = 300
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.errors import DataQualityError, InputNotFoundError, SchemaMismatchError
from pipelines.lakehouse.settings import Settings, git_sha

log = logging.getLogger("oncorank.models")

STAGE = "train"
DEFAULTS: dict = {
    "families": ["coxph", "xgb_aft"],
    "learner": "s",
    "n_bootstrap": 200,
    "validation_fraction": 0.25,
    "seed": 0,
    "min_training_rows": 20,
    "min_events": 5,
    "spark_min_rows": 500_000,
    "exclude_features": ["stage"],
    "oracle": "",
    "force": False,
    "base_params": {},
    "n_policy_bootstrap": 200,
}
METRICS_SCHEMA = ("run_id string, model_name string, family string, selected boolean, "
                  "model_version string, promoted boolean, metric string, value double, "
                  "fingerprint string, trained_at string")


def models_config(settings: Settings) -> dict:
    cfg = {**DEFAULTS, **settings.section("models")}
    if isinstance(cfg["families"], str):
        cfg["families"] = [cfg["families"]]
    return cfg


def effect_modifiers(columns: list[str]) -> list[str]:
    """Feature columns that may modify a treatment's effect: the biomarkers (VCF/notes flags,
    PD-L1, TMB) and the knowledge-base matches per regimen."""
    from pipelines.features.steps import concept_map

    cmap = concept_map()
    named = set(cmap.biomarker_flags) | {"pdl1_high", "pdl1_tps", "tmb", "tmb_high", "msi_h"}
    return [c for c in columns if c in named or c.startswith(("kb_sensitive_", "kb_resistant_"))]


def training_rows(features: pd.DataFrame) -> pd.DataFrame:
    """Patients with a first-line treatment and a usable outcome."""
    ok = (features["treatment"].notna() & features["os_months"].notna()
          & features["os_event"].notna() & (pd.to_numeric(features["os_months"]) >= 0))
    return features.loc[ok].reset_index(drop=True)


def content_digest(frame: pd.DataFrame) -> str:
    """sha256 of a frame's rows as a set (columns in name order, row order ignored): what
    "inputs unchanged" means for the training fingerprint."""
    cols = sorted(frame.columns)
    hashed = np.sort(pd.util.hash_pandas_object(frame[cols].astype(str), index=False).to_numpy())
    return hashlib.sha256(("|".join(cols)).encode() + hashed.tobytes()).hexdigest()


# ------------------------------------------------------------------------------ oracle
def load_oracle(settings: Settings, cfg: dict) -> pd.DataFrame | None:
    """``truth/treatment_oracle.csv`` of a generated cohort, keyed by patient_key, if known.

    Looked up at ``[models] oracle``, else next to the configured raw inputs
    (``<cohort>/truth/``). Used only when its horizon equals ``settings.horizon_months``.
    """
    from pipelines.lakehouse.privacy import pseudonymise

    candidates = [Path(cfg["oracle"])] if cfg.get("oracle") else []
    inputs = settings.inputs
    for base in (inputs.clinical_csv, inputs.notes, inputs.fhir, *inputs.vcf):
        if base:
            p = Path(base)
            candidates += [p.parent / "truth" / "treatment_oracle.csv",
                           p.parent.parent / "truth" / "treatment_oracle.csv"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None
    oracle = pd.read_csv(path)
    need = {"patient_id", "treatment", "true_rmst"}
    if not need <= set(oracle.columns):
        raise SchemaMismatchError(
            f"Oracle file {path} lacks column(s) {sorted(need - set(oracle.columns))}; "
            "expected patient_id, treatment, true_rmst."
        )
    params = path.parent / "params.json"
    if params.is_file():
        horizon = json.loads(params.read_text()).get("horizon_months")
        if horizon is not None and abs(float(horizon) - settings.horizon_months) > 1e-9:
            log.warning("oracle horizon %s differs from horizon_months %s; regret not computed",
                        horizon, settings.horizon_months)
            return None
    key = settings.pseudonym_key
    oracle["patient_key"] = [pseudonymise(str(p), key) for p in oracle["patient_id"]]
    return oracle[["patient_key", "treatment", "true_rmst"]]


# ------------------------------------------------------------------------------ figures
def _figures(model, tables: dict[str, pd.DataFrame], importance: pd.DataFrame,
             shap_summary: pd.DataFrame) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    cal = tables.get("calibration")
    if cal is not None and len(cal):
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.plot(cal["predicted"], cal["observed"], "o-")
        ax.set_xlabel(f"predicted survival at {model.horizon_months:g} months")
        ax.set_ylabel("observed (Kaplan–Meier)")
        ax.set_title("Calibration by quintile (validation)")
        figs["calibration"] = fig
    toc = tables.get("targeting_curve")
    if toc is not None and len(toc):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.axhline(0, color="grey", lw=1)
        ax.plot(toc["fraction"], toc["toc"], "o-")
        ax.set_xlabel("fraction treated, by predicted benefit")
        ax.set_ylabel("benefit above average (RMST, months)")
        ax.set_title("Targeting operator characteristic")
        figs["targeting_curve"] = fig
    for name, df, col in (("feature_importance", importance, "importance"),
                          ("shap_summary", shap_summary, "mean_abs_contribution")):
        if df is not None and len(df):
            top = df.head(15).iloc[::-1]
            fig, ax = plt.subplots(figsize=(5.5, 0.3 * len(top) + 1))
            ax.barh(top["feature"], top[col])
            ax.set_title(name.replace("_", " "))
            figs[name] = fig
    return figs


def shap_summary(model, frame: pd.DataFrame, n: int = 100, seed: int = 0) -> pd.DataFrame:
    """Mean |contribution| per feature over up to ``n`` patients, each on the treatment they
    received (TreeSHAP / Cox coefficients / permutation SHAP, see ``explain``)."""
    sample = frame.sample(min(n, len(frame)), random_state=seed) if len(frame) else frame
    parts = []
    for t, grp in sample.groupby(model.treatment_col):
        ex = model.explain(grp, str(t), top_k=len(model.feature_names_))
        if len(ex):
            parts.append(ex)
    if not parts:
        return pd.DataFrame(columns=["feature", "mean_abs_contribution"])
    ex = pd.concat(parts)
    return (ex.assign(a=ex["contribution"].abs()).groupby("feature", as_index=False)["a"].mean()
            .rename(columns={"a": "mean_abs_contribution"})
            .sort_values("mean_abs_contribution", ascending=False, ignore_index=True))


# ------------------------------------------------------------------------------ the stage
def split_for_validation(features: pd.DataFrame, cfg: dict):
    """(train, validation, y_train, y_validation): a split stratified by the event when both
    classes have two patients; ``validation_fraction`` and ``seed`` from ``[models]``."""
    from sklearn.model_selection import train_test_split

    from pipelines.models.design import make_target

    n = len(features)
    y_all = make_target(features["os_event"].astype(int), features["os_months"].astype(float))
    tr_idx, va_idx = train_test_split(
        np.arange(n), test_size=cfg["validation_fraction"], random_state=cfg["seed"],
        stratify=y_all["event"] if min(y_all["event"].sum(), (~y_all["event"]).sum()) >= 2
        else None)
    return (features.iloc[tr_idx].reset_index(drop=True),
            features.iloc[va_idx].reset_index(drop=True), y_all[tr_idx], y_all[va_idx])


def fit_and_select(train: pd.DataFrame, y_tr, val: pd.DataFrame, y_va, families: list[str],
                   cfg: dict, feature_cols: list[str], horizon_months: float,
                   oracle: pd.DataFrame | None = None) -> tuple[list[tuple], tuple]:
    """Fit and validate every family, select one by the promotion metric (:func:`_score`)
    and give it its bootstrap refits. Returns ``[(family, model, metrics, tables), ...]`` and
    the chosen tuple. No MLflow, no table: the caller logs and registers."""
    from pipelines.models.metrics import evaluate
    from pipelines.models.treatment import TreatmentResponseModel

    modifiers = effect_modifiers(feature_cols)
    # Every family is fitted and validated without bootstrap (selection needs no
    # intervals); the selected family alone gets its refits before it is logged.
    fitted = []
    for family in families:
        model = TreatmentResponseModel(
            family=family, learner=cfg["learner"],
            base_params=dict(cfg["base_params"].get(family, {})),
            feature_cols=feature_cols, modifiers=modifiers, n_bootstrap=0,
            horizon_months=horizon_months, random_state=cfg["seed"],
        ).fit(train, y_tr)
        model.set_background(train)
        metrics, tables = evaluate(model, train, y_tr, val, y_va, oracle=oracle,
                                   n_boot=int(cfg["n_policy_bootstrap"]), seed=cfg["seed"])
        fitted.append((family, model, metrics, tables))
    chosen = max(fitted, key=lambda f: _score(f[2]))
    n_boot = _per_family(cfg["n_bootstrap"], chosen[0])
    chosen[1].add_bootstrap(train, y_tr, n_boot)
    log.info("%s: %s selected; %d of %d bootstrap refits succeeded", STAGE, chosen[0],
             chosen[1].n_replicates, n_boot)
    return fitted, chosen


def train_models(spark: SparkSession, settings: Settings, parent_run_id: str | None = None
                 ) -> JobRun:
    """Train, evaluate, log, register and (by the promotion rule) promote; returns the run.

    The modelling is :func:`split_for_validation` and :func:`fit_and_select` (pure); this
    function reads the features, logs every family to MLflow, registers and promotes."""
    from pipelines.models import registry
    from pipelines.models.metrics import survival_metrics
    from pipelines.models.treatment import infer_feature_columns

    cfg = models_config(settings)
    with job_run(spark, settings, STAGE, parent_run_id) as run:
        ref = settings.table("gold", "patient_features")
        if not delta.table_exists(spark, ref):
            raise InputNotFoundError(
                f"Table {ref.key} does not exist yet; run `oncorank run --only build-features` "
                "first."
            )
        sdf = run.read(ref)
        missing = {"patient_key", "treatment", "os_months", "os_event"} - set(sdf.columns)
        if missing:
            raise SchemaMismatchError(f"{ref.key} lacks column(s) {sorted(missing)}.")
        sdf = sdf.filter(F.col("treatment").isNotNull() & F.col("os_months").isNotNull())
        features = training_rows(sdf.toPandas())
        n, n_events = len(features), int(features["os_event"].sum()) if len(features) else 0
        run.count_in(n)
        if n < cfg["min_training_rows"] or n_events < cfg["min_events"]:
            raise DataQualityError(
                f"{ref.key} has {n} patients with a first-line treatment and an outcome "
                f"({n_events} deaths); training needs at least {cfg['min_training_rows']} "
                f"patients and {cfg['min_events']} deaths. Ingest clinical data with outcomes "
                "and rebuild the features."
            )
        families = list(cfg["families"])
        if n >= cfg["spark_min_rows"]:
            log.info("%s: %d patients >= spark_min_rows: training with xgboost.spark", STAGE, n)
            families = ["xgb_spark_cox"]
        # Content, not Delta versions: a re-run of build-features commits a new version of an
        # unchanged table, and that must not trigger a new training.
        fingerprint = _fingerprint(settings, cfg, content_digest(features), families)
        if not cfg["force"]:
            previous = registry.find_run_by_fingerprint(settings, fingerprint)
            if previous and registry.current_champion_version(settings) is not None:
                log.info("%s: inputs, code and configuration unchanged since run %s; reusing it",
                         STAGE, previous["run_id"])
                run.count_written(n)
                return run

        train, val, y_tr, y_va = split_for_validation(features, cfg)
        oracle = load_oracle(settings, cfg)
        feature_cols = infer_feature_columns(features, exclude=cfg["exclude_features"])
        trained_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        fitted, chosen = fit_and_select(train, y_tr, val, y_va, families, cfg, feature_cols,
                                        settings.horizon_months, oracle)
        results = []
        for family, model, metrics, tables in fitted:
            importance = model.feature_importance()
            shap_tab = shap_summary(model, val, n=100 if family != "rsf" else 30,
                                    seed=cfg["seed"])
            tables = {**tables, "feature_importance": importance, "shap_summary": shap_tab}
            card = registry.build_card(
                model, settings.registered_model_name, train, metrics, tables["subgroups"],
                extra={"delta_versions": dict(run.tables_read), "git_sha": git_sha(),
                       "trained_at": trained_at, "fingerprint": fingerprint,
                       "validation_fraction": cfg["validation_fraction"],
                       "oracle_used": oracle is not None})
            params = {"family": family, "learner": cfg["learner"],
                      "n_bootstrap": model.n_bootstrap, "n_refits": model.n_replicates,
                      "horizon_months": settings.horizon_months,
                      "n_features": len(feature_cols), "n_train": len(train),
                      "n_validation": len(val), "seed": cfg["seed"],
                      **{f"base.{k}": v for k, v in (model.base_params or {}).items()}}
            tags = {"oncorank.fingerprint": fingerprint, "oncorank.stage": STAGE,
                    "git_sha": git_sha(), "config_hash": settings.config_hash,
                    **{f"delta.{k}": v for k, v in run.tables_read.items()}}
            figures = _figures(model, tables, importance, shap_tab)
            run_id = registry.log_model_run(
                settings, model, train=train, metrics=metrics, tables=tables, card=card,
                params=params, tags=tags, figures=figures,
                experiment=registry.experiment_name(settings, family))
            _close(figures)
            results.append({"family": family, "model": model, "metrics": metrics,
                            "run_id": run_id, "chosen": family == chosen[0]})
            log.info("%s: %s validation C=%.3f IBS=%.3f", STAGE, family,
                     metrics.get("harrell_c", float("nan")),
                     metrics.get("integrated_brier", float("nan")))

        best = next(r for r in results if r["chosen"])
        version = registry.register(settings, best["run_id"])
        champion_metrics = None
        champ_mv = registry.current_champion_version(settings)
        if champ_mv is not None:
            champion_metrics = _champion_on(settings, val, y_tr, y_va, survival_metrics)
        promote, reason = registry.promotion_decision(best["metrics"], champion_metrics)
        if promote:
            registry.set_champion(settings, version)
        client = registry.configure(settings)
        for r in results:
            client.set_tag(r["run_id"], "oncorank.selected", str(r is best).lower())
        client.set_tag(best["run_id"], "oncorank.registered_version", version)
        client.set_tag(best["run_id"], "oncorank.promoted", str(promote).lower())
        client.set_tag(best["run_id"], "oncorank.promotion_reason", reason)
        log.info("%s: registered %s v%s (%s); champion %s: %s", STAGE,
                 settings.registered_model_name, version, best["family"],
                 "updated" if promote else "kept", reason)
        rows = _metric_rows(results, best, version, promote, fingerprint, trained_at,
                            settings.registered_model_name)
        run.write(spark.createDataFrame(rows, METRICS_SCHEMA), settings.table("gold", "model_metrics"),
                  mode="merge", keys=["run_id", "metric"], primary=False)
        run.count_written(n)
    return run


def _champion_on(settings, val, y_tr, y_va, survival_metrics) -> dict | None:
    """The current champion's metrics on the new validation patients (or its card's)."""
    from pipelines.models import registry

    try:
        champ = registry.load_champion(settings)
    except Exception as exc:  # a broken champion must not block a new one: fall back to none
        log.warning("could not load the champion for comparison: %s", exc)
        return None
    try:
        m = champ.model
        metrics, _ = survival_metrics(y_tr, y_va, m.predict_risk(val), m.times_,
                                      m.predict_survival_received(val), m.horizon_months)
        return metrics
    except (SchemaMismatchError, ValueError, KeyError) as exc:
        log.warning("champion cannot score the new features (%s); comparing recorded metrics",
                    exc)
        return {k: v for k, v in champ.card.get("validation", {}).items() if v is not None}


def _metric_rows(results, best, version, promote, fingerprint, trained_at, name) -> list[dict]:
    rows = []
    for r in results:
        for k, v in sorted(r["metrics"].items()):
            rows.append({
                "run_id": r["run_id"], "model_name": name, "family": r["family"],
                "selected": r is best, "model_version": version if r is best else None,
                "promoted": bool(promote) if r is best else False, "metric": k,
                "value": float(v) if v is not None and np.isfinite(v) else None,
                "fingerprint": fingerprint, "trained_at": trained_at,
            })
    return rows


def _score(metrics: dict) -> tuple[float, float]:
    c = metrics.get("harrell_c", float("nan"))
    ibs = metrics.get("integrated_brier", float("nan"))
    return (c if np.isfinite(c) else -np.inf, -ibs if np.isfinite(ibs) else -np.inf)


def _per_family(value, family: str) -> int:
    if isinstance(value, dict):
        return int(value.get(family, value.get("default", 10)))
    return int(value)


def _fingerprint(settings: Settings, cfg: dict, data: str, families: list[str]) -> str:
    blob = json.dumps({"data": data, "cfg": {k: v for k, v in cfg.items() if k != "force"},
                       "families": families, "git": git_sha(),
                       "horizon": settings.horizon_months,
                       "model": settings.registered_model_name}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _close(figures: dict) -> None:
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)

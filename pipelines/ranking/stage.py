"""``score`` stage: champion model → gold.treatment_rankings and gold.drift.

For every patient under review (a review list, or every patient in gold.patient_features) and
every candidate regimen of the patient's cancer type, the champion model predicts RMST at its
horizon and survival at 12/24 months with intervals; :mod:`pipelines.ranking.steps` ranks them
(rule in its docstring) and attaches the standard-of-care comparison, knowledge-base evidence,
contraindications and overlap warning. The scored cohort's feature distributions are compared
with the training cohort's (:mod:`pipelines.ranking.drift`).

Nothing is lost: rows in = candidate pairs of the selected patients + review-list entries
without features + patients whose cancer type has no candidate regimen; the latter two, and any
pair the model returned no prediction for, go to ``gold.quarantine_treatment_rankings`` with the
reason (by patient_key only).

Re-running the same board date with the same model and data leaves both tables unchanged:
rankings MERGE on (patient_key, treatment, board_date) and keep their ``scored_at``; drift
replaces the board date's slice with identical rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import REASON_COL, RULE_COL, JobRun, job_run
from pipelines.lakehouse.comments import column_comments
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError, SchemaMismatchError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Settings
from pipelines.ranking import drift as drift_mod
from pipelines.ranking import steps
from pipelines.ranking.abstention import RANKED, AbstentionRule, paired_uncertainty, rank_status
from pipelines.ranking.option_rules import rule_book

log = logging.getLogger("oncorank")

STAGE = "score"
PREDICT_BATCH = 5000  # patients per model call: bounds driver memory on large cohorts



# ---------------------------------------------------------------------------- helpers
def board_date_of(settings: Settings) -> dt.date:
    """The board date from settings (``--board-date``), default today; must be ISO."""
    if not settings.board_date:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(str(settings.board_date))
    except ValueError:
        raise ConfigError(f"Board date {settings.board_date!r} is not an ISO date; "
                          "pass it as YYYY-MM-DD.") from None


# Header names of the patient-id column of a review list or a board roster.
ID_HEADERS = ("patient_id", "patient_key", "id", "source_patient_id")


def read_review_list(path: str | Path) -> list[str]:
    """Patient ids from a review list: one per line (source ids or patient keys).

    Blank lines and ``#`` comments are skipped; a CSV's first column is used and a header such
    as ``patient_id`` is recognised.

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    >>> _ = f.write("patient_id,reason\\nPT000001,new\\n# comment\\n\\nPT000002\\n"); f.close()
    >>> read_review_list(f.name)
    ['PT000001', 'PT000002']
    >>> os.unlink(f.name)
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Review list {path} does not exist; pass a file with one "
                                 "patient id (source id or patient_key) per line.")
    ids: list[str] = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines()):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split(",")[0].split("\t")[0].strip().strip('"')
        if i == 0 and first.lower() in ID_HEADERS:
            continue
        if first and first not in ids:
            ids.append(first)
    if not ids:
        raise ConfigError(f"Review list {path} holds no patient id; put one per line.")
    return ids


def resolve_review_keys(ids: list[str], known_keys: set[str], key: bytes) -> list[str]:
    """Each id as a patient_key: itself when it already is a known key, else its pseudonym."""
    return [i if i in known_keys else pseudonymise(i, key) for i in ids]


def _load_champion(settings: Settings):
    from pipelines.models.registry import load_champion

    return load_champion(settings)


def _predict(model, features_pdf: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Model predictions in batches, coerced to :data:`steps.PREDICTION_SCHEMA`, and the
    bootstrap refits' RMST (refits × rows, aligned with the frame's rows)."""
    cols = [f.name for f in steps.PREDICTION_SCHEMA.fields]
    parts, rep_parts = [], []
    for start in range(0, len(features_pdf), PREDICT_BATCH):
        part, reps = model.predict_treatments(features_pdf.iloc[start:start + PREDICT_BATCH],
                                              return_replicates=True)
        missing = set(cols) - set(part.columns)
        if missing:
            raise SchemaMismatchError(f"The champion's predict_treatments output lacks "
                                      f"column(s) {sorted(missing)}; expected {cols}.")
        parts.append(part[cols])
        rep_parts.append(np.asarray(reps, dtype=float).reshape(-1, len(part)))
    pred = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    n_rep = min((r.shape[0] for r in rep_parts), default=0)
    reps = (np.hstack([r[:n_rep] for r in rep_parts]) if rep_parts
            else np.empty((0, 0)))
    for f in steps.PREDICTION_SCHEMA.fields:
        name, typ = f.name, f.dataType.simpleString()
        if typ == "double":
            pred[name] = pd.to_numeric(pred[name], errors="coerce").astype(float)
        elif typ == "boolean":
            pred[name] = pred[name].map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
        elif typ == "bigint":
            pred[name] = pd.to_numeric(pred[name], errors="coerce").astype("Int64")
        else:
            pred[name] = pred[name].astype(str)
    return pred, reps


def _py(v):
    """A pandas/numpy cell as a plain Python value (None for missing)."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def _to_spark(spark: SparkSession, pdf: pd.DataFrame, schema) -> DataFrame:
    rows = [tuple(_py(v) for v in rec) for rec in pdf.itertuples(index=False, name=None)]
    return spark.createDataFrame(rows, schema)


def _quarantine_rows(spark: SparkSession, rows: list[tuple], board_date: dt.date) -> DataFrame:
    schema = f"patient_key string, treatment string, cancer_type string, board_date date, " \
             f"{RULE_COL} string, {REASON_COL} string"
    return spark.createDataFrame([(*r[:3], board_date, *r[3:]) for r in rows], schema)


def _with_paired_uncertainty(spark: SparkSession, ranked: DataFrame, reps: np.ndarray
                             ) -> DataFrame:
    """Add ``benefit_lower``, ``benefit_upper``, ``prob_rank1`` and ``n_refits`` from the
    bootstrap refits (:func:`pipelines.ranking.abstention.paired_uncertainty`)."""
    keys = ["patient_key", "treatment", "standard_of_care", "rank_status", "rank_tier", "rep",
            "benefit_vs_soc"]
    small = ranked.select(*keys).toPandas()
    unc = paired_uncertainty(small, reps)
    unc["n_refits"] = int(reps.shape[0]) if reps.ndim == 2 else 0
    schema = ("patient_key string, treatment string, benefit_lower double, "
              "benefit_upper double, prob_rank1 double, n_refits bigint")
    return ranked.join(_to_spark(spark, unc, schema), ["patient_key", "treatment"], "left")


# ---------------------------------------------------------------------------- stage
@dataclass
class Selection:
    """The patients a board scores and their candidate regimens (pandas, small)."""

    features: pd.DataFrame       # one row per scored patient (gold.patient_features columns)
    candidates: pd.DataFrame     # patient_key, cancer_type, treatment
    quarantined: list[tuple]     # (patient_key, treatment, cancer_type, rule, reason)
    rows_in: int                 # candidate pairs + patients that could not be scored


def select_candidates(features_pdf: pd.DataFrame, review_ids: list[str] | None, key: bytes,
                      catalog) -> Selection:
    """The review list resolved against the feature rows (by source id or patient_key), each
    patient's candidate regimens from the catalog; a listed patient without features, or a
    cancer type without a regimen, is a quarantined row (nothing is lost)."""
    features_pdf = features_pdf.sort_values("patient_key", kind="stable").reset_index(drop=True)
    quarantined: list[tuple] = []
    if review_ids is not None:
        known = set(features_pdf["patient_key"])
        for k in dict.fromkeys(resolve_review_keys(review_ids, known, key)):
            if k not in known:
                quarantined.append((k, None, None, "review_patient_not_found",
                                    "patient on the review list has no row in "
                                    "gold.patient_features"))
    n_not_found = len(quarantined)
    by_type = {ct: [r.name for r in catalog.for_cancer_type(ct)]
               for ct in features_pdf["cancer_type"].dropna().unique()}
    no_cands = features_pdf[features_pdf["cancer_type"].map(lambda ct: not by_type.get(ct))]
    for k, ct in zip(no_cands["patient_key"], no_cands["cancer_type"], strict=True):
        quarantined.append((k, None, ct, "no_candidate_treatments",
                            f"cancer type {ct!r} has no regimen in the regimen catalog"))
    features_pdf = features_pdf[~features_pdf.index.isin(no_cands.index)].reset_index(drop=True)
    cand_pdf = pd.DataFrame(
        [(k, ct, t) for k, ct in zip(features_pdf["patient_key"], features_pdf["cancer_type"],
                                     strict=True) for t in by_type[ct]],
        columns=["patient_key", "cancer_type", "treatment"])
    return Selection(features_pdf, cand_pdf, quarantined,
                     len(cand_pdf) + len(no_cands) + n_not_found)


def predict_candidates(model, selection: Selection, rule: AbstentionRule
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    """The champion's predictions for every candidate pair with its rank status
    (:func:`rank_status`), and the replicate draws; a pair the model returned no prediction
    for is added to ``selection.quarantined``."""
    pred_pdf, reps = _predict(model, selection.features)
    pred_pdf["rep"] = np.arange(len(pred_pdf))
    pred_pdf["rank_status"] = rank_status(
        pred_pdf, dict(getattr(model, "treatment_counts_", {})),
        dict(getattr(model, "arm_events_", getattr(model, "treatment_counts_", {}))), rule)
    # The flag says the same as the rule: below its propensity or similar-patient bound.
    pred_pdf["overlap_warning"] = pred_pdf["rank_status"] != RANKED
    # Only candidates the catalog knows; a pair the model skipped is quarantined.
    pred_pdf = selection.candidates.merge(pred_pdf, on=["patient_key", "treatment"],
                                          how="left", indicator=True)
    for r in pred_pdf[pred_pdf["_merge"] == "left_only"].itertuples():
        selection.quarantined.append((r.patient_key, r.treatment, r.cancer_type,
                                      "no_prediction", "the champion model returned no "
                                      "prediction for this candidate regimen"))
    return pred_pdf[pred_pdf["_merge"] == "both"].drop(columns="_merge"), reps


def build_rankings(spark: SparkSession, features: DataFrame, selection: Selection,
                   pred_pdf: pd.DataFrame, reps: np.ndarray, context: dict[str, DataFrame | None],
                   catalog, rules, champion, board_date: dt.date, horizon: float) -> DataFrame:
    """gold.treatment_rankings rows of one board (without ``scored_at``): the ranking rule,
    benefit against the standard of care, paired intervals, label status, contraindications
    and knowledge-base evidence. ``context`` holds silver.actionable_alterations,
    silver.comorbidities and silver.note_findings (None when absent). Reads no table."""
    catalog_df = steps.catalog_frame(spark, catalog)
    candidates = _to_spark(spark, selection.candidates,
                           "patient_key string, cancer_type string, treatment string")
    preds = _to_spark(spark, pred_pdf[["cancer_type", *steps.PREDICTION_SCHEMA.names,
                                       "rank_status", "rep"]],
                      T.StructType([T.StructField("cancer_type", T.StringType()),
                                    *steps.PREDICTION_SCHEMA.fields,
                                    T.StructField("rank_status", T.StringType()),
                                    T.StructField("rep", T.LongType())]))
    actionable = context.get("actionable_alterations")
    reasons = [steps.contraindication_reasons(candidates, context.get("comorbidities"),
                                              context.get("note_findings"), catalog_df, rules)]
    evidence = matches = None
    if actionable is not None:
        # The knowledge-base join, computed once for its three readers.
        matches = steps.kb_matches(candidates, actionable, catalog_df).localCheckpoint()
        evidence = steps.evidence_for_candidates(candidates, actionable, catalog_df, rules,
                                                 matches)
        reasons.append(steps.resistance_reasons(candidates, actionable, catalog_df, matches))
    labels = steps.label_status(candidates, features, catalog)
    if matches is not None:
        labels = labels.join(steps.level_a_resistance(candidates, actionable, catalog_df,
                                                      matches),
                             ["patient_key", "treatment"], "left")
    core = (
        preds.join(labels, ["patient_key", "treatment"], "left")
        .transform(steps.with_rank)
        .transform(lambda d: steps.with_benefit_vs_soc(d, catalog_df))
    )
    # Materialised once: the paired intervals read it, and so does the write.
    core = spark.createDataFrame(core.collect(), core.schema)
    ranked = (_with_paired_uncertainty(spark, core, reps)
              .transform(lambda d: steps.with_contraindications(d, reasons)))
    if evidence is not None:
        ranked = ranked.join(evidence, ["patient_key", "treatment"], "left")
    else:
        ranked = (ranked.withColumn("evidence_level", F.lit(None).cast("string"))
                  .withColumn("evidence_alteration", F.lit(None).cast("string"))
                  .withColumn("evidence_citation", F.lit(None).cast("string"))
                  .withColumn("evidence_ids", F.lit(None).cast("array<string>"))
                  .withColumn("evidence_on_label", F.lit(None).cast("boolean")))
    kb_version = None
    if actionable is not None:
        versions = sorted(r[0] for r in actionable.select("kb_version").distinct().collect()
                          if r[0])
        kb_version = ", ".join(versions) or None
    return (
        ranked.withColumn("board_date", F.lit(board_date).cast("date"))
        .withColumn("kb_version", F.lit(kb_version).cast("string"))
        .withColumn("horizon_months", F.lit(horizon).cast("double"))
        .withColumn("model_name", F.lit(str(champion.name)))
        .withColumn("model_version", F.lit(str(champion.version)))
        .withColumn("mlflow_run_id", F.lit(str(champion.run_id)))
        .select(*[c for c in steps.RANKING_COLUMNS if c != "scored_at"])
    )


def score(spark: SparkSession, settings: Settings, parent_run_id: str | None = None,
          patients_file: str | Path | None = None) -> JobRun:
    """Rank every candidate regimen for the patients under review; write rankings and drift.

    The work is :func:`select_candidates`, :func:`predict_candidates` and
    :func:`build_rankings` (no table I/O); this function reads their inputs and writes.

    >>> run = score(spark, settings, patients_file="review.txt")  # doctest: +SKIP
    >>> run.rows_written  # (patient, regimen) rows ranked  # doctest: +SKIP
    """
    board_date = board_date_of(settings)
    catalog = regimen_catalog()
    conf = settings.section("ranking")
    review_ids = read_review_list(patients_file) if patients_file else None
    with job_run(spark, settings, STAGE, parent_run_id) as run:
        champion = _load_champion(settings)
        card = dict(champion.card or {})
        horizon = float(card.get("horizon_months") or settings.horizon_months)

        features = steps.latest_per_patient(run.read(run.table("gold", "patient_features")))
        missing = {"patient_key", "cancer_type"} - set(features.columns)
        if missing:
            raise SchemaMismatchError(f"gold.patient_features lacks column(s) {sorted(missing)}.")
        if review_ids is not None:
            # An id may be a patient_key already or a source id: look both up in one pass.
            lookup = {i: pseudonymise(i, settings.pseudonym_key) for i in review_ids}
            wanted = sorted(set(lookup) | set(lookup.values()))
            features = features.filter(F.col("patient_key").isin(wanted))
        # One pass over the table; everything else about the selection is small (pandas).
        selection = select_candidates(features.toPandas(), review_ids, settings.pseudonym_key,
                                      catalog)
        pred_pdf, reps = predict_candidates(champion.model, selection,
                                            AbstentionRule.from_config(conf))
        run.count_in(selection.rows_in)
        context = {name: run.read_optional(run.table("silver", name), level=logging.WARNING,
                                           consequence="its information is left out")
                   for name in ("actionable_alterations", "comorbidities", "note_findings")}
        ranked = build_rankings(spark, features, selection, pred_pdf, reps, context, catalog,
                                rule_book(), champion, board_date, horizon)
        _write_rankings(run, ranked, selection.quarantined, board_date)
        _write_drift(run, champion, selection.features, board_date, conf)
    return run


def _write_rankings(run: JobRun, ranked: DataFrame, quarantined: list[tuple],
                    board_date: dt.date) -> None:
    spark = run.spark
    ref = run.table("gold", "treatment_rankings")
    existing = delta.read_optional(spark, ref)
    if existing is not None:
        existing = existing.filter(F.col("board_date") == F.lit(board_date))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    ranked = steps.with_stable_scored_at(ranked, existing, now).select(*steps.RANKING_COLUMNS)
    # Materialise once: the write passes over the rows several times (gate, duplicate-key
    # check, MERGE) and the lineage above joins five tables.
    ranked = spark.createDataFrame(ranked.collect(), ranked.schema)
    added = delta.add_columns(spark, ref, ranked, column_comments(ref))
    if added:
        log.warning("%s: %s gains column(s) %s of this oncorank version (null for the "
                    "board dates scored before)", STAGE, ref.key, ", ".join(added))
    if quarantined:
        run.quarantine(_quarantine_rows(spark, quarantined, board_date), ref)
    run.write(ranked, ref, mode="merge", keys=steps.KEYS)


def _write_drift(run: JobRun, champion, features_pdf: pd.DataFrame, board_date: dt.date,
                 conf: dict) -> None:
    training = getattr(champion, "training_features", None)
    if training is None or not len(features_pdf):
        if training is None:
            log.warning("%s: the champion carries no training features; drift not computed",
                        STAGE)
        return
    drift_pdf = drift_mod.feature_drift(
        training, features_pdf,
        psi_threshold=float(conf.get("psi_threshold", 0.25)),
        ks_alpha=float(conf.get("ks_alpha", 0.05)),
        min_n=int(conf.get("drift_min_patients", 30)))
    drift_pdf.insert(0, "board_date", board_date)
    drift_pdf["model_name"] = str(champion.name)
    drift_pdf["model_version"] = str(champion.version)
    schema = ("board_date date, feature string, kind string, psi double, "
              "ks_stat double, ks_pvalue double, n_training bigint, n_scored bigint, "
              "drifted boolean, model_name string, model_version string")
    run.write(_to_spark(run.spark, drift_pdf, schema), run.table("gold", "drift"),
              mode="replace", replace_where=f"board_date = DATE'{board_date.isoformat()}'",
              primary=False)
    n_drift = int(drift_pdf["drifted"].sum())
    if n_drift:
        log.warning("%s: %d feature(s) drifted from the training cohort: %s", STAGE,
                    n_drift, ", ".join(drift_pdf.loc[drift_pdf["drifted"], "feature"]))

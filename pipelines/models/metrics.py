"""Honest evaluation of a treatment-response model on held-out patients.

Definitions (all on the validation split, never on the patients the model was fitted on):

* **Harrell's C** — share of comparable pairs whose predicted risks are ordered like their
  observed times (scikit-survival ``concordance_index_censored``).
* **Uno's C** — the same, weighted by the inverse probability of censoring so that heavy
  censoring does not inflate it (Uno et al., Stat Med 2011;30:1105-1117), truncated at the
  horizon.
* **Integrated Brier score** — time-averaged squared error of the predicted survival
  probabilities with IPCW (Graf et al., Stat Med 1999;18:2529-2545); 0 is perfect, ~0.25 is
  a coin flip.
* **Time-dependent AUC** — cumulative/dynamic AUC at the quartiles of the event times up to
  the horizon, averaged (Uno et al., JASA 2007;102:527-537).
* **Calibration at the horizon** — patients in quintiles of predicted S(horizon); per quintile
  the Kaplan–Meier S(horizon) against the mean prediction. ``calibration_ici`` is the
  size-weighted mean absolute gap; ``calibration_in_the_large`` is mean prediction minus the
  overall Kaplan–Meier estimate.
* **Policy value** — the restricted mean survival time (RMST) the cohort would have had if
  every patient had received the model's top-ranked treatment, estimated by inverse
  propensity and inverse censoring weighting (Hajek-normalised): patients whose received
  treatment equals the recommendation stand in for the rest, weighted by 1 / P(received) and
  by 1 / G(min(T, horizon)) when their restricted time is observed. Compared with the
  received treatments and with a uniformly random choice among the candidates. Confidence
  intervals: percentile bootstrap over validation patients. Propensities are clipped at
  ``min_propensity`` to bound the weights.
* **Targeting curve (TOC) and RATE** — patients sorted by predicted benefit of their top
  treatment over standard of care; for the top q fraction, the IPW-estimated benefit minus the
  average benefit (Yadlowsky et al., "Evaluating treatment prioritization rules via rank-
  weighted average treatment effects", JASA 2024). The area under it (AUTOC) is > 0 when the
  patients the model singles out really benefit more.
* **Oracle regret** (generated cohorts only) — mean over patients of the true RMST of the best
  treatment minus that of the recommended one; ``normalised_policy_value`` = (model − random)
  / (oracle − random), 1 = oracle, 0 = no better than chance.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from pipelines.models.design import censoring_survival, kaplan_meier, split_target, step_eval

log = logging.getLogger("oncorank.models")

AGE_BANDS = ((0, 50, "<50"), (50, 65, "50-64"), (65, 75, "65-74"), (75, 200, "75+"))


def age_band(age: pd.Series) -> pd.Series:
    """Age at diagnosis in the bands the subgroup metrics use."""
    a = pd.to_numeric(age, errors="coerce")
    out = pd.Series(np.full(len(a), None, dtype=object), index=a.index)
    for lo, hi, label in AGE_BANDS:
        out[(a >= lo) & (a < hi)] = label
    return out


# ------------------------------------------------------------------------------ survival
def survival_metrics(y_train, y_test, risk: np.ndarray, times: np.ndarray, surv: np.ndarray,
                     horizon: float) -> tuple[dict, pd.DataFrame]:
    """Discrimination and calibration of predictions for ``y_test``.

    ``surv`` holds each test patient's predicted S on ``times``. Returns (metrics,
    calibration table).
    """
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    ev_tr, tm_tr = split_target(y_train)
    ev, tm = split_target(y_test)
    risk = np.asarray(risk, float)
    out: dict[str, float] = {"n": float(len(ev)), "events": float(ev.sum())}
    out["harrell_c"] = _safe(lambda: concordance_index_censored(ev, tm, risk)[0])
    ytr = _struct(ev_tr, tm_tr)
    # IPCW metrics need test times inside the training follow-up (G(t) > 0).
    inside = tm < tm_tr.max()
    yte = _struct(ev[inside], tm[inside])
    tau = float(min(horizon, tm_tr[ev_tr].max() if ev_tr.any() else horizon))
    out["uno_c"] = _safe(lambda: concordance_index_ipcw(ytr, yte, risk[inside], tau=tau)[0])
    ev_times = tm[inside][ev[inside] & (tm[inside] <= horizon)]
    if len(ev_times) >= 4:
        auc_t = np.unique(np.quantile(ev_times, [0.25, 0.5, 0.75]))
        out["td_auc"] = _safe(lambda: cumulative_dynamic_auc(ytr, yte, risk[inside], auc_t)[1])
    else:
        out["td_auc"] = float("nan")
    lo, hi = np.quantile(tm[inside], [0.05, 0.95]) if inside.sum() >= 10 else (np.nan, np.nan)
    hi = min(hi, horizon)
    if np.isfinite(lo) and hi > lo:
        bt = np.linspace(lo, hi, 25)[:-1]
        s_bt = _at_times(times, surv[inside], bt)
        out["integrated_brier"] = _safe(lambda: integrated_brier_score(ytr, yte, s_bt, bt))
    else:
        out["integrated_brier"] = float("nan")
    table = calibration_table(ev, tm, _at_times(times, surv, [horizon])[:, 0], horizon)
    if len(table):
        w = table["n"] / table["n"].sum()
        out["calibration_ici"] = float((w * (table["observed"] - table["predicted"]).abs()).sum())
        t_km, s_km = kaplan_meier(ev, tm)
        km_h = float(step_eval(t_km, s_km, np.array([horizon]))[0])
        pred_h = _at_times(times, surv, [horizon])[:, 0]
        out["calibration_in_the_large"] = float(np.nanmean(pred_h) - km_h)
        out["predicted_surv_horizon"] = float(np.nanmean(pred_h))
        out["observed_surv_horizon"] = km_h
    return out, table


def calibration_table(event, time, pred_h: np.ndarray, horizon: float,
                      bins: int = 5) -> pd.DataFrame:
    """Per quintile of predicted S(horizon): n, mean predicted, Kaplan–Meier observed."""
    ok = np.isfinite(pred_h)
    if ok.sum() < 2 * bins:
        return pd.DataFrame(columns=["bin", "n", "predicted", "observed"])
    q = pd.qcut(pd.Series(pred_h[ok]).rank(method="first"), bins, labels=False).to_numpy()
    rows = []
    ev, tm = np.asarray(event)[ok], np.asarray(time)[ok]
    for b in range(bins):
        on = q == b
        t_km, s_km = kaplan_meier(ev[on], tm[on])
        rows.append((b + 1, int(on.sum()), float(pred_h[ok][on].mean()),
                     float(step_eval(t_km, s_km, np.array([horizon]))[0])))
    return pd.DataFrame(rows, columns=["bin", "n", "predicted", "observed"])


def subgroup_metrics(frame: pd.DataFrame, y_test, risk: np.ndarray,
                     columns: dict[str, pd.Series] | None = None,
                     min_events: int = 5) -> pd.DataFrame:
    """Harrell's C per level of each subgroup column (NaN below ``min_events`` events)."""
    from sksurv.metrics import concordance_index_censored

    ev, tm = split_target(y_test)
    if columns is None:
        columns = {}
        for c in ("cancer_type", "sex", "stage"):
            if c in frame.columns:
                columns[c] = frame[c]
        if "age_at_diagnosis" in frame.columns:
            columns["age_band"] = age_band(frame["age_at_diagnosis"])
    rows = []
    for name, values in columns.items():
        vals = pd.Series(values).astype(object).to_numpy()
        for level in sorted({str(v) for v in vals if v is not None and not pd.isna(v)}):
            on = np.array([v is not None and not pd.isna(v) and str(v) == level for v in vals])
            n_ev = int(ev[on].sum())
            c = float("nan")
            if n_ev >= min_events and on.sum() >= 10:
                c = _safe(lambda on=on: concordance_index_censored(ev[on], tm[on], risk[on])[0])
            rows.append((name, level, int(on.sum()), n_ev, c))
    return pd.DataFrame(rows, columns=["subgroup", "level", "n", "events", "harrell_c"])


# ------------------------------------------------------------------------------ policy value
def _ipcw(event, time, horizon):
    """Restricted time min(T, h), and the IPCW weight delta / G(min(T, h)−)."""
    event = np.asarray(event, bool)
    time = np.asarray(time, float)
    G = censoring_survival(event, time)
    ystar = np.minimum(time, horizon)
    observed = event | (time >= horizon)
    g = np.clip(G(ystar), 1e-3, None)
    return ystar, np.where(observed, 1.0 / g, 0.0)


def _hajek(y, w):
    s = w.sum()
    return float((w * y).sum() / s) if s > 0 else float("nan")


def policy_value(recommended, received, propensity, n_candidates, event, time, horizon,
                 n_boot: int = 200, seed: int = 0, min_propensity: float = 0.01) -> dict:
    """IPW value (RMST at ``horizon``) of following ``recommended`` vs ``received`` vs random.

    Returns point estimates and 95% bootstrap intervals:
    ``policy_value``, ``received_value``, ``random_value``, ``policy_gain`` (policy −
    received), each with ``_lower``/``_upper``.
    """
    rec = np.asarray(recommended, dtype=object)
    got = np.asarray(received, dtype=object)
    e = np.clip(np.asarray(propensity, float), min_propensity, 1.0)
    k = np.maximum(np.asarray(n_candidates, float), 1.0)
    ystar, cw = _ipcw(event, time, horizon)
    follow = (rec == got).astype(float)

    def values(idx):
        y, c = ystar[idx], cw[idx]
        v_pol = _hajek(y, c * follow[idx] / e[idx])
        v_rec = _hajek(y, c)
        v_rnd = _hajek(y, c * (1.0 / k[idx]) / e[idx])
        return v_pol, v_rec, v_rnd

    point = values(np.arange(len(rec)))
    rng = np.random.default_rng(seed)
    boots = np.array([values(rng.integers(0, len(rec), len(rec))) for _ in range(n_boot)])
    out = {"policy_value": point[0], "received_value": point[1], "random_value": point[2],
           "policy_gain": point[0] - point[1], "policy_agreement": float(follow.mean())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j, name in enumerate(("policy_value", "received_value", "random_value")):
            out[f"{name}_lower"], out[f"{name}_upper"] = _pct(boots[:, j])
        out["policy_gain_lower"], out["policy_gain_upper"] = _pct(boots[:, 0] - boots[:, 1])
    return out


def targeting_curve(benefit, recommended, reference, received, propensity, event, time,
                    horizon, fractions=None, n_boot: int = 100, seed: int = 0,
                    min_propensity: float = 0.01) -> tuple[pd.DataFrame, dict]:
    """Targeting operator characteristic and its area (AUTOC / RATE).

    ``benefit`` is the predicted RMST gain of the recommended treatment over the reference
    (standard of care). For the top-q fraction by predicted benefit we estimate, by IPW, the
    RMST under "recommended" minus under "reference", and subtract the same over everyone.
    """
    fractions = np.asarray(fractions if fractions is not None else np.linspace(0.1, 1.0, 10))
    benefit = np.asarray(benefit, float)
    rec = np.asarray(recommended, dtype=object)
    ref = np.asarray(reference, dtype=object)
    got = np.asarray(received, dtype=object)
    e = np.clip(np.asarray(propensity, float), min_propensity, 1.0)
    ystar, cw = _ipcw(event, time, horizon)
    on_rec = (got == rec).astype(float) * cw / e
    on_ref = (got == ref).astype(float) * cw / e

    def curve(idx):
        order = idx[np.argsort(-benefit[idx], kind="mergesort")]
        ate_all = _hajek(ystar[order], on_rec[order]) - _hajek(ystar[order], on_ref[order])
        vals = []
        for q in fractions:
            top = order[: max(1, int(round(q * len(order))))]
            ate_q = _hajek(ystar[top], on_rec[top]) - _hajek(ystar[top], on_ref[top])
            vals.append(ate_q - ate_all)
        return np.array(vals), ate_all

    idx = np.arange(len(benefit))
    toc, ate = curve(idx)
    rng = np.random.default_rng(seed)
    boot = np.array([np.nanmean(curve(rng.integers(0, len(idx), len(idx)))[0])
                     for _ in range(n_boot)])
    table = pd.DataFrame({"fraction": fractions, "toc": toc})
    lo, hi = _pct(boot)
    return table, {"autoc": float(np.nanmean(toc)), "autoc_lower": lo, "autoc_upper": hi,
                   "ate_recommended_vs_reference": float(ate)}


def recommendations(pred: pd.DataFrame) -> pd.DataFrame:
    """Top-ranked treatment per patient (highest predicted RMST; ties → first listed)."""
    ok = pred.dropna(subset=["predicted_rmst"])
    idx = ok.groupby("patient_key", sort=False)["predicted_rmst"].idxmax()
    top = ok.loc[idx, ["patient_key", "treatment", "predicted_rmst"]].rename(
        columns={"treatment": "recommended", "predicted_rmst": "recommended_rmst"})
    k = pred.groupby("patient_key", sort=False)["treatment"].size().rename("n_candidates")
    return top.merge(k, left_on="patient_key", right_index=True)


def oracle_metrics(pred: pd.DataFrame, oracle: pd.DataFrame,
                   received: pd.Series | None = None) -> dict:
    """Regret of the recommendations against the true RMSTs of a generated cohort.

    ``oracle``: patient_key, treatment, true_rmst (every candidate of each patient).
    """
    rec = recommendations(pred)
    orc = oracle[oracle["patient_key"].isin(rec["patient_key"])]
    if orc.empty:
        return {}
    best = orc.groupby("patient_key")["true_rmst"].max()
    rnd = orc.groupby("patient_key")["true_rmst"].mean()
    got = rec.merge(orc, left_on=["patient_key", "recommended"],
                    right_on=["patient_key", "treatment"], how="inner")
    got = got.set_index("patient_key")["true_rmst"]
    common = got.index.intersection(best.index)
    v_model, v_best, v_rnd = got[common].mean(), best[common].mean(), rnd[common].mean()
    best_t = orc.loc[orc.groupby("patient_key")["true_rmst"].idxmax()].set_index(
        "patient_key")["treatment"]
    out = {
        "oracle_value": float(v_best), "model_value_true": float(v_model),
        "random_value_true": float(v_rnd), "regret": float(v_best - v_model),
        "normalised_policy_value": float((v_model - v_rnd) / (v_best - v_rnd))
        if v_best > v_rnd else float("nan"),
        "top1_agreement": float((rec.set_index("patient_key")["recommended"].reindex(common)
                                 == best_t.reindex(common)).mean()),
        "n_oracle_patients": float(len(common)),
    }
    if received is not None:
        got_rx = pd.DataFrame({"patient_key": received.index.astype(str),
                               "received": received.to_numpy()})
        r = orc.merge(got_rx, left_on=["patient_key", "treatment"],
                      right_on=["patient_key", "received"])
        if len(r):
            out["received_value_true"] = float(r["true_rmst"].mean())
    return out


# ------------------------------------------------------------------------------ all together
def evaluate(model, train: pd.DataFrame, y_train, test: pd.DataFrame, y_test,
             reference: np.ndarray | None = None, oracle: pd.DataFrame | None = None,
             n_boot: int = 200, seed: int = 0) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Every metric of the module docstring for a fitted TreatmentResponseModel.

    ``reference``: the standard-of-care treatment of each test patient (targeting curve);
    None → the catalog's standard of care per cancer type, or the first treatment level.
    Returns (flat metrics dict, tables for artifacts).
    """
    horizon = model.horizon_months
    ev, tm = split_target(y_test)
    risk = model.predict_risk(test)
    surv = model.predict_survival_received(test)
    metrics, calib = survival_metrics(y_train, y_test, risk, model.times_, surv, horizon)
    subgroups = subgroup_metrics(test, y_test, risk)
    tables: dict[str, pd.DataFrame] = {"calibration": calib, "subgroups": subgroups}
    for _, r in subgroups.iterrows():
        metrics[f"c_{r['subgroup']}_{r['level']}"] = r["harrell_c"]

    keys = test["patient_key"].astype(str) if "patient_key" in test.columns else pd.Series(
        np.arange(len(test)).astype(str), index=test.index)
    frame = test.copy()
    frame["patient_key"] = keys.to_numpy()
    pred = model.predict_treatments(frame)
    rec = recommendations(pred).set_index("patient_key").reindex(keys.to_numpy())
    received = frame[model.treatment_col].astype(str).to_numpy()
    prop = model.propensity(frame)
    usable = rec["recommended"].notna().to_numpy()
    if usable.sum() >= 10:
        pv = policy_value(rec["recommended"].to_numpy()[usable], received[usable],
                          prop[usable], rec["n_candidates"].to_numpy()[usable], ev[usable],
                          tm[usable], horizon, n_boot=n_boot, seed=seed)
        metrics.update(pv)
        if reference is None:
            reference = _reference(model, frame)
        ref = np.asarray(reference, dtype=object)
        ref_rmst = pred.set_index(["patient_key", "treatment"])["predicted_rmst"]
        ref_vals = np.array([ref_rmst.get((k, r), np.nan) for k, r in zip(keys, ref, strict=True)])
        benefit = rec["recommended_rmst"].to_numpy() - ref_vals
        ok = usable & np.isfinite(benefit)
        if ok.sum() >= 20:
            toc, rate = targeting_curve(benefit[ok], rec["recommended"].to_numpy()[ok], ref[ok],
                                        received[ok], prop[ok], ev[ok], tm[ok], horizon,
                                        n_boot=min(n_boot, 100), seed=seed)
            metrics.update(rate)
            tables["targeting_curve"] = toc
    metrics["overlap_warning_share"] = float(pred["overlap_warning"].mean()) if len(pred) else 0.0
    if oracle is not None and len(oracle):
        metrics.update(oracle_metrics(pred, oracle, pd.Series(received, index=keys.to_numpy())))
    return {k: float(v) for k, v in metrics.items()}, tables


def _reference(model, frame: pd.DataFrame) -> np.ndarray:
    if model.candidates == "catalog" and model.use_groups_:
        from pipelines.catalog import regimen_catalog

        cat = regimen_catalog()
        out = []
        for g in frame[model.group_col].astype(str):
            try:
                out.append(cat.standard_of_care(g).name)
            except StopIteration:
                out.append(model.levels_[0])
        return np.array(out, dtype=object)
    return np.full(len(frame), model.levels_[0], dtype=object)


def _at_times(times: np.ndarray, surv: np.ndarray, at) -> np.ndarray:
    idx = np.searchsorted(times, np.asarray(at, float), side="right") - 1
    idx = np.clip(idx, 0, len(times) - 1)
    return np.asarray(surv)[:, idx]


def _struct(event, time):
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event, time
    return y


def _safe(fn) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn())
    except (ValueError, ZeroDivisionError, IndexError, np.linalg.LinAlgError) as exc:
        log.debug("metric skipped: %s", exc)
        return float("nan")


def _pct(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(x, [2.5, 97.5])
    return float(lo), float(hi)

"""Survival summaries for the analyst notebooks: Kaplan–Meier, log-rank, C-index.

Thin, typed wrappers over scikit-survival (already a pipeline dependency), on pandas frames
small enough for a notebook. Every function validates its inputs and says what it found.

>>> import pandas as pd
>>> df = pd.DataFrame({"t": [5, 8, 12, 20, 3, 9, 30, 40], "e": [1, 1, 0, 1, 1, 1, 0, 0],
...                    "g": ["a"] * 4 + ["b"] * 4})
>>> km = kaplan_meier(df["t"], df["e"])
>>> float(km["survival"].iloc[-1]) < 1.0
True
>>> sorted(logrank(df, "t", "e", "g"))
['chisq', 'df', 'groups', 'p_value']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_GROUP_SIZE = 5


def _arrays(time, event) -> tuple[np.ndarray, np.ndarray]:
    t = pd.to_numeric(pd.Series(time), errors="coerce").to_numpy(dtype=float)
    e = pd.Series(event).astype("float").to_numpy()
    bad = np.isnan(t) | np.isnan(e) | (t < 0)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {len(t)} rows have a missing or negative time, "
                         "or a missing event; drop them before estimating survival.")
    if not np.isin(e, (0, 1)).all():
        raise ValueError("event must be 0 (censored) or 1 (event observed).")
    return t, e.astype(bool)


def kaplan_meier(time, event, conf_level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier estimate with a log-log confidence band.

    Returns one row per distinct time, starting at (0, 1): ``time``, ``survival``, ``lower``,
    ``upper``, ``at_risk`` (patients still followed just before ``time``), ``events``.
    """
    from sksurv.nonparametric import kaplan_meier_estimator

    t, e = _arrays(time, event)
    if len(t) == 0:
        raise ValueError("No patients to estimate survival for.")
    times, surv, ci = kaplan_meier_estimator(e, t, conf_type="log-log", conf_level=conf_level)
    at_risk = np.array([(t >= x).sum() for x in times])
    events = np.array([((t == x) & e).sum() for x in times])
    km = pd.DataFrame({"time": times, "survival": surv, "lower": ci[0], "upper": ci[1],
                       "at_risk": at_risk, "events": events})
    start = pd.DataFrame({"time": [0.0], "survival": [1.0], "lower": [1.0], "upper": [1.0],
                          "at_risk": [len(t)], "events": [0]})
    return pd.concat([start, km[km["time"] > 0]], ignore_index=True)


def median_survival(km: pd.DataFrame) -> float:
    """First time the Kaplan–Meier curve reaches 0.5 or below; NaN if it never does.

    This is the usual definition (Klein & Moeschberger, section 4.5). Note that lifelines'
    ``median_survival_time_`` takes the first time the curve drops *below* 0.5, which differs
    when the curve sits exactly at 0.5.
    """
    # The tolerance keeps a curve that is 0.5 up to rounding (e.g. 7/8·6/7·5/6·4/5) at 0.5.
    below = km.loc[km["survival"] <= 0.5 + 1e-9, "time"]
    return float(below.iloc[0]) if len(below) else float("nan")


def survival_at(km: pd.DataFrame, at: float) -> float:
    """S(at) from a Kaplan–Meier table (step function, right-continuous)."""
    return float(km.loc[km["time"] <= at, "survival"].iloc[-1])


def logrank(df: pd.DataFrame, time_col: str, event_col: str, group_col: str) -> dict:
    """k-group log-rank test: ``{"chisq", "df", "p_value", "groups"}``.

    ``groups`` is a frame with, per group, patients, observed and expected events.
    """
    from sksurv.compare import compare_survival
    from sksurv.util import Surv

    data = df[[time_col, event_col, group_col]].dropna()
    if data[group_col].nunique() < 2:
        raise ValueError(f"The log-rank test needs at least two groups of {group_col}; "
                         f"found {data[group_col].nunique()}.")
    t, e = _arrays(data[time_col], data[event_col])
    chisq, p_value, stats, _ = compare_survival(Surv.from_arrays(e, t),
                                                data[group_col].astype(str).to_numpy(),
                                                return_stats=True)
    groups = stats.rename(columns={"counts": "patients"})[["patients", "observed", "expected"]]
    return {"chisq": float(chisq), "df": int(data[group_col].nunique() - 1),
            "p_value": float(p_value), "groups": groups}


def km_by_group(df: pd.DataFrame, time_col: str, event_col: str, group_col: str,
                min_size: int = MIN_GROUP_SIZE) -> dict[str, pd.DataFrame]:
    """Kaplan–Meier table per group with at least ``min_size`` patients."""
    out = {}
    for level, part in df.dropna(subset=[time_col, event_col, group_col]).groupby(
            group_col, observed=True):
        if len(part) >= min_size:
            out[str(level)] = kaplan_meier(part[time_col], part[event_col])
    return out


def survival_table(curves: dict[str, pd.DataFrame], at: tuple[float, ...] = (12.0, 24.0),
                   ) -> pd.DataFrame:
    """Per group: patients, events, median survival and survival at ``at`` months."""
    rows = []
    for level, km in curves.items():
        row = {"group": level, "patients": int(km["at_risk"].iloc[0]),
               "events": int(km["events"].sum()), "median_months": median_survival(km)}
        for x in at:
            row[f"surv_{x:g}"] = survival_at(km, x)
        rows.append(row)
    return pd.DataFrame(rows)


def harrell_c(time, event, predicted_survival_time) -> float:
    """Harrell's C-index of a prediction where larger means longer survival (e.g. RMST)."""
    from sksurv.metrics import concordance_index_censored

    t, e = _arrays(time, event)
    score = pd.to_numeric(pd.Series(predicted_survival_time), errors="coerce").to_numpy()
    if np.isnan(score).any():
        raise ValueError("The prediction has missing values.")
    if e.sum() == 0:
        return float("nan")
    # concordance_index_censored expects a risk score: higher = earlier event.
    return float(concordance_index_censored(e, t, -score)[0])


def at_risk_at(km: pd.DataFrame, ticks) -> list[int]:
    """Patients still followed at each of ``ticks`` (the number-at-risk row printed under a
    Kaplan–Meier figure): exact, because ``km`` has a row at every observed time.

    >>> km = kaplan_meier([2, 5, 5, 9], [1, 0, 1, 1])
    >>> at_risk_at(km, [0, 3, 5, 6, 10])
    [4, 3, 3, 1, 0]
    """
    times, at_risk = km["time"].to_numpy(), km["at_risk"].to_numpy()
    out = []
    for tick in ticks:
        later = np.nonzero(times >= tick)[0]
        out.append(int(at_risk[later[0]]) if len(later) else 0)
    return out


def plot_km(ax, curves: dict[str, pd.DataFrame], title: str, xlabel: str = "months",
            test: dict | None = None, at_risk_ticks=None) -> None:
    """Step curves with confidence bands, one per group, on a matplotlib ``ax``; with
    ``at_risk_ticks``, those x ticks and a number-at-risk table under the axis, one row per
    group (as oncology papers print it; lifelines' ``add_at_risk_counts`` does the same)."""
    colors = {}
    for level, km in curves.items():
        line = ax.step(km["time"], km["survival"], where="post",
                       label=f"{level} (n={int(km['at_risk'].iloc[0])})")[0]
        ax.fill_between(km["time"], km["lower"], km["upper"], step="post", alpha=0.15,
                        color=line.get_color())
        colors[level] = line.get_color()
    ax.set_ylim(0, 1.02)
    if at_risk_ticks is not None:
        ticks = list(at_risk_ticks)
        ax.set_xticks(ticks)
        ax.set_xlim(min(ticks), max(ticks))
        ax.annotate("Number at risk", xy=(0, -0.2), xycoords="axes fraction", fontsize=8,
                    fontweight="bold", ha="right", va="center")
        for i, (level, km) in enumerate(curves.items()):
            y = -0.2 - 0.07 * (i + 1)
            ax.annotate(level, xy=(0, y), xycoords="axes fraction", xytext=(-24, 0),
                        textcoords="offset points", fontsize=8, ha="right", va="center",
                        color=colors[level])
            for tick, n in zip(ticks, at_risk_at(km, ticks), strict=True):
                ax.annotate(str(n), xy=(tick, y), xycoords=("data", "axes fraction"),
                            fontsize=8, ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("overall survival")
    if test is not None:
        title = f"{title}\nlog-rank χ²={test['chisq']:.2f}, df={test['df']}, p={test['p_value']:.3g}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")

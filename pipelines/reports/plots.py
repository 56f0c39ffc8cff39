"""Plots for the tumor-board report, rendered to inline SVG data URIs (no file, no network).

Output is deterministic (fixed SVG hash salt, no creation date), so re-rendering an unchanged
report writes the same bytes.

>>> uri = survival_plot_uri([0, 12, 24], {"folfox": [1.0, 0.7, 0.5]}, horizon=24)
>>> uri.startswith("data:image/svg+xml;base64,")
True
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: never open a window

import matplotlib.pyplot as plt  # noqa: E402

# Colour-blind-safe palette (Okabe & Ito, 2008) so options stay distinguishable in print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442"]
LINESTYLES = ["-", "--", "-.", ":"]


def _svg_uri(fig) -> str:
    buf = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "oncorank", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def survival_plot_uri(times, curves: dict[str, list[float]], horizon: float,
                      highlight: str | None = None, labels: dict[str, str] | None = None) -> str:
    """Predicted survival under each candidate regimen in one plot, as an SVG data URI.

    Parameters
    ----------
    times
        Time grid in months.
    curves
        Regimen name → survival probabilities on ``times``, in rank order.
    horizon
        RMST horizon (months), drawn as a dotted vertical line.
    highlight
        The rank-1 regimen, drawn thicker.
    labels
        Optional legend label per regimen (e.g. "1. osimertinib").
    """
    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=100)
    for i, (name, surv) in enumerate(curves.items()):
        ax.step(list(times), list(surv), where="post",
                color=PALETTE[i % len(PALETTE)], linestyle=LINESTYLES[(i // len(PALETTE)) % 4],
                linewidth=2.6 if name == highlight else 1.4,
                label=(labels or {}).get(name, name))
    ax.axvline(horizon, color="#777777", linestyle=":", linewidth=1)
    ax.text(horizon, 1.02, f" horizon {horizon:g} mo", fontsize=8, color="#555555",
            va="bottom", ha="center")
    ax.set_xlim(0, max(max(times) if len(times) else horizon, horizon))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Months from start of treatment")
    ax.set_ylabel("Predicted probability alive")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg_uri(fig)

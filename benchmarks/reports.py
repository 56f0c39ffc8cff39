"""Tumor-board report rendering: HTML time per patient and PDF printing strategies.

Renders a board of N realistic reports (4 ranked options, a survival plot, genomics, notes, SHAP
drivers, model card) from plain contexts — no Spark, so only the report code is measured — and
prints them to PDF two ways, side by side in one run:

* ``cli``: one ``chromium --headless --print-to-pdf`` process per report;
* ``cdp``: one headless browser for the whole board, driven over the DevTools pipe
  (what the report stage does).

    .venv/bin/python benchmarks/reports.py [--patients 12] [--out benchmarks/out/reports]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from pipelines.catalog import regimen_catalog
from pipelines.reports import render
from pipelines.reports import sections as ctx
from pipelines.reports.browser import HeadlessBrowser, find_chromium, print_pdf_cli
from pipelines.reports.plots import survival_plot_uri


def fake_context(i: int, rng: np.random.Generator) -> tuple[str, dict]:
    catalog = regimen_catalog()
    key = f"{rng.integers(0, 2**63):020x}"[:20]
    times = np.linspace(0, 24, 241)
    options, curves = [], {}
    for r in catalog.for_cancer_type("NSCLC"):
        lam = rng.uniform(0.02, 0.08)
        surv = np.exp(-lam * times)
        rmst = float(np.trapezoid(surv, times))
        curves[r.name] = surv.tolist()
        options.append({"patient_key": key, "treatment": r.name, "predicted_rmst": rmst,
                        "rmst_lower": rmst - 1.5, "rmst_upper": rmst + 1.4,
                        "surv_12": float(np.exp(-lam * 12)), "surv_12_lower": 0.4,
                        "surv_12_upper": 0.8, "surv_24": float(np.exp(-lam * 24)),
                        "surv_24_lower": 0.2, "surv_24_upper": 0.6,
                        "standard_of_care": "platinum_pemetrexed", "benefit_vs_soc": 1.2,
                        "evidence_level": "A" if r.name == "osimertinib" else None,
                        "evidence_alteration": "EGFR L858R", "evidence_citation": "PMID 29151359",
                        "evidence_on_label": True, "contraindications": [],
                        "overlap_warning": False, "propensity": 0.3, "n_similar_treated": 40})
    options.sort(key=lambda o: -o["predicted_rmst"])
    for n, o in enumerate(options, 1):
        o["rank"] = n
    opts = ctx.options_context(options, catalog)
    header = ctx.header_context(key, {"sex": "F", "age_at_diagnosis": 63, "cancer_type": "NSCLC",
                                      "stage": "IV", "ecog": 1}, None, "2026-12-03", catalog)
    drift = ctx.drift_context([{"feature": "age", "drifted": False}])
    quality = ctx.quality_context(None, [{"job": "score", "status": "succeeded",
                                          "started_at": "x", "rows_quarantined": 0}])
    context = {
        "p": header, "care_team": False, "flags": ctx.red_flags(opts, drift, quality),
        "options": opts, "close_call": ctx.close_call(opts), "horizon": 24.0,
        "plot_uri": survival_plot_uri(times, {o["treatment"]: curves[o["treatment"]]
                                              for o in opts}, 24.0, opts[0]["treatment"]),
        "plot_missing": "", "plot_alt": "curves",
        "genomics": ctx.genomics_context([], {"tmb": 7.5}, []),
        "notes": [], "notes_missing": "none",
        "comorbidities": ctx.comorbidity_context({"charlson_index": 2}, True),
        "why": ctx.why_context(opts, {o["treatment"]: [
            {"feature": f"f{j}", "value": j, "contribution": 0.1 * j, "scale": "log_hazard"}
            for j in range(5)] for o in opts}, {}), "why_missing": "", "why_note": "",
        "card": ctx.card_context({"n_bootstrap": 20}, {"name": "m", "version": "1"}, {}, header),
        "quality": quality, "drift": drift, "catalog_version": catalog.version,
    }
    return key, context


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/reports"))
    args = ap.parse_args()
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "cli").mkdir(parents=True)
    (out / "cdp").mkdir(parents=True)
    rng = np.random.default_rng(0)

    t0 = time.perf_counter()
    contexts = [fake_context(i, rng) for i in range(args.patients)]
    t_ctx = time.perf_counter() - t0
    t0 = time.perf_counter()
    pages = []
    for key, c in contexts:
        html = out / f"{key}.html"
        html.write_text(render.render_report(c))
        pages.append(html)
    t_html = time.perf_counter() - t0

    chromium = find_chromium()
    result = {"patients": args.patients, "context_and_plot_s_per_patient": t_ctx / args.patients,
              "html_render_s_per_patient": t_html / args.patients,
              "html_kb": round(np.mean([p.stat().st_size for p in pages]) / 1024, 1),
              "machine": f"{platform.machine()}, shared 2-core / 24 GB, no GPU"}
    if chromium:
        t0 = time.perf_counter()
        for p in pages:
            print_pdf_cli(p, out / "cli" / f"{p.stem}.pdf", chromium)
        t_cli = time.perf_counter() - t0
        t0 = time.perf_counter()
        with HeadlessBrowser(chromium) as browser:
            browser.print_pdfs([(p, out / "cdp" / f"{p.stem}.pdf") for p in pages])
        t_cdp = time.perf_counter() - t0
        result.update({"pdf_cli_s_per_patient": t_cli / args.patients,
                       "pdf_cdp_s_per_patient": t_cdp / args.patients,
                       "cli_over_cdp": t_cli / t_cdp})
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""``report`` stage: gold.treatment_rankings → tumor-board reports (HTML + PDF).

For the board date (settings / ``--board-date``, default today) every patient ranked in
gold.treatment_rankings gets ``<reports>/<board_date>/<patient_key>.html`` (and ``.pdf``), and
the board gets ``index.html`` listing each patient's top option, its evidence level and red
flags. The default variant shows only the pseudonymised id; ``care_team=True`` writes the
identified variant (name and MRN from restricted.patient_identity) to
``<reports>/<board_date>/care-team/``.

Pages are self-contained: styles inline, plots as ``data:`` SVG, and a Content-Security-Policy
that blocks every fetch. PDFs are printed by headless Chromium (one browser for the whole
board); without Chromium the stage writes HTML only and says so.

rows in = patients ranked for the board date = reports written. With a board roster
(``[reports] roster``, :mod:`pipelines.reports.roster`) only the roster's patients: rows in =
roster patients = reports written + roster patients not scored for the date (quarantined).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.errors import InputNotFoundError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Settings
from pipelines.ranking.abstention import AbstentionRule
from pipelines.ranking.stage import board_date_of
from pipelines.ranking.steps import latest_per_patient
from pipelines.reports import render
from pipelines.reports import sections as ctx
from pipelines.reports.browser import HeadlessBrowser, find_chromium
from pipelines.reports.plots import survival_plot_uri
from pipelines.reports.roster import read_roster

log = logging.getLogger("oncorank")

STAGE = "report"
TOP_EXPLAINED = 2  # options whose SHAP drivers the report shows


def _index_date(feature_row: dict | None):
    """The patient's index date as gold holds it (moved by the patient's date shift, like the
    note dates the report shows, so the two compare)."""
    index = (feature_row or {}).get("index_date")
    return index if hasattr(index, "isoformat") else None


def _load_champion(settings: Settings):
    from pipelines.models.registry import load_champion

    return load_champion(settings)


def _records(pdf: pd.DataFrame | None) -> list[dict]:
    if pdf is None:
        return []
    pdf = pdf.astype(object).where(pdf.notna(), None)
    return pdf.to_dict("records")


def _by_key(pdf: pd.DataFrame | None) -> dict[str, list[dict]] | None:
    if pdf is None:
        return None
    out: dict[str, list[dict]] = defaultdict(list)
    for r in _records(pdf):
        out[r["patient_key"]].append(r)
    return out


class _Reader:
    """Reads the board's slice of each table through the job run (versions recorded)."""

    def __init__(self, run: JobRun, keys: list[str]):
        self.run = run
        self.keys_df = run.spark.createDataFrame([(k,) for k in keys], "patient_key string")

    def table(self, schema: str, name: str) -> DataFrame | None:
        return self.run.read_optional(self.run.table(schema, name))

    def for_board(self, schema: str, name: str, latest: bool = False,
                  where=None) -> pd.DataFrame | None:
        df = self.table(schema, name)
        if df is None or "patient_key" not in df.columns:
            return None
        if latest:
            df = latest_per_patient(df)
        df = df.join(F.broadcast(self.keys_df), "patient_key", "inner")
        if where is not None:
            df = df.filter(where)
        return df.toPandas()


def _roster_unscored(run: JobRun, ref, roster, lookup: dict[str, str], scored: set[str],
                     board_date: str) -> list[str]:
    """The roster's patients with no ranking for the board date, as patient keys (listed on
    the index, quarantined by key: the roster's source ids never reach a table)."""
    if roster is None:
        return []
    missing = [lookup[i] for i in roster.ids if i not in scored and lookup[i] not in scored]
    if roster.skipped:
        log.info("%s: board roster %s: left out %s", STAGE, roster.path,
                 "; ".join(f"{why}: {n}" for why, n in sorted(roster.skipped.items())))
    if missing:
        run.quarantine(run.spark.createDataFrame(
            [(k, "not_scored", f"on the board roster of {board_date} but not scored for that "
                               "board date; run `score` with this patient")
             for k in missing], "patient_key string, _rule string, _reason string"), ref)
        log.warning("%s: %d roster patient(s) not scored for %s", STAGE, len(missing),
                    board_date)
    return missing


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _model_outputs(model, features_pdf: pd.DataFrame, rankings: pd.DataFrame,
                   horizon: float) -> tuple[dict, dict]:
    """Survival curves and SHAP explanations, one model call per regimen for the whole board."""
    curves: dict[str, dict[str, tuple]] = defaultdict(dict)
    explanations: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    if features_pdf is None or features_pdf.empty:
        return curves, explanations
    features_pdf = features_pdf.sort_values("patient_key", kind="stable").reset_index(drop=True)
    for treatment, group in rankings.groupby("treatment"):
        keys = set(group["patient_key"])
        sub = features_pdf[features_pdf["patient_key"].isin(keys)].reset_index(drop=True)
        if sub.empty:
            continue
        times, surv = model.survival_curves(sub, treatment)
        for i, key in enumerate(sub["patient_key"]):
            curves[key][treatment] = (list(map(float, times)), [float(x) for x in surv[i]])
        top = set(group.loc[group["rank"] <= TOP_EXPLAINED, "patient_key"])
        sub_top = sub[sub["patient_key"].isin(top)].reset_index(drop=True)
        if not sub_top.empty:
            exp = model.explain(sub_top, treatment, top_k=5)
            for key, rows in exp.groupby("patient_key"):
                explanations[key][treatment] = _records(rows)
    return curves, explanations


@dataclass
class BoardData:
    """What the reports of one board show, read once: per-patient rows keyed by patient_key
    (None where the table does not exist), the board's drift and data-quality summaries, the
    champion's curves and explanations."""

    board_date: str
    horizon: float
    card: dict
    catalog: object
    champion_meta: dict
    abstention_text: str
    rankings: pd.DataFrame
    features_by_key: dict
    labels: dict
    patients: dict | None
    actionable: dict | None
    biomarkers: dict | None
    variants: dict | None
    findings: dict | None
    observations: dict | None
    comorbidities: dict | None
    identity: dict | None
    drift: dict
    quality: dict
    curves: dict
    explanations: dict


def patient_report(data: BoardData, key: str, care_team: bool = False) -> tuple[dict, dict]:
    """(template context, board-index fields) of one patient's report. Pure: rendering and
    writing are the caller's."""
    catalog, board_date, horizon = data.catalog, data.board_date, data.horizon
    rows = _records(data.rankings[data.rankings["patient_key"] == key])
    options = ctx.options_context(rows, catalog)
    patient_row = (data.patients or {}).get(key, [None])[0]
    feature_row = data.features_by_key.get(key, [None])[0]
    ident = (data.identity or {}).get(key, [{}])[0] if care_team else None
    header = ctx.header_context(key, patient_row, feature_row, board_date, catalog, ident)
    flags = ctx.red_flags(options, data.drift, data.quality,
                          (feature_row or {}).get("biomarker_conflicts"))
    ranked = ctx.ranked_options(options)
    pcurves = data.curves.get(key, {})
    # Only ranked options are drawn: an extrapolated curve is not shown as a prediction.
    ordered = {o["treatment"]: pcurves[o["treatment"]][1] for o in ranked
               if o["treatment"] in pcurves}
    plot_uri, plot_missing = "", ""
    if ordered:
        times = next(iter(pcurves.values()))[0]
        plot_uri = survival_plot_uri(
            times, ordered, horizon, highlight=ranked[0]["treatment"],
            labels={o["treatment"]: f"{o['rank']}. {o['treatment']}" for o in ranked})
    elif not ranked:
        plot_missing = "no option is ranked for this patient (see above)."
    else:
        plot_missing = "this patient has no row in gold.patient_features."
    notes, notes_missing = ctx.notes_context(
        data.findings.get(key, []) if data.findings is not None else None,
        _index_date(feature_row))
    scored = rows[0] if rows else {}
    context = {
        "p": header, "care_team": care_team, "flags": flags, "options": options,
        "close_call": ctx.close_call(options),
        "horizon": horizon,
        "plot_uri": plot_uri, "plot_missing": plot_missing,
        "plot_alt": "Predicted survival curves: " + "; ".join(
            f"{o['rank']}. {o['treatment']} RMST {render.fmt_num(o['predicted_rmst'])}"
            " months" for o in ranked),
        "n_ranked": len(ranked),
        "ranking_notice": ctx.ranking_notice(options, data.card),
        "genomics": ctx.genomics_context(
            data.actionable.get(key, []) if data.actionable is not None else None,
            (data.biomarkers or {}).get(key, [None])[0],
            data.variants.get(key, []) if data.variants is not None else None,
            feature_row),
        "notes": notes, "notes_missing": notes_missing,
        "observations": ctx.observations_context(
            (data.observations or {}).get(key, []), _index_date(feature_row)),
        "comorbidities": ctx.comorbidity_context(
            (data.comorbidities or {}).get(key, [None])[0], data.comorbidities is not None),
        "why": ctx.why_context(options, data.explanations.get(key, {}), data.labels,
                               TOP_EXPLAINED),
        "why_missing": "No explanation available.",
        "why_note": "Each contribution is how far the factor moves this patient's "
                    "prediction away from the average training patient (SHAP values; "
                    "for a Cox model, coefficient times the difference from the "
                    "mean). They explain the model, not the biology.",
        "card": ctx.card_context(data.card, data.champion_meta, {
            "model_version": scored.get("model_version"),
            "mlflow_run_id": scored.get("mlflow_run_id"),
            "scored_at": str(scored.get("scored_at") or ""),
            "n_refits": scored.get("n_refits")}, header),
        "quality": data.quality, "drift": data.drift, "catalog_version": catalog.version,
        "kb_version": scored.get("kb_version") or "not recorded",
    }
    context["card"]["abstention_text"] = data.abstention_text
    top = ranked[0] if ranked else {}
    index_row = {
        "name": header.get("name"), "mrn": header.get("mrn"),
        "cancer_type": header["cancer_type"], "stage": header["stage"],
        "ecog": header["ecog"], "top": top.get("treatment"),
        "rmst": top.get("predicted_rmst"), "rmst_lower": top.get("rmst_lower"),
        "rmst_upper": top.get("rmst_upper"), "evidence_level": top.get("evidence_level"),
        "evidence_alteration": top.get("evidence_alteration"), "flags": flags}
    return context, index_row


def render_reports(spark: SparkSession, settings: Settings, parent_run_id: str | None = None,
                   care_team: bool = False, roster_file: str | Path | None = None) -> JobRun:
    """Write the board's reports; returns the JobRun (``run.report_files``, ``run.pdf_note``).

    With a board roster (``roster_file``, else ``[reports] roster``;
    :mod:`pipelines.reports.roster`) only the roster's patients get reports; a roster patient
    not scored for the board date is listed on the index as such and quarantined
    (``gold.quarantine_treatment_rankings``, by patient_key), so rows in (roster patients) =
    reports written + quarantined. Without a roster every patient scored for the date gets one.

    >>> run = render_reports(spark, settings)  # doctest: +SKIP
    >>> run.report_files[0].name  # doctest: +SKIP
    'index.html'
    """
    board_date = board_date_of(settings).isoformat()
    folder = render.board_folder(settings.reports_path, board_date, care_team)
    catalog = regimen_catalog()
    conf = settings.section("reports")
    roster_path = roster_file or conf.get("roster")
    roster = read_roster(roster_path, board_date) if roster_path else None
    with job_run(spark, settings, STAGE, parent_run_id) as run:
        ref = run.table("gold", "treatment_rankings")
        rankings_df = run.read(ref).filter(F.col("board_date") == F.lit(board_date).cast("date"))
        lookup: dict[str, str] = {}
        if roster is not None:
            # A roster id may be a source id or a patient_key: match both in one pass.
            lookup = {i: pseudonymise(i, settings.pseudonym_key) for i in roster.ids}
            wanted = sorted(set(lookup) | set(lookup.values()))
            rankings_df = rankings_df.filter(F.col("patient_key").isin(wanted))
        rankings = rankings_df.toPandas()
        if rankings.empty:
            raise InputNotFoundError(
                f"gold.treatment_rankings has no rows for board date {board_date}"
                + (f" and the {len(roster.ids)} patient(s) of board roster {roster.path}"
                   if roster is not None else "") + "; run `score` for that date first.")
        keys = sorted(rankings["patient_key"].unique())
        unscored = _roster_unscored(run, ref, roster, lookup, set(keys), board_date)
        run.count_in(len(keys) + len(unscored))
        champion = _load_champion(settings)
        card = dict(champion.card or {})
        horizon = float(rankings["horizon_months"].dropna().iloc[0]) if \
            "horizon_months" in rankings and rankings["horizon_months"].notna().any() else \
            float(card.get("horizon_months") or settings.horizon_months)

        reader = _Reader(run, keys)
        features_df = reader.table("gold", "patient_features")
        labels = {f.name: f.metadata.get("comment", "") for f in features_df.schema.fields} \
            if features_df is not None else {}
        features_pdf = reader.for_board("gold", "patient_features", latest=True)
        patients = _by_key(reader.for_board("silver", "patients", latest=True))
        actionable = _by_key(reader.for_board("silver", "actionable_alterations"))
        biomarkers = _by_key(reader.for_board("silver", "biomarkers"))
        genes, _ = ctx.driver_genes()
        # driver genes, and every gene of an actionable alteration (its VCF record is shown)
        genes = genes | {str(a.get("gene")).upper() for rows_ in (actionable or {}).values()
                         for a in rows_ if a.get("gene")}
        variants = _by_key(reader.for_board(
            "silver", "variants", where=F.upper(F.col("gene")).isin(sorted(genes))))
        findings = _by_key(reader.for_board("silver", "note_findings"))
        observations = _by_key(reader.for_board("silver", "biomarker_observations"))
        comorbidities = _by_key(reader.for_board("silver", "comorbidities", latest=True))
        identity = _by_key(reader.for_board("restricted", "patient_identity")) \
            if care_team else None
        drift_df = reader.table("gold", "drift")
        drift = ctx.drift_context(
            _records(drift_df.filter(F.col("board_date") == F.lit(board_date).cast("date"))
                     .toPandas()) if drift_df is not None else None)
        dq = reader.table("ops", "data_quality")
        jr = reader.table("ops", "job_runs")
        quality = ctx.quality_context(
            _records(dq.toPandas()) if dq is not None else None,
            _records(jr.select("job", "status", "started_at", "rows_quarantined").toPandas())
            if jr is not None else None)

        curves, explanations = _model_outputs(champion.model, features_pdf, rankings, horizon)
        data = BoardData(
            board_date=board_date, horizon=horizon, card=card, catalog=catalog,
            champion_meta={"name": champion.name, "version": champion.version,
                           "run_id": champion.run_id},
            abstention_text=AbstentionRule.from_config(settings.section("ranking")).describe(),
            rankings=rankings, features_by_key=_by_key(features_pdf) or {}, labels=labels,
            patients=patients, actionable=actionable, biomarkers=biomarkers,
            variants=variants, findings=findings, observations=observations,
            comorbidities=comorbidities, identity=identity, drift=drift, quality=quality,
            curves=curves, explanations=explanations)
        folder.mkdir(parents=True, exist_ok=True)
        index_rows, written, pdf_pairs = [], [], []
        for key in keys:
            context, index_row = patient_report(data, key, care_team)
            html_path = render.report_file(folder, key, ".html")
            _write_text(html_path, render.render_report(context))
            written.append(html_path)
            pdf_path = render.report_file(folder, key, ".pdf")
            pdf_pairs.append((html_path, pdf_path))
            index_rows.append({"key": key, "html": html_path.name, "pdf": pdf_path.name,
                               **index_row})
        index_rows += [{"key": key, "html": None, "pdf": None, "unscored": True}
                       for key in unscored]

        chromium = find_chromium() if conf.get("pdf", True) else None
        if chromium:
            with HeadlessBrowser(chromium) as browser:
                browser.print_pdfs(pdf_pairs)
            run.pdf_note = f"printed {len(pdf_pairs)} PDF(s) with {chromium}"
        else:
            for row in index_rows:
                row["pdf"] = None
            run.pdf_note = ("PDF skipped: Chromium is not installed (or [reports] pdf = false); "
                            "HTML reports only — print them from a browser")
            log.warning("%s: %s", STAGE, run.pdf_note)

        board_flags = []
        if drift["drifted"]:
            board_flags.append("population drift in " + ", ".join(drift["drifted"][:6]))
        if not quality["ok"]:
            board_flags.append("data quality: " + quality["status"])
        index_path = folder / "index.html"
        _write_text(index_path, render.render_index({
            "board_date": board_date, "rows": index_rows, "care_team": care_team,
            "model_name": champion.name, "model_version": champion.version,
            "board_flags": board_flags}))
        run.count_written(len(written))
        run.report_files = [index_path, *written, *(p for _, p in pdf_pairs if chromium)]
        log.info("%s: %d report(s) in %s; %s", STAGE, len(written), folder, run.pdf_note)
    return run

"""The ``oncorank`` command line: the user's front door. Each command dispatches to a library
function; errors print one sentence (the stack trace only with ``--debug``)."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.lakehouse.errors import ConfigError, InputNotFoundError, OncorankError
from pipelines.lakehouse.settings import Settings

app = typer.Typer(
    name="oncorank",
    help="Batch precision-oncology recommendation engine on Spark and Delta Lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(help="Ingest raw inputs into the lakehouse.", no_args_is_help=True)
notes_app = typer.Typer(help="Clinical-notes tools (Spark NLP).", no_args_is_help=True)
quarantine_app = typer.Typer(help="Rows rejected by the quality gates.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(notes_app, name="notes")
app.add_typer(quarantine_app, name="quarantine")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
LakehouseOpt = Annotated[Path | None, typer.Option("--lakehouse", help="Local lakehouse folder.")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="local | dev | prod")]


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show stack traces.")] = False):
    _state["debug"] = debug
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # --debug shows oncorank's own detail (and stack traces), not the Py4J wire protocol.
    logging.getLogger("oncorank").setLevel(logging.DEBUG if debug else logging.WARNING)


def _settings(config: Path | None = None, lakehouse: Path | None = None, env: str | None = None,
              **overrides) -> Settings:
    overrides.update(lakehouse=lakehouse, env=env, debug=_state["debug"] or None)
    return Settings.load(config, overrides)


def _spark(settings: Settings):
    from pipelines.lakehouse.session import spark_session

    with err.status("starting Spark…"):
        return spark_session(settings)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(f"{what} {path} does not exist; check the path.")
    return path


# ---------------------------------------------------------------------------- demo / synth / run
@app.command()
def demo(
    patients: Annotated[int, typer.Option(help="Patients in the generated cohort.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("oncorank-demo"),
):
    """Generate a cohort, run every stage on the embedded default, write reports."""
    from pipelines.demo import run_demo

    run_demo(patients=patients, seed=seed, out=out_dir, console=err, debug=_state["debug"])


@app.command()
def synth(
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed (output is byte-identical per seed).")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("cohort"),
    fmt: Annotated[str, typer.Option("--format", help="vcf | bcf")] = "vcf",
    multi_sample: Annotated[bool, typer.Option("--multi-sample",
                                               help="One multi-sample VCF.")] = False,
    scenario: Annotated[str, typer.Option(
        help="World to draw from: default, guideline, unmeasured, nonph, informative-missing, "
             "realistic (pipelines/synth/resources/scenarios).")] = "default",
):
    """Write a realistic raw cohort plus its ground truth."""
    from pipelines.synth import generate_cohort

    if fmt not in ("vcf", "bcf"):
        raise OncorankError(f"--format must be vcf or bcf, got {fmt!r}.")
    summary = generate_cohort(out_dir, patients=patients, seed=seed, fmt=fmt,
                              multi_sample=multi_sample, scenario=scenario)
    out.print_json(data=summary)


@app.command()
def run(
    config: ConfigOpt = None,
    lakehouse: LakehouseOpt = None,
    env: EnvOpt = None,
    catalog: Annotated[str | None, typer.Option(help="Unity Catalog catalog.")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only these stages: --only score report (or --only score "
                       "--only report, or --only score,report).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Run from this stage on.")] = None,
    more: Annotated[list[str] | None, typer.Argument(
        metavar="STAGE", help="More stages for --only.", show_default=False)] = None,
):
    """Run the stage DAG against the configured inputs and lakehouse."""
    from pipelines.runner import run_stages

    if more and not only:
        raise typer.BadParameter(f"stage names {' '.join(more)!r} need --only before them "
                                 "(oncorank run --only score report).")
    stages = [s for item in [*(only or []), *(more or [])] for s in item.split(",") if s]
    settings = _settings(config, lakehouse, env, catalog=catalog)
    run_stages(settings, only=stages or None, start=start, console=err)


@app.command()
def train(
    cohort: Annotated[Path, typer.Option(help="Cohort file (.csv or .parquet).")],
    time_col: Annotated[str, typer.Option("--time-col")],
    event_col: Annotated[str, typer.Option("--event-col")],
    treatment_col: Annotated[str, typer.Option("--treatment-col")],
    feature_cols: Annotated[list[str] | None, typer.Option("--feature-cols")] = None,
    horizon: Annotated[float | None, typer.Option(help="RMST horizon (cohort's time unit).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out")] = None,
    seed: Annotated[int, typer.Option()] = 0,
):
    """Bring your own cohort: train and evaluate the treatment-response model; prints JSON."""
    _require(cohort, "Cohort file")
    from pipelines.models.byoc import train_cohort

    summary = train_cohort(cohort, time_col=time_col, event_col=event_col,
                           treatment_col=treatment_col, feature_cols=feature_cols,
                           horizon=horizon, out=out_dir, seed=seed)
    out.print_json(data=summary)


# ---------------------------------------------------------------------------- ingest
@ingest_app.command("vcf")
def ingest_vcf(
    paths: Annotated[list[Path], typer.Argument(help="VCF/BCF files or folders.")],
    lakehouse: LakehouseOpt = None,
    config: ConfigOpt = None,
    sample_map: Annotated[Path | None, typer.Option("--sample-map",
                                                    help="CSV sample,patient_id.")] = None,
    tumor_type: Annotated[str | None, typer.Option(
        "--tumor-type", help="OncoTree code of the tumour (BRCA, LUAD, COADREAD...) for "
                             "samples without a clinical record: evidence is tiered and each "
                             "label judged against it.")] = None,
    prior_lines: Annotated[int | None, typer.Option(
        "--prior-lines", min=0, help="Lines of therapy the patient has had (with "
                                     "--tumor-type); unknown if not given.")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the actionable evidence per patient to this file.")] = None,
):
    """Ingest VCF/BCF files into bronze/silver variants and biomarkers, then list each
    patient's actionable alterations (tier I first) with the label context."""
    for p in paths:
        _require(p, "VCF path")
    if sample_map:
        _require(sample_map, "Sample map")
    if prior_lines is not None and not tumor_type:
        raise typer.BadParameter("--prior-lines needs --tumor-type.")
    settings = _settings(config, lakehouse)
    inputs = settings.inputs.__class__(**{
        **settings.inputs.__dict__, "vcf": tuple(str(p) for p in paths),
        "sample_map": str(sample_map or ""),
        "tumor_type": tumor_type or settings.inputs.tumor_type,
        "prior_lines": prior_lines if tumor_type else settings.inputs.prior_lines})
    settings = settings.replace(inputs=inputs)
    if inputs.tumor_type:  # a wrong code fails here, before Spark starts
        from pipelines.genomics.declared import check_tumor_type
        from pipelines.knowledge.kb import knowledge_dir, load_oncotree

        check_tumor_type(inputs.tumor_type, load_oncotree(knowledge_dir(settings)))
    spark = _spark(settings)
    import jobs.ingest_variants
    from pipelines.reports.evidence_listing import actionable_summary

    run_ = jobs.ingest_variants.run(spark, settings)
    out.print(f"ingested {run_.rows_written} records, quarantined {run_.rows_quarantined} "
              f"into {settings.table('bronze', 'variants_raw')}")
    summary = actionable_summary(spark, settings, inputs.vcf)
    _print_actionable(summary)
    if json_file:
        import json

        json_file.write_text(json.dumps(summary, indent=1, default=str))
        out.print(f"wrote {json_file}")


def _print_actionable(summary: list[dict]) -> None:
    from rich.table import Table

    for s in summary:
        tier_one = [e for e in s["evidence"] if e["tier"] in ("IA", "IB")]
        more = len(s["evidence"]) - len(tier_one)
        ctype = s["cancer_type"] or "unknown (pass --tumor-type)"
        title = (f"patient {s['patient_key']}, tumour type {ctype}: "
                 f"{len(tier_one)} tier I row(s), {more} tier II (--json lists all)")
        if not tier_one:
            out.print(title)
            continue
        table = Table(title=title, title_justify="left")
        for col in ("gene", "alteration", "therapy", "direction", "tier", "label", "citation"):
            table.add_column(col, overflow="fold")
        for e in tier_one:
            table.add_row(str(e["gene"]), str(e["alteration"]), str(e["therapy"]),
                          str(e["direction"]), e["tier_text"], e["label_context"] or e["label"],
                          str(e["citation"] or "")[:90])
        out.print(table)


# ---------------------------------------------------------------------------- notes
@notes_app.command("deidentify")
def notes_deidentify(
    input_file: Annotated[Path, typer.Option("--input", help="notes JSONL")],
    output_file: Annotated[Path, typer.Option("--output", help="de-identified JSONL")],
    config: ConfigOpt = None,
    keep_source_ids: Annotated[bool, typer.Option(
        "--keep-source-ids",
        help="Write the source patient_id instead of the pseudonym patient_key "
             "(identifiable: for linking back inside the hospital only).")] = False,
    rejects_file: Annotated[Path | None, typer.Option(
        "--rejects", help="CSV of the skipped notes: record, note_id, rule, reason "
                          "(never the note's text)")] = None,
    surrogate: Annotated[bool | None, typer.Option(
        "--surrogate/--mask",
        help="Replace PHI by realistic, consistent surrogates (names, shifted dates, "
             "fictional numbers) instead of typed masks; default: [notes] deid_mode.")] = None,
):
    """De-identify a notes export with the pipeline's own Spark NLP de-identification.

    The output names each patient by ``patient_key`` (the pseudonym of every oncorank table),
    never the source id, unless --keep-source-ids is given. PHI becomes typed masks
    ("[NAME]", "[DATE:2023-03-24]") or, with --surrogate, realistic surrogates that are the
    same in every note of a patient. Notes that cannot be de-identified
    safely are skipped: stderr names each by record number and reason and ends with the
    counts read, de-identified and skipped."""
    from pipelines.notes.commands import deidentify_file

    _require(input_file, "Notes file")
    settings = _settings(config)
    if keep_source_ids:
        err.print("[yellow]note:[/yellow] the output keeps source patient ids "
                  "(identifiable)", highlight=False)
    tally = deidentify_file(_spark(settings), settings, input_file, output_file,
                            keep_source_ids, rejects_file, surrogate)
    err.print(f"notes deidentify: {tally.summary()} -> {output_file}"
              + (f"; skipped notes -> {rejects_file}" if rejects_file else ""),
              markup=False, highlight=False)


@notes_app.command("context")
def notes_context(
    input_file: Annotated[Path, typer.Option("--input", help="TSV sentence<TAB>target")],
    output_file: Annotated[Path | None, typer.Option("--output")] = None,
    config: ConfigOpt = None,
):
    """Print each target's status: affirmed/negated/possible/historical/hypothetical/family."""
    from pipelines.notes.commands import context_file

    _require(input_file, "Input file")
    settings = _settings(config)
    tally = context_file(_spark(settings), settings, input_file, output_file)
    err.print(f"notes context: {tally.summary()}", markup=False, highlight=False)


# ---------------------------------------------------------------------------- comorbidity
@app.command()
def comorbidity(
    input_file: Annotated[Path, typer.Option("--input", help="CSV with patient_id,code")],
    output_file: Annotated[Path | None, typer.Option("--output")] = None,
    rejects_file: Annotated[Path | None, typer.Option(
        "--rejects", help="CSV of the skipped rows, with a reason column")] = None,
    config: ConfigOpt = None,
):
    """Charlson and Elixhauser components and scores from patient_id,code rows.

    Rows with an empty patient_id or code, or a code that is not ICD-10, are skipped; stderr
    says how many rows were read, used and skipped (and why)."""
    from pipelines.clinical.commands import comorbidity_file

    _require(input_file, "Input file")
    settings = _settings(config)
    tally = comorbidity_file(_spark(settings), settings, input_file, output_file, rejects_file)
    err.print(f"comorbidity: {tally.summary()}"
              + (f"; skipped rows -> {rejects_file}" if rejects_file else ""),
              markup=False, highlight=False)


# ---------------------------------------------------------------------------- quarantine
@quarantine_app.command("list")
def quarantine_list(config: ConfigOpt = None, lakehouse: LakehouseOpt = None):
    """Quarantine tables with their row counts and reasons."""
    from pipelines.quality.quarantine import list_quarantines

    settings = _settings(config, lakehouse)
    list_quarantines(_spark(settings), settings, out)


@quarantine_app.command("show")
def quarantine_show(
    table: Annotated[str, typer.Argument(help="e.g. bronze.variants_raw or silver.patients")],
    limit: Annotated[int, typer.Option()] = 20,
    config: ConfigOpt = None,
    lakehouse: LakehouseOpt = None,
):
    """Rows rejected on the way into TABLE, with the reason."""
    from pipelines.quality.quarantine import show_quarantine

    settings = _settings(config, lakehouse)
    show_quarantine(_spark(settings), settings, table, limit, out)


@quarantine_app.command("replay")
def quarantine_replay(
    table: Annotated[str, typer.Argument()],
    config: ConfigOpt = None,
    lakehouse: LakehouseOpt = None,
):
    """Re-run quarantined rows of TABLE; those the rules now accept are written."""
    from pipelines.quality.quarantine import replay_quarantine

    settings = _settings(config, lakehouse)
    replay_quarantine(_spark(settings), settings, table, out)


# ---------------------------------------------------------------------------- vacuum
@app.command()
def vacuum(
    retain_hours: Annotated[float | None, typer.Option(
        "--retain-hours",
        help="Keep the files of versions younger than this (default [privacy] "
             "vacuum_retain_hours, 168 = Delta's 7 days). 0 purges every earlier version: "
             "run it when no other job or query is reading.")] = None,
    schema: Annotated[list[str] | None, typer.Option(
        "--schema", help="Only these schemas (repeatable); default every schema.")] = None,
    config: ConfigOpt = None,
    lakehouse: LakehouseOpt = None,
):
    """Purge old versions of the lakehouse's tables (Delta VACUUM).

    After a de-identification fix or a column dropped for privacy, earlier versions still hold
    the old data until they are vacuumed; time travel then reaches only the retained versions.
    """
    from pipelines.analytics.sql import discover_tables
    from pipelines.lakehouse import delta
    from pipelines.lakehouse.settings import SCHEMAS

    settings = _settings(config, lakehouse)
    hours = retain_hours if retain_hours is not None else float(
        settings.section("privacy").get("vacuum_retain_hours", delta.DEFAULT_RETAIN_HOURS))
    if hours < 0:
        raise ConfigError(f"--retain-hours must be 0 or more, got {hours:g}.")
    unknown = sorted(set(schema or []) - set(SCHEMAS))
    if unknown:
        raise ConfigError(f"Unknown schema(s) {', '.join(unknown)}; known: "
                          f"{', '.join(SCHEMAS)}.")
    refs = discover_tables(settings, tuple(schema or SCHEMAS))
    # Local tables are vacuumed by deltalake in-process: Spark starts only for catalog tables.
    spark = _spark(settings) if any(not ref.path for ref in refs) else None
    for ref in refs:
        delta.vacuum(spark, ref, hours)
    err.print(f"vacuumed {len(refs)} tables, keeping versions of the last {hours:g} hours")


# ---------------------------------------------------------------------------- sql
@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT over schema.table names.")],
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    config: ConfigOpt = None,
    lakehouse: LakehouseOpt = None,
    allow_restricted: Annotated[
        bool,
        typer.Option(
            "--allow-restricted",
            help="Also expose bronze and restricted tables (raw notes, identity map); "
            "for the data steward only.",
        ),
    ] = False,
):
    """Read-only analyst query over the lakehouse."""
    from pipelines.analytics.sql import run_query

    settings = _settings(config, lakehouse)
    if allow_restricted:
        err.print("[yellow]note:[/yellow] restricted tables exposed to this query "
                  "(identifiable data)", highlight=False)
    run_query(_spark(settings), settings, query, fmt.value, out,
              allow_restricted=allow_restricted)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one clear sentence on error, exit code != 0."""
    import click

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        typer.main.get_command(app).main(args=argv, prog_name="oncorank", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except click.exceptions.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except OncorankError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"[red]error:[/red] {type(exc).__name__}: {first[:300]} "
                  "(rerun with --debug for the stack trace)", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

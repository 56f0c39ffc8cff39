"""``oncorank demo``: generate a cohort, run every stage locally, say where everything is."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipelines.lakehouse.settings import Settings

CONFIG_TEMPLATE = """\
# Written by `oncorank demo`; rerun the pipeline with: oncorank run --config {config}
env = "local"
lakehouse = "lakehouse"
reports_dir = "{reports}"
board_date = "{board_date}"
horizon_months = {horizon}

[inputs]
vcf = ["raw/vcf"]
fhir = ""
clinical_csv = "raw/csv"
notes = "raw/notes/notes.jsonl"
sample_map = ""
"""


def write_demo_config(out: Path, board_date: str, horizon: float) -> Path:
    config = out / "oncorank.toml"
    config.write_text(CONFIG_TEMPLATE.format(config=config, reports=(out / "reports").absolute(),
                                             board_date=board_date, horizon=horizon))
    return config


def run_demo(patients: int = 40, seed: int = 7, out: Path = Path("oncorank-demo"),
             console: Console | None = None, debug: bool = False) -> Settings:
    import datetime as dt
    import json

    from pipelines.runner import run_stages
    from pipelines.synth import generate_cohort

    console = console or Console(stderr=True)
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    with console.status(f"generating a synthetic cohort of {patients} patients (seed {seed})…"):
        summary = generate_cohort(out / "raw", patients=patients, seed=seed)
    horizon = json.loads((out / "raw" / "truth" / "params.json").read_text()).get(
        "horizon_months", 24)
    config = write_demo_config(out, dt.date.today().isoformat(), horizon)
    settings = Settings.load(config, {"debug": debug or None})
    console.print(f"cohort: {summary.get('patients', patients)} patients under {out / 'raw'}")
    run_stages(settings, console=console)
    reports = sorted(settings.reports_path.rglob("*.html"))
    console.print()
    console.print("[bold]Where everything is[/bold]")
    console.print(f"  config        {config}")
    console.print(f"  lakehouse     {settings.lakehouse} (bronze, silver, gold, ops: Delta folders)")
    console.print(f"  MLflow store  {settings.tracking_uri}")
    console.print(f"  reports       {settings.reports_path} ({len(reports)} HTML files)")
    index = [p for p in reports if p.name == "index.html"]
    if index:
        console.print(f"  board index   {index[0]}")
    if settings.data_docs_path.exists():
        console.print(f"  data docs     {settings.data_docs_path}")
    console.print(f"  query         oncorank sql --lakehouse {settings.lakehouse} "
                  "\"SELECT * FROM gold.treatment_rankings WHERE rank = 1\"")
    return settings

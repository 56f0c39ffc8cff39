"""``oncorank run``: execute the stage DAG in dependency order with progress and a summary."""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from pipelines.lakehouse.errors import OncorankError
from pipelines.lakehouse.progress import SparkProgress, Throttled
from pipelines.lakehouse.settings import Settings
from pipelines.stages import Stage, select_stages


@dataclass
class StageResult:
    stage: str
    status: str
    seconds: float
    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    message: str = ""


class StageFailed(OncorankError):
    exit_code = 1


def run_stages(
    settings: Settings,
    only: list[str] | None = None,
    start: str | None = None,
    console: Console | None = None,
    spark=None,
) -> list[StageResult]:
    """Run the selected stages; raises :class:`StageFailed` after printing the summary."""
    from pipelines.lakehouse.session import spark_session

    console = console or Console(stderr=True)
    stages = select_stages(only, start)
    parent = uuid.uuid4().hex
    with console.status("starting Spark…"):
        spark = spark or spark_session(settings)
    results: list[StageResult] = []
    for i, stage in enumerate(stages, 1):
        label = f"[{i}/{len(stages)}] {stage.name}"
        t0 = time.perf_counter()
        with console.status(f"{label}: {stage.description}") as status:
            try:
                with SparkProgress(spark, _progress_line(console, status, label,
                                                         stage.description)):
                    run = _run_stage(stage, spark, settings, parent)
            except Exception as exc:
                message = str(exc) if isinstance(exc, OncorankError) else (
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                results.append(StageResult(stage.name, "failed", time.perf_counter() - t0,
                                           message=message))
                console.print(f"[red]✗[/red] {label} failed: {message}")
                print_summary(results, console)
                if settings.debug:
                    raise
                raise StageFailed(f"Stage {stage.name} failed: {message}") from exc
        r = StageResult(stage.name, run.status, time.perf_counter() - t0, run.rows_in,
                        run.rows_written, run.rows_quarantined)
        results.append(r)
        console.print(f"[green]✓[/green] {label}: {r.rows_in} in, {r.rows_written} written, "
                      f"{r.rows_quarantined} quarantined ({r.seconds:.1f}s)")
    print_summary(results, console)
    return results


def _progress_line(console: Console, status, label: str, description: str):
    """Where a stage's Spark progress goes: the spinner's text on a terminal, a line every
    minute elsewhere (a scheduled job's log)."""
    if console.is_terminal:
        return lambda line: status.update(f"{label}: {description} — {line}")
    return Throttled(lambda line: console.print(f"  {label}: {line}"), every=60.0)


def _run_stage(stage: Stage, spark, settings: Settings, parent: str):
    module = importlib.import_module(stage.module)
    return module.run(spark, settings, parent_run_id=parent)


def print_summary(results: list[StageResult], console: Console) -> None:
    table = Table(title="oncorank run")
    for col in ("stage", "rows in", "written", "quarantined", "seconds", "status"):
        table.add_column(col, justify="right" if col not in ("stage", "status") else "left")
    for r in results:
        colour = "green" if r.status == "succeeded" else "red"
        table.add_row(r.stage, str(r.rows_in), str(r.rows_written), str(r.rows_quarantined),
                      f"{r.seconds:.1f}", f"[{colour}]{r.status}[/{colour}]")
    console.print(table)

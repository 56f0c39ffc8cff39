"""The stage DAG: the single source of truth for ``oncorank run`` and the Databricks bundle.

Each stage is a module in ``jobs/`` exposing ``run(spark, settings, parent_run_id=None)``
(returns the :class:`~pipelines.lakehouse.audit.JobRun`) and ``main(argv)`` for a Databricks
python task. ``tests/test_bundle.py`` checks that ``databricks.yml`` chains the same DAG.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    depends_on: tuple[str, ...]
    description: str


STAGES: tuple[Stage, ...] = (
    Stage("ingest-notes", "jobs.ingest_notes", (), "notes JSONL/CSV -> bronze.notes_raw"),
    Stage("deidentify-notes", "jobs.deidentify_notes", ("ingest-notes",),
          "bronze.notes_raw -> silver.notes_deid (Spark NLP de-identification)"),
    Stage("extract-note-findings", "jobs.extract_note_findings", ("deidentify-notes",),
          "silver.notes_deid -> silver.note_findings (Spark NLP, with context)"),
    # After the notes: a stage the structured record lacks is read from silver.note_findings.
    Stage("ingest-clinical", "jobs.ingest_clinical", ("extract-note-findings",),
          "FHIR R4 / CSV -> bronze clinical tables, silver patients, treatment lines, outcomes"),
    # After clinical: actionability is judged against each patient's cancer type
    # (silver.patients), so a first run must not match against an absent table.
    Stage("ingest-variants", "jobs.ingest_variants", ("ingest-clinical",),
          "VCF/BCF -> bronze.variants_raw, silver.variants, silver.biomarkers, "
          "silver.actionable_alterations"),
    Stage("comorbidities", "jobs.comorbidities", ("ingest-clinical", "extract-note-findings"),
          "ICD-10 codes -> silver.comorbidities (Charlson, Elixhauser, contraindications)"),
    Stage("build-features", "jobs.build_features",
          ("ingest-variants", "comorbidities", "extract-note-findings"),
          "silver -> gold.patient_features"),
    Stage("train", "jobs.train", ("build-features",),
          "gold.patient_features -> MLflow models (champion alias)"),
    Stage("score", "jobs.score", ("train",),
          "champion model -> gold.treatment_rankings, gold.drift"),
    Stage("report", "jobs.report", ("score",), "gold.treatment_rankings -> tumor-board reports"),
)

STAGE_NAMES = tuple(s.name for s in STAGES)


def downstream_of(name: str) -> set[str]:
    """``name`` and every stage that (transitively) depends on it."""
    out = {name}
    changed = True
    while changed:
        changed = False
        for s in STAGES:
            if s.name not in out and out.intersection(s.depends_on):
                out.add(s.name)
                changed = True
    return out


def select_stages(only: list[str] | None = None, start: str | None = None) -> list[Stage]:
    """Stages to run, in dependency order (STAGES is topologically sorted)."""
    from pipelines.lakehouse.errors import ConfigError

    for name in [*(only or []), *([start] if start else [])]:
        if name not in STAGE_NAMES:
            raise ConfigError(f"Unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}.")
    chosen = set(STAGE_NAMES)
    if only:
        chosen &= set(only)
    if start:
        chosen &= downstream_of(start)
    return [s for s in STAGES if s.name in chosen]

"""ingest-notes: notes JSONL/CSV -> bronze.notes_raw (Databricks python task entry point)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "ingest-notes"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.notes.stage import ingest_notes

    return ingest_notes(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

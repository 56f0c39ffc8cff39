"""extract-note-findings: silver.notes_deid -> silver.note_findings (Spark NLP, ConText) (Databricks python task entry point)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "extract-note-findings"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.notes.stage import extract_note_findings

    return extract_note_findings(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

"""deidentify-notes: bronze.notes_raw -> silver.notes_deid (Spark NLP de-identification) (Databricks python task entry point)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "deidentify-notes"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.notes.stage import deidentify_notes

    return deidentify_notes(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

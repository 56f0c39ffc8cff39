"""ingest-clinical: FHIR R4 / CSV -> bronze, silver patients, diagnoses, lines, outcomes."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "ingest-clinical"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.clinical.stage import ingest_clinical

    return ingest_clinical(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

"""comorbidities: silver diagnoses (+ note findings) -> silver.comorbidities."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "comorbidities"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.clinical.stage import compute_comorbidities

    return compute_comorbidities(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

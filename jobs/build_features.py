"""build-features: silver → gold.patient_features (Databricks python task entry point)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "build-features"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.features.stage import build_features

    return build_features(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

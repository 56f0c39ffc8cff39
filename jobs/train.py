"""train: gold.patient_features → MLflow models, champion alias (Databricks python task)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "train"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.models.stage import train_models

    return train_models(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

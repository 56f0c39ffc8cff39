"""score: champion model -> gold.treatment_rankings, gold.drift (Databricks python task entry point).

    python -m jobs.score [--board-date 2026-12-03] [--patients review.txt] [common flags]
"""
from pipelines.lakehouse.jobmain import job_main

STAGE = "score"


def run(spark, settings, parent_run_id=None, patients=None, **kwargs):
    from pipelines.ranking.stage import score

    return score(spark, settings, parent_run_id=parent_run_id, patients_file=patients)


def add_arguments(parser):
    parser.add_argument("--patients", metavar="FILE",
                        help="review list: one source patient id or patient_key per line "
                             "(default: every patient in gold.patient_features)")


def main(argv=None):
    job_main(STAGE, run, argv, add_arguments)


if __name__ == "__main__":
    main()

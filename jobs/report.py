"""report: gold.treatment_rankings -> tumor-board reports (Databricks python task entry point).

    python -m jobs.report [--board-date 2026-12-03] [--care-team] [--roster FILE] [common flags]
"""
from pipelines.lakehouse.jobmain import job_main

STAGE = "report"


def run(spark, settings, parent_run_id=None, care_team=False, roster=None, **kwargs):
    from pipelines.reports.stage import render_reports

    return render_reports(spark, settings, parent_run_id=parent_run_id,
                          care_team=bool(care_team), roster_file=roster)


def add_arguments(parser):
    parser.add_argument("--care-team", dest="care_team", action="store_true",
                        help="write the identified variant (name, MRN from "
                             "restricted.patient_identity) to <board_date>/care-team/")
    parser.add_argument("--roster", metavar="FILE",
                        help="board roster (CSV of patient ids, FHIR List or Appointments): "
                             "reports for these patients only (default: [reports] roster, "
                             "else every patient scored for the board date)")


def main(argv=None):
    job_main(STAGE, run, argv, add_arguments)


if __name__ == "__main__":
    main()

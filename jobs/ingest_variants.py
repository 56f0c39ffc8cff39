"""ingest-variants: VCF/BCF -> bronze.variants_raw, silver.variants, silver.biomarkers,
silver.actionable_alterations (Databricks python task entry point)."""

from pipelines.lakehouse.jobmain import job_main

STAGE = "ingest-variants"


def run(spark, settings, parent_run_id=None, **kwargs):
    from pipelines.genomics.stage import ingest_variants

    return ingest_variants(spark, settings, parent_run_id=parent_run_id)


def main(argv=None):
    job_main(STAGE, run, argv)


if __name__ == "__main__":
    main()

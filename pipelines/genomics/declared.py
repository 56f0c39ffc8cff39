"""A tumour type declared at ingestion, for samples that have no clinical record yet.

``oncorank ingest vcf TUMOUR.vcf.gz --tumor-type BRCA`` (or ``[inputs] tumor_type`` in the
config) is how a single tumour is read the way PCGR is used: the VCF's samples get the OncoTree
code, knowledge-base matches are judged against it (tier, on label or not), and the label of
each therapy is read against what the VCF shows (``--prior-lines`` gives the line of therapy
when it is known).

The declaration is kept in ``silver.declared_tumor_types`` (one row per patient_key, the last
declaration wins), so a later run of the stage without the option still knows it. A cancer
type in ``silver.patients`` (the clinical record) takes precedence over a declaration.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.lakehouse.audit import JobRun
from pipelines.lakehouse.errors import ConfigError

log = logging.getLogger("oncorank.genomics")



def check_tumor_type(code: str, oncotree) -> str:
    """The OncoTree code, upper case; a code OncoTree does not know is a config error that
    names a few it does."""
    code = code.strip().upper()
    if oncotree.version != "none" and code not in oncotree:
        raise ConfigError(f"--tumor-type {code!r} is not an OncoTree code (OncoTree "
                          f"{oncotree.version}); use e.g. BRCA, NSCLC, LUAD, COADREAD, MEL.")
    return code


def write_declared(run: JobRun, patient_keys: list[str], tumor_type: str,
                   prior_lines: int | None) -> None:
    """Record ``tumor_type`` (and the line) for ``patient_keys``: a merge on patient_key."""
    if not patient_keys:
        return
    rows = [(k, tumor_type, prior_lines) for k in sorted(set(patient_keys))]
    df = (run.spark.createDataFrame(rows, "patient_key string, cancer_type string, "
                                          "n_prior_lines int")
          .withColumn("declared_at", F.current_timestamp()))
    run.write(df, run.table("silver", "declared_tumor_types"), mode="merge",
              keys=["patient_key"], primary=False)
    log.info("declared tumour type %s for %d patient(s)", tumor_type, len(rows))


def with_declared(run: JobRun, patients: DataFrame | None) -> DataFrame | None:
    """``patient_key, cancer_type``: silver.patients' cancer type, else the declared one."""
    declared = run.read_optional(run.table("silver", "declared_tumor_types"))
    if declared is None:
        return patients
    declared = declared.select("patient_key", F.col("cancer_type").alias("_declared"))
    if patients is None:
        return declared.withColumnRenamed("_declared", "cancer_type")
    return (patients.join(declared, "patient_key", "full")
            .select("patient_key", F.coalesce("cancer_type", "_declared").alias("cancer_type")))


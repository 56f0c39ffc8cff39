"""What ``oncorank ingest vcf`` lists after ingesting: each patient's actionable evidence,
tiered, with the label context, read from the tables ingest-variants just wrote (a board-facing
listing, hence here beside the report's evidence table it shares)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def actionable_summary(spark, settings, vcf: tuple[str, ...]) -> list[dict]:
    """What ``oncorank ingest vcf`` prints: per patient of the files ``vcf``, the cancer type
    and the tiered actionable evidence with its label context, read from the tables the stage
    just wrote. The label is read against the patient's VCF flags (silver.biomarkers) and the
    declared line; what only a clinical record holds (ER status) is "unknown"."""
    from pipelines.genomics.sources import discover
    from pipelines.genomics.stage import file_pseudonym
    from pipelines.lakehouse import delta
    from pipelines.reports.sections import tiered_evidence

    def table(name: str) -> DataFrame | None:
        ref = settings.table("silver", name)
        return delta.read_optional(spark, ref)

    files = [file_pseudonym(p, settings.pseudonym_key) for p in discover(vcf)]
    samples = table("sequenced_samples")
    if samples is None or not files:
        return []
    keys = sorted({r["patient_key"] for r in samples.filter(F.col("source_file").isin(files))
                   .select("patient_key").collect()})

    def rows_of(name: str) -> dict[str, list[dict]]:
        df = table(name)
        out: dict[str, list[dict]] = {}
        if df is not None:
            for r in df.filter(F.col("patient_key").isin(keys)).collect():
                out.setdefault(r["patient_key"], []).append(r.asDict(recursive=False))
        return out

    actionable, flags, declared = (rows_of("actionable_alterations"), rows_of("biomarkers"),
                                   rows_of("declared_tumor_types"))
    summary = []
    for key in keys:
        features = dict((flags.get(key) or [{}])[0])
        decl = (declared.get(key) or [{}])[0]
        features["n_prior_lines"] = decl.get("n_prior_lines")
        rows = actionable.get(key, [])
        ctype = next((r["patient_cancer_type"] for r in rows if r.get("patient_cancer_type")),
                     decl.get("cancer_type"))
        summary.append({"patient_key": key, "cancer_type": ctype,
                        "evidence": tiered_evidence(rows, {}, features)})
    return summary

"""The ``ingest-variants`` stage: VCF/BCF files -> bronze, silver, biomarkers, actionability.

Tables (all idempotent: re-ingesting a file leaves every table's content unchanged):

* ``bronze.variants_raw`` — records as received; each ingested file's rows are replaced
  (``replaceWhere source_file IN batch``), so a re-ingest rewrites the same rows and a file
  that shrank loses its stale rows. Primary output: rows in = rows written + quarantined.
* ``bronze.quarantine_variants_raw`` — rejected rows with file, record index, rule, reason.
* ``bronze.vcf_headers`` — each file's INFO/FORMAT/FILTER declarations and header issues.
* ``silver.variants`` — carried alleles, replaced per source file.
* ``silver.sequenced_samples`` — every (file, sample) ingested, with its patient_key, so a
  patient with no variant still gets a TMB of 0.
* ``silver.biomarkers`` and ``silver.actionable_alterations`` — recomputed for every patient
  from the silver tables (a full snapshot, merged with deletes).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.genomics import bronze, rows, silver, staging
from pipelines.genomics.annotation import annotation_layout, layout_ddl
from pipelines.genomics.config import GenomicsConfig, load_sample_map
from pipelines.genomics.reader import raw_frame, unreadable_frame
from pipelines.genomics.sources import (
    VcfSource,
    discover,
    plan_pieces,
    plan_tasks,
    read_source,
)
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import JobRun, job_run
from pipelines.lakehouse.comments import column_comments, table_comment
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Settings

log = logging.getLogger("oncorank.genomics")

STAGE = "ingest-variants"


def in_predicate(column: str, values: list[str]) -> str:
    """``column IN ('a', 'b')`` with SQL string escaping (paths may hold quotes).

    >>> in_predicate("f", ["a'b"])
    "`f` IN ('a\\\\'b')"
    """
    quoted = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
    return f"`{column}` IN ({quoted})"


def file_pseudonym(path: str, key: bytes) -> str:
    """Python twin of :func:`pipelines.genomics.silver.file_pseudonym`."""
    return "vcf-" + pseudonymise(f"file:{path}", key)


def ingest_variants(spark: SparkSession, settings: Settings,
                    parent_run_id: str | None = None) -> JobRun:
    """Run the stage on ``settings.inputs.vcf`` and return the audited run."""
    cfg = GenomicsConfig.from_settings(settings)
    with job_run(spark, settings, STAGE, parent_run_id) as run:
        paths = discover(settings.inputs.vcf)
        sample_map = load_sample_map(settings.inputs.sample_map)
        if not paths:
            log.info("%s: no VCF/BCF inputs configured; nothing to ingest", STAGE)
            return run
        sources = [read_source(p) for p in paths]
        readable = [s for s in sources if not s.problem]
        counts = ingest_bronze(run, sources, cfg)
        keys = write_sequenced_samples(run, counts, readable, sample_map)
        if settings.inputs.tumor_type:
            declare_tumor_type(run, keys)
        write_headers(run, readable)
        if readable:
            ingest_silver(run, readable, sample_map)
        from pipelines.genomics.derived import write_derived

        write_derived(run, cfg)
    return run


def ingest_bronze(run: JobRun, sources: list[VcfSource], cfg: GenomicsConfig,
                  gate: bool = True) -> list[dict]:
    """Read every file into bronze.variants_raw; quarantine what breaks a rule.

    Returns the row counts per (file, sample, passed) for silver.sequenced_samples.
    ``gate=False`` skips the data-quality suite (benchmarks only: it measures its share).

    A path-based table is written by the read tasks themselves (:mod:`staging`) and published
    in one Delta commit; a catalog table (or ``genomics.direct_write = false``) through
    Spark's Delta writer.
    """
    ref = run.settings.table("bronze", "variants_raw")
    readable = [s for s in sources if not s.problem]
    slots = task_slots(run.spark)
    tasks = plan_tasks(plan_pieces(readable, cfg.split_min_records, cfg.piece_records, slots),
                       cfg.task_records, slots)
    if readable:
        ensure_table(run.spark, ref, run.spark.createDataFrame([], bronze.BRONZE_DDL).schema,
                     column_comments(ref), table_comment(ref),
                     {"delta.dataSkippingNumIndexedCols": str(len(bronze.STATS_COLUMNS))})
    if ref.path is None or not cfg.direct_write:
        return _ingest_bronze_spark(run, ref, sources, tasks, cfg, gate)
    return _ingest_bronze_direct(run, ref, sources, tasks, cfg, gate)


def task_slots(spark: SparkSession) -> int:
    """How many tasks Spark runs at once: N for ``local[N]`` (``local[*]``: the machine's
    cores), else the default parallelism (the executors' cores on a cluster).

    >>> from types import SimpleNamespace
    >>> task_slots(SimpleNamespace(sparkContext=SimpleNamespace(master="local[1]")))
    1
    """
    try:
        sc = spark.sparkContext
    except Exception:  # Spark Connect has no SparkContext
        return os.cpu_count() or 1
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", sc.master or "")
    if local:
        n = local.group(1)
        if n is None:  # plain "local": one thread
            return 1
        return (os.cpu_count() or 1) if n == "*" else int(n)
    return int(sc.defaultParallelism)


def _ingest_bronze_direct(run: JobRun, ref, sources: list[VcfSource], tasks, cfg,
                          gate: bool) -> list[dict]:
    spark = run.spark
    readable = [s for s in sources if not s.problem]
    scratch = run.settings.lakehouse.absolute() / "_staging" / run.run_id
    staged = staging.stage(spark, sources, tasks, Path(ref.path), scratch / "rejected",
                           cfg.batch_rows)
    published = False
    try:
        counts = staged.counts + [
            {"source_file": s.path, "sample": None, "sample_index": None, "ok": False,
             "count": 1} for s in sources if s.problem]
        run.count_in(sum(c["count"] for c in counts))
        if staged.rejected or any(s.problem for s in sources):  # else nothing to read
            bad = unreadable_frame(spark, sources)
            if staged.rejected:
                bad = spark.read.schema(rows.ROW_DDL).parquet(
                    *[f.path for f in staged.rejected]).unionByName(bad)
            run.quarantine(bronze.select_quarantine(bad), ref)
        if readable:
            _publish(run, ref, staged, readable, gate)
            published = True
    finally:
        if not published:
            staging.discard(staged.data)
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def _publish(run: JobRun, ref, staged: staging.Staged, readable: list[VcfSource],
             gate: bool) -> None:
    """Gate the staged rows, then commit the staged files as they are; when the gate
    quarantined rows (or an old file of the table mixes source files), write the rows that
    passed through Spark's Delta writer instead."""
    spark = run.spark
    replace_where = in_predicate("source_file", [s.path for s in readable])
    if staged.data:
        rows_df = spark.read.schema(bronze.BRONZE_DDL).parquet(*[f.path for f in staged.data])
    else:
        rows_df = spark.createDataFrame([], bronze.BRONZE_DDL)
    if gate:
        from pipelines.quality.gate import apply_gate

        proof = staging.key_proof(staged.data, readable)
        evidence = ((proof,) if proof else ()) + staging.column_facts(staged.data)
        good, bad = apply_gate(run, rows_df, ref, evidence,
                               n_rows=sum(f.rows for f in staged.data))
    else:
        good, bad = rows_df, None
    quarantined = run.quarantine(bad, ref) if bad is not None else 0
    if bad is None:
        adds = [staging.add_action(Path(ref.path), f) for f in staged.data]
        version = delta.commit_files(spark, ref, adds, column="source_file",
                                     tag=staging.SOURCE_TAG,
                                     replaced=[s.path for s in readable],
                                     predicate=replace_where)
        if version is not None:
            run.wrote(ref, sum(f.rows for f in staged.data), version, quarantined)
            return
    run.write(good, ref, mode="replace", gate=False, replace_where=replace_where)
    staging.discard(staged.data)


def _ingest_bronze_spark(run: JobRun, ref, sources: list[VcfSource], tasks, cfg,
                         gate: bool) -> list[dict]:
    """Spark's Delta writer: the typed rows are cached once for the counts, the
    quarantine and the write (memory grows with the input)."""
    readable = [s for s in sources if not s.problem]
    typed = raw_frame(run.spark, sources, tasks, cfg.batch_rows).persist()
    try:
        counts = [r.asDict() for r in typed.groupBy(
            "source_file", "sample", "sample_index",
            F.col("_rule").isNull().alias("ok")).count().collect()]
        run.count_in(sum(r["count"] for r in counts))
        run.quarantine(bronze.select_quarantine(typed), ref)
        if readable:
            run.write(bronze.select_bronze(typed), ref, mode="replace", gate=gate, cache=False,
                      replace_where=in_predicate("source_file", [s.path for s in readable]))
    finally:
        typed.unpersist()
    return counts


def ensure_table(spark: SparkSession, ref, schema, comments: dict[str, str],
                 table_comment: str, properties: dict[str, str]) -> None:
    """Create ``ref`` empty with table properties, if it does not exist yet.

    Bronze only needs file statistics on its key columns (source_file, record_index, sample,
    sample_index: what replaceWhere and silver filter on); collecting min/max for all 22
    columns, maps included, is a large part of Delta's write cost.
    """
    from delta.tables import DeltaTable

    if delta.table_exists(spark, ref):
        return
    builder = DeltaTable.createIfNotExists(spark)
    builder = builder.location(ref.path) if ref.path else builder.tableName(ref.identifier)
    for f in schema.fields:
        builder = builder.addColumn(f.name, f.dataType, nullable=True,
                                    comment=comments.get(f.name))
    for key, value in properties.items():
        builder = builder.property(key, value)
    builder.comment(table_comment).execute()


def declare_tumor_type(run: JobRun, patient_keys: list[str]) -> None:
    """``[inputs] tumor_type`` (``--tumor-type``) for the samples just ingested."""
    from pipelines.genomics.declared import check_tumor_type, write_declared
    from pipelines.knowledge.kb import knowledge_dir, load_oncotree

    inputs = run.settings.inputs
    code = check_tumor_type(inputs.tumor_type, load_oncotree(knowledge_dir(run.settings)))
    write_declared(run, patient_keys, code, inputs.prior_lines)


def write_sequenced_samples(run: JobRun, counts: list, readable: list[VcfSource],
                            sample_map: dict[str, str]) -> list[str]:
    """silver.sequenced_samples: one row per (file, sample) with its record counts; returns
    the patient keys of those samples."""
    settings = run.settings
    key = settings.pseudonym_key
    agg: dict[tuple[str, str], list[int]] = {}
    for r in counts:
        if r["sample"] is None or r["source_file"] is None:
            continue
        slot = agg.setdefault((r["source_file"], r["sample"]), [0, 0])
        slot[0 if r["ok"] else 1] += r["count"]
    rows = [
        (file_pseudonym(path, key), pseudonymise(f"sample:{sample}", key),
         pseudonymise(sample_map.get(sample, sample), key), ok, bad)
        for (path, sample), (ok, bad) in sorted(agg.items())
    ]
    df = run.spark.createDataFrame(
        rows, "source_file string, sample string, patient_key string, n_records bigint, "
              "n_quarantined bigint")
    ref = settings.table("silver", "sequenced_samples")
    files = [file_pseudonym(s.path, key) for s in readable]
    if files:
        run.write(df, ref, mode="replace", replace_where=in_predicate("source_file", files),
                  primary=False)
    return [r[2] for r in rows]


def write_headers(run: JobRun, sources: list[VcfSource]) -> None:
    """bronze.vcf_headers: what each file declares, and what is wrong with it."""
    if not sources:
        return
    rows = []
    for s in sources:
        issues = {(sec, i): text for sec, i, text in s.header_issues}
        for section, defs in (("INFO", s.info), ("FORMAT", s.formats)):
            for key, d in defs.items():
                rows.append((s.path, section, key, d.number, d.type, d.description,
                             issues.pop((section, key), None)))
        for f in s.filters:
            rows.append((s.path, "FILTER", f, None, None, None, None))
        for (section, key), text in issues.items():
            rows.append((s.path, section, key, None, None, None, text))
    df = run.spark.createDataFrame(
        rows, "source_file string, section string, id string, number string, type string, "
              "description string, issue string")
    run.write(df, run.settings.table("bronze", "vcf_headers"), mode="replace",
              replace_where=in_predicate("source_file", [s.path for s in sources]),
              primary=False)


def ingest_silver(run: JobRun, sources: list[VcfSource], sample_map: dict[str, str]) -> None:
    """silver.variants for the files of this run (replaced per file)."""
    spark, settings = run.spark, run.settings
    key = settings.pseudonym_key
    paths = [s.path for s in sources]
    bronze_df = run.read(settings.table("bronze", "variants_raw")).filter(
        F.col("source_file").isin(paths))
    layout = spark.createDataFrame([annotation_layout(s) for s in sources], layout_ddl())
    sm = (spark.createDataFrame(sorted(sample_map.items()), "sample string, patient_id string")
          if sample_map else None)
    variants = silver.build_variants(bronze_df, layout, sm, key)
    run.write(variants, settings.table("silver", "variants"), mode="replace",
              replace_where=in_predicate("source_file", [file_pseudonym(p, key)
                                                         for p in paths]),
              primary=False)

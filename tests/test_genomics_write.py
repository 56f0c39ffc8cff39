"""How bronze.variants_raw is written: the read tasks' Parquet files published in one Delta
commit, Spark's Delta writer, and the fallbacks from the first to the second.

The two writers must produce the same tables; the Delta log says which one wrote a file
(the direct path tags every file with its source file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pysam
import pytest
from pyspark.sql import functions as F

from pipelines.genomics.config import GenomicsConfig
from pipelines.genomics.sources import plan_pieces, plan_tasks, read_source
from pipelines.genomics.stage import ingest_bronze
from pipelines.genomics.staging import SOURCE_TAG, StagedFile, key_proof, stage_piece
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import job_run
from pipelines.lakehouse.settings import Inputs, Settings

TCGA = "somatic_TCGA-A6-2686_COAD_tumor_normal.grch38.vcf.gz"
SMALL_VCF = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPT900002
chr1\t100\t.\tA\tG\t50\tPASS\tDP=10\tGT:AD\t0/1:5,5
chr1\t200\t.\tA\tG\tabc\tPASS\tDP=10\tGT:AD\t0/1:5,5
chr1\t300\t.\tC\tT\t50\tPASS\tDP=10\tGT:AD\t1/1:0,9
"""
# POS 0 passes the reader (a whole number) but not the bronze gate ("pos > 0", quarantine).
POS0_VCF = SMALL_VCF.replace("chr1\t300\t", "chr1\t0\t")


def ingest(spark, lake: Path, files: list[str], direct: bool):
    settings = Settings(lakehouse=lake, shuffle_partitions=2, spark_master="local[2]",
                        inputs=Inputs(vcf=tuple(files)))
    with job_run(spark, settings, "ingest-variants") as run:
        ingest_bronze(run, [read_source(f) for f in files],
                      GenomicsConfig(direct_write=direct, split_min_records=1))
    return settings, run


def snapshot(spark, settings) -> dict:
    out = {}
    for name in ("variants_raw", "quarantine_variants_raw"):
        df = delta.read_table(spark, settings.table("bronze", name))
        df = df.drop(*[c for c in ("run_id", "quarantined_at") if c in df.columns])
        out[name] = sorted(map(repr, df.collect()))
    return out


def log_actions(table: Path) -> list[dict]:
    return [json.loads(line) for commit in sorted((table / "_delta_log").glob("*.json"))
            for line in commit.read_text().splitlines()]


def live_files(table: Path) -> dict[str, dict]:
    """The table's current data files from its Delta log: path -> add action."""
    live: dict[str, dict] = {}
    for action in log_actions(table):
        if "add" in action:
            live[action["add"]["path"]] = action["add"]
        elif "remove" in action:
            live.pop(action["remove"]["path"], None)
    return live


def assert_no_orphans(table: Path, lake: Path) -> None:
    """Every data file with rows in the folder was committed once (replaced files stay on
    disk for time travel until VACUUM; Spark's writer may leave an empty file it did not
    commit); no staging folder is left."""
    committed = {a["add"]["path"] for a in log_actions(table) if "add" in a}
    stray = [p.name for p in table.glob("*.parquet")
             if p.name not in committed and pq.ParquetFile(p).metadata.num_rows]
    assert not stray, "data files no Delta commit ever referenced"
    assert not any((lake / "_staging").glob("*")), "staging folder left behind"


@pytest.fixture(scope="module")
def inputs(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("genomics-write")
    small = root / "PT900002_small.vcf"
    small.write_text(SMALL_VCF)
    pos0 = root / "PT900003_pos0.vcf"
    pos0.write_text(POS0_VCF)
    return root, [str(shared_data / "vcf" / TCGA), str(small)], str(pos0)


def test_direct_commit_equals_spark_writer_and_leaves_nothing_behind(spark, inputs):
    root, files, _ = inputs
    direct, run_d = ingest(spark, root / "direct", files, direct=True)
    sparkw, run_s = ingest(spark, root / "spark", files, direct=False)
    assert snapshot(spark, direct) == snapshot(spark, sparkw)
    assert (run_d.rows_in, run_d.rows_written, run_d.rows_quarantined) == (
        run_s.rows_in, run_s.rows_written, run_s.rows_quarantined)
    assert run_d.rows_in == run_d.rows_written + run_d.rows_quarantined
    with pysam.VariantFile(files[0]) as vf:
        tcga_rows = sum(1 for _ in vf) * len(vf.header.samples)
    assert run_d.rows_quarantined == 1 and run_d.rows_written == tcga_rows + 2

    # The small file shares a read task with a TCGA piece, yet every data file holds the rows
    # of exactly the one source its tag names (a re-ingest replaces files by that tag).
    slots = 2
    pieces = plan_pieces([read_source(f) for f in files], 1, 1_000_000, slots)
    assert len(plan_tasks(pieces, 1_000_000, slots)) == slots < len(pieces)
    table = Path(direct.table("bronze", "variants_raw").path)
    files_now = live_files(table)
    assert files_now and all(a["tags"][SOURCE_TAG] in files for a in files_now.values())
    for path, add in files_now.items():
        held = set(pq.read_table(table / path, columns=["source_file"]).column(0).to_pylist())
        assert held == {add["tags"][SOURCE_TAG]}
    stats = json.loads(next(iter(files_now.values()))["stats"])
    assert set(stats["minValues"]) == {"source_file", "record_index", "sample",
                                       "sample_index"}
    last = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").orderBy(F.desc("version")).first()
    assert last["operation"] == "WRITE" and "source_file" in last["operationParameters"][
        "predicate"]
    assert_no_orphans(table, root / "direct")
    # data skipping works on the direct files' statistics: one file's rows, one file read
    one = delta.read_table(spark, direct.table("bronze", "variants_raw")).filter(
        F.col("source_file") == files[1])
    assert one.count() == 2 and len(one.inputFiles()) == 1

    # Key uniqueness: proven by the direct writer (no shuffle), run by GX on Spark's path;
    # both recorded as passed on every row.
    def uniqueness(settings, run):
        (row,) = delta.read_table(spark, settings.table("ops", "data_quality")).filter(
            (F.col("run_id") == run.run_id) & (F.col("table") == "bronze.variants_raw")
            & (F.col("expectation") == "one row per file, record and sample")).collect()
        return row
    proven, checked = uniqueness(direct, run_d), uniqueness(sparkw, run_s)
    assert (proven.status, proven.success, proven.rows_validated) == (
        "passed", True, run_d.rows_written)
    assert proven.details.startswith(
        f"verified while writing, on every row of the {len(files_now)} staged file(s)")
    assert (checked.status, checked.details) == ("passed", None)

    # The rest of the suite: settled from the direct writer's column facts, run by GX on
    # Spark's path — the same verdict for every expectation.
    def verdicts(settings, run):
        rows = delta.read_table(spark, settings.table("ops", "data_quality")).filter(
            (F.col("run_id") == run.run_id) & (F.col("table") == "bronze.variants_raw")
        ).collect()
        return {r.expectation: (r.status, r.success, r.unexpected_count or 0, r.details)
                for r in rows}
    settled, by_gx = verdicts(direct, run_d), verdicts(sparkw, run_s)
    assert {k: v[:3] for k, v in settled.items()} == {k: v[:3] for k, v in by_gx.items()}
    counted = {k for k, v in settled.items() if (v[3] or "").startswith("counted while")}
    assert counted == {"pos > 0", "dp >= 0", "qual >= 0", "REF is a base string", *(
        f"expect_column_values_to_not_be_null({c})"
        for c in ("source_file", "record_index", "chrom", "pos", "ref"))}


def test_reingest_replaces_exactly_the_files_of_its_sources(spark, inputs):
    root, files, _ = inputs
    settings, _ = ingest(spark, root / "reingest", files, direct=True)
    table = Path(settings.table("bronze", "variants_raw").path)
    before, files_before = snapshot(spark, settings), live_files(table)
    ingest(spark, root / "reingest", files[1:], direct=True)
    after = live_files(table)
    assert snapshot(spark, settings) == before
    kept = {p for p, a in files_before.items() if a["tags"][SOURCE_TAG] == files[0]}
    assert kept and kept <= set(after)  # the other source's files were not touched
    assert not (set(files_before) - kept) & set(after)  # this source's files were replaced
    assert_no_orphans(table, root / "reingest")


@pytest.mark.slow  # whole ingest-variants runs on the fallback path (about 20 s)
def test_untagged_files_and_gate_quarantines_fall_back_to_spark_writer(spark, inputs):
    root, files, pos0 = inputs
    # A table written by Spark's writer has untagged files whose statistics cannot rule out
    # the re-ingested source (long paths are truncated): the direct path must not guess.
    settings, _ = ingest(spark, root / "mixed", files, direct=False)
    before = snapshot(spark, settings)
    ingest(spark, root / "mixed", files, direct=True)
    assert snapshot(spark, settings) == before
    table = Path(settings.table("bronze", "variants_raw").path)
    assert not any(a.get("tags") for a in live_files(table).values())
    assert_no_orphans(table, root / "mixed")

    # The gate quarantines POS 0: the rows that passed are written by Spark's writer.
    settings, run = ingest(spark, root / "gated", [pos0], direct=True)
    assert (run.rows_in, run.rows_written, run.rows_quarantined) == (3, 1, 2)
    q = delta.read_table(spark, settings.table("bronze", "quarantine_variants_raw"))
    rules = {r["rule"]: json.loads(r["record"])["record_index"] for r in q.collect()}
    assert rules == {"invalid_qual": 1, "gx:pos > 0": 2}
    table = Path(settings.table("bronze", "variants_raw").path)
    assert [r["record_index"] for r in delta.read_table(
        spark, settings.table("bronze", "variants_raw")).collect()] == [0]
    assert_no_orphans(table, root / "gated")


def test_replaced_files_read_from_the_log_equal_deltas_own_listing(spark, inputs):
    """The files a re-ingest removes, listed by ``deltalake`` from the log, are the ones
    Delta's own state reconstruction finds by their tags, on the same snapshot."""
    root, files, _ = inputs
    settings, _ = ingest(spark, root / "listing", files, direct=True)
    ref = settings.table("bronze", "variants_raw")
    for wanted in ({files[0]}, {files[1]}, set(files), {"/elsewhere.vcf"}):
        txn = delta._delta_log(spark, ref).startTransaction()
        ours = delta._replaced_files(spark, txn, ref, "source_file", SOURCE_TAG, wanted)
        txn = delta._delta_log(spark, ref).startTransaction()
        theirs = delta._replaced_files_jvm(txn, "source_file", SOURCE_TAG, wanted)
        paths = sorted(json.loads(a.json())["remove"]["path"] for a in ours)
        assert paths == sorted(json.loads(a.json())["remove"]["path"] for a in theirs)
        assert bool(paths) == (wanted != {"/elsewhere.vcf"})


def test_a_log_deltalake_cannot_read_falls_back_to_deltas_listing(spark, inputs, monkeypatch):
    import deltalake

    root, files, _ = inputs
    settings, _ = ingest(spark, root / "unreadable-log", files, direct=True)
    ref = settings.table("bronze", "variants_raw")

    def unreadable(*_a, **_k):
        raise deltalake.exceptions.DeltaProtocolError("unsupported reader features")

    monkeypatch.setattr(deltalake, "DeltaTable", unreadable)
    txn = delta._delta_log(spark, ref).startTransaction()
    removes = delta._replaced_files(spark, txn, ref, "source_file", SOURCE_TAG, {files[0]})
    live = live_files(Path(ref.path))
    assert sorted(json.loads(a.json())["remove"]["path"] for a in removes) == sorted(
        p for p, a in live.items() if a["tags"][SOURCE_TAG] == files[0])


def test_a_concurrent_commit_makes_the_replacing_commit_fail(spark, inputs):
    """The replacing commit records the whole table as read: a commit that lands between
    its snapshot and its own commit makes it fail, nothing half-replaced."""
    from delta.exceptions import ConcurrentAppendException

    root, files, _ = inputs
    settings, _ = ingest(spark, root / "race", files, direct=True)
    ref = settings.table("bronze", "variants_raw")
    before = snapshot(spark, settings)
    txn = delta._delta_log(spark, ref).startTransaction()
    removes = delta._replaced_files(spark, txn, ref, "source_file", SOURCE_TAG, {files[1]})
    assert removes
    ingest(spark, root / "race", files[1:], direct=True)  # the concurrent writer
    version = delta.current_version(spark, ref)
    with pytest.raises(ConcurrentAppendException):
        delta._commit(spark, txn, removes, "Overwrite", "true")
    assert delta.current_version(spark, ref) == version
    assert snapshot(spark, settings) == before


# ---------------------------------------------------------------------------- key proof
def _staged(source, first, last, increasing=True):
    return StagedFile(f"/t/{source}-{first}.parquet", 1, 1, None, source, first, last,
                      increasing)


def test_key_proof_needs_ordered_files_disjoint_ranges_and_distinct_samples():
    from pipelines.genomics.sources import VcfSource

    a, b = VcfSource("/a.vcf", samples=("T", "N")), VcfSource("/b.vcf", samples=("T",))
    good = [_staged("/a.vcf", 11, 40), _staged("/a.vcf", 1, 10), _staged("/b.vcf", 1, 10)]
    proof = key_proof(good, [a, b])
    assert proof is not None and proof.columns == ("source_file", "record_index", "sample")
    assert key_proof([], [a]) is not None  # nothing staged, nothing to collide
    for bad in ([_staged("/a.vcf", 1, 10), _staged("/a.vcf", 10, 20)],   # ranges overlap
                [_staged("/a.vcf", 1, 10, increasing=False)],            # out of order
                [_staged("/c.vcf", 1, 10)]):                              # unknown source
        assert key_proof(bad, [a, b]) is None
    twins = VcfSource("/a.vcf", samples=("T", "T"))  # one name for two sample columns
    assert key_proof([_staged("/a.vcf", 1, 10)], [twins]) is None


def test_written_files_report_their_key_order(tmp_path, shared_data):
    from pipelines.genomics.sources import Piece

    src = read_source(str(shared_data / "vcf" / TCGA))
    out = list(stage_piece(src, Piece(src.path, 0, None, 0, None, 0), str(tmp_path / "d"),
                           str(tmp_path / "r"), target_rows=500, max_rows=1000))
    data = [r for r in out if r[0] == "data"]
    assert len(data) > 2  # several files, several batches per file
    ns = len(src.samples)
    keys = []
    for _, path, _, n, _, _, first, last, increasing, *_ in data:
        t = pq.read_table(path)
        k = [ri * (ns + 1) + si + 1 for ri, si in zip(t["record_index"].to_pylist(),
                                                       t["sample_index"].to_pylist(),
                                                       strict=True)]
        assert (first, last, increasing, n) == (k[0], k[-1], True, len(k))
        keys.extend(k)
    assert keys == sorted(set(keys))


def test_key_order_notices_a_repeat_across_batches():
    import numpy as np

    from pipelines.genomics.staging import _KeyOrder

    order = _KeyOrder()
    order.add(np.array([1, 2, 5]))
    order.add(np.array([6, 9]))
    assert (order.first, order.last, order.increasing) == (1, 9, True)
    order.add(np.array([9, 10]))  # 9 again, at a batch boundary
    assert not order.increasing
    within = _KeyOrder()
    within.add(np.array([3, 4, 4]))
    assert not within.increasing


def test_row_groups_hold_many_batches_and_the_same_rows(tmp_path, shared_data, monkeypatch):
    """Batches are held until GROUP_ROWS rows and written as one row group: the file holds
    exactly the rows written a group per batch, in the same order, with the same counts."""
    from pipelines.genomics import staging

    src = read_source(str(shared_data / "vcf" / TCGA))
    piece = plan_pieces([src], 10**12)[0]
    tables = {}
    for group_rows in (1, 500):
        monkeypatch.setattr(staging, "GROUP_ROWS", group_rows)
        out = tmp_path / str(group_rows)
        described = list(stage_piece(src, piece, str(out / "d"), str(out / "r"),
                                     target_rows=120))
        (data,) = [r for r in described if r[0] == "data"]
        meta = pq.ParquetFile(data[1]).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sum(sizes) == data[3] > 1000
        if group_rows == 1:
            assert max(sizes) <= 120 and len(sizes) > 10  # one group per batch
        else:
            assert all(s >= 500 for s in sizes[:-1]) and len(sizes) < data[3] / 400
        tables[group_rows] = pq.read_table(data[1])
    assert tables[1].equals(tables[500])


# ---------------------------------------------------------------------------- gate facts
def test_gate_facts_equal_sparks_own_count_of_the_written_rows(spark, tmp_path, shared_data):
    """The column facts the writers count (nulls, min/max, REF pattern misses) equal what
    Spark computes over the same Parquet files, REF matched by Java's regex as GX does, on
    real files: somatic tumor/normal, multi-sample VEP+SnpEff, 100-sample 1000G, and a file
    with bad rows (those go to the rejected files, never into the facts)."""
    from pipelines.genomics import rows
    from pipelines.genomics.bronze import BRONZE_COLUMNS, BRONZE_DDL
    from pipelines.genomics.staging import FACT_RANGE_COLUMNS, column_facts

    names = [TCGA, "germline_multisample_vep_snpeff.grch37.vcf.gz",
             "germline_1000G_NYGC_chr22_100samples.grch38.vcf.gz",
             "malformed_gnomad_r2_info_number_G.grch37.vcf"]
    staged = []
    for i, name in enumerate(names):
        src = read_source(str(shared_data / "vcf" / name))
        for piece in plan_pieces([src], 10**12):
            staged += [StagedFile(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[13])
                       for r in stage_piece(src, piece, str(tmp_path / f"d{i}"),
                                            str(tmp_path / f"r{i}"), target_rows=700,
                                            max_rows=2000)
                       if r[0] == "data"]
    assert len(staged) > len(names)  # several files per source: facts merge across files
    facts = {f.column: f for f in column_facts(staged)}
    df = spark.read.schema(BRONZE_DDL).parquet(*[f.path for f in staged])
    aggs = [F.count(F.lit(1)).alias("_rows")]
    aggs += [F.sum(F.col(c).isNull().cast("long")).alias(f"n_{c}") for c in BRONZE_COLUMNS]
    aggs += [F.min(c).alias(f"lo_{c}") for c in FACT_RANGE_COLUMNS]
    aggs += [F.max(c).alias(f"hi_{c}") for c in FACT_RANGE_COLUMNS]
    aggs.append(F.sum((~F.col("ref").rlike(rows.REF_RE)).cast("long")).alias("ref_miss"))
    want = df.agg(*aggs).first()
    assert set(facts) == set(BRONZE_COLUMNS)
    for c in BRONZE_COLUMNS:
        assert (facts[c].nulls, facts[c].rows) == (want[f"n_{c}"], want["_rows"]), c
    for c in FACT_RANGE_COLUMNS:
        assert (facts[c].min, facts[c].max) == (want[f"lo_{c}"], want[f"hi_{c}"]), c
    assert want["ref_miss"] == 0 and facts["ref"].matches == (rows.REF_RE,)
    assert facts["dp"].nulls > 0 and facts["dp"].min is not None  # partly null: ranged
    assert all(facts[c].matches == () for c in BRONZE_COLUMNS if c != "ref")
    # a file written without facts (or none at all) gives the gate nothing to settle from
    assert column_facts(staged[:1] + [StagedFile("/x", 1, 1, None, None)]) == ()
    assert column_facts([]) == ()


def test_gate_facts_drop_what_they_cannot_vouch_for():
    """A NaN QUAL gives no qual range (Spark orders NaN above every number, Arrow's min/max
    skips it); a REF off the pattern drops the pattern; nulls are counted."""
    import pyarrow as pa

    from pipelines.genomics.bronze import BRONZE_SCHEMA
    from pipelines.genomics.staging import _Facts, column_facts

    def batch(qual, ref, dp):
        n = len(qual)
        cols = {f.name: pa.nulls(n, f.type) for f in BRONZE_SCHEMA}
        cols.update(record_index=pa.array(range(n), pa.int64()), pos=pa.array([5] * n),
                    qual=pa.array(qual, pa.float64()), ref=pa.array(ref),
                    dp=pa.array(dp, pa.int32()))
        return pa.RecordBatch.from_arrays([cols[f.name].cast(f.type) for f in BRONZE_SCHEMA],
                                          schema=BRONZE_SCHEMA)

    def facts_of(*batches):
        acc = _Facts()
        for b in batches:
            acc.add(b)
        rows = sum(b.num_rows for b in batches)
        return {f.column: f for f in column_facts([StagedFile("/p", 1, rows, None, "/s",
                                                              facts=acc.json())])}

    clean = facts_of(batch([1.0, 7.5], ["A", "CT"], [3, None]), batch([2.0], ["g"], [9]))
    assert (clean["qual"].min, clean["qual"].max, clean["dp"].nulls) == (1.0, 7.5, 1)
    assert (clean["dp"].min, clean["dp"].max, clean["ref"].matches) == (3, 9, ("^[ACGTNacgtn]+$",))
    odd = facts_of(batch([1.0, float("nan")], ["A", "AX"], [None, None]))
    assert (odd["qual"].min, odd["qual"].max, odd["ref"].matches) == (None, None, ())
    assert (odd["dp"].nulls, odd["dp"].rows, odd["dp"].min) == (2, 2, None)  # all null

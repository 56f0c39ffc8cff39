"""The ingest-variants stage end to end on the real VCFs of shared/data plus bad inputs.

One ingestion (module fixture) is checked against bcftools and pysam; a second ingestion of
the same files must leave every table unchanged.
"""

from __future__ import annotations

import math
import subprocess
from collections import Counter
from pathlib import Path

import pysam
import pytest
from pyspark.sql import functions as F

from pipelines.genomics import silver
from pipelines.genomics.sources import read_source
from pipelines.genomics.stage import file_pseudonym, ingest_variants
from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import InputNotFoundError
from pipelines.lakehouse.settings import Inputs, Settings

BCFTOOLS = "/usr/bin/bcftools"
REAL = ("somatic_TCGA-A6-2686_COAD_tumor_normal.grch38.vcf.gz",
        "germline_multisample_vep_snpeff.grch37.vcf.gz",
        "germline_1000G_NYGC_chr22_100samples.grch38.vcf.gz",
        "malformed_gnomad_r2_info_number_G.grch37.vcf",
        "control_gnomad_r2_info_number_G_fixed.grch37.vcf")
TABLES = (("bronze", "variants_raw"), ("bronze", "quarantine_variants_raw"),
          ("bronze", "vcf_headers"), ("silver", "variants"), ("silver", "sequenced_samples"),
          ("silver", "biomarkers"), ("silver", "actionable_alterations"))

BAD_VCF = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPT900001
chr1\t100\t.\tA\tG\t50\tPASS\tDP=10\tGT:AD\t0/1:5,5
chr1\t200\t.\tA\tG\tabc\tPASS\tDP=10\tGT:AD\t0/1:5,5
chr1\t300\t.\tA\tG\t50\tPASS\tDP=10\tGT:AD\t0/x:5,5
chr1\t400\t.\tA\tG\t50\tPASS\tDP=10;NEW=1\tGT:AD\t0/1:5,5
chrZ\t500\t.\tA\tG\t50\tPASS\tDP=10\tGT:AD\t0/1:5,5
chr1\t600\t.\tA\tG\t50\tPASS\tDP=10
chr1\t700\t.\tC\tT\t50\tPASS\tDP=10\tGT:AD\t1/1:0,9
"""
BAD_RULES = {1: "invalid_qual", 2: "malformed_gt", 3: "undeclared_info", 4: "unknown_contig",
             5: "malformed_line"}


def bcftools_records(path) -> int:
    if not Path(BCFTOOLS).exists():
        pytest.skip("needs bcftools (apt-get install bcftools tabix)")
    out = subprocess.run([BCFTOOLS, "view", "-H", str(path)], capture_output=True, check=True)
    return out.stdout.count(b"\n")


def snapshot(spark, settings) -> dict:
    out = {}
    for schema, name in TABLES:
        ref = settings.table(schema, name)
        if delta.table_exists(spark, ref):
            df = delta.read_table(spark, ref)
            drop = [c for c in ("run_id", "quarantined_at") if c in df.columns]
            out[ref.key] = sorted(map(repr, df.drop(*drop).collect()))
    return out


@pytest.fixture(scope="module")
def ingested(spark, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("genomics-stage")
    bad = root / "inputs" / "PT900001_bad.vcf"
    bad.parent.mkdir()
    bad.write_text(BAD_VCF)
    germline = (shared_data / "vcf" / REAL[1]).read_bytes()
    (root / "inputs" / "cut_germline.vcf.gz").write_bytes(germline[: len(germline) * 2 // 3])
    (root / "inputs" / "garbage.vcf").write_text("not a VCF at all\n")
    files = tuple(str(shared_data / "vcf" / n) for n in REAL) + (str(root / "inputs"),)
    settings = Settings(lakehouse=root / "lakehouse", shuffle_partitions=2,
                        spark_master="local[2]", inputs=Inputs(vcf=files))
    run = ingest_variants(spark, settings)
    return settings, run, root / "inputs"


def table(spark, settings, schema, name):
    return delta.read_table(spark, settings.table(schema, name))


# ---------------------------------------------------------------------------- counts
def test_counts_equal_bcftools_and_reconcile(spark, ingested, shared_data):
    settings, run, _ = ingested
    bronze = table(spark, settings, "bronze", "variants_raw")
    per_file = dict(bronze.groupBy("source_file").count().collect())
    for name in REAL:
        path = shared_data / "vcf" / name
        n = bcftools_records(path)
        assert per_file[str(path.resolve())] == n * max(1, len(read_source(str(path)).samples))
    job = table(spark, settings, "ops", "job_runs").filter(
        F.col("run_id") == run.run_id).first()
    assert job["status"] == "succeeded"
    assert job["rows_in"] == job["rows_written"] + job["rows_quarantined"]
    quarantined = table(spark, settings, "bronze", "quarantine_variants_raw").count()
    assert job["rows_written"] == bronze.count() and job["rows_quarantined"] == quarantined


# ---------------------------------------------------------------------------- fields
def _typed(value, number: str, typ: str):
    """Our verbatim INFO/FORMAT text, typed the way pysam types it."""
    if typ == "Flag":
        return True
    conv = {"Integer": int, "Float": float}.get(typ)
    # pysam gives numbers' "." as None but keeps "." inside String values.
    items = tuple(v if conv is None else None if v == "." else conv(v)
                  for v in value.split(","))
    return items[0] if number == "1" else items


def _same(ours, theirs) -> bool:
    if isinstance(theirs, tuple):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in
                                                zip(ours, theirs, strict=True))
    if isinstance(theirs, float):
        return math.isclose(ours, theirs, rel_tol=1e-6)  # pysam stores Float as float32
    return ours == theirs


@pytest.mark.parametrize("name", [REAL[0], REAL[1], REAL[4]])
def test_every_info_and_format_value_equals_pysam(spark, ingested, shared_data, name):
    settings, _, _ = ingested
    path = shared_data / "vcf" / name
    src = read_source(str(path))
    rows = table(spark, settings, "bronze", "variants_raw").filter(
        (F.col("source_file") == str(path.resolve())) & (F.coalesce("sample_index", F.lit(0))
                                                        < 3)).collect()
    by_key = {(r["record_index"], r["sample_index"]): r for r in rows}
    checked = records = 0
    for i, rec in enumerate(pysam.VariantFile(str(path))):
        records += 1
        r = by_key[(i, 0 if src.samples else None)]
        assert (r["chrom"], r["pos"], r["id"], r["ref"]) == (rec.chrom, rec.pos, rec.id, rec.ref)
        assert tuple(r["alts"]) == (rec.alts or ())
        assert (r["qual"] is None and rec.qual is None) or _same(r["qual"], rec.qual)
        assert (r["filters"] or []) == list(rec.filter.keys())
        assert set(r["info"]) == set(rec.info.keys())
        for key, value in r["info"].items():
            d = src.info[key]
            assert _same(_typed(value or "", d.number, d.type), rec.info[key]), (i, key)
            checked += 1
        for s in range(min(3, len(src.samples))):
            ours = by_key[(i, s)]["format"]
            theirs = rec.samples[s]
            for key, value in ours.items():
                if key == "GT":
                    gt = tuple(None if a == "." else int(a)
                               for a in value.replace("|", "/").split("/"))
                    assert gt == theirs["GT"]
                else:
                    d = src.formats[key]
                    assert _same(_typed(value, d.number, d.type), theirs[key]), (i, s, key)
                checked += 1
    assert records == bcftools_records(path) and checked > records


def test_number_g_info_is_kept_verbatim_and_documented(spark, ingested, shared_data):
    """gnomAD's INFO GC (Number=G) makes pysam raise; we keep the text, and the control
    file (same data with Number=.) shows the text is right."""
    settings, _, _ = ingested
    bad_path = str((shared_data / "vcf" / REAL[3]).resolve())
    fixed = next(iter(pysam.VariantFile(str(shared_data / "vcf" / REAL[4]))))
    first = table(spark, settings, "bronze", "variants_raw").filter(
        (F.col("source_file") == bad_path) & (F.col("record_index") == 0)).first()
    assert tuple(int(x) for x in first["info"]["GC"].split(",")) == fixed.info["GC"]
    with pytest.raises(ValueError, match="Number=G"):
        next(iter(pysam.VariantFile(str(shared_data / "vcf" / REAL[3])))).info["GC"]
    issues = table(spark, settings, "bronze", "vcf_headers").filter(
        (F.col("source_file") == bad_path) & F.col("issue").isNotNull()).collect()
    assert {r["id"] for r in issues} >= {"GC", "GC_raw"}
    assert all("Number=G" in r["issue"] for r in issues)


def test_split_alleles_equal_bcftools_norm(spark, ingested, shared_data):
    settings, _, _ = ingested
    for name in (REAL[2], REAL[3]):
        path = shared_data / "vcf" / name
        out = subprocess.run([BCFTOOLS, "norm", "-m-", "-Ov", str(path)], capture_output=True,
                             check=True, text=True).stdout
        expected = Counter(tuple(line.split("\t")[:5:1][i] for i in (0, 1, 3, 4))
                           for line in out.splitlines() if not line.startswith("#"))
        bronze = table(spark, settings, "bronze", "variants_raw").filter(
            (F.col("source_file") == str(path.resolve()))
            & (F.coalesce("sample_index", F.lit(0)) == 0))
        split = bronze.transform(silver.split_alleles).select(
            "chrom", F.col("pos").cast("string"), "ref", "alt").collect()
        assert Counter(tuple(r) for r in split) == expected


def test_silver_vaf_agrees_with_the_callers_tumour_vaf(spark, ingested, shared_data):
    """TCGA: our VAF comes from FORMAT ADT (no AD/AF); the file's INFO TVAF is the callers'
    own tumour VAF, an independent figure."""
    settings, _, _ = ingested
    path = str((shared_data / "vcf" / REAL[0]).resolve())
    bronze = table(spark, settings, "bronze", "variants_raw").filter(
        F.col("source_file") == path).select("record_index", F.col("info")["TVAF"].alias("t"))
    variants = table(spark, settings, "silver", "variants").filter(
        F.col("source_file") == file_pseudonym(path, settings.pseudonym_key))
    assert {r["vaf_source"] for r in variants.select("vaf_source").distinct().collect()} == {
        "ad"}
    rows = variants.select("record_index", "vaf").join(bronze, "record_index").collect()
    pairs = [(r["vaf"], float(r["t"])) for r in rows if r["t"] is not None]
    assert len(pairs) == bcftools_records(shared_data / "vcf" / REAL[0])
    close = sum(abs(a - b) <= 0.02 for a, b in pairs)
    assert close / len(pairs) > 0.95


def test_vep_and_snpeff_annotations_of_the_germline_file(spark, ingested, shared_data):
    settings, _, _ = ingested
    path = shared_data / "vcf" / REAL[1]
    rows = table(spark, settings, "silver", "variants").filter(
        F.col("source_file") == file_pseudonym(str(path.resolve()), settings.pseudonym_key)
    ).join(
        table(spark, settings, "bronze", "variants_raw").filter(
            F.col("source_file") == str(path.resolve())).select(
            "record_index", F.col("info")["CSQ"].alias("csq")).distinct(),
        "record_index").filter(F.col("annotation_source").isNotNull()).collect()
    assert rows and {r["annotation_source"] for r in rows} == {"vep"}
    src = read_source(str(path))
    gi, ti = src.csq_fields.index("SYMBOL"), src.csq_fields.index("Feature")
    for r in rows[:200]:
        first = r["csq"].split(",")[0].split("|")
        # this CSQ has no Allele or CANONICAL sub-field: the first entry is the pick
        assert (r["gene"] or "", r["transcript"] or "") == (first[gi], first[ti])
    assert any(r["hgvsc"] for r in rows), "HGVSc should come from SnpEff's same transcript"


# ---------------------------------------------------------------------------- bad input
def test_bad_records_and_files_are_quarantined_with_reasons(spark, ingested):
    settings, _, inputs = ingested
    q = table(spark, settings, "bronze", "quarantine_variants_raw")
    bad = {r["record_index"]: r for r in q.filter(
        F.col("source") == str((inputs / "PT900001_bad.vcf").resolve())).collect()}
    assert {i: r["rule"] for i, r in bad.items()} == BAD_RULES
    assert "NEW" in bad[3]["reason"] and "chrZ" in bad[4]["reason"]
    assert "\\tabc\\t" in bad[1]["record"]  # the line as received, tabs JSON-escaped
    kept = table(spark, settings, "bronze", "variants_raw").filter(
        F.col("source_file") == str((inputs / "PT900001_bad.vcf").resolve()))
    assert sorted(r["record_index"] for r in kept.collect()) == [0, 6]
    garbage = q.filter(F.col("source").endswith("garbage.vcf")).collect()
    assert [r["rule"] for r in garbage] == ["unreadable_file"]
    cut = q.filter(F.col("source").endswith("cut_germline.vcf.gz")).collect()
    assert [r["rule"] for r in cut] == ["truncated_file"]
    n_cut = table(spark, settings, "bronze", "variants_raw").filter(
        F.col("source_file").endswith("cut_germline.vcf.gz")).select(
        "record_index").distinct().count()
    assert n_cut == cut[0]["record_index"] > 0


def test_no_identifier_reaches_silver(spark, ingested, shared_data):
    settings, _, inputs = ingested
    raw_ids = ["PT900001", "TCGA-A6-2686", "101976-101976", "HG00096", str(inputs),
               str(shared_data)]
    for name in ("variants", "sequenced_samples", "biomarkers", "actionable_alterations"):
        df = table(spark, settings, "silver", name)
        text = df.select(F.to_json(F.struct(*df.columns)).alias("j"))
        for value in raw_ids:
            assert text.filter(F.col("j").contains(value)).count() == 0, (name, value)


def test_biomarkers_cover_every_sequenced_patient(spark, ingested):
    settings, _, _ = ingested
    bm = table(spark, settings, "silver", "biomarkers")
    samples = table(spark, settings, "silver", "sequenced_samples")
    assert bm.count() == samples.select("patient_key").distinct().count()
    tcga = bm.orderBy(F.desc("pass_variants")).first()
    # The TCGA file: 3,313 PASS calls but no VEP/SnpEff annotation, so the non-synonymous
    # TMB is unknown (null), not zero.
    assert tcga["pass_variants"] == 3313 and tcga["annotated_variants"] == 0
    assert tcga["tmb"] is None and tcga["tmb_high"] is None
    germline = bm.filter(F.col("annotated_variants") > 0).collect()
    assert germline and all(r["tmb"] is not None for r in germline)


@pytest.mark.slow  # a whole re-ingestion (about 60 s): with the slow acceptance runs
def test_reingesting_the_same_files_changes_nothing(spark, ingested, shared_data):
    """Re-ingest part of the inputs (the somatic file, the gnomAD pair and every bad file):
    no table changes, neither for those files nor for the others."""
    settings, _, inputs = ingested
    before = snapshot(spark, settings)
    again = (str(shared_data / "vcf" / REAL[0]), str(shared_data / "vcf" / REAL[3]),
             str(shared_data / "vcf" / REAL[4]), str(inputs))
    run = ingest_variants(spark, settings.replace(inputs=Inputs(vcf=again)))
    assert run.status == "succeeded" and run.rows_quarantined > 0
    assert snapshot(spark, settings) == before
    assert table(spark, settings, "ops", "job_runs").count() == 2


def test_missing_and_empty_inputs(spark, tmp_path):
    settings = Settings(lakehouse=tmp_path / "lh", inputs=Inputs(vcf=(str(tmp_path / "x"),)))
    with pytest.raises(InputNotFoundError, match="does not exist"):
        ingest_variants(spark, settings)
    run = ingest_variants(spark, settings.replace(inputs=Inputs()))
    assert (run.rows_in, run.rows_written, run.status) == (0, 0, "succeeded")


def test_cli_ingest_vcf_with_a_sample_map(spark, tmp_path, capsys, shared_data):
    from pipelines.cli import main
    from pipelines.lakehouse.privacy import pseudonymise

    tcga = shared_data / "vcf" / REAL[0]
    sample = read_source(str(tcga)).samples[0]
    good_map = tmp_path / "map.csv"
    good_map.write_text(f"sample,patient_id\n{sample},PT777777\n")
    lakehouse = tmp_path / "lh"
    main(["ingest", "vcf", str(tcga), "--lakehouse", str(lakehouse),
          "--sample-map", str(good_map)])
    out = capsys.readouterr().out
    n = bcftools_records(tcga)
    assert f"ingested {n} records, quarantined 0" in " ".join(out.split())
    settings = Settings(lakehouse=lakehouse)
    keys = {r["patient_key"] for r in table(spark, settings, "silver", "biomarkers").collect()}
    assert keys == {pseudonymise("PT777777", settings.pseudonym_key)}

    bad_map = tmp_path / "bad.csv"
    bad_map.write_text("sample_name,patient\nx,y\n")
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "vcf", str(tcga), "--lakehouse", str(lakehouse),
              "--sample-map", str(bad_map)])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "sample,patient_id" in err and "Traceback" not in err

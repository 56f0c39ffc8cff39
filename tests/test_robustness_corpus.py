"""A corrupted-input corpus through ``oncorank run``: bad rows quarantined with a reason,
good rows landed, counts reconciled, a second run changes nothing.

The corpus is a generated cohort (``oncorank synth``) damaged the way real feeds are: a VCF cut
mid-stream, a VCF with an impossible genotype, a FHIR Condition without a subject, a note
saved as Latin-1, a patient listed twice with different data, a death dated before birth.
The cut VCF is the real TCGA tumour/normal file from ``shared/data``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import zlib
from pathlib import Path

import pytest
from rich.console import Console

from pipelines.lakehouse import delta
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Inputs, Settings

STAGES = ["ingest-clinical", "ingest-variants", "ingest-notes", "deidentify-notes",
          "extract-note-findings", "comorbidities", "build-features"]
PATIENTS, SEED = 6, 11
TCGA_VCF = "vcf/somatic_TCGA-A6-2686_COAD_tumor_normal.grch38.vcf.gz"


def _data_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return [line for line in fh if not line.startswith("#")]


def _complete_block_records(data: bytes) -> int:
    """Data lines held by the BGZF blocks (gzip members) that survive whole in ``data``."""
    out, pos = b"", 0
    while pos < len(data):
        member = zlib.decompressobj(31)
        try:
            chunk = member.decompress(data[pos:])
        except zlib.error:
            break
        if not member.eof:  # the cut block
            break
        out += chunk
        pos = len(data) - len(member.unused_data)
    lines = out.split(b"\n")[:-1]  # the text after the last newline is an incomplete line
    return sum(1 for line in lines if line and not line.startswith(b"#"))


def _rewrite_vcf(path: Path, edit) -> None:
    """Decompress, edit the text, write back as bgzip with a fresh tabix index."""
    import pysam

    with gzip.open(path, "rt") as fh:
        text = fh.read()
    plain = path.with_suffix("")  # .vcf
    plain.write_text(edit(text))
    path.unlink()
    Path(str(path) + ".tbi").unlink(missing_ok=True)
    pysam.tabix_index(str(plain), preset="vcf", force=True)  # bgzips to path and indexes


def _bad_genotype(text: str) -> str:
    lines = text.split("\n")
    i = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    fields = lines[i].split("\t")
    keys = fields[8].split(":")
    values = fields[9].split(":")
    values[keys.index("GT")] = "0/3"  # allele 3 of a single-ALT record
    fields[9] = ":".join(values)
    lines[i] = "\t".join(fields)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    from pipelines.synth import generate_cohort

    root = tmp_path_factory.mktemp("corpus")
    raw = root / "raw"
    generate_cohort(raw, patients=PATIENTS, seed=SEED)
    vcf = raw / "vcf"
    damage = {}

    # 1. A real VCF cut mid-stream (a transfer that stopped), without its index.
    cut = vcf / "TCGA-A6-2686.vcf.gz"
    data = (shared_data / TCGA_VCF).read_bytes()
    damage["truncated_records"] = len(_data_lines(shared_data / TCGA_VCF))
    cut.write_bytes(data[: int(len(data) * 0.6)])
    damage["recoverable_records"] = _complete_block_records(cut.read_bytes())
    damage["truncated"] = str(cut)

    # 2. A genotype naming an allele the record does not have.
    bad_gt = vcf / "PT000003.vcf.gz"
    _rewrite_vcf(bad_gt, _bad_genotype)
    damage["bad_gt"] = str(bad_gt)

    # 3. A FHIR Condition without a subject.
    cond = raw / "fhir" / "Condition.ndjson"
    lines = cond.read_text().splitlines()
    first = json.loads(lines[0])
    first.pop("subject")
    damage["no_subject_id"] = first["id"]
    cond.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")

    # 4. A note saved as Latin-1 (é as byte 0xE9, invalid UTF-8).
    notes = raw / "notes" / "notes.jsonl"
    note_lines = notes.read_bytes().decode("utf-8").splitlines()
    note = json.loads(note_lines[1])
    note["text"] += " Café-au-lait macules noted."
    damage["latin1_note"] = note["note_id"]
    damage["notes"] = len(note_lines)
    out = [line.encode("utf-8") for line in note_lines]
    out[1] = json.dumps(note, ensure_ascii=False).encode("latin-1")
    notes.write_bytes(b"\n".join(out) + b"\n")

    # 5. A patient listed twice with different data; 6. a death before birth.
    patients_csv = raw / "csv" / "patients.csv"
    rows = patients_csv.read_text().splitlines()
    dup = rows[3].split(",")
    damage["duplicate_patient"] = dup[0]
    dup[2] = "99999999"  # another MRN: which record is right cannot be decided
    patients_csv.write_text("\n".join([*rows, ",".join(dup)]) + "\n")
    outcomes_csv = raw / "csv" / "outcomes.csv"
    orows = outcomes_csv.read_text().splitlines()
    victim = orows[4].split(",")
    victim[1] = "1901-01-01"
    damage["death_before_birth"] = victim[0]
    orows[4] = ",".join(victim)
    outcomes_csv.write_text("\n".join(orows) + "\n")

    settings = Settings(
        lakehouse=root / "lakehouse", spark_master="local[2]", shuffle_partitions=2,
        reports_dir=str(root / "reports"),
        inputs=Inputs(vcf=(str(vcf),), fhir=str(raw / "fhir"), clinical_csv=str(raw / "csv"),
                      notes=str(notes)))
    return settings, damage, raw


def _run(spark, settings):
    from pipelines.runner import run_stages

    return run_stages(settings, only=STAGES, spark=spark, console=Console(file=io.StringIO()))


def _digests(spark, settings: Settings) -> dict[str, str]:
    out = {}
    for log in sorted(settings.lakehouse.glob("*/*/_delta_log")):
        table = log.parent
        if table.parent.name == "ops":
            continue
        df = spark.read.format("delta").load(str(table))
        rows = sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=str)
                      for r in df.collect())
        out[f"{table.parent.name}.{table.name}"] = hashlib.sha256(
            "\n".join(rows).encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def first_run(spark, corpus):
    settings, damage, raw = corpus
    results = _run(spark, settings)
    return settings, damage, raw, results


def _quarantine(spark, settings, key: str) -> list:
    schema, name = key.split(".")
    ref = settings.quarantine_table(settings.table(schema, name))
    return delta.read_table(spark, ref).collect() if delta.table_exists(spark, ref) else []


def test_every_stage_succeeds_and_reconciles(spark, first_run):
    settings, _, _, results = first_run
    assert [r.status for r in results] == ["succeeded"] * len(STAGES)
    for r in delta.read_table(spark, settings.table("ops", "job_runs")).collect():
        assert r.status == "succeeded", (r.job, r.message)
        assert r.rows_in == r.rows_written + r.rows_quarantined, r.job


def test_every_bad_row_is_quarantined_with_a_readable_reason(spark, first_run):
    settings, damage, _, _ = first_run
    variants_q = _quarantine(spark, settings, "bronze.variants_raw")
    (truncated,) = [r for r in variants_q if r.source == damage["truncated"]]
    assert truncated.rule == "truncated_file" and "truncated" in truncated.reason
    (gt,) = [r for r in variants_q if r.source == damage["bad_gt"]]
    assert gt.rule == "malformed_gt" and "GT 0/3 refers to allele 3" in gt.reason

    notes_q = _quarantine(spark, settings, "bronze.notes_raw")
    (latin1,) = [r for r in notes_q if json.loads(r.record).get("note_id")
                 == damage["latin1_note"]]
    assert latin1.rule == "not_utf8" and "UTF-8" in latin1.reason

    clinical_q = [r for key in ("bronze.fhir_resources", "silver.diagnoses", "silver.patients",
                                "silver.outcomes", "restricted.patient_identity",
                                "bronze.clinical_csv_patients", "bronze.clinical_csv_outcomes")
                  for r in _quarantine(spark, settings, key)]
    assert any(damage["no_subject_id"] in (r.record or "") and "subject" in (r.reason or "")
               for r in clinical_q)
    (dup,) = [r for r in clinical_q if r.rule == "duplicate_patient"]
    assert damage["duplicate_patient"] in dup.record and "99999999" in dup.record
    (death,) = [r for r in clinical_q if r.rule.startswith("death_before")]
    assert pseudonymise(damage["death_before_birth"], settings.pseudonym_key) in death.record
    for r in clinical_q:  # every rejected record says why, in words
        assert r.reason and len(r.reason) > 10, (r.rule, r.reason)
    # No gate stopped anything, and the gates ran on the tables they guard.
    dq = delta.read_table(spark, settings.table("ops", "data_quality"))
    assert dq.filter("action = 'stopped'").count() == 0
    gated = {r.table for r in dq.select("table").distinct().collect()}
    assert {"bronze.variants_raw", "silver.variants", "bronze.notes_raw",
            "silver.notes_deid", "silver.note_findings", "gold.patient_features"} <= gated


def test_every_good_row_lands(spark, first_run, shared_data):
    settings, damage, raw, _ = first_run
    bronze = delta.read_table(spark, settings.table("bronze", "variants_raw"))
    per_file = {r.source_file: r["count"] for r in bronze.groupBy("source_file").count().collect()}
    for path in sorted((raw / "vcf").glob("*.vcf.gz")):
        expected = len(_data_lines(path)) if str(path) != damage["truncated"] else None
        if str(path) == damage["bad_gt"]:
            expected -= 1
        if expected is not None:
            assert per_file.get(str(path)) == expected, path.name
    # The cut file: every record in the blocks before the damage lands.
    kept = per_file.get(damage["truncated"], 0)
    assert damage["recoverable_records"] > 0
    assert damage["recoverable_records"] <= kept < damage["truncated_records"]

    notes = delta.read_table(spark, settings.table("bronze", "notes_raw"))
    assert notes.count() == damage["notes"] - 1
    patients = delta.read_table(spark, settings.table("silver", "patients"))
    assert patients.count() == PATIENTS  # the duplicate record is rejected, not the patient
    features = delta.read_table(spark, settings.table("gold", "patient_features"))
    assert features.count() + len(_quarantine(spark, settings, "gold.patient_features")) \
        >= PATIENTS


def test_quality_status_reports_the_gated_tables(spark, first_run):
    from pipelines.quality.status import quality_status

    settings = first_run[0]
    status = quality_status(spark, settings)
    assert status["status"] in ("pass", "warn", "quarantined")
    assert "silver.variants" in status["tables"] and status["data_docs"]
    assert Path(status["data_docs"].removeprefix("file://")).is_file()


def test_every_table_the_pipeline_writes_has_a_suite(first_run):
    """The gate checks what it has a suite for; so every data table needs one."""
    from pipelines.quality import suites

    settings = first_run[0]
    written = {f"{p.parent.parent.name}.{p.parent.name}"
               for p in settings.lakehouse.glob("*/*/_delta_log")}
    data_tables = {t for t in written if t.split(".")[0] in ("bronze", "silver", "gold",
                                                             "restricted")
                   and not t.split(".")[1].startswith("quarantine_")}
    assert len(data_tables) >= 20
    assert not data_tables - set(suites.all_suites()), sorted(data_tables
                                                              - set(suites.all_suites()))


@pytest.mark.slow  # the whole pipeline a second time (~3-5 minutes on 2 cores)
def test_a_second_run_changes_nothing(spark, first_run):
    settings = first_run[0]
    before = _digests(spark, settings)
    results = _run(spark, settings)
    assert [r.status for r in results] == ["succeeded"] * len(STAGES)
    after = _digests(spark, settings)
    assert after == before


@pytest.mark.slow  # a whole stage re-run on the corpus (about 25 s)
def test_a_renamed_upstream_column_stops_the_job_and_leaves_the_tables(spark, first_run):
    """The hospital's export renames birth_date: ingestion treats it as optional, the gate
    sees the column suddenly empty and stops before the identity map or silver change."""
    from pipelines.runner import StageFailed, run_stages

    settings, _, raw, _ = first_run
    drifted = raw / "csv_renamed"
    shutil.copytree(raw / "csv", drifted)
    patients_csv = drifted / "patients.csv"
    lines = patients_csv.read_text().splitlines()
    lines[0] = lines[0].replace("birth_date", "date_of_birth")
    patients_csv.write_text("\n".join(lines) + "\n")
    csv_only = settings.replace(inputs=Inputs(clinical_csv=str(drifted)))
    guarded = [settings.table("restricted", "patient_identity"),
               *[settings.table("silver", t) for t in ("patients", "diagnoses", "outcomes",
                                                        "treatment_lines")]]
    before = {ref.key: delta.current_version(spark, ref) for ref in guarded}
    with pytest.raises(StageFailed) as err:
        run_stages(csv_only, only=["ingest-clinical"], spark=spark,
                   console=Console(file=io.StringIO()))
    msg = str(err.value)
    assert "restricted.patient_identity" in msg and "birth_date suddenly empty" in msg
    assert "observed 0.0" in msg and "Nothing was written" in msg
    assert {ref.key: delta.current_version(spark, ref) for ref in guarded} == before

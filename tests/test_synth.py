"""Tests for the synthetic cohort generator (``oncorank synth``, pipelines/synth).

Files are checked with the real tools (bcftools, pysam, fhir.resources R4B models); the
outcome model is checked by fitting a Cox model (lifelines) to simulated patients and
recovering the planted hazard ratio.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse.errors import ConfigError, OncorankError
from pipelines.synth import generate_cohort
from pipelines.synth.patient import simulate_patient, weibull_rmst, weibull_survival
from pipelines.synth.world import load_world

N = 30
SEED = 11
BCFTOOLS = shutil.which("bcftools") or "/usr/bin/bcftools"
needs_bcftools = pytest.mark.skipif(shutil.which("bcftools") is None,
                                    reason="needs bcftools (apt-get install bcftools tabix)")
PHI_TYPES = {"NAME", "DATE", "AGE", "MRN", "ID", "PHONE", "FAX", "EMAIL", "URL", "ADDRESS",
             "ZIP"}
CONTEXTS = {"affirmed", "negated", "possible", "historical", "hypothetical", "family"}
CATEGORIES = {"biomarker", "site", "performance_status", "therapy", "adverse_event", "smoking",
              "diagnosis", "comorbidity"}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _digest(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def _bcftools(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BCFTOOLS, *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    summary = generate_cohort(out, patients=N, seed=SEED)
    return out, summary


@pytest.fixture(scope="module")
def simulated() -> list:
    """A larger cohort simulated in memory (no files): prevalence and censoring checks."""
    world = load_world()
    return [simulate_patient(world, 5, i) for i in range(4000)]


# ---------------------------------------------------------------------------- layout
def test_layout_and_contract_columns(cohort):
    out, summary = cohort
    assert summary["patients"] == N
    assert len(list((out / "vcf").glob("PT*.vcf.gz"))) == N
    assert len(list((out / "vcf").glob("PT*.vcf.gz.tbi"))) == N
    for name in ("Patient", "Condition", "MedicationRequest", "MedicationAdministration",
                 "Observation"):
        assert (out / "fhir" / f"{name}.ndjson").stat().st_size > 0
    expected = {
        "patients.csv": ["patient_id", "name", "mrn", "birth_date", "sex", "cancer_type",
                         "stage", "ecog", "diagnosis_date", "smoking_status", "zip"],
        "diagnoses.csv": ["patient_id", "code", "code_system", "onset_date"],
        "treatments.csv": ["patient_id", "drug", "rxcui", "start_date", "end_date"],
        "outcomes.csv": ["patient_id", "death_date", "last_followup_date"],
    }
    for name, cols in expected.items():
        with open(out / "csv" / name) as fh:
            assert next(csv.reader(fh)) == cols, name
    patients = _read_csv(out / "csv" / "patients.csv")
    assert [p["patient_id"] for p in patients] == [f"PT{i:06d}" for i in range(1, N + 1)]
    assert {p["cancer_type"] for p in patients} <= set(regimen_catalog().cancer_types)
    assert {p["stage"] for p in patients} <= {"I", "II", "III", "IV"}
    assert len({p["mrn"] for p in patients}) == N
    notes = _read_jsonl(out / "notes" / "notes.jsonl")
    assert set(notes[0]) == {"note_id", "patient_id", "note_type", "note_date", "text"}
    per_patient = Counter(n["patient_id"] for n in notes)
    assert set(per_patient) == {p["patient_id"] for p in patients}
    assert min(per_patient.values()) >= 2 and max(per_patient.values()) <= 5
    assert {n["note_type"] for n in notes} <= {"pathology", "progress", "imaging"}
    assert len({n["note_id"] for n in notes}) == len(notes)
    sample_map = _read_csv(out / "truth" / "sample_map.csv")
    assert [(r["sample"], r["patient_id"]) for r in sample_map] == [
        (p["patient_id"], p["patient_id"]) for p in patients]
    params = json.loads((out / "truth" / "params.json").read_text())
    assert params["seed"] == SEED and params["horizon_months"] == 24
    assert params["target_size_mb"] > 0
    osi = [e for e in params["planted_effects"]
           if e["treatment"] == "osimertinib" and e["biomarker"] == "egfr_sensitizing"]
    assert osi and osi[0]["hr"] == pytest.approx(0.45) and osi[0]["versus"] == \
        "platinum_pemetrexed" and osi[0]["reference"]


def test_output_is_byte_identical_per_seed(cohort, tmp_path):
    out, _ = cohort
    again = tmp_path / "again"
    generate_cohort(again, patients=N, seed=SEED)
    first, second = _digest(out), _digest(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = tmp_path / "other-seed"
    generate_cohort(other, patients=N, seed=SEED + 1)
    assert _digest(other)["csv/patients.csv"] != first["csv/patients.csv"]


def test_worker_processes_do_not_change_a_byte(tmp_path):
    generate_cohort(tmp_path / "one", patients=12, seed=9, workers=1)
    summary = generate_cohort(tmp_path / "two", patients=12, seed=9, workers=2)
    assert summary["workers"] == 2
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def test_rerun_into_same_folder_replaces_stale_vcfs(tmp_path):
    generate_cohort(tmp_path, patients=4, seed=2)
    generate_cohort(tmp_path, patients=2, seed=2)
    assert sorted(f.name for f in (tmp_path / "vcf").iterdir()) == [
        "PT000001.vcf.gz", "PT000001.vcf.gz.tbi", "PT000002.vcf.gz", "PT000002.vcf.gz.tbi"]


def test_bad_arguments_give_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="vcf' or 'bcf"):
        generate_cohort(tmp_path / "x", patients=2, seed=1, fmt="cram")
    with pytest.raises(ConfigError, match="at least 1"):
        generate_cohort(tmp_path / "x", patients=0, seed=1)
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(OncorankError, match="is a file"):
        generate_cohort(a_file, patients=1, seed=1)


def test_cli_synth_prints_summary(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["synth", "--patients", "3", "--seed", "4", "--out",
                                      str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["patients"] == 3 and summary["notes"] >= 6


# ---------------------------------------------------------------------------- genomics
@needs_bcftools
def test_every_vcf_passes_bcftools_view_and_index(cohort, tmp_path):
    out, _ = cohort
    for vcf in sorted((out / "vcf").glob("PT*.vcf.gz")):
        view = _bcftools("view", "-Ou", "-o", "/dev/null", str(vcf))
        assert view.returncode == 0, (vcf.name, view.stderr)
        copy = tmp_path / vcf.name
        shutil.copy(vcf, copy)
        for flag in ("-t", "-c"):
            idx = _bcftools("index", "-f", flag, str(copy))
            assert idx.returncode == 0, (vcf.name, idx.stderr)
        stats = _bcftools("index", "-n", str(vcf))
        assert stats.returncode == 0 and int(stats.stdout) > 0


def test_vcf_header_and_records_look_like_a_vep_annotated_somatic_exome(cohort):
    out, _ = cohort
    filters, multi, svs, consequences = Counter(), 0, 0, Counter()
    for vcf in sorted((out / "vcf").glob("PT*.vcf.gz")):
        with pysam.VariantFile(str(vcf)) as fh:
            header = fh.header
            assert list(header.samples) == [vcf.name.split(".")[0]]
            assert header.contigs["chr7"].length == 159345973
            assert header.contigs["chrY"].length == 57227415
            assert "Format: Allele|Consequence|IMPACT|SYMBOL" in \
                header.info["CSQ"].description
            assert {"LowQual", "strand_bias"} <= set(header.filters)
            csq_fields = header.info["CSQ"].description.split("Format: ")[1].split("|")
            order = list(header.contigs)
            last = (0, 0)
            for rec in fh:
                key = (order.index(rec.chrom), rec.pos)
                assert key >= last, "records not sorted"
                last = key
                filters.update(rec.filter.keys())
                multi += len(rec.alts) > 1
                svs += rec.alts[0] == "<DUP>"
                sample = rec.samples[0]
                assert list(rec.format) == ["GT", "AD", "DP", "AF"]
                if rec.alts[0] != "<DUP>":
                    assert sum(sample["AD"]) == sample["DP"]
                    assert len(sample["AF"]) == len(rec.alts)
                csqs = [dict(zip(csq_fields, c.split("|"), strict=True))
                        for c in rec.info["CSQ"]]
                assert len(csqs) == len(rec.alts)
                consequences.update(c["Consequence"] for c in csqs)
    assert filters["PASS"] > 0 and filters["LowQual"] > 0 and filters["strand_bias"] > 0
    assert multi > 0
    for kind in ("missense_variant", "synonymous_variant", "stop_gained", "frameshift_variant"):
        assert consequences[kind] > 0, kind
    truth = _read_csv(out / "truth" / "patients.csv")
    assert svs == sum("ERBB2 amplification" in t["vcf_drivers"] for t in truth)


def test_drivers_sit_at_real_grch38_positions(cohort):
    out, _ = cohort
    world = load_world()
    by_concept = {d["concept"]: d for d in world.drivers.values()}
    truth = _read_csv(out / "truth" / "patients.csv")
    checked = 0
    for t in truth:
        with pysam.VariantFile(str(out / "vcf" / f"{t['patient_id']}.vcf.gz")) as fh:
            for concept in filter(None, t["vcf_drivers"].split(";")):
                d = by_concept[concept]
                hits = [r for r in fh.fetch(d["chrom"], d["pos"] - 1, d["pos"])
                        if r.pos == d["pos"] and r.ref == d["ref"] and r.alts == (d["alt"],)]
                assert len(hits) == 1, (t["patient_id"], concept)
                csq = hits[0].info["CSQ"][0].split("|")
                assert csq[3] == d["gene"] and csq[1] == d["consequence"]
                checked += 1
            outside = t["outside_lab_driver"]
            if outside:
                d = by_concept[outside]
                assert not [r for r in fh.fetch(d["chrom"], d["pos"] - 1, d["pos"])
                            if r.pos == d["pos"]], "outside-lab driver must not be in the VCF"
    assert checked > 0
    # The alleles themselves (GRCh38, + strand; ClinVar): spot-check the ones the brief names.
    assert (world.drivers["EGFR_L858R"]["pos"], world.drivers["EGFR_L858R"]["ref"],
            world.drivers["EGFR_L858R"]["alt"]) == (55191822, "T", "G")
    assert (world.drivers["KRAS_G12C"]["pos"], world.drivers["KRAS_G12C"]["alt"]) == (
        25245351, "A")
    assert (world.drivers["BRAF_V600E"]["pos"], world.drivers["BRAF_V600E"]["ref"]) == (
        140753336, "A")


def test_passenger_annotation_is_a_function_of_the_allele():
    """The vectorised annotation of SNVs agrees with the scalar one (which indels use), so
    an allele is annotated the same way in every patient and a multi-sample merge agrees."""
    from pipelines.synth.genomics import _passenger_csq, genome_model, patient_records

    world = load_world()
    model = genome_model(world)
    genes = {g[0]: g for g in model.genes}
    checked = 0
    for i in range(3):
        p = simulate_patient(world, 4, i)
        for line in patient_records(world, model, p, 4):
            chrom, pos, _, ref, alts, *_rest = line.split("\t")
            csq = line.split("CSQ=")[1].split("\t")[0].split(",")
            symbol = csq[0].split("|")[3]
            if symbol not in genes:
                continue
            for alt, entry in zip(alts.split(","), csq, strict=True):
                expect = _passenger_csq(model, model.contig_index[chrom], int(pos), ref, alt,
                                        genes[symbol])[0]
                assert entry == expect, line
                checked += 1
    assert checked > 100


def test_measured_tmb_tracks_the_true_rate(cohort):
    out, _ = cohort
    truth = _read_csv(out / "truth" / "patients.csv")
    tmb = np.array([float(t["tmb"]) for t in truth])
    measured = np.array([float(t["measured_tmb"]) for t in truth])
    assert tmb.min() >= 1.0 and tmb.max() <= 50.0
    assert np.corrcoef(tmb, measured)[0, 1] > 0.95
    for t in truth[:5]:
        with pysam.VariantFile(str(out / "vcf" / f"{t['patient_id']}.vcf.gz")) as fh:
            n_pass = sum(1 for r in fh if "PASS" in r.filter and r.alts[0] != "<DUP>")
        assert n_pass == int(t["pass_variants"])


@needs_bcftools
def test_bcf_and_multi_sample_outputs_are_valid(tmp_path):
    bcf = tmp_path / "bcf"
    generate_cohort(bcf, patients=4, seed=3, fmt="bcf")
    files = sorted(f.name for f in (bcf / "vcf").iterdir())
    assert files == [f"PT00000{i}.bcf{s}" for i in range(1, 5) for s in ("", ".csi")]
    for f in (bcf / "vcf").glob("*.bcf"):
        assert _bcftools("view", "-Ou", "-o", "/dev/null", str(f)).returncode == 0
        assert _bcftools("index", "-n", str(f)).returncode == 0

    multi = tmp_path / "multi"
    generate_cohort(multi, patients=5, seed=3, multi_sample=True)
    assert sorted(f.name for f in (multi / "vcf").iterdir()) == [
        "cohort.vcf.gz", "cohort.vcf.gz.tbi"]
    with pysam.VariantFile(str(multi / "vcf" / "cohort.vcf.gz")) as fh:
        assert list(fh.header.samples) == [f"PT00000{i}" for i in range(1, 6)]
        n_multi = sum(1 for _ in fh)
    n_single = sum(int(t["pass_variants"]) for t in _read_csv(multi / "truth" / "patients.csv"))
    assert n_multi >= n_single * 0.9
    assert _bcftools("index", "-n", str(multi / "vcf" / "cohort.vcf.gz")).returncode == 0

    multi_bcf = tmp_path / "multi-bcf"
    generate_cohort(multi_bcf, patients=3, seed=3, fmt="bcf", multi_sample=True)
    assert sorted(f.name for f in (multi_bcf / "vcf").iterdir()) == [
        "cohort.bcf", "cohort.bcf.csi"]
    view = _bcftools("view", "-H", str(multi_bcf / "vcf" / "cohort.bcf"))
    assert view.returncode == 0 and view.stdout.count("\n") > 0


# ---------------------------------------------------------------------------- FHIR and CSV
def test_fhir_resources_validate_against_r4b(cohort):
    from fhir.resources.R4B import get_fhir_model_class

    out, _ = cohort
    catalog = regimen_catalog()
    rxcuis = {str(m["rxcui"]) for m in catalog.drugs.values()}
    seen = Counter()
    for path in sorted((out / "fhir").glob("*.ndjson")):
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            assert obj["resourceType"] == path.stem
            get_fhir_model_class(obj["resourceType"]).model_validate(obj)
            seen[obj["resourceType"]] += 1
            if path.stem == "Condition":
                assert obj["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10-cm"
            if path.stem.startswith("Medication"):
                coding = obj["medicationCodeableConcept"]["coding"][0]
                assert coding["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm"
                assert coding["code"] in rxcuis
    assert seen["Patient"] == N
    ecog = [json.loads(x) for x in (out / "fhir" / "Observation.ndjson").read_text().splitlines()]
    assert sum(o["code"]["coding"][0]["code"] == "89247-1" for o in ecog) == N
    outcomes = {r["patient_id"]: r for r in _read_csv(out / "csv" / "outcomes.csv")}
    for line in (out / "fhir" / "Patient.ndjson").read_text().splitlines():
        pat = json.loads(line)
        assert pat.get("deceasedDateTime", "") == outcomes[pat["id"]]["death_date"]
    cancers = [json.loads(x) for x in (out / "fhir" / "Condition.ndjson").read_text()
               .splitlines() if json.loads(x)["id"].endswith("-cond-1")]
    assert all(c["code"]["coding"][1]["system"] == "http://snomed.info/sct" for c in cancers)


def test_structured_records_agree_with_the_truth(cohort):
    out, _ = cohort
    world = load_world()
    truth = {t["patient_id"]: t for t in _read_csv(out / "truth" / "patients.csv")}
    outcomes = _read_csv(out / "csv" / "outcomes.csv")
    dpm = world.cohort["days_per_month"]
    for o in outcomes:
        t = truth[o["patient_id"]]
        end = date.fromisoformat(o["death_date"] or o["last_followup_date"])
        months = (end - date.fromisoformat(t["index_date"])).days / dpm
        assert months == pytest.approx(float(t["os_months"]), abs=1e-3)
        assert (o["death_date"] != "") == (t["os_event"] == "1")
    treatments = pd.read_csv(out / "csv" / "treatments.csv", dtype=str)
    catalog = regimen_catalog()
    for pid, rows in treatments.groupby("patient_id"):
        t = truth[pid]
        starts = pd.to_datetime(rows["start_date"])
        assert starts.min().date().isoformat() == t["index_date"]
        first = catalog.get(t["first_line"])
        first_rows = rows[rows["drug"].isin(first.drugs)].iloc[: len(first.drugs)]
        assert sorted(first_rows["drug"]) == sorted(first.drugs)
        spread = pd.to_datetime(first_rows["start_date"])
        assert (spread.max() - spread.min()).days <= 3
        assert (pd.to_datetime(rows["end_date"]) >= starts).all()
        for drug, rxcui in zip(rows["drug"], rows["rxcui"], strict=True):
            assert str(catalog.drugs[drug]["rxcui"]) == rxcui
    codes = pd.read_csv(out / "csv" / "diagnoses.csv", dtype=str)
    assert codes["code_system"].eq("ICD-10-CM").all()
    assert codes["code"].str.contains(r"\.").any() and (~codes["code"].str.contains(r"\.")).any()
    primary = codes.groupby("patient_id").first()
    for pid, row in primary.iterrows():
        assert catalog.cancer_type_for_icd10(row["code"]) == truth[pid]["cancer_type"]


# ---------------------------------------------------------------------------- notes truth
def test_phi_and_finding_spans_match_the_note_text(cohort):
    out, _ = cohort
    notes = {n["note_id"]: n for n in _read_jsonl(out / "notes" / "notes.jsonl")}
    phi = _read_jsonl(out / "truth" / "phi.jsonl")
    findings = _read_jsonl(out / "truth" / "findings.jsonl")
    assert phi and findings
    for span in phi:
        text = notes[span["note_id"]]["text"]
        assert text[span["start"]:span["end"]] == span["text"], span
        assert span["type"] in PHI_TYPES
    types = Counter(s["type"] for s in phi)
    for t in ("NAME", "DATE", "MRN", "ID", "PHONE", "FAX", "ADDRESS", "ZIP"):
        assert types[t] > 0, t
    for f in findings:
        text = notes[f["note_id"]]["text"]
        assert text[f["start"]:f["end"]] == f["text"], f
        assert f["context"] in CONTEXTS and f["category"] in CATEGORIES
        assert notes[f["note_id"]]["patient_id"] == f["patient_id"]
    contexts = Counter(f["context"] for f in findings)
    for c in ("affirmed", "negated", "historical", "hypothetical", "family"):
        assert contexts[c] > 0, c
    # Every patient's name and MRN are in the notes, and only as PHI spans.
    patients = _read_csv(out / "csv" / "patients.csv")
    by_note_phi: dict[str, set] = {}
    for s in phi:
        by_note_phi.setdefault(s["note_id"], set()).add((s["start"], s["end"]))
    for p in patients:
        own = [n for n in notes.values() if n["patient_id"] == p["patient_id"]]
        for n in own:
            for value in (p["name"], p["mrn"]):
                start = n["text"].find(value)
                while start >= 0:
                    assert any(a <= start and start + len(value) <= b
                               for a, b in by_note_phi.get(n["note_id"], ())), (value, n["note_id"])
                    start = n["text"].find(value, start + 1)


def test_notes_only_biomarkers_are_stated_in_notes(cohort):
    out, _ = cohort
    truth = _read_csv(out / "truth" / "patients.csv")
    findings = _read_jsonl(out / "truth" / "findings.jsonl")
    stated = {(f["patient_id"], f["concept"], f["context"], f["value"]) for f in findings}
    for t in truth:
        pid = t["patient_id"]
        if t["pdl1_tps"]:
            assert any(k[0] == pid and k[1] == "PD-L1 TPS" for k in stated), pid
        if t["er_status"]:
            ctx = "affirmed" if t["er_status"] == "positive" else "negated"
            assert (pid, "ER positive", ctx, None) in stated, pid
        if t["msi_status"]:
            ctx = "affirmed" if t["msi_status"] == "MSI-H" else "negated"
            assert (pid, "MSI-H", ctx, None) in stated, pid
        if t["outside_lab_driver"]:
            assert (pid, t["outside_lab_driver"], "affirmed", None) in stated, pid
        ecog = {k[3] for k in stated if k[0] == pid and k[1] == "ECOG"}
        assert t["ecog"] in ecog


# ---------------------------------------------------------------------------- outcome model
def test_rmst_closed_form_matches_numerical_integration():
    from scipy.integrate import quad

    for lp, shape, scale in ((0.0, 1.0, 12.0), (-0.8, 1.2, 30.0), (0.9, 0.95, 18.0)):
        numeric, _ = quad(lambda t, a=lp, k=shape, s=scale: weibull_survival(t, a, k, s), 0, 24)
        assert weibull_rmst(lp, shape, scale, 24.0) == pytest.approx(numeric, rel=1e-8)


def test_oracle_covers_every_candidate_and_matches_the_model(cohort):
    out, _ = cohort
    world = load_world()
    truth = {t["patient_id"]: t for t in _read_csv(out / "truth" / "patients.csv")}
    oracle = pd.read_csv(out / "truth" / "treatment_oracle.csv", dtype={"patient_id": str})
    assert set(oracle["patient_id"]) == set(truth)
    for pid, rows in oracle.groupby("patient_id"):
        t = truth[pid]
        assert sorted(rows["treatment"]) == sorted(world.candidates(t["cancer_type"]))
        assert rows["received"].sum() == 1
        assert rows.loc[rows["received"] == 1, "treatment"].item() == t["first_line"]
        assert rows.loc[rows["standard_of_care"] == 1, "hr_vs_soc"].item() == 1.0
        assert sorted(rows["oracle_rank"]) == list(range(1, len(rows) + 1))
        assert rows.loc[rows["oracle_rank"] == 1, "treatment"].item() == t["oracle_best"]
        assert rows["choice_probability"].sum() == pytest.approx(1.0, abs=1e-3)
        assert rows["choice_probability"].min() >= 0.04
        for r in rows.itertuples():
            assert 0 < r.true_rmst <= 24.0
            assert r.true_rmst == pytest.approx(
                weibull_rmst(r.linear_predictor, r.weibull_shape, r.weibull_scale, 24.0),
                abs=2e-3)


def test_censoring_rate_and_prevalence_are_realistic(simulated):
    censored = np.mean([1 - p.os_event for p in simulated])
    assert 0.20 <= censored <= 0.40
    reasons = Counter(p.censor_reason for p in simulated if not p.os_event)
    assert reasons["administrative"] > 0 and reasons["lost_to_follow_up"] > 0

    def share(cancer_type, pred):
        sub = [p for p in simulated if p.cancer_type == cancer_type]
        return np.mean([pred(p) for p in sub])

    assert 0.11 <= share("NSCLC", lambda p: p.features["egfr_sensitizing"]) <= 0.19
    assert 0.09 <= share("NSCLC", lambda p: "KRAS_G12C" in p.drivers) <= 0.17
    assert 0.15 <= share("BRCA", lambda p: p.erbb2_amp) <= 0.26
    assert 0.28 <= share("BRCA", lambda p: p.features["pik3ca_mutant"]) <= 0.42
    assert 0.33 <= share("COADREAD", lambda p: any(d.startswith("KRAS") for d in p.drivers)) \
        <= 0.47
    assert 0.04 <= share("COADREAD", lambda p: "BRAF_V600E" in p.drivers) <= 0.12
    assert 0.38 <= share("MEL", lambda p: "BRAF_V600E" in p.drivers) <= 0.52
    mix = Counter(p.cancer_type for p in simulated)
    assert mix["NSCLC"] > mix["BRCA"] > mix["COADREAD"] > mix["MEL"]
    positive = [p for p in simulated if any(d.startswith(("EGFR", "BRAF")) for d in p.drivers)]
    assert 0.09 <= np.mean([p.outside_lab_driver is not None for p in positive]) <= 0.21
    # Treatment choice is confounded by indication but every regimen keeps some overlap.
    egfr = [p for p in simulated if p.features["egfr_sensitizing"]]
    assert np.mean([p.first_line == "osimertinib" for p in egfr]) > 0.5
    assert any(p.first_line == "platinum_pemetrexed" for p in egfr)
    tmb = np.array([p.tmb for p in simulated])
    assert tmb.min() >= 1 and tmb.max() <= 50 and np.median(tmb) < 10


@pytest.mark.slow  # a 2,000-patient cohort and a Cox fit (about 15 s); the oracle run checks
# the planted effects end to end in the default run
def test_cox_fit_recovers_the_planted_osimertinib_effect():
    """Among EGFR-mutant NSCLC patients, an adjusted Cox model of osimertinib versus
    platinum-pemetrexed recovers the planted HR (0.45) within its 99% CI."""
    from lifelines import CoxPHFitter

    world = load_world()
    rows = []
    for i in range(30000):
        p = simulate_patient(world, 21, i)
        if (p.cancer_type != "NSCLC" or not p.features["egfr_sensitizing"] or "ild" in p.flags
                or p.first_line not in ("osimertinib", "platinum_pemetrexed")):
            continue
        rows.append({"time": p.os_months, "event": p.os_event,
                     "osimertinib": int(p.first_line == "osimertinib"), "ecog": p.ecog,
                     "age": p.age, "stage_iv": int(p.stage == "IV"),
                     "stage_iii": int(p.stage == "III"), "charlson": p.charlson,
                     "male": int(p.sex == "M"), "brain": int(p.metastases["brain"]),
                     "liver": int(p.metastases["liver"]), "bone": int(p.metastases["bone"]),
                     "tp53": int(any(d.startswith("TP53") for d in p.drivers)),
                     "current_smoker": int(p.smoking == "current")})
    df = pd.DataFrame(rows)
    assert df["osimertinib"].sum() > 100 and (1 - df["osimertinib"]).sum() > 50
    # A 99% interval: a 95% one would miss the truth one seed in twenty by design.
    fit = CoxPHFitter(alpha=0.01).fit(df, "time", "event")
    lo, hi = np.exp(fit.confidence_intervals_.loc["osimertinib"])
    assert lo <= 0.45 <= hi, (lo, hi)
    assert math.exp(fit.params_["osimertinib"]) < 0.7

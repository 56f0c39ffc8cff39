"""``oncorank synth``: write a realistic raw oncology cohort plus its ground truth.

Layout under ``out``::

    vcf/<patient_id>.vcf.gz (+ .tbi)   or .bcf (+ .csi); or cohort.vcf.gz / cohort.bcf
    fhir/<ResourceType>.ndjson         Patient, Condition, MedicationRequest,
                                       MedicationAdministration, Observation
    csv/patients.csv, diagnoses.csv, treatments.csv, outcomes.csv
    notes/notes.jsonl
    truth/params.json, patients.csv, treatment_oracle.csv, phi.jsonl, findings.jsonl,
          sample_map.csv

Patients are generated one at a time and written straight to every output, so memory stays
flat whatever the cohort size. Output is byte-identical for a given seed: every random draw
comes from a per-patient, per-purpose stream, nothing reads the clock, and bgzip output has
no timestamps.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from collections import Counter
from contextlib import ExitStack
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pysam
from pysam import bcftools

from pipelines.lakehouse.errors import ConfigError, OncorankError
from pipelines.synth import fhir
from pipelines.synth.bgzf import write_bgzf
from pipelines.synth.genomics import (
    GenomeModel,
    count_pass,
    genome_model,
    header_lines,
    patient_records,
)
from pipelines.synth.notes import Identity, NoteWriter
from pipelines.synth.patient import (
    STREAM_COURSES,
    STREAM_IDENTITY,
    STREAM_RECORDS,
    Patient,
    patient_rng,
    simulate_patient,
)
from pipelines.synth.world import World, load_world

GENERATOR_VERSION = "1.0"
MERGE_BATCH = 200   # files per bcftools merge call (keeps open file handles bounded)
METASTASIS_ICD10 = {"brain": "C79.31", "liver": "C78.7", "bone": "C79.51"}
# Adverse events that are also coded as diagnoses after the index date (so comorbidity
# scores must look only at codes dated before it).
AE_ICD10 = {"neutropenia": "D70.1", "peripheral neuropathy": "G62.0", "colitis": "K52.1",
            "pneumonitis": "J70.4", "hepatitis": "K71.6"}
FHIR_TYPES = ("Patient", "Condition", "MedicationRequest", "MedicationAdministration",
              "Observation")

PATIENT_COLS = ("patient_id", "name", "mrn", "birth_date", "sex", "cancer_type", "stage",
                "ecog", "diagnosis_date", "smoking_status", "zip")
TRUTH_PATIENT_COLS = (
    "patient_id", "cancer_type", "stage", "sex", "age_at_diagnosis", "diagnosis_date",
    "index_date", "ecog", "smoking_status", "pack_years", "comorbidities", "charlson_points",
    "condition_flags", "metastases", "drivers", "vcf_drivers", "outside_lab_driver", "tmb",
    "pass_variants", "measured_tmb", "pdl1_tps", "er_status", "msi_status", "erbb2_amplified",
    "first_line", "first_line_probability", "second_line", "second_line_start_months",
    "lp_prognostic", "event_time_months", "censor_time_months", "censor_reason", "os_months",
    "os_event", "ttnt_months", "ttnt_event", "death_date", "last_followup_date",
    "true_rmst_received", "oracle_best", "oracle_best_rmst", "frailty", "clinic",
    "ngs_tested", "sequenced_in_house", "ecog_recorded", "off_guideline",
    "oracle_best_overlap", "oracle_best_with_overlap")
ORACLE_COLS = ("patient_id", "cancer_type", "treatment", "standard_of_care", "received",
               "choice_probability", "hr_vs_soc", "linear_predictor", "weibull_shape",
               "weibull_scale", "true_rmst", "true_surv_12", "true_surv_24", "oracle_rank",
               "true_rmst_diff_vs_soc", "overlap")

TRUTH_README = """\
# Ground truth of this generated cohort

Written by `oncorank synth`; nothing here reaches the pipeline. Times are months from the index
date (start of first-line therapy); the horizon is `horizon_months` in params.json.

params.json
: every parameter of the world the cohort was drawn from (the scenario merged over the default),
  the citation of every planted effect (`planted_effects[].reference`: trial, arm, endpoint, HR
  and CI, or the stated assumption), the scenario's mechanisms, and `realised`: the share of
  patients treated off guideline, not sequenced, sequenced only at an outside lab, without a
  recorded ECOG, and treated with a regimen that has no overlap.

patients.csv (one row per patient)
: true features (stage, ECOG, comorbidities, drivers, TMB, PD-L1, ER, MSI, ERBB2), the regimens
  received, the true event and censoring times, `true_rmst_received`, `oracle_best` (the regimen
  with the largest true RMST) and its RMST, `oracle_best_overlap` (1 when that regimen has
  overlap), `oracle_best_with_overlap` (the best regimen among those with overlap; standard of
  care when none has), `frailty` (the unmeasured frailty; 0 unless the scenario has one), `clinic`,
  `ngs_tested`, `sequenced_in_house` (0: no VCF), `ecog_recorded` and `off_guideline` (the regimen
  received had guideline probability below 5%).

treatment_oracle.csv (one row per patient and candidate regimen)
: `true_rmst` (restricted mean survival time at the horizon under that regimen, months, exact or
  on a 0.05-month grid when the scenario delays effects or switches treatment),
  `true_rmst_diff_vs_soc` (minus the standard of care's), `choice_probability` (the true
  propensity: the probability the choice model gave this regimen for this patient),
  `overlap` (1 when that propensity is at least `mechanisms.overlap_min_propensity`),
  `oracle_rank` (1 = true best), `true_surv_12` / `true_surv_24`, `hr_vs_soc` (the planted
  hazard ratio after its first-line delay, before switching), `received`, `standard_of_care`.

phi.jsonl, findings.jsonl, sample_map.csv
: PHI spans and findings planted in the notes; VCF sample to patient.
"""


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


def _f(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def treatment_courses(world: World, p: Patient, seed: int) -> list[dict]:
    """One row per drug course: first-line drugs start within a few days of each other,
    fixed-cycle drugs stop early, and a second line starts at progression."""
    rng = patient_rng(seed, p.index, STREAM_COURSES)
    fixed = world.clinical["fixed_course_days"]
    last = p.last_followup_date
    lines = [(1, p.first_line, p.index_date)]
    if p.second_line:
        lines.append((2, p.second_line, p.date_at(p.second_line_start)))
    out = []
    for k, (line, regimen, start) in enumerate(lines):
        if k + 1 < len(lines):
            line_end = lines[k + 1][2] - timedelta(days=int(rng.integers(1, 8)))
            ongoing = False
        else:
            line_end = last - timedelta(days=int(rng.integers(0, 15)))
            ongoing = not p.os_event
        for j, drug in enumerate(world.catalog.get(regimen).drugs):
            d_start = start + timedelta(days=0 if j == 0 else int(rng.integers(0, 4)))
            d_end = max(d_start, line_end)
            active = ongoing
            if drug in fixed and (d_end - d_start).days > fixed[drug]:
                d_end = d_start + timedelta(days=int(fixed[drug]))
                active = False
            out.append({"line": line, "regimen": regimen, "drug": drug,
                        "rxcui": world.rxcui(drug), "start": d_start, "end": d_end,
                        "active": active})
    return out


def _clean_vcf_dir(vcf_dir: Path) -> None:
    """Remove VCFs an earlier run wrote here (a rerun with fewer patients must not leave
    stale files); anything else in the folder is left alone."""
    if not vcf_dir.is_dir():
        return
    for pattern in ("PT*.vcf.gz", "PT*.vcf.gz.tbi", "PT*.bcf", "PT*.bcf.csi", "cohort.vcf.gz",
                    "cohort.vcf.gz.tbi", "cohort.bcf", "cohort.bcf.csi"):
        for f in vcf_dir.glob(pattern):
            f.unlink()
    shutil.rmtree(vcf_dir / ".parts", ignore_errors=True)


def _write_vcf_gz(path: Path, text: str) -> None:
    write_bgzf(path, text.encode())
    pysam.tabix_index(str(path), preset="vcf", force=True)


@cache
def _genome(scenario: str = "default") -> tuple[World, GenomeModel]:
    world = load_world(scenario)
    return world, genome_model(world)


def _vcf_job(job: tuple[int, int, str, bool, str, str, str]) -> tuple[int, int]:
    """Write patient ``index``'s VCF (in a worker process or inline); return
    (records, PASS records). A pure function of (seed, index): the order in which workers
    finish cannot change a byte of output. A patient whose tumour was not sequenced in house
    (a scenario with informative missingness) has no VCF: (0, 0)."""
    seed, index, fmt, multi_sample, vcf_dir, parts_dir, scenario = job
    world, model = _genome(scenario)
    p = simulate_patient(world, seed, index)
    if not p.sequenced_in_house:
        return 0, 0
    lines = patient_records(world, model, p, seed)
    text = "\n".join(header_lines([p.patient_id], world) + lines) + "\n"
    if multi_sample:
        _write_vcf_gz(Path(parts_dir) / f"{p.patient_id}.vcf.gz", text)
    elif fmt == "bcf":
        part = Path(parts_dir) / f"{p.patient_id}.vcf.gz"
        _write_vcf_gz(part, text)
        _to_bcf(part, Path(vcf_dir) / f"{p.patient_id}.bcf")
        part.unlink()
        Path(str(part) + ".tbi").unlink()
    else:
        _write_vcf_gz(Path(vcf_dir) / f"{p.patient_id}.vcf.gz", text)
    return len(lines), count_pass(lines)


def _default_workers(patients: int) -> int:
    # Worker processes pay ~1 s each to start (spawn, so that a caller holding a JVM or
    # threads is never forked); worth it only for larger cohorts.
    if patients < 400:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _to_bcf(src: Path, dest: Path) -> None:
    bcftools.view("--no-version", "-Ob", "-o", str(dest), str(src), catch_stdout=False)
    bcftools.index("-f", str(dest), catch_stdout=False)


def _merge(files: list[Path], dest: Path, out_type: str) -> None:
    bcftools.merge("--no-version", "-m", "none", f"-O{out_type}", "-o", str(dest),
                   *map(str, files), catch_stdout=False)
    if out_type == "z":
        pysam.tabix_index(str(dest), preset="vcf", force=True)
    else:
        bcftools.index("-f", str(dest), catch_stdout=False)


def _merge_all(parts: list[Path], dest: Path, fmt: str, work: Path) -> None:
    """Merge single-sample VCFs into one multi-sample file, in batches so that no call opens
    more than MERGE_BATCH files at once."""
    level = 0
    while len(parts) > MERGE_BATCH:
        merged = []
        for b in range(0, len(parts), MERGE_BATCH):
            out = work / f"merge{level}_{b // MERGE_BATCH:05d}.vcf.gz"
            _merge(parts[b:b + MERGE_BATCH], out, "z")
            merged.append(out)
        parts, level = merged, level + 1
    _merge(parts, dest, "b" if fmt == "bcf" else "z")


def _diagnosis_rows(world: World, p: Patient, rng) -> list[tuple[str, date, str]]:
    """(ICD-10-CM code, onset, category) for the cancer, its metastases, comorbidities and
    post-index adverse events."""
    rows = [(p.icd10, p.diagnosis_date, "encounter-diagnosis")]
    for site, present in p.metastases.items():
        if present and rng.random() < 0.6:
            rows.append((METASTASIS_ICD10[site],
                         p.diagnosis_date + timedelta(days=int(rng.integers(0, 21))),
                         "encounter-diagnosis"))
    for name in p.comorbidities:
        code, onset = p.comorbidity_onsets[name]
        rows.append((code, onset, "problem-list-item"))
    for ae in p.adverse_events:
        onset = p.index_date + timedelta(days=int(rng.integers(30, 120)))
        if onset < p.last_followup_date:
            rows.append((AE_ICD10[ae], onset, "encounter-diagnosis"))
    return rows


def _params(world: World, seed: int, patients: int, fmt: str, multi_sample: bool,
            realised: dict) -> dict:
    clin, cohort = world.clinical, world.cohort
    from pipelines.synth.patient import weibull_scale

    effects = []
    for cancer_type, table in clin["treatment_effects"].items():
        soc = world.standard_of_care(cancer_type)
        for treatment, spec in table.items():
            for rule in spec["rules"]:
                effects.append({"cancer_type": cancer_type, "treatment": treatment,
                                "versus": soc, "biomarker": rule["when"], "hr": rule["hr"],
                                "kind": "rule", "reference": rule["reference"]})
            effects.append({"cancer_type": cancer_type, "treatment": treatment, "versus": soc,
                            "biomarker": "otherwise", "hr": spec["otherwise"]["hr"],
                            "kind": "otherwise", "reference": spec["otherwise"]["reference"]})
            for mod in spec.get("modifiers", []):
                effects.append({"cancer_type": cancer_type, "treatment": treatment,
                                "versus": soc, "biomarker": mod["when"], "hr": mod["hr"],
                                "kind": "modifier", "reference": mod["reference"]})
    baseline = {ct: {**b, "scale_months": weibull_scale(b["median_months"], b["shape"]),
                     "standard_of_care": world.standard_of_care(ct)}
                for ct, b in clin["outcome"]["baseline"].items()}
    spec = world.scenario_spec or {}
    return {
        "generator": "oncorank-synth",
        "generator_version": GENERATOR_VERSION,
        "scenario": world.scenario,
        "scenario_description": spec.get("description", "today's generator (all mechanisms off)"),
        "scenario_citations": spec.get("citations", {}),
        "mechanisms": world.mechanisms,
        "realised": realised,
        "catalog_version": world.catalog.version,
        "seed": seed,
        "patients": patients,
        "format": fmt,
        "multi_sample": multi_sample,
        "horizon_months": cohort["horizon_months"],
        "days_per_month": cohort["days_per_month"],
        "time_origin": "index date = first-line start date",
        "target_size_mb": world.genome["target_size_mb"],
        "tmb_definition": "PASS SNV/indel records (not the ERBB2 <DUP>) / target_size_mb",
        "reference_genome": world.genome["reference"],
        "survival_model": ("Weibull PH: S_a(t) = exp(-(t/scale)^shape * exp(lp_a)), "
                           "lp_a = lp_prognostic + log(HR_a); HR_a from planted_effects "
                           "(first matching rule, else 'otherwise', times every matching "
                           "modifier)"),
        "baseline": baseline,
        "prognostic_log_hr": clin["outcome"]["log_hr"],
        "planted_effects": effects,
        "treatment_choice": {"model": "multinomial logit mixed with uniform",
                             "off_guideline_epsilon": cohort["off_guideline_epsilon"],
                             "coefficients": clin["treatment_choice"]},
        "censoring": {"data_cutoff": cohort["data_cutoff"],
                      "index_window": [cohort["index_start"], cohort["index_end"]],
                      "loss_to_followup_per_year": cohort["loss_to_followup_per_year"]},
        "cohort_mix": {"cancer_types": cohort["cancer_type_mix"],
                       "stages": cohort["stage_mix"]},
        "biomarkers": clin["biomarkers"],
        "drivers": {k: {f: v for f, v in d.items()} for k, d in world.drivers.items()},
        "notes_only": ["PD-L1 TPS (also FHIR Observation for some)",
                       "ER status (also FHIR Observation for some)", "MSI-H / MSS",
                       "outside-lab EGFR/BRAF results (absent from the VCF)"],
        "phi_types": ["NAME", "DATE", "AGE", "MRN", "ID", "PHONE", "FAX", "EMAIL", "URL",
                      "ADDRESS", "ZIP"],
        "phi_policy": "HIPAA Safe Harbor: ages are PHI only above 89",
    }


def generate_cohort(out: Path, patients: int, seed: int, fmt: str = "vcf",
                    multi_sample: bool = False, workers: int | None = None,
                    scenario: str = "default") -> dict:
    """Write a synthetic cohort of ``patients`` patients under ``out``; return a summary.

    Parameters
    ----------
    out : folder to write (created if missing; files this generator owns are replaced).
    patients : number of patients (ids PT000001, PT000002, ...).
    seed : random seed; the output is byte-identical for the same seed and size.
    fmt : ``"vcf"`` (bgzipped VCF + .tbi) or ``"bcf"`` (BCF + .csi).
    multi_sample : one cohort-wide file instead of one file per patient.
    workers : processes writing VCFs (default: one per core, up to 8, for 400+ patients).
        They are spawned, so a script calling this at import time needs the usual
        ``if __name__ == "__main__":`` guard; ``workers=1`` never starts a process.
    scenario : a world from ``pipelines/synth/resources/scenarios`` (``default``: today's).

    Examples
    --------
    >>> import tempfile
    >>> s = generate_cohort(Path(tempfile.mkdtemp()), patients=3, seed=1)
    >>> s["patients"], sorted(s["files"])[:2]
    (3, ['csv/diagnoses.csv', 'csv/outcomes.csv'])
    """
    if fmt not in ("vcf", "bcf"):
        raise ConfigError(f"Variant format must be 'vcf' or 'bcf', got {fmt!r}.")
    if int(patients) < 1:
        raise ConfigError(f"--patients must be at least 1, got {patients}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OncorankError(f"Output path {out} is a file; give a folder for the cohort.")
    world, model = _genome(scenario)
    n = int(patients)
    workers = _default_workers(n) if workers is None else max(1, int(workers))
    dirs = {k: out / k for k in ("vcf", "fhir", "csv", "notes", "truth")}
    _clean_vcf_dir(dirs["vcf"])
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    parts_dir = dirs["vcf"] / ".parts"
    if multi_sample or fmt == "bcf":
        parts_dir.mkdir(exist_ok=True)

    counts: Counter = Counter()
    by_type: Counter = Counter()
    first_lines: Counter = Counter()
    events = 0
    ext = ".bcf" if fmt == "bcf" else ".vcf.gz"
    jobs = ((seed, i, fmt, multi_sample, str(dirs["vcf"]), str(parts_dir), scenario)
            for i in range(n))
    realised: Counter = Counter()
    in_house: list[int] = []

    with ExitStack() as stack:
        def open_text(path: Path):
            return stack.enter_context(open(path, "w", newline="", encoding="utf-8"))

        def writer(path: Path, cols):
            w = csv.writer(open_text(path), lineterminator="\n")
            w.writerow(cols)
            return w

        w_pat = writer(dirs["csv"] / "patients.csv", PATIENT_COLS)
        w_dx = writer(dirs["csv"] / "diagnoses.csv",
                      ("patient_id", "code", "code_system", "onset_date"))
        w_tx = writer(dirs["csv"] / "treatments.csv",
                      ("patient_id", "drug", "rxcui", "start_date", "end_date"))
        w_out = writer(dirs["csv"] / "outcomes.csv",
                       ("patient_id", "death_date", "last_followup_date"))
        w_truth = writer(dirs["truth"] / "patients.csv", TRUTH_PATIENT_COLS)
        w_oracle = writer(dirs["truth"] / "treatment_oracle.csv", ORACLE_COLS)
        w_map = writer(dirs["truth"] / "sample_map.csv", ("sample", "patient_id"))
        fh_fhir = {t: open_text(dirs["fhir"] / f"{t}.ndjson") for t in FHIR_TYPES}
        fh_notes = open_text(dirs["notes"] / "notes.jsonl")
        fh_phi = open_text(dirs["truth"] / "phi.jsonl")
        fh_find = open_text(dirs["truth"] / "findings.jsonl")

        def emit(resource: dict) -> None:
            fh_fhir[resource["resourceType"]].write(json.dumps(resource) + "\n")
            counts[f"fhir_{resource['resourceType']}"] += 1

        if workers > 1:
            pool = stack.enter_context(
                multiprocessing.get_context("spawn").Pool(workers))
            vcf_results = pool.imap(_vcf_job, jobs, chunksize=16)
        else:
            vcf_results = map(_vcf_job, jobs)

        note_no = 0
        for i, (n_records, n_pass) in enumerate(vcf_results):
            p = simulate_patient(world, seed, i)
            pid = p.patient_id
            ident = Identity(world, p, seed, patient_rng(seed, i, STREAM_IDENTITY))
            rec_rng = patient_rng(seed, i, STREAM_RECORDS)
            by_type[p.cancer_type] += 1
            first_lines[p.first_line] += 1
            events += p.os_event

            # ---- genomics (written by _vcf_job)
            counts["variants"] += n_records
            realised["off_guideline"] += p.off_guideline
            realised["not_sequenced"] += not p.ngs_tested
            realised["outside_lab_only"] += p.ngs_tested and not p.sequenced_in_house
            realised["ecog_not_recorded"] += not p.ecog_recorded
            realised["received_without_overlap"] += not p.overlap[p.first_line]
            if p.sequenced_in_house:
                w_map.writerow((pid, pid))
                in_house.append(i)

            # ---- structured clinical data (CSV and FHIR)
            w_pat.writerow((pid, ident.name, ident.mrn, _iso(p.birth_date), p.sex,
                            p.cancer_type, p.stage, p.ecog if p.ecog_recorded else "",
                            _iso(p.diagnosis_date), p.smoking, ident.zip))
            emit(fhir.patient_resource(
                pid, ident.mrn, ident.first, ident.last, p.sex, _iso(p.birth_date),
                _iso(p.death_date) or None,
                {"line": [ident.street], "city": ident.city, "state": ident.state,
                 "postalCode": ident.zip, "country": "US"},
                f"({ident.phone[0]}) {ident.phone[1]}"))
            codes = world.clinical["cancer_codes"][p.cancer_type]
            snomed = codes.get("snomed_rectum") if p.icd10 == "C20" else codes["snomed"]
            for k, (code, onset, category) in enumerate(_diagnosis_rows(world, p, rec_rng)):
                # About a third of codes arrive without the dot, as many EHR exports send them.
                written = code.replace(".", "") if rec_rng.random() < 0.3 else code
                w_dx.writerow((pid, written, "ICD-10-CM", _iso(onset)))
                emit(fhir.condition_resource(
                    f"{pid}-cond-{k + 1}", pid, code, _iso(onset), category,
                    snomed=tuple(snomed) if k == 0 else None,
                    stage=p.stage if k == 0 else None))
            for k, c in enumerate(treatment_courses(world, p, seed)):
                w_tx.writerow((pid, c["drug"], c["rxcui"], _iso(c["start"]), _iso(c["end"])))
                rid = f"{pid}-medrq-{k + 1}"
                emit(fhir.medication_request(rid, pid, c["drug"], c["rxcui"], _iso(c["start"]),
                                             c["line"], c["active"]))
                emit(fhir.medication_administration(
                    f"{pid}-medadm-{k + 1}", pid, c["drug"], c["rxcui"], _iso(c["start"]),
                    _iso(c["end"]), rid, c["active"]))
            w_out.writerow((pid, _iso(p.death_date), _iso(p.last_followup_date)))
            obs_date = _iso(p.index_date - timedelta(days=int(rec_rng.integers(1, 10))))
            if p.ecog_recorded:
                emit(fhir.ecog_observation(f"{pid}-obs-ecog", pid, obs_date, p.ecog))
            # PD-L1 and ER reach structured data for only about half the patients; the rest
            # are in the pathology note only.
            path_date = _iso(p.diagnosis_date + timedelta(days=3))
            if p.pdl1_tps is not None and rec_rng.random() < 0.5:
                emit(fhir.pdl1_observation(f"{pid}-obs-pdl1", pid, path_date, p.pdl1_tps))
            if p.er_positive is not None and rec_rng.random() < 0.5:
                emit(fhir.er_observation(f"{pid}-obs-er", pid, path_date, p.er_positive))

            # ---- notes and their truth
            for note_type, when, builder in NoteWriter(world, p, ident, seed).write():
                note_no += 1
                note_id = f"NOTE{note_no:07d}"
                fh_notes.write(json.dumps({"note_id": note_id, "patient_id": pid,
                                           "note_type": note_type, "note_date": _iso(when),
                                           "text": builder.text_value()}) + "\n")
                for span in builder.phi:
                    fh_phi.write(json.dumps({"note_id": note_id, **span}) + "\n")
                for f in builder.findings:
                    fh_find.write(json.dumps({"note_id": note_id, "patient_id": pid,
                                              **f}) + "\n")
                counts["notes"] += 1
                counts["phi_spans"] += len(builder.phi)
                counts["findings"] += len(builder.findings)

            # ---- truth
            _write_truth(world, p, n_pass, model.target_size_mb, w_truth, w_oracle)

    suffix = ".bcf" if fmt == "bcf" else ".vcf.gz"
    if multi_sample:
        parts = [parts_dir / f"PT{i + 1:06d}.vcf.gz" for i in in_house]
        _merge_all(parts, dirs["vcf"] / f"cohort{suffix}", fmt, parts_dir)
    shutil.rmtree(parts_dir, ignore_errors=True)

    shares = {k: round(v / n, 4) for k, v in sorted(realised.items())}
    (dirs["truth"] / "params.json").write_text(
        json.dumps(_params(world, seed, int(patients), fmt, multi_sample, shares), indent=2)
        + "\n")
    (dirs["truth"] / "README.md").write_text(TRUTH_README)

    files = sorted(str(f.relative_to(out)) for d in dirs.values() for f in d.iterdir()
                   if f.is_file() and not f.name.startswith(("PT",)))
    return {
        "out": str(out),
        "patients": n,
        "seed": seed,
        "format": fmt,
        "multi_sample": multi_sample,
        "scenario": scenario,
        "realised": shares,
        "vcf_files": (1 if multi_sample else len(in_house)),
        "vcf_extension": ext,
        "workers": workers,
        "variants": counts["variants"],
        "notes": counts["notes"],
        "phi_spans": counts["phi_spans"],
        "findings": counts["findings"],
        "fhir_resources": {t: counts[f"fhir_{t}"] for t in FHIR_TYPES},
        "censoring_rate": round(1 - events / n, 4),
        "cancer_types": dict(sorted(by_type.items())),
        "first_line": dict(sorted(first_lines.items())),
        "files": files,
    }


def _write_truth(world: World, p: Patient, n_pass: int, target_mb: float, w_truth,
                 w_oracle) -> None:
    soc = world.standard_of_care(p.cancer_type)
    ranked = sorted(p.candidates, key=lambda a: (-p.rmst[a], a))
    best_overlap = next((a for a in ranked if p.overlap[a]), soc)
    concept = {k: d["concept"] for k, d in world.drivers.items()}
    if p.second_line:
        ttnt, ttnt_event = p.second_line_start, 1
    else:
        ttnt, ttnt_event = p.os_months, p.os_event
    w_truth.writerow((
        p.patient_id, p.cancer_type, p.stage, p.sex, p.age, _iso(p.diagnosis_date),
        _iso(p.index_date), p.ecog, p.smoking, p.pack_years, ";".join(p.comorbidities),
        p.charlson, ";".join(sorted(p.flags)),
        ";".join(s for s, v in p.metastases.items() if v),
        ";".join(concept[d] for d in p.drivers), ";".join(concept[d] for d in p.vcf_drivers),
        concept[p.outside_lab_driver] if p.outside_lab_driver else "", _f(p.tmb, 3), n_pass,
        _f(n_pass / target_mb, 3), "" if p.pdl1_tps is None else p.pdl1_tps,
        "" if p.er_positive is None else ("positive" if p.er_positive else "negative"),
        "" if p.msi_h is None else ("MSI-H" if p.msi_h else "MSS"), int(p.erbb2_amp),
        p.first_line, _f(p.choice_probabilities[p.first_line], 4), p.second_line or "",
        _f(p.second_line_start, 4), _f(p.lp_prognostic), _f(p.event_time, 4),
        _f(p.censor_time, 4), "" if p.os_event else p.censor_reason, _f(p.os_months, 4),
        p.os_event, _f(ttnt, 4),
        ttnt_event, _iso(p.death_date), _iso(p.last_followup_date),
        _f(p.rmst[p.first_line], 4), ranked[0], _f(p.rmst[ranked[0]], 4), _f(p.frailty, 4),
        p.clinic, int(p.ngs_tested), int(p.sequenced_in_house), int(p.ecog_recorded),
        int(p.off_guideline), int(p.overlap[ranked[0]]), best_overlap))
    for a in p.candidates:
        w_oracle.writerow((
            p.patient_id, p.cancer_type, a, int(a == soc), int(a == p.first_line),
            _f(p.choice_probabilities[a], 4), _f(p.hr[a] / p.hr[soc], 4), _f(p.lp[a]),
            _f(p.shape, 4),
            _f(p.scale, 4), _f(p.rmst[a], 4), _f(p.surv12[a], 4), _f(p.surv24[a], 4),
            ranked.index(a) + 1, _f(p.rmst[a] - p.rmst[soc], 4), int(p.overlap[a])))

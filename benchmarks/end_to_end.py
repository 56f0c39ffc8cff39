"""End-to-end oracle benchmark: raw files through every stage, rankings scored against truth.

For each scenario, cohort size and seed:

1. ``oncorank synth --scenario S`` writes a cohort; its ``truth/`` folder is moved out of the
   raw inputs, so no stage can see it;
2. ``oncorank run`` runs every stage but ``report`` (ingestion, de-identification, NLP,
   comorbidities, features, training, scoring) in a child process; wall time per stage is
   read from its output, peak memory is the child process tree's largest RSS;
3. ``gold.treatment_rankings`` is scored against ``truth/treatment_oracle.csv``
   (:mod:`pipelines.synth.oracle`): normalised policy value of the rank-1 rule (0 = standard
   of care for all, 1 = oracle, with a patient-bootstrap interval), mean regret, coverage of
   the reported intervals, share of rank-1 options without true overlap, calibration of
   predicted RMST under the received regimen;
4. unless ``--no-true-features``: the champion's model family is refitted in-process (no
   bootstrap, the train stage's settings and 75% split: on seed 0 this is the champion's own
   point fit) on the pipeline's ``gold.patient_features`` and on the same rows with the
   generator's true values, on three seeds of the split and on all rows; then on seed 0 with
   the truth put back one feature group at a time and all but one
   (:data:`pipelines.synth.true_features.GROUPS`): the value a group recovers is what the
   pipeline loses on it.

Usage::

    .venv/bin/python benchmarks/end_to_end.py --patients 2000 --scenario all --seeds 1 \\
        --json /tmp/e2e.json

Nothing is asserted here: the figures go to stdout, ``--json`` and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("ingest-clinical", "ingest-variants", "ingest-notes", "deidentify-notes",
          "extract-note-findings", "comorbidities", "build-features", "train", "score")


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants (kB), from /proc."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run_pipeline(work: Path, timeout: int, stages: tuple[str, ...] = STAGES) -> dict:
    """``oncorank run`` on ``work/oncorank.toml`` in a child process: per-stage seconds and
    the peak RSS of the process tree."""
    cmd = [str(Path(sys.executable).parent / "oncorank"), "run", "--config",
           str(work / "oncorank.toml")]
    for s in stages:
        cmd += ["--only", s]
    peak = [0]
    with open(work / "run.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        t0 = time.perf_counter()
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            done.set()
            t.join()
        wall = time.perf_counter() - t0
    text = (work / "run.log").read_text()
    if rc != 0:
        raise RuntimeError(f"oncorank run failed (rc {rc}); see {work / 'run.log'}:\n"
                           + text[-2000:])
    stages = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"\] ([a-z-]+): .*\(([\d.]+)s\)", text)}
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak[0] / 1024, 1),
            "stage_s": stages}


def _delta(path: Path) -> pd.DataFrame:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pandas()


def champion_family(lakehouse: Path) -> str:
    m = _delta(lakehouse / "gold" / "model_metrics")
    chosen = m[m["selected"] & m["promoted"]].sort_values("trained_at")
    return str(chosen["family"].iloc[-1]) if len(chosen) else "coxph"


def stage_split(rows: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Indices of the training patients, split as the train stage splits them (75%,
    stratified by event, its default seed), so a refit is the champion's point fit."""
    from sklearn.model_selection import train_test_split

    from pipelines.models.stage import DEFAULTS

    idx, _ = train_test_split(np.arange(len(rows)), test_size=DEFAULTS["validation_fraction"],
                              random_state=seed, stratify=rows["os_event"].astype(int))
    return idx


def refit_value(features: pd.DataFrame, oracle: pd.DataFrame, family: str, horizon: float,
                train_idx: np.ndarray | None = None) -> float:
    """Fit ``family`` (S-learner, the train stage's feature and modifier rules, no bootstrap)
    on ``train_idx`` (default: every row) and score its rank-1 rule on every patient, as the
    score stage does: the normalised policy value."""
    from pipelines.models.design import make_target
    from pipelines.models.stage import DEFAULTS, effect_modifiers
    from pipelines.models.treatment import TreatmentResponseModel, infer_feature_columns
    from pipelines.synth.oracle import score

    cols = infer_feature_columns(features, exclude=DEFAULTS["exclude_features"])
    rows = features if train_idx is None else features.iloc[train_idx].reset_index(drop=True)
    model = TreatmentResponseModel(
        family=family, learner="s", base_params=dict(DEFAULTS["base_params"].get(family, {})),
        feature_cols=cols, modifiers=effect_modifiers(cols), n_bootstrap=0,
        horizon_months=horizon, random_state=DEFAULTS["seed"],
    ).fit(rows, make_target(rows["os_event"].astype(int), rows["os_months"].astype(float)))
    pred = model.predict_treatments(features)
    pred["rank"] = pred.groupby("patient_key")["predicted_rmst"].rank(
        ascending=False, method="first")
    return score(pred, oracle)["normalised_policy_value"]


def attribution(lakehouse: Path, oracle: pd.DataFrame, patients: pd.DataFrame,
                horizon: float, splits: int = 3) -> dict:
    """Normalised policy value of the champion's family refitted on the pipeline's features
    and on the same rows with the truth put back (all groups; each group alone; all but one),
    on the train stage's split (seed 0: the champion's own point fit) and ``splits - 1``
    other seeds of it, and on every row."""
    from pipelines.models.stage import training_rows
    from pipelines.synth.true_features import GROUPS, truth_frame, with_truth

    family = champion_family(lakehouse)
    truth = truth_frame(patients)
    gold = training_rows(_delta(lakehouse / "gold" / "patient_features"))
    gold = gold[gold["patient_key"].isin(truth["patient_key"])].reset_index(drop=True)
    every = with_truth(gold, truth, GROUPS)
    t0 = time.perf_counter()
    out: dict = {"family": family, "splits": []}
    for seed in range(splits):
        idx = stage_split(gold, seed)
        out["splits"].append({"seed": seed,
                              "pipeline": refit_value(gold, oracle, family, horizon, idx),
                              "true": refit_value(every, oracle, family, horizon, idx)})
    out["all_rows"] = {"pipeline": refit_value(gold, oracle, family, horizon),
                       "true": refit_value(every, oracle, family, horizon)}
    idx = stage_split(gold, 0)
    out["groups"] = {
        g: {"pipeline_plus_true_group": refit_value(with_truth(gold, truth, [g]), oracle,
                                                    family, horizon, idx),
            "true_minus_group": refit_value(with_truth(gold, truth,
                                                       [x for x in GROUPS if x != g]),
                                            oracle, family, horizon, idx)}
        for g in GROUPS}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def one(scenario: str, patients: int, seed: int, root: Path, true_features: bool,
        timeout: int, from_stage: str | None = None, learner: str | None = None) -> dict:
    from pipelines.demo import write_demo_config
    from pipelines.lakehouse.settings import Settings
    from pipelines.synth import generate_cohort
    from pipelines.synth.oracle import load_truth, score

    work = root / f"{scenario}-n{patients}-s{seed}"
    if from_stage:  # re-run the later stages on a kept cohort (--work of an earlier run)
        if not (work / "oncorank.toml").is_file():
            raise SystemExit(f"--from-stage needs a kept run in {work} (run once with --work).")
        summary = json.loads((work / "truth" / "summary.json").read_text()) if (
            work / "truth" / "summary.json").is_file() else {"realised": {}}
        synth_s, stages = 0.0, STAGES[STAGES.index(from_stage):]
        text = (work / "oncorank.toml").read_text().split("\n[models]\n")[0]
        # retrain even though the features are unchanged
        (work / "oncorank.toml").write_text(text + "\n[models]\nforce = true\n")
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        summary = generate_cohort(work / "raw", patients=patients, seed=seed, scenario=scenario)
        synth_s = time.perf_counter() - t0
        shutil.move(str(work / "raw" / "truth"), str(work / "truth"))
        (work / "truth" / "summary.json").write_text(json.dumps(summary, default=str))
        stages = STAGES
    params = json.loads((work / "truth" / "params.json").read_text())
    # The demo's layout (raw/vcf, raw/csv, raw/notes) and config, with an empty FHIR input.
    if not from_stage:
        write_demo_config(work, "2026-01-15", params["horizon_months"])
    if learner:
        text = (work / "oncorank.toml").read_text()
        if "\n[models]\n" not in text:
            text += "\n[models]\n"
        (work / "oncorank.toml").write_text(text + f'learner = "{learner}"\n')
    run = run_pipeline(work, timeout, stages)
    settings = Settings.load(work / "oncorank.toml")
    oracle, truth_patients, _ = load_truth(work, settings.pseudonym_key)
    rankings = _delta(settings.lakehouse / "gold" / "treatment_rankings")
    # one board: the configured board date (a kept lakehouse may hold other boards' rows)
    rankings = rankings[pd.to_datetime(rankings["board_date"]).dt.date.astype(str)
                        == str(settings.board_date)]
    result = {"scenario": scenario, "patients": patients, "seed": seed,
              "learner": learner or "default", "from_stage": from_stage,
              "realised": summary["realised"], "synth_s": round(synth_s, 1), **run,
              **score(rankings, oracle, n_boot=500, seed=seed)}
    if true_features:
        result["attribution"] = attribution(settings.lakehouse, oracle, truth_patients,
                                            float(params["horizon_months"]))
    return result


def main(argv: list[str] | None = None) -> None:
    from pipelines.synth.world import scenario_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="+", default=[2000])
    ap.add_argument("--scenario", nargs="+", default=["default"],
                    help=f"scenarios, or 'all' ({', '.join(scenario_names())})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--json", type=Path, help="write every result here (a JSON list)")
    ap.add_argument("--work", type=Path, help="keep the cohorts and lakehouses here")
    ap.add_argument("--no-true-features", action="store_true",
                    help="skip the refits on true features and the attribution")
    ap.add_argument("--timeout", type=int, default=6 * 3600, help="seconds per pipeline run")
    ap.add_argument("--learner", choices=["s", "t", "dr"],
                    help="[models] learner of the train stage (default: the stage's)")
    ap.add_argument("--from-stage", choices=STAGES,
                    help="re-run from this stage on the cohorts kept in --work (no new synth)")
    args = ap.parse_args(argv)
    scenarios = scenario_names() if args.scenario == ["all"] else args.scenario
    os.environ.setdefault("ONCORANK_XGB_THREADS", str(os.cpu_count() or 1))
    root = args.work or Path(tempfile.mkdtemp(prefix="oncorank-e2e-"))
    results = []
    try:
        for n in args.patients:
            for scenario in scenarios:
                for seed in args.seeds:
                    r = one(scenario, n, seed, root, not args.no_true_features, args.timeout,
                            args.from_stage, args.learner)
                    results.append(r)
                    print(json.dumps(r), flush=True)
                    if args.json:
                        args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("| scenario | patients | seed | norm. policy value (95% CI) | vs random | regret mo "
          "| rank-1 w/o overlap | rank-1 flagged | patients not ranked | RMST coverage | "
          "difference coverage | calib. slope | true-feature value | wall s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ci = r.get("normalised_policy_value_ci") or ["", ""]
        att = r.get("attribution", {})
        print(f"| {r['scenario']} | {r['patients']} | {r['seed']} | "
              f"{r['normalised_policy_value']} ({ci[0]}–{ci[1]}) | {r['normalised_vs_random']} | "
              f"{r['mean_regret_months']} | {r['rank1_without_overlap']} | "
              f"{r.get('rank1_flagged_poor_overlap')} | {r.get('patients_abstained')} | "
              f"{r['coverage_rmst']} | {r.get('coverage_difference')} | "
              f"{r['calibration_received'].get('slope')} | "
              f"{(att.get('splits') or [{}])[0].get('true', '')} | "
              f"{r['wall_s']} | {r['peak_rss_mb'] / 1024:.1f} |")


if __name__ == "__main__":
    main()

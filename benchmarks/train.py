"""Benchmark: train + evaluate survival models at 1k / 10k / 100k patients, side by side.

For every cohort size and model this measures, in a fresh child process (so peak memory is
that model's own): wall time to fit, wall time to evaluate (predict the test risk and survival
curves, Harrell's C), peak resident memory of the process tree (the JVM included for
xgboost.spark), and the test C-index.

Models (all on the same design: clinical features + treatment one-hot + treatment × biomarker
interactions, as the default S-learner sees it; 80/20 split):

* ``coxph``      scikit-survival CoxPHSurvivalAnalysis (ridge 1e-2) + Breslow curves
* ``rsf``        scikit-survival RandomSurvivalForest, 100 trees, min leaf 15, 2 jobs
* ``xgb_cox``    XGBoost survival:cox, hist, 300 rounds, 2 threads + Breslow curves
* ``xgb_aft``    XGBoost survival:aft (normal), hist, 300 rounds, 2 threads
* ``xgb_spark``  xgboost.spark SparkXGBRegressor survival:cox on local[2], 2 workers

Usage::

    python benchmarks/train.py                       # 1k, 10k, 100k on CPU
    python benchmarks/train.py --sizes 1000 10000 --models coxph xgb_aft
    python benchmarks/train.py --device cuda         # the GPU route (XGBoost models on CUDA)

RSF is skipped above ``--rsf-max-n`` (default 10000): scikit-survival's forest stores every
leaf's survival curve and grows superlinearly (tens of minutes at 50k rows on 2 cores, as
reported upstream); the skip is printed in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS = ("coxph", "rsf", "xgb_cox", "xgb_aft", "xgb_spark")


# ------------------------------------------------------------------------------ child side
def _design(n: int, seed: int):
    import numpy as np

    from pipelines.models.design import FeatureEncoder, make_target
    from pipelines.models.simulate import TREATMENTS, simulate_cohort

    df, _, _ = simulate_cohort(n, seed=seed, with_oracle=False)
    cols = ["sex", "age_at_diagnosis", "stage", "ecog", "charlson_index", "egfr_mut",
            "kras_g12c", "pdl1_tps", "pdl1_high", "tmb"]
    X = FeatureEncoder().fit(df[cols]).transform(df[cols])
    treat = df["treatment"].to_numpy()
    dummies = np.column_stack([(treat == t).astype(float) for t in TREATMENTS[1:]])
    mods = df[["egfr_mut", "kras_g12c", "pdl1_high"]].to_numpy(float)
    inter = np.column_stack([dummies[:, i] * mods[:, j] for i in range(dummies.shape[1])
                             for j in range(mods.shape[1])])
    X = np.hstack([X, dummies, inter])
    y = make_target(df["os_event"], df["os_months"])
    rng = np.random.default_rng(seed)
    test = rng.random(n) < 0.2
    return X[~test], y[~test], X[test], y[test]


def child(model: str, n: int, seed: int, device: str, threads: int = 2) -> dict:
    import numpy as np

    from pipelines.models.estimators import (
        CoxPH,
        RandomSurvivalForest,
        SparkXGBSurvival,
        XGBSurvival,
    )

    X_tr, y_tr, X_te, y_te = _design(n, seed)
    extra = {}
    if model == "coxph":
        est = CoxPH(alpha=1e-2)
    elif model == "rsf":
        est = RandomSurvivalForest(n_estimators=100, min_samples_leaf=15, n_jobs=threads,
                                   random_state=seed)
    elif model in ("xgb_cox", "xgb_aft"):
        est = XGBSurvival(objective=f"survival:{model[4:]}", n_estimators=300, max_depth=3,
                          learning_rate=0.05, n_jobs=threads, device=device, random_state=seed)
    elif model == "xgb_spark":
        from pipelines.lakehouse.session import spark_session
        from pipelines.lakehouse.settings import Settings

        t0 = time.perf_counter()
        # the product's session factory (Java, worker Python and local IP set the same way)
        spark_session(Settings(lakehouse=Path("/tmp/oncorank-bench-lakehouse"),
                               spark_master="local[2]", driver_memory="6g",
                               shuffle_partitions=2), app_name="bench-train")
        extra["spark_start_s"] = time.perf_counter() - t0
        est = SparkXGBSurvival(n_estimators=300, max_depth=3, learning_rate=0.05,
                               num_workers=2, device=device, random_state=seed)
    else:
        raise SystemExit(f"unknown model {model}")
    t0 = time.perf_counter()
    est.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = est.score(X_te, y_te)
    est.predict_survival(X_te, np.linspace(0, 24, 49))
    eval_s = time.perf_counter() - t0
    return {"model": model, "n": n, "fit_s": fit_s, "eval_s": eval_s, "c_index": c,
            "n_train": len(y_tr), "n_features": X_tr.shape[1],
            "device": getattr(est, "device_", "cpu"), **extra}


# ------------------------------------------------------------------------------ parent side
def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (kB), from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            status = (d / "status").read_text()
        except OSError:
            continue
        pid = int(d.name)
        for line in status.splitlines():
            if line.startswith("PPid:"):
                parents[pid] = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parents.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    return sum(rss.get(p, 0) for p in tree)


def run_one(model: str, n: int, seed: int, device: str, timeout: int, threads: int = 2) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, __file__, "--child", model, str(n), str(seed), device, str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            stop.wait(0.25)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        stop.set()
        return {"model": model, "n": n, "error": f"timed out after {timeout}s",
                "peak_mb": peak[0] / 1024, "wall_s": time.perf_counter() - t0}
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"model": model, "n": n, "error": (err.strip().splitlines() or ["?"])[-1][:200],
                "peak_mb": peak[0] / 1024, "wall_s": wall}
    res = json.loads(lines[-1])
    res.update(peak_mb=peak[0] / 1024, wall_s=wall)
    return res


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]
    return f"{platform.machine()}, {cpus} cores, {mem}, load average {load:.1f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="XGBoost device (cuda = the GPU route; needs an NVIDIA GPU)")
    p.add_argument("--rsf-max-n", type=int, default=10000)
    p.add_argument("--threads", type=int, default=2, help="threads for XGBoost and the forest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per model and size")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    ns = p.parse_args(argv)
    omp = os.environ.get("OMP_WAIT_POLICY", "PASSIVE (set by pipelines.models)")
    print(f"# benchmarks/train.py on {machine()}, device={ns.device}, threads={ns.threads}, "
          f"OMP_WAIT_POLICY={omp}", flush=True)
    results = []
    for n in ns.sizes:
        for model in ns.models:
            if model == "rsf" and n > ns.rsf_max_n:
                results.append({"model": model, "n": n,
                                "error": f"skipped: n > --rsf-max-n {ns.rsf_max_n}"})
                continue
            r = run_one(model, n, ns.seed, ns.device, ns.timeout, ns.threads)
            results.append(r)
            print(json.dumps(r), flush=True)
    print()
    print("| patients | model | fit s | evaluate s | peak MB | test C-index | note |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['n']:,} | {r['model']} | | | | | {r['error']} |")
            continue
        note = f"Spark start {r['spark_start_s']:.1f}s" if "spark_start_s" in r else ""
        print(f"| {r['n']:,} | {r['model']} | {r['fit_s']:.2f} | {r['eval_s']:.2f} | "
              f"{r['peak_mb']:.0f} | {r['c_index']:.4f} | {note} |")
    print(f"\n# finished; {machine()}")
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, n, seed, device = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps(child(model, n, seed, device, int(sys.argv[6]))), flush=True)
    else:
        main()

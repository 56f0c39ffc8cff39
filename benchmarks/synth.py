"""Benchmark: time and peak memory of ``oncorank synth`` for 1k and 10k patients.

Each run happens in a fresh Python process so that its peak RSS is its own. Reported per run:
wall time, CPU time (the generator's process plus its worker processes), peak RSS of the
main process and of the largest worker, records written, and output size. The peer is the
same generator with one process (``workers=1``) on the 1k cohort, measured in the same run,
so the ratio shows what the worker processes buy on this machine.

Usage::

    .venv/bin/python benchmarks/synth.py                  # 1k and 10k (default workers)
    .venv/bin/python benchmarks/synth.py --sizes 1000 --keep /tmp/cohorts

The machine is shared: the load average before each run is printed next to it, and CPU
time is the number to compare across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from pipelines.synth import generate_cohort
out, n, workers = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0, c0 = time.perf_counter(), time.process_time()
s = generate_cohort(out, patients=n, seed=1, workers=None if workers == "auto" else int(workers))
wall = time.perf_counter() - t0
self_ru = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "patients": n, "workers": s["workers"], "wall_s": round(wall, 1),
    "cpu_s": round(self_ru.ru_utime + self_ru.ru_stime + kids.ru_utime + kids.ru_stime, 1),
    "main_peak_rss_mb": round(self_ru.ru_maxrss / 1024, 1),
    "worker_peak_rss_mb": round(kids.ru_maxrss / 1024, 1),
    "variants": s["variants"], "notes": s["notes"],
}))
"""


def _size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def run_once(out: Path, patients: int, workers: str) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), str(patients), workers],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_avg_1m_before"] = round(load, 1)
    result["output_mb"] = _size_mb(out)
    result["records_per_cpu_s"] = int(result["variants"] / max(result["cpu_s"], 1e-9))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--keep", type=Path, help="keep the cohorts under this folder")
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="synth-bench-"))
    rows = []
    try:
        for n in args.sizes:
            rows.append({"run": f"{n} patients, default workers",
                         **run_once(root / f"n{n}", n, "auto")})
            print(json.dumps(rows[-1]), flush=True)
        peer_n = min(args.sizes)
        rows.append({"run": f"{peer_n} patients, workers=1 (peer)",
                     **run_once(root / f"n{peer_n}-w1", peer_n, "1")})
        print(json.dumps(rows[-1]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    fast = next(r for r in rows if r["patients"] == peer_n and r["workers"] > 1) \
        if any(r["patients"] == peer_n and r["workers"] > 1 for r in rows) else None
    print()
    print("| run | wall s | CPU s | main peak RSS MB | worker peak RSS MB | VCF records | "
          "notes | output MB | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['wall_s']} | {r['cpu_s']} | {r['main_peak_rss_mb']} | "
              f"{r['worker_peak_rss_mb']} | {r['variants']:,} | {r['notes']:,} | "
              f"{r['output_mb']} | {r['load_avg_1m_before']} |")
    if fast:
        peer = rows[-1]
        print(f"\nworkers={fast['workers']} vs workers=1 on {peer_n} patients: "
              f"{peer['wall_s'] / fast['wall_s']:.2f}x wall-clock speed-up")


if __name__ == "__main__":
    main()

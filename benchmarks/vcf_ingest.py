"""VCF ingestion throughput: bcftools (native floor) vs a plain pysam loop vs our Spark stage.

Generates (or takes) a bgzipped, tabix-indexed single-sample somatic VCF shaped like the
synthetic cohort's (GT:AD:DP:AF, a 12-field VEP CSQ, PASS/LowQual/strand_bias, ~1%
multi-allelic), then runs, each in a fresh process on the same file:

* ``bcftools``     ``bcftools view -Ou FILE > /dev/null`` (decode every record; 1 thread);
* ``bcftools-text`` ``bcftools view FILE > /dev/null``, the literal command: decode, then
  format every record back to VCF text (slower than ``-Ou``, which is the floor we quote);
* ``pysam-min``    ``for rec in VariantFile(FILE): rec.pos`` (htslib parse + one attribute);
* ``pysam-full``   the same loop reading every field bronze stores (INFO and FORMAT dicts);
* ``spark-bronze`` our reader + typing + Delta write of ``bronze.variants_raw`` (the
  ingestion proper, through the data-quality gate), on ``local[N]``;
* ``spark-bronze-nogate`` the same without the Great Expectations suite (its share);
* ``spark-bronze-sparkwriter`` the same through Spark's Delta writer instead of the read
  tasks writing Parquet themselves (``genomics.direct_write = false``, catalog tables);
* ``spark-stage``  the whole ``ingest-variants`` stage (bronze, silver, biomarkers,
  actionability) on ``local[N]``.

Spark engines first ingest a small file (20,000 records) in the same JVM and lakehouse — the
first job of a JVM creates the tables and compiles the code paths, a fixed cost reported
apart (``first_job_seconds_20k_records``) — then the measured file, as a nightly run that
ingests into an existing lakehouse does. Every engine runs pinned to its cores
(``sched_setaffinity``), the JVM and Python workers included.

``--files K`` spreads each size over K generated files in one folder — a cohort of
per-patient VCFs, as a nightly run meets it — and every engine reads them all (bcftools once
per file, from a shell loop; the pysam loops and Spark in one process).

``--repeats N`` runs N rounds, each engine once per round in the order above (a virtual
machine drifts in speed; interleaving moves every engine alike), and the output ends with a
``summary``: per file, each engine's median, min and max seconds over the rounds, and the
goal ratios computed from the medians.

Peak memory is the largest summed RSS of the measured process and all its descendants (the
JVM and Python workers for Spark), sampled every 0.2 s from /proc. Spark timings exclude
JVM start-up; records/s is records of the file / wall seconds of its ingestion.

    .venv/bin/python benchmarks/vcf_ingest.py --records 1000000,5000000 --cores 1,2 \
        --driver-memory 2g --engines bcftools,pysam-min,pysam-full,spark-bronze,\
spark-bronze-nogate,spark-bronze-sparkwriter
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTIGS = [(f"chr{i}", n) for i, n in enumerate(
    [248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
     138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
     83257441, 80373285, 58617616, 64444167, 46709983, 50818468], start=1)]
CSQ = ("Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|HGVSc|HGVSp|"
       "CANONICAL")
CONSEQUENCES = [("missense_variant", "MODERATE", 0.66), ("synonymous_variant", "LOW", 0.24),
                ("stop_gained", "HIGH", 0.05), ("splice_region_variant", "LOW", 0.05)]
GENES = ["APC", "ATM", "CDH1", "FBXW7", "PTEN", "RB1", "SMAD4", "TTN", "MUC16", "LRP1B"]
AMINO = ["Ala", "Arg", "Asn", "Asp", "Cys", "Gln", "Glu", "Gly", "His", "Ile", "Leu", "Lys"]


# ---------------------------------------------------------------------------- the file
def generate(path: Path, records: int, seed: int = 1) -> Path:
    """Write ``path`` (.vcf.gz + .tbi) with ``records`` data lines."""
    import pysam

    rnd = random.Random(seed)
    total = sum(n for _, n in CONTIGS)
    plain = path.with_suffix("")  # .vcf
    weights = [c[2] for c in CONSEQUENCES]
    with open(plain, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##source=oncorank-benchmark\n")
        for c, n in CONTIGS:
            fh.write(f"##contig=<ID={c},length={n}>\n")
        fh.write('##FILTER=<ID=PASS,Description="All filters passed">\n'
                 '##FILTER=<ID=LowQual,Description="Low quality">\n'
                 '##FILTER=<ID=strand_bias,Description="Strand bias">\n'
                 '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic">\n'
                 f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations '
                 f'from Ensembl VEP. Format: {CSQ}">\n'
                 '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                 '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
                 '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
                 '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">\n'
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tTUMOUR\n")
        done = 0
        for contig, length in CONTIGS:
            # records spread over contigs by length; cumulative rounding keeps the total exact
            done_after = records * (sum(n for c, n in CONTIGS[:CONTIGS.index((contig, length))])
                                    + length) // total
            k, done = done_after - done, done_after
            positions = sorted(rnd.sample(range(1, length), k))
            buf = []
            for p in positions:
                ref = rnd.choice("ACGT")
                alts = [rnd.choice([b for b in "ACGT" if b != ref])]
                if rnd.random() < 0.01:
                    alts.append(rnd.choice([b for b in "ACGT" if b != ref and b != alts[0]]))
                dp = rnd.randint(20, 300)
                reads = [max(2, int(dp * rnd.uniform(0.05, 0.5))) for _ in alts]
                ad = ",".join(map(str, [max(0, dp - sum(reads)), *reads]))
                af = ",".join(f"{r / dp:.3f}" for r in reads)
                gt = "0/1" if len(alts) == 1 else "1/2"
                u = rnd.random()
                filt = "PASS" if u < 0.9 else ("LowQual" if u < 0.97 else "strand_bias")
                gene = rnd.choice(GENES)
                entries = []
                for a in alts:
                    cons, impact, _ = rnd.choices(CONSEQUENCES, weights)[0]
                    aa = rnd.randint(1, 3000)
                    hgvsp = f"p.{rnd.choice(AMINO)}{aa}{rnd.choice(AMINO)}" \
                        if cons == "missense_variant" else ""
                    entries.append(f"{a}|{cons}|{impact}|{gene}|ENSG0000{GENES.index(gene)}|"
                                   f"Transcript|ENST0000{GENES.index(gene)}|protein_coding|"
                                   f"{rnd.randint(1, 30)}/30|c.{aa * 3}{ref}>{a}|{hgvsp}|YES")
                info = ("SOMATIC;" if filt == "PASS" else "") + "CSQ=" + ",".join(entries)
                buf.append(f"{contig}\t{p}\t.\t{ref}\t{','.join(alts)}\t{rnd.randint(10, 900)}"
                           f"\t{filt}\t{info}\tGT:AD:DP:AF\t{gt}:{ad}:{dp}:{af}\n")
                if len(buf) >= 50_000:
                    fh.write("".join(buf))
                    buf = []
            fh.write("".join(buf))
    pysam.tabix_index(str(plain), preset="vcf", force=True)  # bgzip + .tbi, removes plain
    return Path(str(plain) + ".gz")


# ---------------------------------------------------------------------------- measuring
def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * page
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str], env: dict | None = None, stdout=None, cores: int = 1
                 ) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS, stdout) of a command pinned to ``cores`` CPUs.

    Pinning matters for "per core" figures: unpinned, ``local[1]`` Spark still spreads its
    JVM threads and the Python worker over every CPU of the machine.
    """
    cpus = set(sorted(os.sched_getaffinity(0))[:cores])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=stdout is None,
                            preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    peak = 0
    done = threading.Event()

    def poll():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.2)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {(err or '')[-2000:]}")
    return wall, peak, out or ""


PYSAM_CHILD = r"""
import glob, json, os, sys, time, pysam
path, mode = sys.argv[1], sys.argv[2]
paths = sorted(glob.glob(os.path.join(path, "*.vcf.gz"))) if os.path.isdir(path) else [path]
t0 = time.perf_counter(); n = 0
for p in paths:
    for rec in pysam.VariantFile(p):
        n += 1
        if mode == "min":
            rec.pos
        else:
            (rec.chrom, rec.pos, rec.id, rec.ref, rec.alts, rec.qual, list(rec.filter.keys()),
             dict(rec.info.items()), [dict(s.items()) for s in rec.samples.values()])
print(json.dumps({"records": n, "seconds": time.perf_counter() - t0}))
"""

SPARK_CHILD = r"""
import json, sys, time, shutil
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from pipelines.lakehouse.settings import Inputs, Settings
from pipelines.lakehouse.session import spark_session
from pipelines.lakehouse.audit import job_run
from pipelines.genomics import stage
from pipelines.genomics.config import GenomicsConfig
from pipelines.genomics.sources import discover, read_source
path, master, what, _, lakehouse, memory, warm_path = sys.argv[1:8]


def ingest(vcf):
    s = Settings(lakehouse=Path(lakehouse), spark_master=master, driver_memory=memory,
                 shuffle_partitions=int(master[6:-1]) * 2, inputs=Inputs(vcf=(vcf,)))
    t0 = time.perf_counter()
    if what == "stage":
        run = stage.ingest_variants(spark, s)
    else:
        with job_run(spark, s, "benchmark-bronze") as run:
            stage.ingest_bronze(run, [read_source(p) for p in discover([vcf])],
                                GenomicsConfig(direct_write=what != "bronze-sparkwriter"),
                                gate=what != "bronze-nogate")
    return run, time.perf_counter() - t0


spark = spark_session(Settings(lakehouse=Path(lakehouse), spark_master=master,
                               driver_memory=memory))
spark.range(1).count()
_, first = ingest(warm_path)  # first job of the JVM: tables created, code paths compiled
run, seconds = ingest(path)
print(json.dumps({"records_in": run.rows_in, "rows_written": run.rows_written,
                  "seconds": seconds, "first_job_seconds": first}))
"""


def measure(engine: str, path: Path, records: int, cores: int, work: Path,
            memory: str) -> dict:
    py = sys.executable
    if engine in ("bcftools", "bcftools-text"):
        fmt = ["-Ou"] if engine == "bcftools" else []
        with open(os.devnull, "wb") as null:
            if path.is_dir():  # a cohort: one bcftools per file, as a shell loop runs it
                loop = f'for f in "$0"/*.vcf.gz; do bcftools view {" ".join(fmt)} "$f"; done'
                wall, peak, _ = run_measured(["sh", "-c", loop, str(path)], stdout=null)
            else:
                wall, peak, _ = run_measured(["bcftools", "view", *fmt, str(path)],
                                             stdout=null)
        seconds = wall
    elif engine in ("pysam-min", "pysam-full"):
        wall, peak, out = run_measured([py, "-c", PYSAM_CHILD, str(path), engine[6:]])
        seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
    else:
        lake = work / f"lake-{engine}-{cores}"
        shutil.rmtree(lake, ignore_errors=True)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        warm = work / "warm_20000.vcf.gz"
        if not warm.exists():
            generate(warm, 20_000, seed=2)
        wall, peak, out = run_measured(
            [py, "-c", SPARK_CHILD, str(path), f"local[{cores}]", engine[6:], str(REPO),
             str(lake), memory, str(warm)], env=env, cores=cores)
        res = json.loads(out.strip().splitlines()[-1])
        seconds = res["seconds"]
        first_job = round(res["first_job_seconds"], 2)
        assert res["records_in"] == records, res
        shutil.rmtree(lake, ignore_errors=True)
    out = {"engine": engine, "cores": cores if engine.startswith("spark") else 1,
           "records": records, "seconds": round(seconds, 2),
           "records_per_s": round(records / seconds), "peak_rss_mb": round(peak / 2**20)}
    if engine.startswith("spark"):
        out["first_job_seconds_20k_records"] = first_job
    return out


def _size(path: Path) -> int:
    """Bytes of a file, or of a cohort folder's VCFs."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.glob("*.vcf.gz"))
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default="5000000",
                    help="records of the generated file(s), comma-separated: memory flatness "
                         "is read across sizes")
    ap.add_argument("--files", type=int, default=1,
                    help="split each --records size over this many files (a cohort of "
                         "per-patient VCFs, one folder) instead of one file")
    ap.add_argument("--vcf", help="use this bgzipped, indexed VCF instead of generating one")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--engines", default="bcftools,pysam-min,pysam-full,spark-bronze,"
                                         "spark-stage")
    ap.add_argument("--cores", default="1,2", help="Spark local[N] values to run")
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds of every engine (interleaved); the summary gives medians")
    ap.add_argument("--driver-memory", default="4g")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="vcf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Path, int]] = []
    if args.vcf:
        path = Path(args.vcf)
        out = subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True,
                             check=True)
        files.append((path, out.stdout.count(b"\n")))
    else:
        for n in (int(x) for x in str(args.records).split(",")):
            if args.files > 1:
                path = work / f"cohort_{n}_{args.files}"
                if not path.exists():
                    path.mkdir()
                    for i in range(args.files):
                        generate(path / f"PT{i:05d}.vcf.gz", n // args.files, seed=100 + i)
                parts = sorted(path.glob("*.vcf.gz"))
            else:
                path = work / f"bench_{n}.vcf.gz"
                if not path.exists():
                    t0 = time.perf_counter()
                    generate(path, n)
                    print(f"generated {path} in {time.perf_counter() - t0:.0f}s",
                          file=sys.stderr)
                parts = [path]
            records = 0
            for part in parts:  # contigs round n down a little
                out = subprocess.run(["bcftools", "view", "-H", str(part)],
                                     capture_output=True, check=True)
                records += out.stdout.count(b"\n")
            files.append((path, records))
    results = []
    for path, records in files:
        # Rounds interleave the engines, so a machine that drifts in speed during the run
        # (a virtual machine does, by several percent an hour) moves every engine alike.
        for _ in range(args.repeats):
            for engine in args.engines.split(","):
                cores = ([int(c) for c in args.cores.split(",")] if engine.startswith("spark")
                         else [1])
                for c in cores:
                    r = measure(engine, path, records, c, work, args.driver_memory)
                    r["file"] = path.name
                    print(json.dumps(r), flush=True)
                    results.append(r)
    print(json.dumps({"files": [(str(p), _size(p), n) for p, n in files],
                      "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
                      "results": results, "summary": summarise(results)}, indent=1))


def summarise(results: list[dict]) -> dict:
    """Per file: each engine's median seconds over the rounds (with min and max), and the
    ratios the goals are read from, computed from those medians: Spark on one core against
    each bcftools command and the every-field pysam loop, and 1 -> N cores."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["file"] for r in results):
        runs: dict[str, list[dict]] = {}
        for r in results:
            if r["file"] == name:
                runs.setdefault(f"{r['engine']}@{r['cores']}", []).append(r)
        med = {k: statistics.median(r["seconds"] for r in rs) for k, rs in runs.items()}
        table = {k: {"median_s": round(med[k], 2),
                     "min_s": min(r["seconds"] for r in rs),
                     "max_s": max(r["seconds"] for r in rs), "runs": len(rs),
                     "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs)}
                 for k, rs in runs.items()}
        ratios = {}
        one = med.get("spark-bronze@1")
        if one:
            for peer in ("bcftools", "bcftools-text", "pysam-full", "pysam-min"):
                if f"{peer}@1" in med:
                    ratios[f"spark-bronze@1 / {peer}"] = round(one / med[f"{peer}@1"], 2)
            for k in med:
                if k.startswith("spark-bronze@") and k != "spark-bronze@1":
                    ratios[f"speed-up 1 -> {k.split('@')[1]} cores"] = round(one / med[k], 2)
        out[name] = {"engines": table, "ratios": ratios}
    return out


if __name__ == "__main__":
    main()

"""Benchmark: clinical-notes NLP throughput and ConText accuracy, oncorank vs medspaCy.

Run from the repository root (2-core machine; one Spark session per process)::

    .venv/bin/python benchmarks/notes_nlp.py --replicate 4 --peer-python /tmp/medspacy/bin/python

* Throughput: the MTSamples oncology notes (shared/data/notes), replicated, through
  de-identification + finding extraction (Spark NLP + Python ConText), on local[1] and
  local[2] in separate processes; Spark start-up and pipeline fitting are timed apart from
  the steady-state run (a warm-up pass precedes the timed pass).
* Peer: medspaCy 1.3.1 (spaCy tokenizer + simple sentencizer + TargetMatcher with the same
  concept regexes + ConText with its default rules) on the same notes, in its own venv
  (``--peer-python``; medspaCy's pins conflict with ours, so it is not a project dependency).
* Accuracy: negated / historical P, R, F1 on the NegEx dev sentences for oncorank (same code as
  ``oncorank notes context``) and for medspaCy's ConText.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ONCORANK_SHARED_DATA", REPO.parent / "shared" / "data"))
NOTES = SHARED / "notes" / "mtsamples_oncology_notes.jsonl"
NEGEX = SHARED / "negation" / "negex_rsAnnotations-1-120-random.dev.tsv"


def _notes(replicate: int) -> list[str]:
    texts = [json.loads(line)["transcription"] for line in NOTES.read_text().splitlines()]
    return texts * replicate


def run_oncorank(master: str, replicate: int) -> dict:
    sys.path.insert(0, str(REPO))
    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings
    from pipelines.notes.stage import deidentify_frame, findings_frame

    t0 = time.perf_counter()
    spark = spark_session(Settings(lakehouse=Path("/tmp/oncorank-bench/lakehouse"),
                                   spark_master=master, driver_memory="3g"))
    startup = time.perf_counter() - t0
    texts = _notes(replicate)
    cores = int(master[6:-1])
    rows = [(f"n{i}", f"PT{i % 50:06d}", "note", "2020-01-01", t) for i, t in enumerate(texts)]
    df = (spark.createDataFrame(rows, "note_id string, patient_id string, note_type string, "
                                      "note_date string, text string")
          .selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date",
                      "text").repartition(cores * 2).cache())
    df.count()

    def once(frame):
        deid = deidentify_frame(spark, frame, b"bench").drop("phi_spans")
        return findings_frame(spark, deid).count()

    t1 = time.perf_counter()
    once(df.limit(20))  # warm-up: fit pipelines, start Python workers
    warm = time.perf_counter() - t1
    t2 = time.perf_counter()
    n_findings = once(df)
    secs = time.perf_counter() - t2
    spark.stop()
    return {"system": "oncorank (Spark NLP)", "master": master, "notes": len(texts),
            "chars": sum(map(len, texts)), "findings": n_findings, "seconds": secs,
            "notes_per_s": len(texts) / secs, "notes_per_s_per_core": len(texts) / secs / cores,
            "spark_startup_s": startup, "warmup_s": warm}


def negex_oncorank() -> dict:
    sys.path.insert(0, str(REPO))
    import csv

    from pipelines.lakehouse.session import spark_session
    from pipelines.lakehouse.settings import Settings
    from pipelines.notes.commands import context_statuses

    rows = list(csv.reader(NEGEX.open(encoding="utf-8"), delimiter="\t",
                           quoting=csv.QUOTE_NONE))[1:]
    spark = spark_session(Settings(lakehouse=Path("/tmp/oncorank-bench/lakehouse"),
                                   spark_master="local[2]"))
    res = context_statuses(spark, [(r[2], r[1]) for r in rows])
    spark.stop()
    return {"negated": _prf([(r[3] == "Negated", x.status == "negated")
                             for r, x in zip(rows, res, strict=True)]),
            "historical": _prf([(r[4] == "Historical", "historical" in x.modifiers)
                                for r, x in zip(rows, res, strict=True)])}


def _prf(pairs):
    tp = sum(g and p for g, p in pairs)
    fp = sum(p and not g for g, p in pairs)
    fn = sum(g and not p for g, p in pairs)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"P": round(p, 3), "R": round(r, 3), "F1": round(2 * p * r / (p + r), 3) if p + r else 0}


PEER = r'''
import csv, json, sys, time, re
import spacy, medspacy
from medspacy.ner import TargetRule
from medspacy.context import ConText
mode, path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
def prf(pairs):
    tp=sum(g and p for g,p in pairs); fp=sum(p and not g for g,p in pairs); fn=sum(g and not p for g,p in pairs)
    P=tp/(tp+fp) if tp+fp else 0; R=tp/(tp+fn) if tp+fn else 0
    return {"P":round(P,3),"R":round(R,3),"F1":round(2*P*R/(P+R),3) if P+R else 0}
if mode == "negex":
    rows = list(csv.reader(open(path, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    nlp = medspacy.load()
    out = []
    for r in rows:
        nlp.get_pipe("medspacy_target_matcher").rules.clear() if hasattr(nlp.get_pipe("medspacy_target_matcher"), "rules") else None
        tm = nlp.get_pipe("medspacy_target_matcher")
        tm._TargetMatcher__matcher = None if False else None
        target = " ".join(r[1].split())
        nlp.remove_pipe("medspacy_target_matcher"); nlp.add_pipe("medspacy_target_matcher", before="medspacy_context")
        words = [w for w in target.split()]
        pat = [{"LOWER": w.lower()} for w in words]
        nlp.get_pipe("medspacy_target_matcher").add([TargetRule(target, "T", pattern=pat)])
        doc = nlp(" ".join(r[2].split()))
        ents = doc.ents
        neg = any(e._.is_negated for e in ents); hist = any(e._.is_historical for e in ents)
        out.append((r[3]=="Negated", neg, r[4]=="Historical", hist))
    print(json.dumps({"negated": prf([(a,b) for a,b,_,_ in out]), "historical": prf([(c,d) for _,_,c,d in out])}))
else:
    texts = [json.loads(l)["transcription"] for l in open(path)] * int(arg)
    concepts = json.loads(sys.stdin.read())
    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_target_matcher", "medspacy_context"])
    nlp.remove_pipe("medspacy_pyrush"); nlp.add_pipe("sentencizer", first=True)
    tm = nlp.get_pipe("medspacy_target_matcher")
    tm.add([TargetRule(c, cat, pattern=rx) for c, cat, rx in concepts])
    list(nlp.pipe(texts[:20]))
    t = time.perf_counter(); n = sum(len(d.ents) for d in nlp.pipe(texts)); s = time.perf_counter() - t
    print(json.dumps({"system": "medspaCy 1.3.1 (sentencizer + TargetMatcher + ConText)", "notes": len(texts), "findings": n, "seconds": s, "notes_per_s": len(texts)/s, "notes_per_s_per_core": len(texts)/s}))
'''


def run_peer(python: str, mode: str, replicate: int) -> dict | None:
    if not python or not Path(python).exists():
        return None
    sys.path.insert(0, str(REPO))
    from pipelines.notes.findings import concept_rows

    # medspaCy's regex patterns are Python regexes over the text: the same lexicon, with the
    # Java-only inline flags removed.
    concepts = [(r.concept, r.category, r.regex.replace("(?i)", "(?i)", 1))
                for r in concept_rows()]
    arg = str(replicate)
    path = str(NEGEX if mode == "negex" else NOTES)
    out = subprocess.run([python, "-c", PEER, mode, path, arg], input=json.dumps(concepts),
                         capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicate", type=int, default=4)
    ap.add_argument("--peer-python", default="")
    ap.add_argument("--child", default="")
    ns = ap.parse_args()
    if ns.child == "negex":
        print(json.dumps(negex_oncorank()))
        return
    if ns.child:
        print(json.dumps(run_oncorank(ns.child, ns.replicate)))
        return
    results = {}
    for master in ("local[1]", "local[2]"):
        out = subprocess.run([sys.executable, __file__, "--child", master, "--replicate",
                              str(ns.replicate)], capture_output=True, text=True, check=True)
        results[master] = json.loads(out.stdout.strip().splitlines()[-1])
    out = subprocess.run([sys.executable, __file__, "--child", "negex"], capture_output=True,
                         text=True, check=True)
    results["negex_oncorank"] = json.loads(out.stdout.strip().splitlines()[-1])
    results["peer_throughput"] = run_peer(ns.peer_python, "notes", ns.replicate)
    results["peer_negex"] = run_peer(ns.peer_python, "negex", ns.replicate)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

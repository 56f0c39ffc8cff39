"""The VCF benchmark's summary: medians over interleaved rounds and the goal ratios."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "vcf_ingest", Path(__file__).resolve().parent.parent / "benchmarks" / "vcf_ingest.py")
vcf_ingest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vcf_ingest)


def _run(engine, cores, seconds, rss=10, file="f.vcf.gz"):
    return {"engine": engine, "cores": cores, "seconds": seconds, "peak_rss_mb": rss,
            "file": file}


def test_summary_takes_medians_per_engine_and_cores_and_ratios_from_them():
    results = []
    for bcf, text, pysam, one, two in [(4.0, 6.0, 30.0, 20.0, 11.0),
                                       (5.0, 7.0, 31.0, 33.0, 10.0),
                                       (4.5, 6.5, 29.0, 18.0, 12.0)]:
        results += [_run("bcftools", 1, bcf), _run("bcftools-text", 1, text),
                    _run("pysam-full", 1, pysam), _run("spark-bronze", 1, one, 1400),
                    _run("spark-bronze", 2, two, 2400)]
    results.append(_run("bcftools", 1, 1.0, file="other.vcf.gz"))

    out = vcf_ingest.summarise(results)

    f = out["f.vcf.gz"]
    assert f["engines"]["spark-bronze@1"] == {
        "median_s": 20.0, "min_s": 18.0, "max_s": 33.0, "runs": 3, "median_peak_rss_mb": 1400}
    assert f["engines"]["spark-bronze@2"]["median_s"] == 11.0
    assert f["ratios"] == {
        "spark-bronze@1 / bcftools": round(20.0 / 4.5, 2),
        "spark-bronze@1 / bcftools-text": round(20.0 / 6.5, 2),
        "spark-bronze@1 / pysam-full": round(20.0 / 30.0, 2),
        "speed-up 1 -> 2 cores": round(20.0 / 11.0, 2),
    }
    # another file is summarised apart, and without Spark it has no ratios
    assert out["other.vcf.gz"]["engines"]["bcftools@1"]["runs"] == 1
    assert out["other.vcf.gz"]["ratios"] == {}

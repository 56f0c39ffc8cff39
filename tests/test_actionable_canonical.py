"""The canonical actionable set through ingest-variants with the knowledge base oncorank ships.

``tests/data/canonical_actionable.tsv`` (written from FDA labels, not from oncorank's knowledge
base; see its README) names, per alteration and tumour type, the therapies a label indicates.
Each distinct (tumour type, alteration) becomes one patient: a VEP- or SnpEff-annotated VCF
and a silver.patients row with the cancer type. The real ``ingest-variants`` stage matches
them against the default knowledge base (the CIViC release and curated set shipped as package
data); a canonical row is *found* when silver.actionable_alterations holds, for its patient, a
row with the same drugs and direction, evidence level A and ``on_label`` true.

The goal, every level-A pair, holds (RESULTS.md, "Canonical actionable set", lists what was
missed before); rows marked "not on label" (a label that excludes the tumour type, or names
the drug only in another combination) must never be matched on label.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines.lakehouse import delta
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Inputs, Settings

SET = Path(__file__).parent / "data" / "canonical_actionable.tsv"
RECALL_FLOOR = 1.0  # 59/71 before the curated set gained the 12 approvals it missed
CSQ = ("Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|INTRON|HGVSc|"
       "HGVSp|CANONICAL")
ANN = ("Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
       "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p")
# Where each gene lies (GRCh38), for records a reader can place; matching reads the annotation.
LOCUS = {"EGFR": ("chr7", 55181378), "KRAS": ("chr12", 25245350), "BRAF": ("chr7", 140753336),
         "MET": ("chr7", 116771989), "ERBB2": ("chr17", 39724730), "ALK": ("chr2", 29223000),
         "ROS1": ("chr6", 117324000), "RET": ("chr10", 43114500), "NTRK1": ("chr1", 156874900),
         "NTRK3": ("chr15", 87940000), "PIK3CA": ("chr3", 179234297), "AKT1": ("chr14", 104780214),
         "PTEN": ("chr10", 87933147), "ESR1": ("chr6", 152098791), "BRCA1": ("chr17", 43124028),
         "BRCA2": ("chr13", 32340301), "NRAS": ("chr1", 114713908)}


def canonical() -> list[dict]:
    lines = [ln for ln in SET.read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def _record(row: dict, genotypes: str) -> str:
    chrom, pos = LOCUS[row["gene"]]
    cons, change = row["consequence"], row["hgvsp"]
    if cons == "gene_fusion":  # SnpEff names a fusion's genes "EML4&ALK"
        partner_chrom, partner_pos = chrom, pos + 1000
        ann = (f"N[{partner_chrom}:{partner_pos}[|gene_fusion|HIGH|{change}|{change}|"
               f"gene_variant|{change}|protein_coding|||")
        return (f"{chrom}\t{pos}\t.\tN\tN[{partner_chrom}:{partner_pos}[\t60\tPASS\t"
                f"SVTYPE=BND;ANN={ann}\tGT\t{genotypes}")
    if cons == "transcript_amplification":
        csq = f"duplication|{cons}|HIGH|{row['gene']}|G|Transcript|T|protein_coding||||YES"
        return f"{chrom}\t{pos}\t.\tN\t<DUP>\t60\tPASS\tSVTYPE=DUP;CSQ={csq}\tGT\t{genotypes}"
    exon = "" if row["exon"] == "-" else row["exon"]
    hgvsc, hgvsp = (f"T:{change}", "") if change.startswith("c.") else ("", f"P:{change}")
    intron = "13/20" if cons.startswith("splice") else ""
    csq = (f"T|{cons}|HIGH|{row['gene']}|G|Transcript|T|protein_coding|{exon}|{intron}|"
           f"{hgvsc}|{hgvsp}|YES")
    return f"{chrom}\t{pos}\t.\tC\tT\t60\tPASS\tCSQ={csq}\tGT\t{genotypes}"


def _vcf(samples: list[str], records: list[str]) -> str:
    contigs = "".join(f"##contig=<ID={c}>\n" for c in sorted({c for c, _ in LOCUS.values()}))
    return ("##fileformat=VCFv4.2\n" + contigs
            + '##INFO=<ID=SVTYPE,Number=1,Type=String,Description="SV type">\n'
            + f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
              f'Ensembl VEP. Format: {CSQ}">\n'
            + f'##INFO=<ID=ANN,Number=.,Type=String,Description="Functional annotations: '
              f"'{ANN}'\">\n"
            + '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
            + "\n" + "\n".join(records) + "\n")


def _drugs(value) -> frozenset[str]:
    return frozenset(str(d).lower().removeprefix("fam-").removeprefix("ado-")
                     for d in (value or []))


@pytest.fixture(scope="module")
def matched(spark, tmp_path_factory):
    from pipelines.genomics.stage import ingest_variants

    root = tmp_path_factory.mktemp("canonical")
    rows = canonical()
    patients: dict[tuple, str] = {}
    for r in rows:
        case = (r["oncotree"], r["gene"], r["hgvsp"], r["consequence"])
        patients.setdefault(case, f"CANON{len(patients) + 1:03d}")
        r["patient"] = patients[case]
    # One multi-sample VCF: each record is carried (0/1) by its own patient only.
    vcf_dir = root / "vcf"
    vcf_dir.mkdir()
    samples = list(patients.values())
    records = []
    for pid in samples:
        row = next(r for r in rows if r["patient"] == pid)
        records.append(_record(row, "\t".join("0/1" if s == pid else "0/0" for s in samples)))
    (vcf_dir / "canonical.vcf").write_text(_vcf(samples, records))
    settings = Settings(lakehouse=root / "lakehouse", shuffle_partitions=2,
                        spark_master="local[2]", inputs=Inputs(vcf=(str(vcf_dir),)))
    delta.write_table(spark, spark.createDataFrame(
        [(pseudonymise(pid, settings.pseudonym_key), case[0]) for case, pid in patients.items()],
        "patient_key string, cancer_type string"), settings.table("silver", "patients"),
        mode="overwrite")
    run = ingest_variants(spark, settings)
    found = defaultdict(list)
    for a in delta.read_table(spark, settings.table("silver", "actionable_alterations")).collect():
        found[a["patient_key"]].append(a.asDict())
    keys = {pid: pseudonymise(pid, settings.pseudonym_key) for pid in patients.values()}
    return {"rows": rows, "found": found, "keys": keys, "run": run}


def _hit(row: dict, candidates: list[dict]) -> bool:
    return any(_drugs(a["drugs"]) == frozenset(row["drugs"].split("+"))
               and a["direction"] == row["direction"] and a["evidence_level"] == "A"
               and a["on_label"] is True for a in candidates)


def test_every_record_is_ingested(matched):
    run = matched["run"]
    assert run.rows_quarantined == 0 and run.rows_in == run.rows_written


def test_level_a_recall_of_the_canonical_set(matched):
    found, keys = matched["found"], matched["keys"]
    rows = [r for r in matched["rows"] if r["expect"] == "on label"]
    misses = []
    for r in rows:
        candidates = found.get(keys[r["patient"]], [])
        if not _hit(r, candidates):
            near = sorted({f"{'+'.join(sorted(_drugs(a['drugs'])))}:{a['evidence_level']}:"
                           f"{a['on_label']}" for a in candidates
                           if _drugs(a["drugs"]) & frozenset(r["drugs"].split("+"))})
            misses.append((r["id"], r["oncotree"], r["gene"], r["hgvsp"] or r["consequence"],
                           r["drugs"], near))
    recall = 1 - len(misses) / len(rows)
    print(f"\ncanonical level-A recall {recall:.3f} ({len(rows) - len(misses)}/{len(rows)})")
    for m in misses:
        print("  miss", *m)
    assert recall >= RECALL_FLOOR, misses


def test_no_therapy_is_shown_on_label_outside_its_label(matched):
    found, keys = matched["found"], matched["keys"]
    wrong = [(r["id"], r["oncotree"], r["gene"], r["drugs"]) for r in matched["rows"]
             if r["expect"] == "not on label" and _hit(r, found.get(keys[r["patient"]], []))]
    assert wrong == []


def expected_terms(row: dict) -> tuple[int, frozenset[str], bool]:
    """(prior lines, label co-requirements, germline check) the canonical row's ``line`` and
    ``co_biomarkers`` columns state, in the knowledge base's vocabulary."""
    line = row["line"].strip()
    prior = 2 if line.startswith("after >=2") else (1 if line.startswith("after") else 0)
    names = {"HR+": {"HR-positive"}, "ER+": {"ER-positive"}, "HER2-": {"HER2-negative"},
             "RAS wild-type": {"KRAS wild-type", "NRAS wild-type"}, "germline": set(), "-": set()}
    words = [w.strip() for w in row["co_biomarkers"].split(",")]
    requires = frozenset(n for w in words for n in names[w])
    return prior, requires, "germline" in words


def test_label_line_and_co_requirements_of_the_canonical_set(matched):
    """Every level-A label pair carries the label's line and co-requirements (what decides
    "on label now" at the board), and they are the ones the label states."""
    from pipelines.knowledge.labels import LabelTerms

    found, keys = matched["found"], matched["keys"]
    rows = [r for r in matched["rows"]
            if r["expect"] == "on label" and r["direction"] == "sensitivity"]
    missing, wrong = [], []
    for r in rows:
        # the label for the patient's own tumour type first (a tumour-agnostic label of the
        # same drugs may ask for a later line)
        hits = sorted((a for a in found.get(keys[r["patient"]], []) if _hit(r, [a])),
                      key=lambda a: a["disease_match"] != "exact")
        terms = [t for t in (LabelTerms.from_value(a.get("label_terms")) for a in hits) if t]
        if not terms:
            missing.append((r["id"], r["gene"], r["drugs"]))
            continue
        prior, requires, germline = expected_terms(r)
        t = terms[0]
        got = (t.prior_lines, frozenset(t.requires), any("germline" in c for c in t.check))
        if got != (prior, requires, germline):
            wrong.append((r["id"], r["drugs"], got, (prior, requires, germline)))
    print(f"\nlabel terms on {len(rows) - len(missing)}/{len(rows)} level-A pairs; "
          f"{len(wrong)} differ from the label")
    for m in missing:
        print("  no label terms", *m)
    assert missing == [] and wrong == [], (missing, wrong)

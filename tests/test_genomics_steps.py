"""Bronze typing, silver steps and alteration matching on tiny VCFs (one Spark session)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from pipelines.genomics import bronze, silver
from pipelines.genomics.annotation import annotation_layout, layout_ddl
from pipelines.genomics.matching import match_variants, rules_frame, variant_facts
from pipelines.genomics.rows import ROW_DDL, lines_to_batch
from pipelines.genomics.sources import FieldDef, VcfSource, annotation_fields
from pipelines.knowledge.alterations import parse_alteration
from pipelines.lakehouse.privacy import pseudonymise

KEY = b"test-key"
CSQ = ("Allele|Consequence|IMPACT|SYMBOL|Gene|Feature_type|Feature|BIOTYPE|EXON|HGVSc|HGVSp|"
       "CANONICAL")
ANN = ("Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
       "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p")


def source(samples=("S1",), csq=True, ann=False) -> VcfSource:
    info = {"DP": FieldDef("1", "Integer"), "SOMATIC": FieldDef("0", "Flag"),
            "TVAF": FieldDef(".", "Float"), "AF": FieldDef("A", "Float")}
    if csq:
        info["CSQ"] = FieldDef(".", "String", f"Consequence annotations from Ensembl VEP. "
                                              f"Format: {CSQ}")
    if ann:
        info["ANN"] = FieldDef(".", "String", f"Functional annotations: '{ANN}'")
    formats = {k: FieldDef("1", "String") for k in ("GT", "AD", "DP", "AF", "ADT")}
    return VcfSource(path="/data/PT9.vcf", samples=samples, contigs_declared=("chr7", "chr12"),
                     info=info, formats=formats, csq_fields=annotation_fields(info.get("CSQ")),
                     ann_fields=annotation_fields(info.get("ANN")))


def typed(spark, src: VcfSource, lines: list[str]):
    rows = lines_to_batch(src, pa.array(lines), 0).to_pylist()
    maps = {"info", "format"}
    data = [tuple(dict(v) if k in maps and v is not None else v for k, v in r.items())
            for r in rows]
    return spark.createDataFrame(data, ROW_DDL)


def variants(spark, src: VcfSource, lines: list[str], sample_map=None):
    good = bronze.select_bronze(typed(spark, src, lines))
    layout = spark.createDataFrame([annotation_layout(src)], layout_ddl())
    sm = (spark.createDataFrame(sample_map, "sample string, patient_id string")
          if sample_map else None)
    return silver.build_variants(good, layout, sm, KEY)


# ---------------------------------------------------------------------------- bronze
def test_bronze_rules_reject_bad_values_with_reasons(spark):
    src = source()
    lines = [
        "chr7\t100\trs1\tA\tG\t50.5\tPASS\tDP=30;SOMATIC\tGT:AD:DP:AF\t0/1:10,20:30:0.667",
        "chr7\t101\t.\tA\tG\thigh\tPASS\tDP=3\tGT\t0/1",
        "chr7\t102\t.\tA\tG\t50\tPASS\tDP=3\tGT\t0/x",
        "chr7\t103\t.\tA\tG\t50\tPASS\tDP=3\tGT\t0/2",
        "chr7\t104\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD\t0/1:1,2:extra",
        "chr7\t10a\t.\tA\tG\t50\tPASS\tDP=3\tGT\t0/1",
        "chr7\t106\t.\tAXG\tG\t50\tPASS\tDP=3\tGT\t0/1",
        "chr7\t107\t.\tA\tG\t50\tPASS\tDP=3\tGT:AD\t0/1:3,x",
        "chr7\t108\t.\tA\t.\t.\t.\t.\tGT:AD\t./.",
    ]
    df = typed(spark, src, lines)
    got = {r["record_index"]: (r["_rule"], r["_reason"]) for r in df.collect()}
    assert {i: rule for i, (rule, _) in got.items()} == {
        0: None, 1: "invalid_qual", 2: "malformed_gt", 3: "malformed_gt",
        4: "format_value_count", 5: "invalid_pos", 6: "invalid_ref", 7: "invalid_ad", 8: None}
    assert "'high'" in got[1][1] or '"high"' in got[1][1]
    assert "refers to allele 2" in got[3][1]
    [ok] = bronze.select_bronze(df).filter("record_index = 0").collect()
    assert (ok["pos"], ok["id"], ok["qual"], ok["alts"], ok["filters"]) == (
        100, "rs1", 50.5, ["G"], ["PASS"])
    assert ok["info"] == {"DP": "30", "SOMATIC": None}
    assert ok["format"] == {"GT": "0/1", "AD": "10,20", "DP": "30", "AF": "0.667"}
    assert (ok["gt"], ok["ad"], ok["dp"], ok["af"]) == ("0/1", [10, 20], 30, [0.667])
    [empty] = bronze.select_bronze(df).filter("record_index = 8").collect()
    assert (empty["alts"], empty["qual"], empty["filters"], empty["info"]) == ([], None, None, {})
    q = bronze.select_quarantine(df).filter("_record_index = 1").collect()[0]
    assert (q["_source"], q["_rule"]) == ("/data/PT9.vcf", "invalid_qual")
    assert q["raw_line"] == "chr7\t101\t.\tA\tG\thigh\tPASS\tDP=3\tGT\t0/1"


# ---------------------------------------------------------------------------- silver
def test_multiallelic_split_genotype_and_vaf(spark):
    src = source(samples=("S1", "S2"))
    lines = [
        # 1/2 het for two ALTs: AD and AF split per allele.
        "chr12\t500\t.\tC\tA,T\t60\tPASS\tDP=20\tGT:AD:DP:AF\t1/2:2,5,7:14:0.35,0.5\t0/0:9,0,0:9:0,0",
        # no AF: VAF from AD; S2 hom-alt; deletion.
        "chr12\t600\t.\tCAG\tC\t60\tLowQual;strand_bias\tDP=20\tGT:AD:DP\t0/1:6,2:8\t1/1:0,9:9",
        # tumour/normal file style: AD in ADT, site VAF in TVAF.
        "chr7\t700\t.\tG\tA\t.\tPASS\tTVAF=0.25\tGT:ADT\t0/1:21,8\t./.:.",
    ]
    rows = {(r["pos"], r["alt"], r["sample"]): r
            for r in variants(spark, src, lines).collect()}
    s1, s2 = pseudonymise("sample:S1", KEY), pseudonymise("sample:S2", KEY)
    assert set(rows) == {(500, "A", s1), (500, "T", s1), (600, "C", s1), (600, "C", s2),
                         (700, "A", s1)}
    a, t = rows[(500, "A", s1)], rows[(500, "T", s1)]
    assert (a["allele_index"], a["ad_ref"], a["ad_alt"], a["vaf"], a["zygosity"]) == (
        1, 2, 5, 0.35, "het")
    assert (t["allele_index"], t["ad_ref"], t["ad_alt"], t["vaf"], t["n_alts"]) == (
        2, 2, 7, 0.5, 2)
    d1, d2 = rows[(600, "C", s1)], rows[(600, "C", s2)]
    assert d1["vaf"] == pytest.approx(2 / 8) and d1["vaf_source"] == "ad"
    assert (d2["zygosity"], d2["variant_type"], d2["is_pass"], d2["filter"]) == (
        "hom_alt", "deletion", False, "LowQual;strand_bias")
    tn = rows[(700, "A", s1)]
    assert tn["vaf"] == pytest.approx(8 / 29) and (tn["ad_ref"], tn["ad_alt"]) == (21, 8)
    # identity: no sample map -> the sample name is the patient id; nothing raw survives
    assert a["patient_key"] == pseudonymise("S1", KEY)
    assert a["source_file"] == "vcf-" + pseudonymise("file:/data/PT9.vcf", KEY)
    text = f"chr12|500|C|A|{s1}"
    assert a["variant_key"] == hashlib.sha256(text.encode()).hexdigest()


def test_sample_map_gives_the_patient_key(spark):
    src = source(samples=("TUMOUR-1",))
    [row] = variants(spark, src, ["chr7\t1\t.\tA\tG\t9\tPASS\t.\tGT\t0/1"],
                     sample_map=[("TUMOUR-1", "PT000042")]).collect()
    assert row["patient_key"] == pseudonymise("PT000042", KEY)


def test_vep_entry_choice_and_protein_change(spark):
    src = source()
    egfr = ("-|inframe_deletion|MODERATE|EGFR|ENSG1|Transcript|ENST2|protein_coding|19/28|"
            "c.2236_2250del|ENSP2:p.Glu746_Ala750del|YES")
    other = ("-|intron_variant|MODIFIER|EGFR-AS1|ENSG9|Transcript|ENST9|lncRNA|||||")
    kras = ("A|missense_variant|MODERATE|KRAS|ENSG3|Transcript|ENST3|protein_coding|2/5|"
            "c.34G>T|p.(Gly12Cys)|YES")
    t_alt = ("T|missense_variant|MODERATE|KRAS|ENSG3|Transcript|ENST3|protein_coding|2/5|"
             "c.34G>A|p.Gly12Ser|YES")
    syn = "G|synonymous_variant|LOW|TP53|ENSG4|Transcript|ENST4|protein_coding|5/11||p.Arg175%3D|"
    lines = [
        f"chr7\t55174772\t.\tGGAATTAAGAGAAGCA\tG\t60\tPASS\tCSQ={other},{egfr}\tGT\t0/1",
        f"chr12\t25245351\t.\tC\tA,T\t60\tPASS\tCSQ={t_alt},{kras}\tGT\t1/2",
        f"chr7\t7675088\t.\tA\tG\t60\tPASS\tCSQ={syn}\tGT\t0/1",
    ]
    rows = {(r["pos"], r["alt"]): r for r in variants(spark, src, lines).collect()}
    d = rows[(55174772, "G")]
    assert (d["gene"], d["consequence"], d["exon"], d["transcript"], d["canonical"]) == (
        "EGFR", "inframe_deletion", 19, "ENST2", True)
    assert (d["protein_change"], d["protein_position"], d["is_nonsynonymous"]) == (
        "E746_A750del", 746, True)
    assert rows[(25245351, "A")]["protein_change"] == "G12C"
    assert rows[(25245351, "T")]["protein_change"] == "G12S"
    s = rows[(7675088, "G")]
    assert (s["hgvsp"], s["protein_change"], s["is_nonsynonymous"]) == ("p.Arg175=", "R175=",
                                                                        False)


def test_snpeff_only_and_hgvs_from_snpeff_when_vep_lacks_it(spark):
    src = source(csq=False, ann=True)
    ann = ("G|missense_variant|MODERATE|BRAF|ENSG5|transcript|ENST5.1|protein_coding|15/18|"
           "c.1799T>A|p.Val600Glu")
    [row] = variants(spark, src, [f"chr7\t140753336\t.\tA\tG\t60\tPASS\tANN={ann}\tGT\t0/1"]
                     ).collect()
    assert (row["annotation_source"], row["gene"], row["protein_change"], row["exon"]) == (
        "snpeff", "BRAF", "V600E", 15)


# ---------------------------------------------------------------------------- matching
def test_alteration_matching_by_kind(spark):
    src = source(samples=("P1",))
    csq = ("{a}|{c}|MODERATE|{g}|E|Transcript|T|protein_coding|{x}||{p}|YES")
    lines = [
        "chr7\t1\t.\tT\tG\t60\tPASS\tCSQ=" + csq.format(a="G", c="missense_variant", g="EGFR",
                                                        x="21/28", p="p.Leu858Arg")
        + "\tGT\t0/1",
        # an exon-19 in-frame deletion annotated without EXON: found from the residue
        "chr7\t2\t.\tGAAT\tG\t60\tPASS\tCSQ=" + csq.format(a="-", c="inframe_deletion",
                                                           g="EGFR", x="",
                                                           p="p.Leu747_Thr751del")
        + "\tGT\t0/1",
        "chr12\t3\t.\tC\tT\t60\tPASS\tCSQ=" + csq.format(a="T", c="missense_variant", g="KRAS",
                                                         x="2/5", p="p.Gly12Asp") + "\tGT\t0/1",
        "chr12\t4\t.\tC\tT\t60\tLowQual\tCSQ=" + csq.format(a="T", c="missense_variant",
                                                            g="BRAF", x="15/18",
                                                            p="p.Val600Glu") + "\tGT\t0/1",
        "chr7\t5\t.\tG\t<DUP>\t.\tPASS\tCSQ=" + csq.format(a="duplication",
                                                           c="transcript_amplification",
                                                           g="ERBB2", x="", p="")
        + "\tGT\t0/1",
    ]
    facts = variant_facts(variants(spark, src, lines))
    specs = [("l858r", "EGFR", "L858R"), ("ex19", "EGFR", "Exon 19 Deletion"),
             ("ex20", "EGFR", "Exon 20 Insertion"), ("kras_any", "KRAS", "Mutation"),
             ("g12c", "KRAS", "G12C"), ("g12", "KRAS", "G12"), ("v600e", "BRAF", "V600E"),
             ("amp", "ERBB2", "Amplification"), ("egfr_amp", "EGFR", "Amplification")]
    rules = rules_frame(spark, [(rid, g, a) for rid, g, t in specs
                                for a in parse_alteration(g, t)])
    hit = {r["rule_id"] for r in match_variants(facts, rules).collect()}
    # BRAF V600E is LowQual (not PASS) and must not match.
    assert hit == {"l858r", "ex19", "kras_any", "g12", "amp"}
    assert facts.filter(F.col("gene") == "EGFR").count() == 2


def test_gene_level_mutation_means_an_oncogenic_one(spark):
    """'FGFR3 Mutation' / 'BRCA2 Mutation' do not match a passenger missense of unknown
    significance: only residues the knowledge base names, or truncation of a suppressor."""
    src = source(samples=("P1",))
    csq = "{a}|{c}|{i}|{g}|E|Transcript|T|protein_coding|{x}||{p}|YES"

    def line(pos, gene, cons, change, impact="MODERATE", exon=""):
        return (f"chr7\t{pos}\t.\tC\tT\t60\tPASS\tCSQ="
                + csq.format(a="T", c=cons, i=impact, g=gene, x=exon, p=change) + "\tGT\t0/1")

    lines = [
        line(1, "FGFR3", "missense_variant", "p.Ser249Cys"),    # named by the KB
        line(2, "FGFR3", "missense_variant", "p.Ala500Thr"),    # passenger
        line(3, "BRCA2", "missense_variant", "p.Asp1200Asn"),   # passenger VUS
        line(4, "BRCA2", "stop_gained", "p.Gln2000*", "HIGH"),  # truncating suppressor
        line(5, "FGFR2", "stop_gained", "p.Gln300*", "HIGH"),   # truncated oncogene
    ]
    sites = spark.createDataFrame([("FGFR3", 249, None), ("EGFR", None, 19)],
                                  "gene string, protein_position int, exon int")
    facts = variant_facts(variants(spark, src, lines), sites, frozenset({"BRCA2"}))
    specs = [("fgfr3", "FGFR3", "Mutation"), ("fgfr2", "FGFR2", "Mutation"),
             ("brca2", "BRCA2", "Mutation"), ("brca2_trunc", "BRCA2", "Truncating Mutation")]
    rules = rules_frame(spark, [(rid, g, a) for rid, g, t in specs
                                for a in parse_alteration(g, t)])
    hits = {(r["rule_id"], r["patient_change"]) for r in match_variants(facts, rules).collect()}
    assert hits == {("fgfr3", "S249C"), ("brca2", "Q2000*"), ("brca2_trunc", "Q2000*")}
    # Without known sites every protein-altering variant counts (no knowledge base loaded).
    loose = variant_facts(variants(spark, src, lines))
    assert {r["rule_id"] for r in match_variants(loose, rules).collect()} == {
        "fgfr3", "fgfr2", "brca2", "brca2_trunc"}


def test_known_sites_come_from_the_knowledge_base(spark):
    from pipelines.genomics.matching import known_sites

    alterations = [("KRAS", a) for a in parse_alteration("KRAS", "G12/G13")]
    alterations += [("EGFR", a) for a in parse_alteration("EGFR", "Exon 19 Deletion")]
    alterations += [("ERBB2", a) for a in parse_alteration("ERBB2", "Amplification")]
    alterations += [(None, a) for a in parse_alteration("", "TMB-H")]
    rows = {tuple(r) for r in known_sites(spark, alterations).collect()}
    assert rows == {("KRAS", 12, None), ("KRAS", 13, None), ("EGFR", None, 19)}

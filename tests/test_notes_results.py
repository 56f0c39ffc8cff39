"""Biomarker results as reports state them: negative, pending, equivocal and indeterminate
results, comparators and ranges, and clauses that carry their own result (issue: "Biomarker
facts a tumor board can rely on")."""

from __future__ import annotations

import pytest

from pipelines.notes import assertion_context as ctx
from pipelines.notes import findings as fnd

# The sentences a user put through `oncorank run` and what each one says.
REPORTED = [
    ("EGFR: no L858R detected.", {("EGFR L858R", "negated")}),
    ("EGFR L858R negative.", {("EGFR L858R", "negated")}),
    ("KRAS G12C not found on NGS.", {("KRAS G12C", "negated")}),
    ("KRAS without G12C.", {("KRAS G12C", "negated")}),
    ("BRAF, not V600E.", {("BRAF V600E", "negated")}),
    ("Awaiting results for KRAS G12C.", {("KRAS G12C", "pending")}),
    ("MSI-H status pending.", {("MSI-H", "pending")}),
    ("PD-L1 TPS <50%.", {("PD-L1 TPS", "affirmed")}),
    ("No brain metastases, liver metastases present.",
     {("brain metastasis", "negated"), ("liver metastasis", "affirmed")}),
    ("Negative for ALK rearrangement, EGFR exon 19 deletion detected.",
     {("ALK rearrangement", "negated"), ("EGFR exon 19 deletion", "affirmed")}),
]


def extract(sentence: str) -> list[fnd.Finding]:
    concepts, headers = fnd.find_mentions(sentence)
    return fnd.extract(sentence, [ctx.Span(0, len(sentence))], concepts, headers)


def test_the_reported_sentences_come_out_as_written():
    """The same sentences go through ingest-notes, deidentify-notes and extract-note-findings
    in tests/test_notes.py (test_notes_stages_end_to_end_quarantine_and_rerun)."""
    for sentence, expected in REPORTED:
        assert {(f.concept, f.context) for f in extract(sentence)} == expected, sentence


@pytest.mark.parametrize("sentence, concept, value, comparator, status", [
    ("PD-L1 (22C3) TPS: 1-49%", "PD-L1 TPS", "1-49", "range", "affirmed"),
    ("PD-L1 TPS ≥ 50%.", "PD-L1 TPS", "50", ">=", "affirmed"),
    ("PD-L1 TPS less than 1%.", "PD-L1 TPS", "1", "<", "negated"),
    ("PD-L1 TPS 0%.", "PD-L1 TPS", "0", None, "negated"),
    ("PD-L1 TPS 80%.", "PD-L1 TPS", "80", None, "affirmed"),
    ("ER <1%.", "ER positive", "1", "<", "negated"),
    ("ER positive (95%), strong intensity.", "ER positive", "95", None, "affirmed"),
    ("Ki-67 ~20%.", "Ki-67", "20", None, "affirmed"),
    ("HER2 (IHC): 3+", "ERBB2 amplification", "3+", None, "affirmed"),
    ("HER2 IHC 2+ (equivocal).", "ERBB2 amplification", "2+", None, "equivocal"),
    ("HER2 IHC 1+.", "ERBB2 amplification", "1+", None, "negated"),
    ("HER2/CEP17 ratio 1.4, average HER2 copy number 2.1.", "ERBB2 amplification", "1.4", None,
     "negated"),
    ("HER2/CEP17 ratio 2.6, average HER2 copy number 6.0.", "ERBB2 amplification", "2.6", None,
     "affirmed"),
])
def test_values_keep_their_comparator_and_cut_offs_decide_negatives(sentence, concept, value,
                                                                    comparator, status):
    found = [f for f in extract(sentence) if f.concept == concept]
    assert [(f.value, f.comparator, f.context) for f in found] == [(value, comparator, status)]


@pytest.mark.parametrize("sentence, expected", [
    # a result list per gene
    ("No L858R, exon 19 deletion or T790M detected.",
     {("EGFR L858R", "negated"), ("EGFR exon 19 deletion", "negated"),
      ("EGFR T790M", "negated")}),
    ("KRAS G12D detected; BRAF wild-type.",
     {("KRAS G12D", "affirmed"), ("BRAF mutation", "negated")}),
    # a clause with its own result ends the cue before it, both ways
    ("EGFR exon 19 deletion detected, T790M negative.",
     {("EGFR exon 19 deletion", "affirmed"), ("EGFR T790M", "negated")}),
    ("EGFR L858R detected but T790M not detected.",
     {("EGFR L858R", "affirmed"), ("EGFR T790M", "negated")}),
    # pending, equivocal and indeterminate are statuses of their own
    ("NGS sent out; KRAS G12C to follow.", {("KRAS G12C", "pending")}),
    ("MSI testing pending; MMR proteins intact.", {("MSI-H", "pending"), ("MSI-H", "negated")}),
    # a bare gene is a finding only where the sentence gives it a result
    ("ALK negative, BRAF pending.", {("ALK rearrangement", "negated"),
                                     ("BRAF mutation", "pending")}),
    ("Discussed ALK testing with the patient.", set()),
    ("No pathogenic variants in EGFR, KRAS, BRAF, ALK, ROS1 detected.",
     {("EGFR mutation", "negated"), ("KRAS mutation", "negated"), ("BRAF mutation", "negated"),
      ("ALK rearrangement", "negated"), ("ROS1 rearrangement", "negated")}),
    ("EGFR/ALK/ROS1 negative.", {("EGFR mutation", "negated"), ("ALK rearrangement", "negated"),
                                 ("ROS1 rearrangement", "negated")}),
    ("Insufficient tissue for EGFR T790M testing.", {("EGFR T790M", "indeterminate")}),
    ("BRAF V600E result indeterminate.", {("BRAF V600E", "indeterminate")}),
    # a phrase that states its own result is never read against it
    ("MSI status: MSS.", {("MSI-H", "negated")}),
    ("Loss of nuclear expression of MLH1 and PMS2.", {("MSI-H", "affirmed")}),
    # an antibody clone in parentheses is no list enumerator ("1)"); a list item still is
    ("BRAF V600E IHC (VE1) equivocal due to weak staining.", {("BRAF V600E", "equivocal")}),
    ("1) EGFR negative 2) KRAS G12C detected", {("EGFR mutation", "negated"),
                                                ("KRAS G12C", "affirmed")}),
    # "; result ..." is the result of the clause before the semicolon
    ("TP53 R248Q: low-quality sequence; result indeterminate.",
     {("TP53 R248Q", "indeterminate")}),
    # a verdict reads the nearest clause with a cue of its own, not the ones before it
    ("MET exon 14 skipping detected at low level, interpreted as equivocal.",
     {("MET exon 14 skipping", "equivocal")}),
    ("KRAS G12C detected, MET exon 14 skipping detected at low level, interpreted as "
     "equivocal.", {("KRAS G12C", "affirmed"), ("MET exon 14 skipping", "equivocal")}),
])
def test_result_forms_of_molecular_reports(sentence, expected):
    assert {(f.concept, f.context) for f in extract(sentence)} == expected


def test_comparator_reading_and_cut_offs():
    assert fnd.below_threshold("1", "<", 1) and not fnd.below_threshold("1", None, 1)
    assert fnd.below_threshold("0", None, 1) and not fnd.below_threshold("50", ">=", 1)
    assert fnd.below_threshold("1-49", "range", 50) and not fnd.below_threshold("1-49", "range", 1)
    assert not fnd.below_threshold(None, None, 1) and not fnd.below_threshold("n/a", None, 1)


def test_a_gene_prefix_never_swallows_a_result_cue():
    f, = extract("EGFR: no L858R detected.")
    assert "no" not in "EGFR: no L858R detected."[f.start:f.end].split()
    f, = extract("EGFR exon 21 p.L858R.")
    assert "EGFR exon 21 p.L858R."[f.start:f.end] == "EGFR exon 21 p.L858R"


def test_the_report_shows_stated_values_conflicts_and_facts_after_the_index_date():
    from pipelines.reports import sections as rctx

    rows, _ = rctx.notes_context([
        {"concept": "PD-L1 TPS", "value": "50", "comparator": "<", "context": "affirmed",
         "note_date": "2024-01-10", "snippet": "PD-L1 TPS <50%."},
        {"concept": "KRAS G12C", "value": None, "context": "pending", "note_date": "2024-01-10",
         "snippet": "KRAS G12C pending."},
        {"concept": "hepatitis", "value": None, "context": "affirmed", "note_date": "2024-06-01",
         "snippet": "Immune-related hepatitis."},
    ], index_date="2024-02-01")
    assert [(r["concept"], r["value"], r["after_index"]) for r in rows] == [
        ("PD-L1 TPS", "<50", False), ("KRAS G12C", "", False), ("hepatitis", "", True)]
    flags = rctx.red_flags([], {}, {}, "egfr_l858r: VCF not detected; note affirmed (kept: VCF)")
    assert flags == ["sources disagree: egfr_l858r: VCF not detected; note affirmed (kept: VCF)"]



def _results(sentence: str) -> set[tuple[str, str, str | None]]:
    return {(f.concept, f.context, f.value) for f in extract(sentence)
            if f.category in ("biomarker", "site")}


@pytest.mark.parametrize("sentence, expected", [
    # brackets: a cue inside them reaches no further than their end; a verdict after them
    # reads the phrase before them; a bracket inside a list does not end the list's cue; a
    # bracket that closes "(exon 3)" is no list enumerator
    ("HER2 IHC 2+ (equivocal) on the bone metastasis biopsy; ISH pending.",
     {("ERBB2 amplification", "equivocal", "2+"), ("bone metastasis", "affirmed", None)}),
    ("EGFR (exons 18-21): wild-type; KRAS: G12C detected.",
     {("EGFR mutation", "negated", None), ("KRAS G12C", "affirmed", None)}),
    ("No EGFR (exon 19 or 21) or KRAS mutations detected.",
     {("EGFR mutation", "negated", None), ("KRAS mutation", "negated", None)}),
    ("KRAS mutation present (exon 3); patient not eligible for cetuximab.",
     {("KRAS mutation", "affirmed", None)}),
    # a concept phrase that took the first word of the cue after it ("ROS1 FISH" + "FISH
    # failed") is still read by it
    ("ROS1 FISH failed; insufficient tumor cells.",
     {("ROS1 rearrangement", "indeterminate", None)}),
    ("NTRK fusion analysis failed (RNA quality insufficient).",
     {("NTRK fusion", "indeterminate", None)}),
    # a test method before a colon labels the result after it
    ("ALK break-apart FISH: borderline (12% split signals); second reader enumeration pending.",
     {("ALK rearrangement", "equivocal", None)}),
    # the reason after "due to" explains an unobtained result
    ("EGFR not tested due to insufficient tissue.", {("EGFR mutation", "indeterminate", None)}),
    ("TMB: cannot be determined due to low tumor purity.", {("TMB", "indeterminate", None)}),
    ("NGS failed: insufficient tumor DNA; KRAS and BRAF status unknown.",
     {("KRAS mutation", "indeterminate", None), ("BRAF mutation", "indeterminate", None)}),
    ("BRCA2 germline testing sent; results expected in 2-3 weeks.",
     {("BRCA2 mutation", "pending", None)}),
    # a value or verdict of its own makes a clause one with its own result
    ("ER 98%, PR 75%, HER2 IHC 2+ equivocal, Ki-67 ~25%.",
     {("ER positive", "affirmed", "98"), ("PR positive", "affirmed", "75"),
      ("ERBB2 amplification", "equivocal", "2+"), ("Ki-67", "affirmed", "25")}),
    ("PD-L1 TPS 80%, KRAS G12C pending.",
     {("PD-L1 TPS", "affirmed", "80"), ("KRAS G12C", "pending", None)}),
    # a test still to come does not undo a result already stated
    ("HER2 IHC 2+ (equivocal) pending FISH; ER 95% positive.",
     {("ERBB2 amplification", "equivocal", "2+"), ("ER positive", "affirmed", "95")}),
    # pending, equivocal and indeterminate are statuses of tests, not of a metastatic site
    ("Bone metastases biopsy: ER could not be evaluated after decalcification.",
     {("bone metastasis", "affirmed", None), ("ER positive", "indeterminate", None)}),
    ("Equivocal for bone metastases.", {("bone metastasis", "possible", None)}),
    # a result phrase without a gene continues the gene named before it, and carries its score
    ("HER2 IHC 2+; FISH negative (ratio 1.4).",
     {("ERBB2 amplification", "equivocal", "2+"), ("ERBB2 amplification", "negated", "2+"),
      ("ERBB2 amplification", "negated", "1.4")}),
    ("HER2 FISH failed (no signals in tumor nuclei); IHC 3+, positive.",
     {("ERBB2 amplification", "indeterminate", None), ("ERBB2 amplification", "affirmed", "3+")}),
    ("HER2 negative; MET FISH amplified.", {("ERBB2 amplification", "negated", None)}),
    ("HER2 IHC 1+; ER 3+ staining in 90% of cells.", {("ERBB2 amplification", "negated", "1+")}),
    ("IHC 3+.", set()),
    # the words a report puts between HER2 and its score
    ("HER2 (by immunohistochemistry): Negative (Score 1+)",
     {("ERBB2 amplification", "negated", "1+")}),
    ("HER2 (4B5) 2+, equivocal.", {("ERBB2 amplification", "equivocal", "2+")}),
    ("Her2neu: negative (score 1+)", {("ERBB2 amplification", "negated", "1+")}),
    # a report's verdict outranks a cut-off on its number
    ("HER2 FISH: equivocal (HER2/CEP17 ratio 1.8; average HER2 copy number 4.5).",
     {("ERBB2 amplification", "equivocal", None), ("ERBB2 amplification", "equivocal", "1.8")}),
    # a clause that names nothing and gives a verdict is the verdict of the clause before it
    ("BRCA2 c.5946delT (p.S1982Rfs*22), pathogenic.", {("BRCA2 mutation", "affirmed", None)}),
    ("BRCA2 c.5946delT, variant of uncertain significance.", set()),
    ("ALK FISH: positive for rearrangement (32% of nuclei with split signals).",
     {("ALK rearrangement", "affirmed", None)}),
    # a test named, with no result that affirms it, is no finding
    ("Molecular testing for EGFR exon 19 deletion and L858R is at the reference laboratory.",
     set()),
    ("KRAS G12V: see comment.", set()),
    ("PIK3CA E545K testing: see addendum.", set()),
    ("KRAS G12C testing: positive.", {("KRAS G12C", "affirmed", None)}),
    ("EGFR L858R: VAF 34%.", {("EGFR L858R", "affirmed", None)}),
    # shorthand of reports
    ("MET ex14 skipping absent.", {("MET exon 14 skipping", "negated", None)}),
    ("Tumor mutational burden: 3 mutations/megabase.", {("TMB", "affirmed", "3")}),
    ("PR could not be evaluated (no invasive tumor in block).",
     {("PR positive", "indeterminate", None)}),
    ("Germline BRCA1/2 testing pending.",
     {("BRCA1 mutation", "pending", None), ("BRCA2 mutation", "pending", None)}),
    ("Current NGS confirms EML4-ALK variant 3.", {("ALK rearrangement", "affirmed", None)}),
    ("With liver and bone metastases.",
     {("liver metastasis", "affirmed", None), ("bone metastasis", "affirmed", None)}),
    ("No liver or bone metastases.",
     {("liver metastasis", "negated", None), ("bone metastasis", "negated", None)}),
    ("MSS; liver-limited metastases.", {("MSI-H", "negated", None),
                                        ("liver metastasis", "affirmed", None)}),
    ("Lung metastases without liver involvement.",
     {("lung metastasis", "affirmed", None), ("liver metastasis", "negated", None)}),
])
def test_results_as_reports_bracket_label_and_continue_them(sentence, expected):
    assert _results(sentence) == expected

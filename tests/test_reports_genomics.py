"""The report's genomics section: what it shows of variants outside the knowledge base."""

from __future__ import annotations

from pipelines.genomics.proteins import beyond_protein, protein_lengths
from pipelines.reports.sections import genomics_context


def _variant(gene, hgvsp, position, consequence="missense_variant"):
    return {"gene": gene, "hgvsp": hgvsp, "protein_position": position,
            "consequence": consequence, "filter": "PASS", "vaf": 0.3, "dp": 120}


def test_a_protein_change_beyond_the_protein_is_an_annotation_error_not_a_finding():
    ctx = genomics_context([], {}, [_variant("RB1", "p.Pro3124Ala", 3124),
                                    _variant("RB1", "p.Arg661Trp", 661),
                                    _variant("TP53", "p.Arg175His", 175)])
    shown = [(d["gene"], d["hgvsp"]) for d in ctx["drivers"]]
    assert shown == [("RB1", "p.Arg661Trp"), ("TP53", "p.Arg175His")]
    assert len(ctx["annotation_errors"]) == 1
    assert "RB1 p.Pro3124Ala names residue 3124 of a 928-residue protein" in \
        ctx["annotation_errors"][0]


def test_protein_length_table_is_uniprot_canonical():
    lengths = protein_lengths()
    assert {g: lengths[g] for g in ("TP53", "KRAS", "EGFR", "BRAF", "PIK3CA", "RB1")} == {
        "TP53": 393, "KRAS": 189, "EGFR": 1210, "BRAF": 766, "PIK3CA": 1068, "RB1": 928}
    assert beyond_protein("rb1", "929") and not beyond_protein("RB1", 928)
    assert not beyond_protein("RB1", None) and not beyond_protein(None, 5)


def test_each_alteration_names_the_vcf_records_it_comes_from():
    variants = [{**_variant("EGFR", "p.Leu858Arg", 858), "variant_key": "k1", "chrom": "chr7",
                 "pos": 55191822, "ref": "T", "alt": "G", "sample": "SOURCE-ID-1"}]
    actionable = [
        {"gene": "EGFR", "alteration": "L858R", "variant_keys": ["k1"],
         "match_kind": "protein_change", "direction": "sensitivity"},
        {"gene": None, "alteration": "TMB-H", "variant_keys": [], "match_kind": "tmb",
         "direction": "sensitivity"}]
    ctx = genomics_context(actionable, {}, variants)
    sources = {a["alteration"]: a["source"]
               for a in ctx["actionable"] + ctx["actionable_more"]}
    # the sample column may carry a source id: the record is shown without it
    assert sources == {"L858R": "VCF chr7:55191822 T>G", "TMB-H": "VCF, patient-level (tmb)"}


def test_a_comorbidity_only_a_note_states_is_marked_so():
    import numpy as np

    from pipelines.reports.sections import comorbidity_context

    row = {"cci_diab": 1, "cci_chf": 1, "cci_mi": 0, "charlson_index": 2, "elixhauser_vw": 3,
           "note_components": np.array(["cci_diab", "elix_diabunc"])}  # as pandas reads it
    ctx = comorbidity_context(row, True)
    assert ctx["conditions"] == ["Congestive heart failure",
                                 "Diabetes without chronic complication (clinical note)"]
    empty = comorbidity_context({**row, "note_components": np.array([])}, True)
    assert empty["conditions"] == ["Congestive heart failure",
                                   "Diabetes without chronic complication"]


def test_evidence_is_tiered_merged_and_tier_one_comes_first():
    import numpy as np

    def row(therapy, level, match, direction="sensitivity", disease="Breast cancer"):
        return {"gene": "PIK3CA", "alteration": "Mutation", "therapy": therapy,
                "direction": direction, "evidence_level": level, "disease_match": match,
                "disease": disease, "on_label": level == "A" and match == "exact",
                "citation": f"{therapy} {level} {match}", "variant_keys": [],
                "patient_alterations": np.array(["E545K"])}     # as pandas reads it

    named_otherwise = {**row("Alpelisib + Fulvestrant", "B", "exact"), "alteration": "E545"}
    actionable = [row("Alpelisib + Fulvestrant", "A", "exact"), named_otherwise,
                  row("Alpelisib + Fulvestrant", "B", "exact"),      # merged into the A row
                  row("Alpelisib + Fulvestrant", "C", "none"),
                  row("Aspirin", "B", "none", disease="Colorectal cancer"),   # another type
                  row("Celecoxib", "D", "exact"),                    # preclinical
                  row("Everolimus", "B", "exact", direction="resistance")]
    ctx = genomics_context(actionable, {}, [])
    first = [(a["therapy"], a["tier"], a["direction"], a["more_evidence"])
             for a in ctx["actionable"]]
    assert {a["alteration"] for a in ctx["actionable"]} == {"E545K"}
    # the knowledge base's "Mutation" and "E545" entries are one finding: the patient's E545K
    assert first == [("Alpelisib + Fulvestrant", "IA", "sensitivity", 3),
                     ("Everolimus", "IB", "resistance", 0)]
    assert [(a["therapy"], a["tier"]) for a in ctx["actionable_more"]] == [
        ("Aspirin", "IIC"), ("Celecoxib", "IID")]


def test_each_label_says_what_it_asks_of_this_patient():
    """The label column reads the label's terms against the patient's features; among rows
    of one therapy, the label of the patient's own type (any line) wins over a
    tumour-agnostic one for a later line."""
    import numpy as np
    from pyspark.sql import Row

    alpelisib = {"gene": "PIK3CA", "alteration": "Mutation", "therapy": "Alpelisib + Fulvestrant",
                 "direction": "sensitivity", "evidence_level": "A", "disease_match": "exact",
                 "on_label": True, "citation": "PIQRAY", "variant_keys": [],
                 "patient_alterations": ["H1047R"], "source": "curated",
                 # as pandas reads the struct: a dict holding numpy arrays
                 "label_terms": {"line": "later", "prior_lines": 1, "after": "endocrine therapy",
                                 "requires": np.array(["HR-positive", "HER2-negative"]),
                                 "check": np.array([], dtype=object)}}

    def context(features):
        return genomics_context([alpelisib], {}, [], features)["actionable"][0]["label_context"]

    assert context({"er_pos": False, "erbb2_amp": False}) == "requirement not met: HR-negative"
    assert context({"er_pos": True, "erbb2_amp": float("nan")}) == \
        "requirement unknown: HER2 status unknown"
    assert context({"er_pos": True, "erbb2_amp": False, "n_prior_lines": 0.0}) == \
        "on label at a later line (after endocrine therapy)"
    assert context({"er_pos": True, "erbb2_amp": False, "n_prior_lines": 1.0}) == "on label now"

    ret = {**alpelisib, "gene": "RET", "therapy": "Selpercatinib", "patient_alterations": ["Fusion"],
           "label_terms": Row(line="any", prior_lines=0, after=None, requires=[], check=[])}
    agnostic = {**ret, "disease_match": "ancestor", "citation": "RETEVMO solid tumours",
                "label_terms": Row(line="later", prior_lines=1, after="prior systemic treatment",
                                   requires=[], check=[])}
    rows = genomics_context([agnostic, ret], {}, [], {"n_prior_lines": 0.0})["actionable"]
    assert [(r["therapy"], r["label_context"], r["more_evidence"]) for r in rows] == [
        ("Selpercatinib", "on label now", 1)]


def test_patient_report_builds_the_context_without_spark_or_tables():
    import pandas as pd

    from pipelines.catalog import regimen_catalog
    from pipelines.reports import render
    from pipelines.reports.sections import drift_context, quality_context
    from pipelines.reports.stage import BoardData, patient_report

    catalog = regimen_catalog()
    nsclc = [r.name for r in catalog.for_cancer_type("NSCLC")][:2]
    from pipelines.ranking.steps import RANKING_COLUMNS

    blank = dict.fromkeys(RANKING_COLUMNS)       # every gold.treatment_rankings column
    rankings = pd.DataFrame([
        {**blank, "patient_key": "k1", "treatment": nsclc[0], "rank": 1,
         "rank_status": "ranked", "predicted_rmst": 14.2, "rmst_lower": 11.0,
         "rmst_upper": 17.5, "standard_of_care": nsclc[1], "model_version": "3"},
        {**blank, "patient_key": "k1", "treatment": nsclc[1], "rank": None,
         "rank_status": "insufficient comparable patients", "standard_of_care": nsclc[1],
         "model_version": "3"}])
    data = BoardData(
        board_date="2026-12-07", horizon=24.0, card={}, catalog=catalog,
        champion_meta={"name": "m", "version": "3", "run_id": "r"}, abstention_text="rule",
        rankings=rankings, features_by_key={}, labels={},
        patients={"k1": [{"cancer_type": "NSCLC", "stage": "IV", "stage_source": "note",
                          "age_at_diagnosis": 67, "sex": "female"}]},
        actionable=None, biomarkers=None, variants=None, findings=None, observations=None,
        comorbidities=None, identity=None, drift=drift_context(None),
        quality=quality_context(None, None), curves={}, explanations={})
    context, index_row = patient_report(data, "k1")
    assert [o["treatment"] for o in context["options"]] == nsclc   # ranked first
    assert context["n_ranked"] == 1 and context["p"]["stage_source"] == "clinical note"
    assert index_row["top"] == nsclc[0] and index_row["stage"] == "IV"
    assert "Knowledge-base matching has not run" in context["genomics"]["actionable_missing"]
    html = render.render_report(context)
    assert "IV" in html and nsclc[0] in html


def test_one_therapy_however_the_sources_spell_it_is_one_row():
    """CIViC writes "Binimetinib + Encorafenib", the label "Encorafenib + Binimetinib": one row,
    the label's (its terms say what it asks of the patient)."""
    import numpy as np

    def row(therapy, drugs, source, terms):
        return {"gene": "BRAF", "alteration": "V600E", "therapy": therapy,
                "drugs": np.array(drugs), "direction": "sensitivity", "evidence_level": "A",
                "disease_match": "exact", "on_label": True, "approved": True,
                "citation": f"{source} citation", "variant_keys": [], "source": source,
                "patient_alterations": np.array(["V600E"]), "label_terms": terms}

    rows = genomics_context([
        row("Binimetinib + Encorafenib", ["binimetinib", "encorafenib"], "civic", None),
        row("Encorafenib + Binimetinib", ["encorafenib", "binimetinib"], "curated",
            {"line": "any", "prior_lines": 0, "after": None, "requires": np.array([]),
             "check": np.array([])})], {}, [], {"n_prior_lines": 0.0})["actionable"]
    assert [(r["therapy"], r["label_context"], r["more_evidence"]) for r in rows] == [
        ("Encorafenib + Binimetinib", "on label now", 1)]

"""Label requirements in the ranking (small DataFrames, no JobRun): a targeted regimen for a
biomarker the patient is known not to have is shown as "requirement not met" and never ranks
above an option whose requirements are met or unknown, whatever the model predicts."""

from __future__ import annotations

import pytest

from pipelines.catalog import regimen_catalog
from pipelines.ranking import steps


@pytest.fixture(scope="module")
def ranked(spark):
    features = spark.createDataFrame([
        # ER-negative, HER2 not amplified, PIK3CA E545K: the breast-cancer patient
        ("her2neg", "BRCA", True, False, False, 0.0),
        # HR+/HER2-, PIK3CA-mutant, first line: alpelisib is for a later line
        ("hrpos", "BRCA", True, True, False, 0.0),
        # nothing tested
        ("untested", "BRCA", None, None, None, 0.0),
    ], "patient_key string, cancer_type string, pik3ca_mut boolean, er_pos boolean, "
       "erbb2_amp boolean, n_prior_lines double")
    catalog = regimen_catalog()
    brca = [r.name for r in catalog.for_cancer_type("BRCA")]
    candidates = spark.createDataFrame(
        [(k, "BRCA", t) for k in ("her2neg", "hrpos", "untested") for t in brca],
        "patient_key string, cancer_type string, treatment string")
    # the model prefers the targeted regimens for everyone (as in the reported demo)
    rmst = {"alpelisib_fulvestrant": 20.0, "trastuzumab_pertuzumab_docetaxel": 19.0,
            "letrozole_palbociclib": 18.0, "anthracycline_taxane": 15.0}
    preds = spark.createDataFrame(
        [(k, t, rmst[t], rmst[t] - 3) for k in ("her2neg", "hrpos", "untested") for t in brca],
        "patient_key string, treatment string, predicted_rmst double, rmst_lower double")
    labels = steps.label_status(candidates, features, catalog)
    out = preds.join(labels, ["patient_key", "treatment"], "left").transform(steps.with_rank)
    return {(r.patient_key, r.treatment): r for r in out.collect()}


def test_a_requirement_not_met_is_said_and_never_outranks_an_indicated_option(ranked):
    alp = ranked[("her2neg", "alpelisib_fulvestrant")]
    assert alp.label_status == "requirement not met: ER-negative"
    her2 = ranked[("her2neg", "trastuzumab_pertuzumab_docetaxel")]
    assert her2.label_status == "requirement not met: HER2-negative"
    # the chemotherapy standard of care (no label requirement) ranks first; the three the
    # label rules out are shown with the reason and get no rank at all
    assert ranked[("her2neg", "anthracycline_taxane")].rank == 1
    excluded = [alp, her2, ranked[("her2neg", "letrozole_palbociclib")]]
    assert [(r.rank, r.rank_status) for r in excluded] == [(None, "label requirement not met")] * 3


def test_nothing_the_label_rules_out_ranks_first_even_when_nothing_else_is_ranked(spark):
    """A HER2-positive patient whose indicated regimen and chemotherapy lack comparable
    patients: the endocrine regimens (HER2-negative labels) are not ranked either."""
    features = spark.createDataFrame([("p", "BRCA", True, True, True, 0.0)],
                                     "patient_key string, cancer_type string, pik3ca_mut "
                                     "boolean, er_pos boolean, erbb2_amp boolean, "
                                     "n_prior_lines double")
    catalog = regimen_catalog()
    brca = [r.name for r in catalog.for_cancer_type("BRCA")]
    candidates = spark.createDataFrame([("p", "BRCA", t) for t in brca],
                                       "patient_key string, cancer_type string, treatment string")
    no_overlap = {"trastuzumab_pertuzumab_docetaxel", "anthracycline_taxane"}
    preds = spark.createDataFrame(
        [("p", t, 14.0, 11.0, "insufficient comparable patients" if t in no_overlap
          else "ranked") for t in brca],
        "patient_key string, treatment string, predicted_rmst double, rmst_lower double, "
        "rank_status string")
    out = (preds.join(steps.label_status(candidates, features, catalog),
                      ["patient_key", "treatment"], "left").transform(steps.with_rank))
    assert {r.treatment: (r.rank, r.rank_status) for r in out.collect()} == {
        "trastuzumab_pertuzumab_docetaxel": (None, "insufficient comparable patients"),
        "anthracycline_taxane": (None, "insufficient comparable patients"),
        "letrozole_palbociclib": (None, "label requirement not met"),
        "alpelisib_fulvestrant": (None, "label requirement not met")}


def test_later_line_and_unknown_requirements_are_said(ranked):
    assert ranked[("hrpos", "alpelisib_fulvestrant")].label_status == (
        "on label at a later line (after 1 prior line)")
    assert ranked[("hrpos", "letrozole_palbociclib")].label_status == "on label now"
    assert ranked[("hrpos", "alpelisib_fulvestrant")].rank == 1
    unknown = ranked[("untested", "trastuzumab_pertuzumab_docetaxel")]
    assert unknown.label_status == "requirement unknown: HER2 status unknown"
    assert ranked[("untested", "anthracycline_taxane")].label_status is None


def test_an_untested_requirement_ranks_after_what_can_be_given_now(ranked):
    """Nothing tested: the targeted regimens need a test first, the chemotherapy does not."""
    assert ranked[("untested", "anthracycline_taxane")].rank == 1
    assert ranked[("untested", "alpelisib_fulvestrant")].rank == 2


def test_every_label_cites_its_source_and_names_real_features():
    from pipelines.features.steps import concept_map

    flags = set(concept_map().biomarker_flags)
    labelled = [r for r in regimen_catalog().regimens if r.label]
    assert {r.name for r in labelled} >= {"osimertinib", "sotorasib", "folfox_cetuximab",
                                         "alpelisib_fulvestrant", "dabrafenib_trametinib"}
    for r in labelled:
        assert r.label.source.startswith("FDA label") and r.label.requires
        assert {q.feature for q in r.label.requires} <= flags

"""The score stage's pure steps on small frames, without a JobRun or a table."""

from __future__ import annotations

import pandas as pd

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.ranking.stage import select_candidates

KEY = b"ranking-build-key"


def test_select_candidates_resolves_the_review_list_and_keeps_every_patient_accounted():
    catalog = regimen_catalog()
    k1, k2, k3 = (pseudonymise(s, KEY) for s in ("S1", "S2", "S3"))
    features = pd.DataFrame({"patient_key": [k2, k1, k3],
                             "cancer_type": ["NSCLC", "BRCA", "GBM"]})   # GBM: no regimen
    sel = select_candidates(features, ["S1", k2, "S3", "S404"], KEY, catalog)
    assert list(sel.features["patient_key"]) == sorted([k1, k2])         # sorted, GBM out
    n_nsclc = len(catalog.for_cancer_type("NSCLC"))
    n_brca = len(catalog.for_cancer_type("BRCA"))
    assert len(sel.candidates) == n_nsclc + n_brca
    rules = sorted((q[0], q[3]) for q in sel.quarantined)
    assert rules == sorted([(pseudonymise("S404", KEY), "review_patient_not_found"),
                            (k3, "no_candidate_treatments")])
    # rows in = candidate pairs + the patients that could not be scored
    assert sel.rows_in == n_nsclc + n_brca + 2

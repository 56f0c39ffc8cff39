"""What the models are given: the pipeline's own features of a generated cohort, against its
truth.

The features are ``gold.patient_features`` as the stages built them from the raw VCFs, CSV and
notes of the session's end-to-end run (``oracle_run`` in conftest: the ``realistic`` world);
the generator's ``truth/patients.csv`` is used only to judge them. A wrong label loses the
value of any model fitted on it: before the switch rule of
pipelines/clinical/therapy_lines.py, line 1 was mapped to the second regimen for 20% of patients, and a Cox refit's normalised policy value
on 2,000 patients went from 0.56 (true treatment) to 0.20 (benchmarks/RESULTS.md, "End-to-end
oracle benchmark"). How the models rank on these features is tested in
tests/test_end_to_end_oracle.py; the estimators on planted effects in tests/test_models.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.models.stage import training_rows
from pipelines.synth.oracle import load_truth
from pipelines.synth.true_features import truth_frame


@pytest.fixture(scope="module")
def joined(oracle_run):
    from deltalake import DeltaTable

    settings, out = oracle_run
    features = DeltaTable(str(settings.table("gold", "patient_features").path)).to_pandas()
    _, patients, _ = load_truth(out, settings.pseudonym_key)
    truth = truth_frame(patients).set_index("patient_key")
    extra = patients.set_index("patient_key")[["sequenced_in_house", "ecog_recorded",
                                               "vcf_drivers", "outside_lab_driver"]]
    rows = training_rows(features).set_index("patient_key")
    return rows.join(truth, rsuffix="_true", how="inner").join(extra, how="inner")


def test_every_treated_patient_reaches_the_models(joined):
    assert len(joined) >= 0.95 * 400


def test_first_line_treatment_and_outcome_labels_are_the_truth(joined):
    assert (joined["treatment"] == joined["treatment_true"]).mean() >= 0.98
    assert (joined["os_event"].astype(int) == joined["os_event_true"]).all()
    assert np.abs(joined["os_months"].astype(float) - joined["os_months_true"]).max() < 0.05


def test_stage_and_recorded_ecog_are_the_truth(joined):
    assert (joined["stage"] == joined["stage_true"]).mean() >= 0.99
    recorded = joined[joined["ecog_recorded"] == 1]
    assert (recorded["ecog"].astype(float) == recorded["ecog_true"]).mean() >= 0.97
    # Where no clinic recorded ECOG, the feature is unknown or comes from a note, never 0 by
    # default.
    missing = joined[joined["ecog_recorded"] == 0]
    assert len(missing) > 0
    assert (missing["ecog"].isna() | (missing["ecog_source"] == "notes")).all()


@pytest.mark.parametrize("flag", ["egfr_mut", "kras_g12c", "braf_v600e", "pik3ca_mut"])
def test_sequenced_biomarkers_are_the_truth(joined, flag):
    """Among tumours sequenced in house, a VCF-derived flag equals the truth."""
    seq = joined[joined["sequenced_in_house"] == 1]
    got = seq[flag].astype("boolean").fillna(False).to_numpy(bool)
    want = seq[f"{flag}_true"].to_numpy(bool)
    assert want.sum() >= 5, f"too few {flag}-positive sequenced patients to judge"
    assert (got == want).mean() >= 0.98, pd.crosstab(got, want)

"""The generator's scenarios (``oncorank synth --scenario``): harder worlds for the rankings.

Each mechanism is checked against what it claims: guideline care leaves few off-guideline
patients and real positivity violations; the frailty is recorded nowhere; the exact survival
of the switching model matches a simulation of it; informative missingness removes VCFs and
ECOG values; planted effects carry their trial citations.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from pipelines.lakehouse.errors import ConfigError
from pipelines.synth import generate_cohort
from pipelines.synth.patient import (
    _SurvivalLaw,
    cumulative_hazard,
    inverse_cumulative_hazard,
    patient_rng,
    simulate_patient,
    weibull_rmst,
)
from pipelines.synth.world import load_world, scenario_names


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


SCENARIOS = ["guideline", "unmeasured", "nonph", "informative-missing", "realistic"]


@pytest.fixture(scope="module")
def worlds():
    return {name: [simulate_patient(load_world(name), 5, i) for i in range(1000)]
            for name in ("default", *SCENARIOS)}


def test_every_scenario_is_listed_and_unknown_names_are_refused():
    assert scenario_names() == ["default", *SCENARIOS]
    with pytest.raises(ConfigError, match="Unknown scenario 'nope'"):
        load_world("nope")
    with pytest.raises(ConfigError, match="Unknown scenario"):
        load_world("_os_effects")


def test_scenarios_plant_overall_survival_effects_with_citations():
    for name in SCENARIOS:
        effects = load_world(name).clinical["treatment_effects"]
        for table in effects.values():
            for spec in table.values():
                for e in [*spec["rules"], spec["otherwise"], *spec.get("modifiers", [])]:
                    ref = e["reference"]
                    assert ("OS HR" in ref or "assum" in ref or "relative risk of death" in ref
                            or "standard of care" in ref or "unreachable" in ref
                            or "2-year OS" in ref), ref
    nsclc = load_world("realistic").clinical["treatment_effects"]["NSCLC"]
    assert nsclc["osimertinib"]["rules"][0]["hr"] == 0.80          # FLAURA OS
    assert nsclc["pembrolizumab"]["rules"][1]["hr"] == 0.63        # KEYNOTE-024 OS
    assert load_world("default").clinical["treatment_effects"]["NSCLC"]["osimertinib"][
        "rules"][0]["hr"] == 0.45                                   # default unchanged


def test_guideline_care_is_nearly_deterministic_and_leaves_positivity_violations(worlds):
    default, guided = worlds["default"], worlds["guideline"]
    off = np.mean([p.off_guideline for p in guided])
    assert off <= 0.03, off
    assert np.mean([p.off_guideline for p in default]) > 0.10
    # Off-guideline choices only in the named strata (age >= 75 or ECOG >= 2).
    strays = [p for p in guided if p.off_guideline]
    inside = np.mean([p.features["age75plus"] or p.features["ecog2plus"] for p in strays])
    assert inside >= 0.6, inside
    pairs_without = np.mean([not v for p in guided for v in p.overlap.values()])
    assert pairs_without > 0.3, pairs_without
    assert all(all(p.overlap.values()) for p in default)


def test_frailty_drives_choice_and_hazard_but_is_recorded_nowhere(worlds, tmp_path):
    ps = worlds["unmeasured"]
    z = np.array([p.frailty for p in ps])
    assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    intensive = np.array([p.first_line in ("platinum_pemetrexed", "anthracycline_taxane",
                                           "nivolumab_ipilimumab", "folfox_bevacizumab")
                          for p in ps])
    assert z[intensive].mean() < z[~intensive].mean() - 0.2
    assert all(p.frailty == 0.0 for p in worlds["default"])
    generate_cohort(tmp_path, patients=30, seed=2, workers=1, scenario="unmeasured")
    frail = {r["patient_id"]: r["frailty"] for r in _rows(tmp_path / "truth" / "patients.csv")}
    assert any(float(v) != 0 for v in frail.values())
    for folder in ("csv", "fhir", "notes"):
        for f in (tmp_path / folder).iterdir():
            text = f.read_text().lower()
            assert "frail" not in text, f


def test_delayed_effect_hazard_and_its_inverse_agree():
    for h in (0.01, 0.2, 0.9, 3.0):
        t = inverse_cumulative_hazard(h, 0.3, 0.6, 1.15, 20.0, delay=3.0, early_hr=1.0)
        assert math.isclose(float(cumulative_hazard(t, 0.3, 0.6, 1.15, 20.0, 3.0, 1.0)), h,
                            rel_tol=1e-9)


def test_switching_survival_matches_a_simulation_of_the_model():
    """The closed-form RMST of the illness-death model equals the mean of simulated
    restricted death times drawn with the generator's own sampler (Monte Carlo, 20k draws)."""
    world = load_world("realistic")
    p = next(p for p in (simulate_patient(world, 9, i) for i in range(200))
             if p.cancer_type == "NSCLC" and p.ecog < 3)
    mech = world.mechanisms
    law = _SurvivalLaw(world, p.cancer_type, p.known_features, p.frailty, p.ecog, p.hr,
                       p.lp_prognostic + mech["frailty"]["log_hr_per_sd"] * p.frailty,
                       p.shape, p.scale)
    rng = patient_rng(1, 0, 99)
    for regimen in ("pembrolizumab", "platinum_pemetrexed"):
        draws = np.array([min(law.draw(regimen, rng.exponential(), rng)[0], 24.0)
                          for _ in range(20000)])
        se = draws.std() / math.sqrt(len(draws))
        assert abs(draws.mean() - law.rmst(regimen, 24.0)) < 4 * se + 0.02, regimen
        assert math.isclose(law.rmst(regimen, 24.0), p.rmst[regimen], rel_tol=1e-9)


def test_switching_dilutes_the_first_line_difference(worlds):
    """Second lines at progression pull the arms' RMST together (the nonph world plants the
    same HRs as the OS-effect worlds, so its oracle gain over standard of care is smaller)."""
    def gain(ps):
        world = load_world("default")
        return np.mean([max(p.rmst.values()) - p.rmst[world.standard_of_care(p.cancer_type)]
                        for p in ps])
    assert gain(worlds["nonph"]) < gain(worlds["unmeasured"])


def test_closed_form_is_kept_where_no_mechanism_changes_survival(worlds):
    p = worlds["default"][0]
    assert math.isclose(p.rmst[p.first_line],
                        weibull_rmst(p.lp[p.first_line], p.shape, p.scale, 24.0))


def test_informative_missingness_removes_vcfs_and_ecog(tmp_path):
    summary = generate_cohort(tmp_path, patients=120, seed=4, workers=1,
                              scenario="informative-missing")
    rows = _rows(tmp_path / "truth" / "patients.csv")
    in_house = {r["patient_id"] for r in rows if r["sequenced_in_house"] == "1"}
    assert 0 < len(in_house) < len(rows)
    vcfs = {f.name.split(".")[0] for f in (tmp_path / "vcf").glob("PT*.vcf.gz")}
    assert vcfs == in_house
    no_ecog = {r["patient_id"] for r in rows if r["ecog_recorded"] == "0"}
    assert no_ecog
    csv_ecog = {r["patient_id"]: r["ecog"] for r in _rows(tmp_path / "csv" / "patients.csv")}
    assert all(csv_ecog[pid] == "" for pid in no_ecog)
    assert all(csv_ecog[r["patient_id"]] != "" for r in rows if r["ecog_recorded"] == "1")
    ecog_obs = {json.loads(line)["subject"]["reference"].split("/")[-1]
                for line in (tmp_path / "fhir" / "Observation.ndjson").read_text().splitlines()
                if "-obs-ecog" in line}
    assert not (ecog_obs & no_ecog)
    params = json.loads((tmp_path / "truth" / "params.json").read_text())
    assert params["scenario"] == "informative-missing"
    assert params["realised"]["not_sequenced"] == summary["realised"]["not_sequenced"] > 0
    # Sicker patients are tested less often (the mechanism is informative).
    lp = np.array([float(r["lp_prognostic"]) for r in rows])
    tested = np.array([r["ngs_tested"] == "1" for r in rows])
    assert lp[tested].mean() < lp[~tested].mean()


def test_truth_has_propensity_overlap_and_difference_per_pair(tmp_path):
    generate_cohort(tmp_path, patients=40, seed=6, workers=1, scenario="realistic")
    oracle = _rows(tmp_path / "truth" / "treatment_oracle.csv")
    by_patient: dict = {}
    for r in oracle:
        by_patient.setdefault(r["patient_id"], []).append(r)
    for rows in by_patient.values():
        soc = next(r for r in rows if r["standard_of_care"] == "1")
        assert float(soc["true_rmst_diff_vs_soc"]) == 0.0
        for r in rows:
            assert math.isclose(float(r["true_rmst_diff_vs_soc"]),
                                float(r["true_rmst"]) - float(soc["true_rmst"]), abs_tol=2e-4)
            assert r["overlap"] == str(int(float(r["choice_probability"]) >= 0.02))
        assert sum(float(r["choice_probability"]) for r in rows) == pytest.approx(1, abs=1e-3)
    assert (tmp_path / "truth" / "README.md").read_text().startswith("# Ground truth")

"""Comorbidity indices against an independent implementation and hand-checked cases.

The reference is ``pycomorb`` (Fassbender, MIT, maintained; its Quan 2005 ICD-10 tables come
from the R ``comorbidity`` package lineage, not from our data files). ``comorbidipy`` was not
usable: 0.8.0 needs Python >= 3.13 and 0.5.0 breaks on pandas 2.x (FINDINGS.md).
"""

from __future__ import annotations

import random
from importlib import resources

import pytest

from pipelines.clinical.codes import (
    charlson_components,
    elixhauser_components,
    expand_codes,
)
from pipelines.clinical.comorbidity import comorbidity_flags, contraindication_flags

pl = pytest.importorskip("polars")
pycomorb = pytest.importorskip("pycomorb")

# pycomorb category name -> our column (names differ, meanings are the published ones)
CHARLSON_NAMES = {
    "Myocardial infarction": "cci_mi",
    "Congestive heart failure": "cci_chf",
    "Peripheral vascular disease": "cci_pvd",
    "Cerebrovascular disease": "cci_cevd",
    "Dementia": "cci_dementia",
    "Chronic pulmonary disease": "cci_copd",
    "Rheumatic disease": "cci_rheumd",
    "Peptic ulcer disease": "cci_pud",
    "Mild liver disease": "cci_mld",
    "Diabetes without chronic complication": "cci_diab",
    "Diabetes with chronic complication": "cci_diabwc",
    "Hemiplegia or paraplegia": "cci_hp",
    "Renal disease": "cci_rend",
    "Any malignancy, including lymphoma and leukemia, except malignant neoplasm of skin":
        "cci_canc",
    "Moderate or severe liver disease": "cci_msld",
    "Metastatic solid tumor": "cci_metacanc",
    "AIDS/HIV": "cci_aids",
}
ELIXHAUSER_NAMES = {
    "Congestive heart failure": "elix_chf",
    "Cardiac arrhythmias": "elix_carit",
    "Valvular disease": "elix_valv",
    "Pulmonary circulation disorders": "elix_pcd",
    "Peripheral vascular disorders": "elix_pvd",
    "Hypertension uncomplicated": "elix_hypunc",
    "Hypertension complicated": "elix_hypc",
    "Paralysis": "elix_para",
    "Other neurological disorders": "elix_ond",
    "Chronic pulmonary disease": "elix_cpd",
    "Diabetes uncomplicated": "elix_diabunc",
    "Diabetes complicated": "elix_diabc",
    "Hypothyroidism": "elix_hypothy",
    "Renal failure": "elix_rf",
    "Liver disease": "elix_ld",
    "Peptic ulcer disease excluding bleeding": "elix_pud",
    "AIDS/HIV": "elix_aids",
    "Lymphoma": "elix_lymph",
    "Metastatic cancer": "elix_metacanc",
    "Solid tumor without metastasis": "elix_solidtum",
    "Rheumatoid arthritis/collagen vascular diseases": "elix_rheumd",
    "Coagulopathy": "elix_coag",
    "Obesity": "elix_obes",
    "Weight loss": "elix_wloss",
    "Fluid and electrolyte disorders": "elix_fed",
    "Blood loss anemia": "elix_blane",
    "Deficiency anemia": "elix_dane",
    "Alcohol abuse": "elix_alcohol",
    "Drug abuse": "elix_drug",
    "Psychoses": "elix_psycho",
    "Depression": "elix_depre",
}


def _reference_prefixes() -> list[str]:
    """ICD-10 prefixes from pycomorb's own tables (so codes only it knows are sampled too)."""
    import csv

    out = []
    for name in ("CHARLSON_QUAN.csv", "ELIXHAUSER_QUAN.csv"):
        text = resources.files("pycomorb").joinpath("common", name).read_text()
        for row in csv.DictReader(text.splitlines()):
            out += [c for c in (row.get("icd10_codes") or "").split("|") if c and c != "YYYY"]
    return out


def _random_code(rng: random.Random, prefixes: list[str]) -> str:
    """A plausible ICD-10(-CM) code: a listed prefix extended, a near miss, or noise."""
    r = rng.random()
    if r < 0.7:
        code = rng.choice(prefixes)
        while len(code) < 3 or (len(code) < 7 and rng.random() < 0.5):
            code += rng.choice("0123456789" if len(code) < 3 else "0123456789XA")
    elif r < 0.85:  # near miss: a listed category with another 4th character
        code = rng.choice(prefixes)[:3] + rng.choice("0123456789")
    else:  # noise anywhere in the alphabet
        code = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(2, 5)))
    if len(code) > 3 and rng.random() < 0.5:
        code = code[:3] + "." + code[3:]
    if rng.random() < 0.1:
        code = code.lower()
    return code


def _random_code_sets(n_patients: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    ours = [p for c in charlson_components() + elixhauser_components() for p in c.prefixes]
    prefixes = sorted(set(ours) | set(_reference_prefixes()))
    rows = []
    for i in range(n_patients):
        pid = f"P{i:05d}"
        for _ in range(rng.randint(1, 8)):
            rows.append((pid, _random_code(rng, prefixes)))
    return rows


def _reference(rows: list[tuple[str, str]]):
    df = pl.DataFrame({"id": [r[0] for r in rows], "code": [r[1] for r in rows],
                       "age": [0] * len(rows)})
    cci = pycomorb.CharlsonComorbidityIndex(df, implementation="quan", weights="charlson",
                                            return_categories=True)
    eci = pycomorb.ElixhauserComorbidityIndex(df.drop("age"), implementation="quan",
                                              weights="van_walraven", return_categories=True)
    cci = cci.rename({**CHARLSON_NAMES, "Charlson Comorbidity Index": "charlson_index"})
    eci = eci.rename({**ELIXHAUSER_NAMES, "Elixhauser Comorbidity Index": "elixhauser_vw"})
    cols = ["id", *CHARLSON_NAMES.values(), "charlson_index"]
    ecols = ["id", *ELIXHAUSER_NAMES.values(), "elixhauser_vw"]
    return cci.select(cols).join(eci.select(ecols), on="id").sort("id").to_pandas()


def test_components_and_scores_agree_with_pycomorb_on_random_code_sets(spark):
    rows = _random_code_sets(3000, seed=20260501)
    ours = (
        comorbidity_flags(spark.createDataFrame(rows, "patient_id string, code string"),
                          id_col="patient_id")
        .orderBy("patient_id").toPandas().set_index("patient_id")
    )
    ref = _reference(rows).set_index("id")
    assert len(ours) == len(ref) == 3000
    columns = [*CHARLSON_NAMES.values(), "charlson_index", *ELIXHAUSER_NAMES.values(),
               "elixhauser_vw"]
    mismatches = {}
    for col in columns:
        diff = (ours[col].astype(int) != ref.loc[ours.index, col].astype(int))
        if diff.any():
            mismatches[col] = list(ours.index[diff][:3])
    assert not mismatches, f"disagreements with pycomorb (column: example ids): {mismatches}"
    # The sample must exercise the components, else agreement would mean little.
    for col in [*CHARLSON_NAMES.values(), *ELIXHAUSER_NAMES.values()]:
        assert ours[col].sum() >= 5, f"{col} is hardly ever present in the random sample"


def test_hierarchy_rules_dotted_and_undotted_codes(spark):
    rows = [
        ("diab", "E11.9"), ("diab", "e1122"),      # complicated supersedes uncomplicated
        ("meta", "C34.1"), ("meta", "C78.0"),      # metastatic supersedes any malignancy
        ("liver", "K74.6"), ("liver", "I85.0"),    # severe supersedes mild liver disease
        ("htn", "I10"), ("htn", "I13.0"),          # complicated hypertension (Elixhauser)
        ("skin", "C44.9"),                         # non-melanoma skin cancer is not counted
        ("none", "Z00.00"),
    ]
    out = {r["patient_id"]: r.asDict() for r in comorbidity_flags(
        spark.createDataFrame(rows, "patient_id string, code string"),
        id_col="patient_id").collect()}
    d = out["diab"]
    assert (d["cci_diab"], d["cci_diabwc"], d["charlson_index"]) == (0, 1, 2)
    assert (d["elix_diabunc"], d["elix_diabc"]) == (0, 1)
    m = out["meta"]
    assert (m["cci_canc"], m["cci_metacanc"], m["cci_copd"], m["charlson_index"]) == (0, 1, 0, 6)
    assert (m["elix_solidtum"], m["elix_metacanc"], m["elixhauser_vw"]) == (0, 1, 12)
    liver = out["liver"]
    assert (liver["cci_mld"], liver["cci_msld"], liver["charlson_index"]) == (0, 1, 3)
    assert liver["elix_ld"] == 1 and liver["elixhauser_vw"] == 11
    h = out["htn"]
    # I13.0 (hypertensive heart and kidney disease with heart failure) is CHF, not renal.
    assert (h["elix_hypunc"], h["elix_hypc"], h["cci_chf"], h["cci_rend"]) == (0, 1, 1, 0)
    assert out["skin"]["cci_canc"] == 0 and out["skin"]["charlson_index"] == 0
    assert out["none"]["charlson_index"] == 0 and out["none"]["elixhauser_vw"] == 0


def test_van_walraven_negative_weights(spark):
    # Obesity -4, drug abuse -7, depression -3: the score can be negative by design.
    rows = [("p", "E66.01"), ("p", "F11.20"), ("p", "F32.9")]
    row = comorbidity_flags(spark.createDataFrame(rows, "patient_id string, code string"),
                            id_col="patient_id").first()
    assert row["elixhauser_vw"] == -14
    assert row["charlson_index"] == 0


def test_ids_without_codes_get_zero_rows(spark):
    codes = spark.createDataFrame([("a", "I21.0")], "patient_key string, code string")
    ids = spark.createDataFrame([("a",), ("b",)], "patient_key string")
    out = {r["patient_key"]: r for r in comorbidity_flags(codes, ids=ids).collect()}
    assert out["a"]["cci_mi"] == 1 and out["a"]["charlson_index"] == 1
    assert out["b"]["cci_mi"] == 0 and out["b"]["charlson_index"] == 0


def test_expand_codes_rejects_malformed_ranges():
    assert expand_codes("Z49.0-Z49.2") == ("Z490", "Z491", "Z492")
    with pytest.raises(ValueError, match="range"):
        expand_codes("I42.5-J42.9")
    with pytest.raises(ValueError, match="backwards"):
        expand_codes("C26-C20")


def test_contraindication_flags_from_codes_and_notes(spark):
    codes = spark.createDataFrame(
        [("a", "N18.4"), ("b", "N18.2"), ("c", "I50.22"), ("d", "J84.10"), ("e", "M05.79"),
         ("f", "K52.1"), ("g", "K70.30"), ("h", "Z94.0")],
        "patient_key string, code string")
    findings = spark.createDataFrame(
        [("i", "pneumonitis", "historical"), ("j", "colitis", "negated"),
         ("k", "Hepatitis", "affirmed"), ("l", "pneumonitis", "family")],
        "patient_key string, concept string, context string")
    ids = spark.createDataFrame([(x,) for x in "abcdefghijkl"], "patient_key string")
    out = {r["patient_key"]: r.asDict() for r in
           contraindication_flags(codes, findings, ids).collect()}
    raised = {k: sorted(c for c, v in r.items() if c.startswith("ci_") and v == 1)
              for k, r in out.items()}
    assert raised == {
        "a": ["ci_renal"],
        "b": [],                                   # CKD stage 2 is mild
        "c": ["ci_chf"],
        "d": ["ci_ild"],
        "e": ["ci_autoimmune"],
        "f": ["ci_prior_severe_irae"],
        "g": ["ci_hepatic"],
        "h": ["ci_renal", "ci_transplant"],        # Z94.0 kidney transplant is both
        "i": ["ci_ild", "ci_prior_severe_irae"],   # historical pneumonitis
        "j": [],                                   # negated colitis
        "k": ["ci_hepatic", "ci_prior_severe_irae"],
        "l": [],                                   # family history
    }

"""`oncorank comorbidity` through the real CLI entry point (same process, shared session)."""

from __future__ import annotations

import csv
import io

import pytest

from pipelines.cli import main


def _run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    # rich wraps long messages at the console width: join the lines before matching
    return code, captured.out, captured.err.replace("\n", "")


def test_comorbidity_command_writes_one_row_per_patient(spark, tmp_path, capsys):
    src = tmp_path / "codes.csv"
    src.write_text(
        "patient_id,code,visit\n"
        "PT1,E11.9,a\nPT1,E1122,b\nPT1,I50.9,c\n"       # diabetes superseded; CHF
        "PT2,C34.90,a\nPT2,C78.01,a\n"                  # metastatic supersedes malignancy
        "PT3,Z00.00,a\n"                                # nothing
        "PT3,,b\n"                                      # empty code is ignored
    )
    out = tmp_path / "out" / "scores.csv"
    code, _, err = _run(["comorbidity", "--input", str(src), "--output", str(out)], capsys)
    assert code == 0, err
    rows = {r["patient_id"]: r for r in csv.DictReader(out.open())}
    assert sorted(rows) == ["PT1", "PT2", "PT3"]
    header = next(csv.reader(out.open()))
    assert header[0] == "patient_id"
    assert "charlson_index" in header and "elixhauser_vw" in header
    assert sum(h.startswith("cci_") for h in header) == 17
    assert sum(h.startswith("elix_") for h in header) == 31
    p1, p2, p3 = rows["PT1"], rows["PT2"], rows["PT3"]
    assert (p1["cci_diab"], p1["cci_diabwc"], p1["cci_chf"], p1["charlson_index"]) == (
        "0", "1", "1", "3")
    assert (p1["elix_chf"], p1["elix_diabc"], p1["elixhauser_vw"]) == ("1", "1", "7")
    assert (p2["cci_canc"], p2["cci_metacanc"], p2["charlson_index"]) == ("0", "1", "6")
    assert (p2["elix_solidtum"], p2["elix_metacanc"], p2["elixhauser_vw"]) == ("0", "1", "12")
    assert p3["charlson_index"] == "0" and p3["elixhauser_vw"] == "0"


def test_comorbidity_command_prints_csv_without_output(spark, tmp_path, capsys):
    src = tmp_path / "codes.csv"
    src.write_text("patient_id,code\nA,I21.4\n")
    code, stdout, err = _run(["comorbidity", "--input", str(src)], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert [(r["patient_id"], r["cci_mi"], r["charlson_index"]) for r in rows] == [("A", "1", "1")]


@pytest.mark.parametrize("content, missing", [
    ("patient_id,icd10\nA,I21.4\n", "'code'"),
    ("id,code\nA,I21.4\n", "'patient_id'"),
])
def test_missing_column_is_one_clear_sentence(spark, tmp_path, capsys, content, missing):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    code, _, err = _run(["comorbidity", "--input", str(src)], capsys)
    assert code == 2
    assert missing in err and "bad.csv" in err and "found" in err
    assert "Traceback" not in err


def test_missing_input_file_is_a_clear_error(tmp_path, capsys):
    code, _, err = _run(["comorbidity", "--input", str(tmp_path / "nope.csv")], capsys)
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err


def test_skipped_rows_are_counted_on_stderr_and_written_to_rejects(spark, tmp_path, capsys):
    src = tmp_path / "codes.csv"
    src.write_text(
        "patient_id,code,visit\n"
        "PT1,I50.9,a\n"            # used: CHF
        "PT1,Z00.00,b\n"           # used: valid ICD-10 outside every component
        ",I21.4,c\n"               # no patient id
        "  ,E11.9,d\n"             # blank patient id
        "PT2,22298006,e\n"         # a SNOMED CT number, not ICD-10
        "PT2,heart attack,f\n"     # free text
        "PT3,,g\n"                 # no code
    )
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects" / "skipped.csv"
    code, _, err = _run(["comorbidity", "--input", str(src), "--output", str(out),
                         "--rejects", str(rejects)], capsys)
    assert code == 0, err
    assert ("read 7 rows: 2 used, 5 skipped (code is empty: 1; code is not an ICD-10 code: 2; "
            "patient_id is empty: 2); 1 patient written") in err
    assert str(rejects) in err
    # PT2 and PT3 have no usable row: not reported as "no comorbidity"
    assert [r["patient_id"] for r in csv.DictReader(out.open())] == ["PT1"]
    skipped = list(csv.DictReader(rejects.open()))
    assert next(csv.reader(rejects.open())) == ["patient_id", "code", "visit", "reason"]
    assert sorted((r["visit"], r["code"], r["reason"]) for r in skipped) == [
        ("c", "I21.4", "patient_id is empty"),
        ("d", "E11.9", "patient_id is empty"),
        ("e", "22298006", "code is not an ICD-10 code"),
        ("f", "heart attack", "code is not an ICD-10 code"),
        ("g", "", "code is empty"),
    ]


def test_nothing_skipped_still_says_what_was_read(spark, tmp_path, capsys):
    src = tmp_path / "codes.csv"
    src.write_text("patient_id,code\nA,I21.4\nA,c4a.0\n")
    rejects = tmp_path / "skipped.csv"
    code, stdout, err = _run(["comorbidity", "--input", str(src), "--rejects", str(rejects)],
                             capsys)
    assert code == 0, err
    assert "read 2 rows: 2 used, 0 skipped; 1 patient written" in err
    assert "read 2 rows" not in stdout  # the CSV on stdout stays clean
    assert rejects.read_text() == "patient_id,code,reason\n"

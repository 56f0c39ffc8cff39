"""report stage: self-contained HTML + PDF per patient, board index, tested in real Chromium.

The world is small gold/silver tables written here, a champion trained by the real train
stage, and rankings written by the real score stage.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from html import unescape
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from test_ranking import BOARD, KEY, board_frames, board_settings, train_champion, write_board

from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.ranking.stage import score
from pipelines.reports import render
from pipelines.reports.browser import HeadlessBrowser, find_chromium
from pipelines.reports.stage import render_reports

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SECTIONS = ["header", "options", "curves", "genomics", "notes", "comorbidities", "why",
            "model-card", "disclaimer"]
# Fake PHI as a generator would plant it: never in analyst tables or the default report.
NAMES = ["Marguerite Okonkwo-Lindqvist", "Bartholomew Fairweather-Nakamura",
         "Wilhelmina Abernathy-Quispe"]
MRNS = ["MRN88172635", "MRN55510293", "MRN40093817"]
DOBS = ["1951-04-17", "1948-11-02", "1957-06-30"]
RAW_NOTE = ("Patient Marguerite Okonkwo-Lindqvist (MRN88172635, DOB 04/17/1951) seen today; "
            "history of grade 3 pneumonitis on prior therapy.")
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")


def write_clinical(spark, settings, frames: dict, keys: list[str]) -> dict:
    """silver.patients, restricted.patient_identity, silver.biomarkers, silver.variants."""
    feats = frames["features"].set_index("patient_key")
    patients, identity, biomarkers, variants = [], [], [], []
    src_of = {pseudonymise(sid, KEY): sid for sid in frames["ids"].values()}
    for i, k in enumerate(keys):
        f = feats.loc[k]
        patients.append((k, f["sex"], float(f["age_at_diagnosis"]), f["cancer_type"],
                         f["stage"], "csv", dt.date(2026, 9, 1), dt.date(2026, 11, 1),
                         float(f["ecog"]), "csv"))
        identity.append((k, src_of[k], NAMES[i % 3], MRNS[i % 3],
                         dt.date.fromisoformat(DOBS[i % 3]), "csv"))
        biomarkers.append((k, float(f["tmb"]), bool(f["egfr_mut"]), bool(f["kras_g12c"])))
        variants.append((f"v{i}a", k, src_of[k], "17", 7675088, "C", "T", "PASS", "0/1", 0.41,
                         212, "TP53", "missense_variant", "c.524G>A", "p.R175H",
                         "ENST00000269305", f"vcf/{src_of[k]}.vcf.gz"))
        variants.append((f"v{i}b", k, src_of[k], "12", 25245350, "C", "A", "LowQual", "0/1",
                         0.05, 30, "KRAS", "missense_variant", "c.35G>T", "p.G12V",
                         "ENST00000256331", f"vcf/{src_of[k]}.vcf.gz"))
    delta.write_table(spark, spark.createDataFrame(
        patients, "patient_key string, sex string, age_at_diagnosis double, "
                  "cancer_type string, stage string, stage_source string, "
                  "diagnosis_date date, index_date date, "
                  "ecog double, source string"), settings.table("silver", "patients"),
        mode="overwrite")
    delta.write_table(spark, spark.createDataFrame(
        identity, "patient_key string, source_patient_id string, name string, mrn string, "
                  "birth_date date, source string"),
        settings.table("restricted", "patient_identity"), mode="overwrite")
    delta.write_table(spark, spark.createDataFrame(
        biomarkers, "patient_key string, tmb double, egfr_mut boolean, kras_g12c boolean"),
        settings.table("silver", "biomarkers"), mode="overwrite")
    delta.write_table(spark, spark.createDataFrame(
        variants, "variant_key string, patient_key string, sample string, chrom string, "
                  "pos long, ref string, alt string, filter string, gt string, vaf double, "
                  "dp int, gene string, consequence string, hgvsc string, hgvsp string, "
                  "transcript string, source_file string"),
        settings.table("silver", "variants"), mode="overwrite")
    # A FHIR biomarker Observation of the first patient (a third source beside VCF and notes).
    delta.write_table(spark, spark.createDataFrame(
        [("obs-pdl1-7", keys[0], "PD-L1 TPS", "affirmed", "60", None, dt.date(2026, 11, 20),
          "85147-9")],
        "observation_id string, patient_key string, concept string, context string, "
        "value string, comparator string, obs_date date, loinc string"),
        settings.table("silver", "biomarker_observations"), mode="overwrite")
    # The raw note the snippet "History of grade 3 pneumonitis..." was de-identified from.
    delta.write_table(spark, spark.createDataFrame(
        [("n1", src_of[keys[1]], "oncology progress", dt.date(2026, 10, 1), RAW_NOTE,
          "notes.jsonl")],
        "note_id string, patient_id string, note_type string, note_date date, text string, "
        "source_file string"), settings.table("bronze", "notes_raw"), mode="overwrite")
    return {"source_ids": [src_of[k] for k in keys]}


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("reports-board")
    settings = board_settings(root)
    frames = board_frames(n=30, seed=21, n_train=800, prefix="RP")
    sp = frames["special"]
    keys = list(dict.fromkeys([sp["ild"], sp["noted"], sp["kras"], sp["autoimmune"],
                               *frames["oracle"]["patient_key"].unique()[:2]]))
    write_board(spark, settings, frames)
    clinical = write_clinical(spark, settings, frames, keys)
    train_champion(spark, settings)
    review = root / "review.txt"
    review.write_text("\n".join(clinical["source_ids"]) + "\n")
    score(spark, settings, patients_file=str(review))
    run = render_reports(spark, settings)
    care = render_reports(spark, settings, care_team=True)
    folder = settings.reports_path / BOARD
    return {"settings": settings, "frames": frames, "keys": keys, "run": run, "care": care,
            "folder": folder}


def test_one_html_and_pdf_per_patient_named_by_key_plus_an_index(world):
    folder, keys = world["folder"], world["keys"]
    html = sorted(p.stem for p in folder.glob("*.html") if p.name != "index.html")
    assert html == sorted(keys)
    for k in keys:
        assert (folder / f"{k}.pdf").read_bytes()[:5] == b"%PDF-"
    assert world["run"].rows_in == world["run"].rows_written == len(keys)
    index = (folder / "index.html").read_text()
    for k in keys:
        assert f'href="{k}.html"' in index and f'href="{k}.pdf"' in index
    top = world["frames"]["special"]["ild"]
    assert "Level A" in index  # the EGFR patient's top option carries its evidence
    assert "Interstitial lung disease" in index or top not in index


@needs_chromium
def test_report_renders_in_headless_chromium_offline_and_prints(world):
    ARTIFACTS.mkdir(exist_ok=True)
    key = world["frames"]["special"]["ild"]
    page_path = world["folder"] / f"{key}.html"
    with HeadlessBrowser() as browser:
        page = browser.open(page_path.as_uri())
        state = page.evaluate("""(() => {
          const out = {};
          for (const id of __SECTIONS__) {
            const el = document.getElementById(id);
            if (!el) { out[id] = null; continue; }
            const r = el.getBoundingClientRect();
            out[id] = {h: r.height, w: r.width, text: el.innerText.length,
                       display: getComputedStyle(el).display};
          }
          const img = document.getElementById('survival-plot');
          out.plot = img && {complete: img.complete, nw: img.naturalWidth, nh: img.naturalHeight,
                             h: img.getBoundingClientRect().height,
                             src: img.getAttribute('src').slice(0, 25)};
          out.n_options = document.querySelectorAll('#options tbody.option').length;
          out.csp = document.querySelector('meta[http-equiv="Content-Security-Policy"]')
                    .getAttribute('content');
          out.external = [...document.querySelectorAll('[src],[href]')]
                    .map(e => e.getAttribute('src') || e.getAttribute('href'))
                    .filter(u => /^(https?:)?\\/\\//.test(u));
          out.title = document.title;
          return out;
        })()""".replace("__SECTIONS__", json.dumps(SECTIONS)))
        for sec in SECTIONS:
            assert state[sec] is not None, f"section {sec} missing"
            assert state[sec]["h"] > 10 and state[sec]["display"] != "none", (sec, state[sec])
            assert state[sec]["text"] > 20, (sec, state[sec])
        plot = state["plot"]
        assert plot["complete"] and plot["nw"] > 100 and plot["h"] > 100, plot
        assert plot["src"] == "data:image/svg+xml;base64"
        assert state["n_options"] == 4
        assert "default-src 'none'" in state["csp"] and state["external"] == []
        assert key in state["title"]
        # Nothing but the page itself was requested: no fonts, scripts or images from anywhere.
        assert [u for u in page.requests if not u.startswith(("file:", "data:"))] == []
        assert not [m for m in page.console_messages if "Content Security Policy" in m]
        shot = page.screenshot(ARTIFACTS / "tumor-board-report.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pdf = page.print_pdf()
        assert pdf[:5] == b"%PDF-" and len(pdf) > 20_000
        page.close()
        index = browser.open((world["folder"] / "index.html").as_uri())
        rows = index.evaluate("document.querySelectorAll('#patients tbody tr').length")
        assert rows == len(world["keys"])
        assert [u for u in index.requests if not u.startswith(("file:", "data:"))] == []
        index.screenshot(ARTIFACTS / "tumor-board-index.png")
        index.close()


def test_report_content_answers_the_boards_questions(world):
    sp = world["frames"]["special"]
    html = (world["folder"] / f"{sp['ild']}.html").read_text()
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    for needle in ("Predicted RMST, months", "Level A", "EGFR L858R", "on-label",
                   "Interstitial lung disease", "TP53", "p.R175H", "mutations/Mb",
                   "EGFR exon 21 L858R detected.", "Charlson comorbidity index",
                   "Harrell's C", "decision support for clinicians",
                   "95% percentile intervals from 5 draws", "Chance of rank 1",
                   "What is estimated", "Known limitations", "cannot be excluded",
                   "First-line regimens received"):
        assert needle in text, needle
    assert "p.G12V" not in text  # a LowQual call is not shown as a driver
    # every fact names its source: the VCF record of a variant, the FHIR Observation id, the
    # stage's origin (the note sentence of a note finding is checked below)
    assert "VCF 17:7675088 C>T" in text
    obs = html.split('<table id="observations">')[1].split("</table>")[0]
    assert "FHIR Observation obs-pdl1-7" in obs and "after index date" in obs  # not an input
    assert "(clinical CSV)" in text
    kb = world["frames"]["actionable"]["kb_version"].iloc[0]
    assert f"knowledge base {kb}" in text                       # the footer names the release
    noted = (world["folder"] / f"{sp['noted']}.html").read_text()
    assert "History of grade 3 pneumonitis on prior therapy." in noted
    assert "historical" in noted


def test_options_without_comparable_patients_are_listed_without_rank_or_prediction(spark,
                                                                                    world):
    r = delta.read_table(spark, world["settings"].table("gold", "treatment_rankings")).toPandas()
    unranked = r[r["rank"].isna() & r["patient_key"].isin(world["keys"])]
    assert len(unranked), "the board should hold an option the ranking abstains on"
    for row in unranked.head(3).itertuples():
        html = (world["folder"] / f"{row.patient_key}.html").read_text()
        body = next(b for b in html.split("<tbody")[1:] if f"<strong>{row.treatment}</strong>" in b)
        assert f"not ranked: {row.rank_status}" in body
        rmst = f"{row.predicted_rmst:.1f}"
        assert rmst not in unescape(re.sub(r"<[^>]+>", " ", body)), "no prediction is shown"
        assert 'rank1' not in body.split(">")[0]
        alt = re.search(r'id="survival-plot" src="[^"]*" alt="([^"]*)"', html)
        assert alt is None or row.treatment not in alt.group(1).split("RMST")[0]


def test_ranking_notice_says_why_a_patient_has_no_ranking():
    from pipelines.reports.sections import ranking_notice

    card = {"training_cohort": {"n_patients": 30, "n_events": 12}}
    small = [{"treatment": t, "ranked": False, "is_soc": t == "chemo",
              "rank_status": "too few treated patients in training"} for t in ("chemo", "io")]
    text = ranking_notice(small, card)
    assert text.startswith("The cohort is too small to rank") and "30 patients (12 deaths)" in text
    only_soc = [{**small[0], "ranked": True, "rank_status": "ranked"},
                {**small[1], "rank_status": "insufficient comparable patients"}]
    assert ranking_notice(only_soc, card).startswith("Only the standard of care (chemo)")
    none = [{**o, "rank_status": "insufficient comparable patients"} for o in small]
    assert ranking_notice(none, card).startswith("No option can be ranked")
    assert ranking_notice([{**small[1], "ranked": True, "rank_status": "ranked"}], card) == ""


def test_default_report_and_analyst_tables_carry_no_phi(spark, world):
    folder = world["folder"]
    raw_fragments = [RAW_NOTE, RAW_NOTE[:40], "DOB 04/17/1951"]
    phi = NAMES + MRNS + DOBS + raw_fragments
    source_ids = list(world["frames"]["ids"].values())
    for path in [*folder.glob("*.html")]:
        text = path.read_text()
        for s in phi + source_ids:
            assert s not in text, (path.name, s)
    settings = world["settings"]
    for schema, name in (("gold", "treatment_rankings"), ("gold", "drift"),
                         ("gold", "quarantine_treatment_rankings"), ("ops", "job_runs")):
        ref = settings.table(schema, name)
        if not delta.table_exists(spark, ref):
            continue
        df = delta.read_table(spark, ref)
        blob = "\n".join(str(r) for r in df.select(
            [F.col(c).cast("string") for c in df.columns]).collect())
        for s in phi + source_ids:
            assert s not in blob, (ref.key, s)


def test_care_team_variant_shows_name_and_mrn_in_its_own_folder(world):
    care = world["folder"] / "care-team"
    key = world["keys"][0]
    html = (care / f"{key}.html").read_text()
    assert NAMES[0] in html and MRNS[0] in html
    assert DOBS[0] not in html
    index = (care / "index.html").read_text()
    assert NAMES[0] in index and MRNS[0] in index
    # The default variant of the same patient stays clean.
    assert NAMES[0] not in (world["folder"] / f"{key}.html").read_text()


def test_rerendering_writes_identical_html(spark, world):
    folder = world["folder"]
    before = {p.name: p.read_bytes() for p in folder.glob("*.html")}
    render_reports(spark, world["settings"].replace(sections={"reports": {"pdf": False},
                                                              "models": {}}))
    after = {p.name: p.read_bytes() for p in folder.glob("*.html")}
    assert before.keys() == after.keys()
    changed = [n for n in before if n != "index.html" and before[n] != after[n]]
    assert changed == []


def test_html_only_when_chromium_is_absent(spark, world, monkeypatch, tmp_path):
    monkeypatch.setenv("ONCORANK_CHROMIUM", str(tmp_path / "no-such-browser"))
    settings = world["settings"].replace(reports_dir=str(tmp_path / "reports"))
    run = render_reports(spark, settings)
    folder = tmp_path / "reports" / BOARD
    assert "Chromium is not installed" in run.pdf_note
    assert list(folder.glob("*.pdf")) == []
    assert len(list(folder.glob("*.html"))) == len(world["keys"]) + 1
    assert ".pdf" not in (folder / "index.html").read_text()


def test_an_id_with_path_characters_cannot_escape_the_report_folder(spark, world, tmp_path):
    settings = world["settings"].replace(reports_dir=str(tmp_path / "reports"),
                                         board_date="2026-12-24")
    ref = settings.table("gold", "treatment_rankings")
    rows = delta.read_table(spark, ref).filter(F.col("patient_key") == world["keys"][0])
    evil = "../../../escaped/..%2Fx"
    forged = rows.withColumn("patient_key", F.lit(evil)).withColumn(
        "board_date", F.lit("2026-12-24").cast("date"))
    delta.write_table(spark, forged, ref, mode="merge",
                      keys=["patient_key", "treatment", "board_date"])
    try:
        run = render_reports(spark, settings.replace(sections={"reports": {"pdf": False}}))
    finally:
        delta._delta_table(spark, ref).delete(F.col("patient_key") == evil)
    folder = (tmp_path / "reports" / "2026-12-24").resolve()
    written = [p.resolve() for p in run.report_files]
    assert all(p.parent == folder for p in written), written
    assert all(p.resolve().parent == folder for p in tmp_path.rglob("*.html"))
    assert not (tmp_path / "escaped").exists()
    names = {p.name for p in folder.glob("*.html")}
    assert names == {"index.html", render.safe_report_name(evil) + ".html"}
    assert "/" not in render.safe_report_name(evil) and ".." not in render.safe_report_name(evil)


def test_safe_paths_unit(tmp_path):
    assert render.report_file(tmp_path, "3fa2c0d1e4b5a6978812", ".html") == (
        tmp_path.resolve() / "3fa2c0d1e4b5a6978812.html")
    for bad in ("..", "../x", "/etc/passwd", "a/../../b", "index", "", "con\x00"):
        p = render.report_file(tmp_path, bad, ".html")
        assert p.parent == tmp_path.resolve()
    assert render.safe_report_name("a/b") != render.safe_report_name("a_b")
    with pytest.raises(ConfigError):
        render.board_folder(tmp_path, "../2026-12-03")


# ---------------------------------------------------------------------------- board roster
def test_a_roster_renders_only_its_patients_and_names_the_unscored(spark, world, tmp_path):
    """A board roster: reports for its patients only; a roster patient without a ranking for
    the board date is listed on the index and quarantined by key (never its source id)."""
    src = world["settings"]
    ids = _source_ids(spark, world)[:2]
    roster = tmp_path / "roster.csv"
    roster.write_text("patient_id,board_date\n"
                      f"{ids[0]},{BOARD}\n{ids[1]},{BOARD}\nNOT-SCORED-1,{BOARD}\n"
                      f"{ids[0]},2031-01-01\n")
    settings = src.replace(reports_dir=str(tmp_path / "reports"),
                           sections={"reports": {"pdf": False}, "models": {}})
    run = render_reports(spark, settings, roster_file=roster)
    folder = tmp_path / "reports" / BOARD
    keys = {pseudonymise(i, src.pseudonym_key) for i in ids}
    assert {p.stem for p in folder.glob("*.html")} - {"index"} == keys
    assert (run.rows_in, run.rows_written, run.rows_quarantined) == (3, 2, 1)
    index = (folder / "index.html").read_text()
    unscored = pseudonymise("NOT-SCORED-1", src.pseudonym_key)
    assert unscored in index and "not scored for this board date" in index
    q = delta.read_table(spark, src.quarantine_table(src.table("gold", "treatment_rankings")))
    records = " ".join(r.record for r in q.collect())
    assert unscored in records and "NOT-SCORED-1" not in records
    # [reports] roster in the configuration does the same
    run2 = render_reports(spark, settings.replace(sections={
        "reports": {"pdf": False, "roster": str(roster)}, "models": {}}))
    assert run2.rows_written == 2


def test_a_roster_of_fhir_appointments_picks_the_board_day(spark, world, tmp_path):
    src = world["settings"]
    ids = _source_ids(spark, world)

    def appt(pid, start, status="booked"):
        return {"resource": {"resourceType": "Appointment", "status": status, "start": start,
                             "participant": [{"actor": {"reference": f"Patient/{pid}"},
                                              "status": "accepted"},
                                             {"actor": {"reference": "Practitioner/dr1"},
                                              "status": "accepted"}]}}

    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        appt(ids[0], f"{BOARD}T08:30:00Z"), appt(ids[1], f"{BOARD}T09:00:00Z", "cancelled"),
        appt(ids[2], "2031-01-01T09:00:00Z")]}
    roster = tmp_path / "board.json"
    roster.write_text(json.dumps(bundle))
    settings = src.replace(reports_dir=str(tmp_path / "reports"),
                           sections={"reports": {"pdf": False}, "models": {}})
    run = render_reports(spark, settings, roster_file=roster)
    assert run.rows_written == 1
    assert (tmp_path / "reports" / BOARD /
            f"{pseudonymise(ids[0], src.pseudonym_key)}.html").is_file()


def _source_ids(spark, world) -> list[str]:
    """Source ids of the scored patients, from restricted.patient_identity."""
    ident = delta.read_table(spark, world["settings"].table("restricted", "patient_identity"))
    by_key = {r.patient_key: r.source_patient_id for r in ident.collect()}
    return [by_key[k] for k in world["keys"] if k in by_key]


def test_roster_files_are_read_as_written(tmp_path):
    from pipelines.lakehouse.errors import SchemaMismatchError
    from pipelines.reports.roster import read_roster

    lst = tmp_path / "list.json"
    lst.write_text(json.dumps({"resourceType": "List", "status": "current", "mode": "working",
                               "date": BOARD, "entry": [
                                   {"item": {"reference": "Patient/A1"}},
                                   {"item": {"reference": "Patient/A2"}, "deleted": True},
                                   {"item": {"reference": "Group/g"}}]}))
    r = read_roster(lst, BOARD)
    assert r.ids == ["A1"]
    assert r.skipped == {"List entry marked deleted": 1,
                         "List entry is not a Patient reference": 1}
    with pytest.raises(ConfigError, match="dated .* not the board date"):
        read_roster(lst, "2031-01-01")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Appointment", "status": "booked",
                               "start": "next Tuesday", "participant": []}))
    with pytest.raises(SchemaMismatchError, match="not valid FHIR R4"):
        read_roster(bad, BOARD)
    plain = tmp_path / "plain.txt"
    plain.write_text("# board of the week\nB1\n\nB2\nB1\n")
    assert read_roster(plain, BOARD).ids == ["B1", "B2"]
    with pytest.raises(InputNotFoundError, match="does not exist"):
        read_roster(tmp_path / "none.csv", BOARD)


def test_no_rankings_for_the_board_date_is_a_clear_error(spark, world):
    with pytest.raises(InputNotFoundError, match="no rows for board date 2030-01-01"):
        render_reports(spark, world["settings"].replace(board_date="2030-01-01"))


def test_survival_plot_is_deterministic():
    from pipelines.reports.plots import survival_plot_uri

    curves = {"a": [1.0, 0.8, 0.5], "b": [1.0, 0.7, 0.4]}
    first = survival_plot_uri([0, 12, 24], curves, 24)
    assert first == survival_plot_uri([0, 12, 24], curves, 24)
    assert first != survival_plot_uri([0, 12, 24], {"a": [1.0, 0.9, 0.8]}, 24)


@pytest.mark.parametrize("patient, text", [
    ({"age_at_diagnosis": 90}, "90 or older at diagnosis"),
    ({"age_at_diagnosis": 67}, "67 years at diagnosis"),
    ({"age_at_diagnosis": 89}, "89 years at diagnosis"),
    ({}, "not recorded"),
])
def test_the_report_never_shows_an_exact_age_over_89(patient, text):
    from pipelines.reports import sections as rctx

    assert rctx.age_text(patient) == text

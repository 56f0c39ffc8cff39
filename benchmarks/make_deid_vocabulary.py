"""Build the word lists the de-identifier uses to tell a name from a word.

Run from the repository root (needs the Debian packages ``wamerican-large`` and
``wbritish-large``, the dev extra's ``drug-named-entity-recognition`` and ``holidays``, and
the shared test data for the MTSamples and NegEx texts)::

    apt-get install wamerican-large wbritish-large
    .venv/bin/python benchmarks/make_deid_vocabulary.py

Writes, under ``pipelines/notes/resources/``:

* ``english_words.txt.gz``: SCOWL (Kevin Atkinson, "Spell Checker Oriented Word Lists", size
  70 "large" American and British lists as Debian ships them), every word as spelt, without
  possessives. Proper nouns keep their capital, so a word spelt only with one ("Dolores") is
  known to be a proper noun and a word spelt in lower case ("rose") an ordinary word.
* ``drug_words.txt.gz``: every one-word drug name and brand of the PyPI package
  ``drug-named-entity-recognition`` (MIT; MeSH, MedlinePlus, DrugBank open names, NHS and
  Wikipedia), lower case.
* ``clinical_words.txt``: words of the MTSamples oncology notes (in two notes or more) and of
  the NegEx annotated sentences that are in neither list above and are no census name (or
  a census name in three notes or more: an eponym or instrument such as "Bovie"):
  clinical abbreviations and terms ("hepatosplenomegaly", "perrla") that must not be read as
  unknown names; and the words of oncorank's own lexicons (concepts, regimens, OncoTree,
  CIViC diseases and therapies).
* ``holidays.txt``: holiday names of 16 English-speaking or multi-faith calendars from the
  PyPI package ``holidays`` (MIT), which a note may use as a date ("Boxing Day").

The licences and sources are repeated in each file's header (``resources/VOCABULARY.md``).
"""

from __future__ import annotations

import bz2
import collections
import gzip
import json
import pickle
import re
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "pipelines" / "notes" / "resources"
SHARED = REPO.parent / "shared" / "data"
SCOWL = ("/usr/share/dict/american-english-large", "/usr/share/dict/british-english-large")
CALENDARS = ("US", "GB", "CA", "AU", "NZ", "IE", "IN", "ZA", "PH", "SG", "JM", "NG", "KE", "IL",
             "MX", "PR")


def english() -> set[str]:
    words: set[str] = set()
    for path in SCOWL:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            w = line.strip()
            if w and not w.endswith("'s"):
                words.add(w)
    return words


def drugs() -> set[str]:
    pkg = resources.files("drug_named_entity_recognition")
    with pkg.joinpath("drug_ner_dictionary.pkl.bz2").open("rb") as fh, bz2.open(fh) as raw:
        data = pickle.load(raw)  # the package's own data file, pinned version
    return {k for k in data["drug_variant_to_canonical"]
            if re.fullmatch(r"[a-z][a-z0-9-]{2,}", k)}


def clinical(known: set[str]) -> set[str]:
    from pipelines.notes.deid import _fold, name_lexicon

    first, last, _ = name_lexicon()
    notes = [json.loads(line)["transcription"] for line in
             (SHARED / "notes" / "mtsamples_oncology_notes.jsonl").read_text().splitlines()]
    negex = [line.split("\t")[2] for line in
             (SHARED / "negation" / "negex_rsAnnotations-1-120-random.dev.tsv")
             .read_text().splitlines()[1:] if line.count("\t") >= 2]
    df: collections.Counter[str] = collections.Counter()
    for text in notes:
        df.update({_fold(t) for t in re.findall(r"[^\W\d_][\w'’-]*[^\W_]", text)})
    for text in negex:
        df.update({_fold(t): 2 for t in re.findall(r"[^\W\d_][\w'’-]*[^\W_]", text)})
    # A census name in three notes or more is an eponym or an instrument ("Bovie", "Kling"):
    # the site altered every real name, note by note.
    return {w for w, n in df.items()
            if len(w) >= 3 and w not in known and not w.endswith("'s")
            and (n >= 3 or (n >= 2 and w not in first and w not in last))}


def package_terms() -> set[str]:
    """Words of oncorank's own lexicons: the notes concept lexicon, the regimen catalog,
    OncoTree tumour names and CIViC diseases and therapies ("Waldenström", "Wilms")."""
    from pipelines.notes.deid import _fold

    res = REPO / "pipelines"
    texts = [(res / "notes" / "resources" / "concepts.tsv").read_text(encoding="utf-8"),
             (res / "resources" / "regimens.yaml").read_text(encoding="utf-8")]
    rel = res / "knowledge" / "resources" / "releases"
    texts.append(json.dumps(json.loads((rel / "oncotree_2025_10_03.json").read_text()),
                            ensure_ascii=False))
    for line in (rel / "civic_01-Aug-2024-ClinicalEvidenceSummaries.tsv").read_text(
            encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        texts.append(f"{cols[2]} {cols[4]}")
    words: set[str] = set()
    for text in texts:
        words |= {_fold(t) for t in re.findall(r"[^\W\d_][\w'’-]*[^\W_]", text)}
    return {w for w in words if len(w) >= 3}


def holiday_names() -> set[str]:
    import holidays

    names: set[str] = set()
    for country in CALENDARS:
        for cat in ("public", "optional", "government", "bank", "unofficial", "christian",
                    "catholic", "hebrew", "islamic", "hindu"):
            try:
                cal = holidays.country_holidays(country, years=(2023, 2024),
                                                categories=(cat,), language="en_US")
            except Exception:  # noqa: BLE001 - a calendar without that category
                try:
                    cal = holidays.country_holidays(country, years=(2023, 2024),
                                                    categories=(cat,))
                except Exception:  # noqa: BLE001
                    continue
            for value in cal.values():
                for name in value.split("; "):
                    name = re.sub(r"\s*\((?:observed|from 12pm)\)$", "", name).strip()
                    if re.fullmatch(r"[A-Z][\w'’ .,-]+", name) and "special" not in name:
                        names.add(name)
    return names


HEADER = {
    "english_words.txt.gz": (
        "SCOWL size-70 American and British word lists (Debian wamerican-large, "
        "wbritish-large 2020.12.07). Copyright 2000-2011 by Kevin Atkinson; permission to "
        "use, copy, modify, distribute and sell these word lists is granted without fee "
        "provided this notice appears (full notice: VOCABULARY.md)."),
    "drug_words.txt.gz": (
        "One-word drug names and brands of the PyPI package drug-named-entity-recognition "
        "2.0.9 (MIT licence, Copyright (c) 2023 Fast Data Science Ltd)."),
    "clinical_words.txt": (
        "Words of the MTSamples oncology notes (two notes or more) and of the NegEx annotated "
        "sentences that are neither SCOWL words, drug names nor census names; and the words "
        "of oncorank's concept lexicon, regimen catalog, OncoTree and CIViC release that are "
        "no SCOWL or drug word."),
    "holidays.txt": (
        "Holiday names of the PyPI package holidays 0.109 (MIT licence), calendars "
        + ", ".join(CALENDARS) + "; plus the observances in the last block."),
}
# Observances a note uses as dates that no public calendar above lists under this name.
OBSERVANCES = ("Thanksgiving", "Passover", "Easter", "Ramadan", "Lent", "Super Bowl Sunday",
               "Black Friday", "Cyber Monday", "Tet", "Lunar New Year")


def write(name: str, words: set[str] | list[str]) -> None:
    lines = [f"# {HEADER[name]}", "# Made by benchmarks/make_deid_vocabulary.py; one per line.",
             *(sorted(words) if isinstance(words, set) else words)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path = OUT / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    print(f"{path.relative_to(REPO)}: {len(words):,} entries")


def main() -> None:
    eng = english()
    drug = drugs()
    write("english_words.txt.gz", eng)
    write("drug_words.txt.gz", drug)
    known = {w.lower() for w in eng} | drug
    write("clinical_words.txt", clinical(known) | (package_terms() - known))
    write("holidays.txt", [*sorted(holiday_names()), "# observances", *OBSERVANCES])


if __name__ == "__main__":
    main()

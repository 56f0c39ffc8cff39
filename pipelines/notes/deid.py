"""De-identification of one note from Spark NLP's PHI candidates (pure Python, no Spark).

Spark NLP's ``RegexMatcher`` (rules in ``resources/phi_patterns.tsv``) proposes typed
candidates and its ``Tokenizer`` gives the tokens; this module

1. checks name candidates against the census name lexicon and trims words that are not names;
2. adds names the lexicon finds without a cue (a first name followed by a surname, both
   capitalised, neither an ordinary clinical word) and every later mention of a name word
   already found in the note ("Ms. Alvarez … Alvarez reports");
3. resolves overlaps (the longest span wins; on a tie the more specific type);
4. writes the de-identified text: every span becomes a typed placeholder such as ``[NAME]``;
   a date becomes ``[DATE:yyyy-mm-dd]`` holding the date shifted by the patient's offset (to
   the precision the note gave: ``[DATE:yyyy-mm]`` for "March 2021", ``[DATE:--mm-dd]`` for a
   date without a year), so intervals between a patient's dates survive and the placeholder
   never looks like a real date.

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

PHI_TYPES = ("NAME", "DATE", "AGE", "MRN", "ID", "PHONE", "FAX", "EMAIL", "URL", "ADDRESS",
             "ZIP")
# On equal spans the more specific type wins (a fax number is also a phone number pattern).
_PRIORITY = {t: i for i, t in enumerate(
    ("FAX", "EMAIL", "URL", "MRN", "ID", "AGE", "DATE", "ZIP", "PHONE", "ADDRESS", "NAME"))}
PATTERNS_FILE = "phi_patterns.tsv"
STOPWORDS_FILE = "name_stopwords.txt"

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_NAME_WORD = re.compile(r"[A-Z](?:[a-z]+|[A-Z]+)(?:'[A-Z][a-z]+|-[A-Z][a-z]+)?$")


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
    """``(regex, identifier)`` pairs for the RegexMatcher; name rules are told apart by cue."""
    out, name_rules = [], ("NAME_TITLE", "NAME_CUE", "NAME_CRED")
    n_name = 0
    for line in _resource_text(PATTERNS_FILE).splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("type\t"):
            continue
        typ, regex = line.split("\t", 1)
        if typ not in PHI_TYPES:
            raise ValueError(f"{PATTERNS_FILE}: unknown PHI type {typ!r}")
        ident = typ
        if typ == "NAME":
            ident = name_rules[min(n_name, len(name_rules) - 1)]
            n_name += 1
        out.append((regex, ident))
    return out


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
    stop = frozenset(w.strip().lower() for w in _resource_text(STOPWORDS_FILE).splitlines()
                     if w.strip() and not w.startswith("#"))
    return first, last, stop


# ------------------------------------------------------------------------- names
def _is_name_word(word: str, stop: frozenset[str]) -> bool:
    return bool(_NAME_WORD.match(word)) and word.lower() not in stop


def _trim_name(text: str, cand: Candidate) -> PhiSpan | None:
    """Keep the words of a cue match that look like a name.

    After a title ("Dr.", "Mrs.") or before a credential (", MD") the first word is a name
    unless it is a stopword that is no name at all (surnames are open ended; "Frank", "Mark"
    and "Walker" are stopwords as clinical words but still names here). After a label
    ("Patient:", "daughter") it must be in the lexicon, or be name-shaped and followed by a
    lexicon name ("Patient: Tomasz Kim": the census lists miss many given names that are not
    common in the US). Further words are kept while they are initials or lexicon names, so
    "Dr. Alvarez Reviewed" stops early.
    """
    first, last, stop = name_lexicon()
    words = list(re.finditer(r"[A-Za-z][A-Za-z'.-]*", text[cand.begin:cand.end]))
    clean = [m.group(0).rstrip(".") for m in words]
    lower = [w.lower().split("'")[0] for w in clean]
    in_lexicon = [lw in first or lw in last for lw in lower]
    shaped = [bool(_NAME_WORD.match(w)) for w in clean]

    strong = cand.rule in ("NAME_TITLE", "NAME_CRED")
    keep_end = None
    for i, m in enumerate(words):
        w, lw = clean[i], lower[i]
        known = in_lexicon[i] and lw not in stop
        if i == 0:
            then_lexicon_name = len(words) > 1 and shaped[1] and in_lexicon[1]
            ok = ((strong and (lw not in stop or in_lexicon[0])) or known
                  or (_is_name_word(w, stop) and then_lexicon_name))
        else:
            initial = len(w) == 1 and w.isupper()
            ok = (initial or known or (shaped[i] and in_lexicon[i])
                  or (cand.rule == "NAME_CRED" and shaped[i]))
        if not ok:
            break
        keep_end = cand.begin + m.start() + len(w)
    if keep_end is None:
        return None
    return PhiSpan(cand.begin, keep_end, "NAME")


def lexicon_names(text: str, tokens: list[tuple[int, int]]) -> list[PhiSpan]:
    """First name (+ optional initial) + surname, both capitalised, without any cue."""
    first, last, stop = name_lexicon()
    out = []
    words = [(b, e, text[b:e]) for b, e in tokens]
    for i in range(len(words) - 1):
        b, e, w = words[i]
        # Most tokens are not capitalised: skip them before the costlier checks.
        if not w[:1].isupper() or w.isupper() or not (_is_name_word(w, stop)
                                                      and w.lower() in first):
            continue
        j = i + 1
        if j < len(words) - 1 and re.fullmatch(r"[A-Z]\.?", words[j][2]):
            j += 1
            if words[j][2] == ".":
                j += 1
        if j >= len(words):
            continue
        b2, e2, w2 = words[j]
        gap = text[e:b2]
        if (len(gap) <= 4 and "\n" not in gap and _is_name_word(w2, stop) and not w2.isupper()
                and w2.lower() in last):
            out.append(PhiSpan(b, e2, "NAME"))
    return out


def propagate_names(text: str, names: list[PhiSpan]) -> list[PhiSpan]:
    """Every other mention of a word already found in a name in this note."""
    _, _, stop = name_lexicon()
    found = {w for s in names for w in re.findall(r"[A-Z][A-Za-z'-]+", text[s.begin:s.end])
             if len(w) > 2 and w.lower() not in stop}
    if not found:
        return []
    rx = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, found), key=len, reverse=True))
                    + r")\b")
    return [PhiSpan(m.start(), m.end(), "NAME") for m in rx.finditer(text)]


# ------------------------------------------------------------------------- dates
def parse_date(s: str) -> tuple[int | None, int, int | None] | None:
    """``(year, month, day)`` of a date string in the formats the PHI rules find; a part the
    note did not give is None. ``None`` when it is not a valid date."""
    s = s.strip()
    m = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})", s)
    if m:
        mo, d, y = int(m[1]), int(m[2]), int(m[3])
        y = y + (2000 if y < 50 else 1900) if y < 100 else y
        return _valid(y, mo, d)
    m = re.fullmatch(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", s)
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
    nums = [int(w) for w in words if w.isdigit()]
    if month is None:
        return None
    year = next((n for n in nums if n >= 1000), None)
    day = next((n for n in nums if n < 100), None)
    return _valid(year, month, day)


def _valid(y, mo, d):
    try:
        dt.date(y or 2000, mo, d or 1)
    except ValueError:
        return None
    return (y, mo, d)


def shifted_date(s: str, shift_days: int) -> str:
    """The placeholder value of a date shifted by ``shift_days``, at the note's precision."""
    parts = parse_date(s)
    if parts is None:
        return ""
    y, mo, d = parts
    if y is None:  # no year: shift within a leap year so Feb 29 survives
        new = dt.date(2000, mo, d or 15) + dt.timedelta(days=shift_days)
        return f"--{new.month:02d}-{new.day:02d}"
    if d is None:  # month precision: shift the middle of the month
        new = dt.date(y, mo, 15) + dt.timedelta(days=shift_days)
        return f"{new.year:04d}-{new.month:02d}"
    new = dt.date(y, mo, d) + dt.timedelta(days=shift_days)
    return new.isoformat()


# ------------------------------------------------------------------------- whole note
def resolve(spans: list[PhiSpan]) -> list[PhiSpan]:
    """Non-overlapping spans: longest first, then the more specific type; adjacent NAME spans
    separated only by spaces merge into one."""
    ordered = sorted(spans, key=lambda s: (-(s.end - s.begin), _PRIORITY.get(s.type, 99),
                                           s.begin))
    taken: list[PhiSpan] = []
    for s in ordered:
        if s.end <= s.begin:
            continue
        if all(s.end <= t.begin or t.end <= s.begin for t in taken):
            taken.append(s)
    return sorted(taken, key=lambda s: s.begin)


def find_phi(text: str, candidates: list[Candidate],
             tokens: list[tuple[int, int]]) -> list[PhiSpan]:
    spans: list[PhiSpan] = []
    names: list[PhiSpan] = []
    for c in candidates:
        if c.type == "NAME":
            trimmed = _trim_name(text, c)
            if trimmed:
                names.append(trimmed)
        elif c.type == "DATE" and parse_date(text[c.begin:c.end]) is None:
            continue  # "13/45/2020" is not a date
        else:
            spans.append(PhiSpan(c.begin, c.end, c.type))
    names += lexicon_names(text, tokens)
    names += propagate_names(text, names)
    return resolve(spans + names)


def deidentify(text: str, candidates: list[Candidate], tokens: list[tuple[int, int]],
               shift_days: int) -> DeidResult:
    """The note with every PHI span replaced; see the module docstring for the placeholders."""
    spans = find_phi(text, candidates, tokens)
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.begin])
        if s.type == "DATE":
            value = shifted_date(text[s.begin:s.end], shift_days)
            out.append(f"[DATE:{value}]" if value else "[DATE]")
        else:
            out.append(f"[{s.type}]")
        pos = s.end
    out.append(text[pos:])
    return DeidResult("".join(out), tuple(spans))

"""Oncology findings of one note from Spark NLP's matches (pure Python, no Spark).

Inputs per note are the de-identified text, the sentence spans Spark NLP's
``SentenceDetector`` produced on it, concept chunks (identifier = row of
``resources/concepts.tsv``) and section-header chunks (identifier = row of
``resources/sections.tsv``), both found by :func:`find_mentions` (the lexicon rules with a
literal prefilter, see :mod:`.lexicon`). Each concept mention becomes one finding with its
normalised concept, category, value, ConText status (triggers matched in the mention's
sentence, see :mod:`.assertion_context`), section, span and a short snippet.

>>> rows = concept_rows()
>>> rows[0].concept, rows[0].category
('EGFR L858R', 'biomarker')
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pipelines.notes import assertion_context as ctx
from pipelines.notes.lexicon import RuleSet

CATEGORIES = ("biomarker", "site", "performance_status", "therapy", "adverse_event", "smoking",
              "diagnosis", "stage", "comorbidity")
CONCEPTS_FILE = "concepts.tsv"
SECTIONS_FILE = "sections.tsv"
SNIPPET_CHARS = 160


# ``{gap}`` in a concept regex: the words between a gene and its variant ("EGFR exon 21
# L858R", "KRAS: p.G12C"), never across a result cue, so "EGFR: no L858R detected" leaves
# "no" outside the mention for ConText to read.
GAP_CUES = ("no", "not", "non", "nor", "without", "negative", "neg", "positive", "pos", "wild",
            "wt", "detected", "identified", "found", "absent", "pending", "awaiting",
            "equivocal", "indeterminate", "insufficient", "for", "and", "or", "but", "with",
            "plus")
GAP = r"(?:(?!\b(?:" + "|".join(GAP_CUES) + r")\b)[\s\w:()-]){0,30}?"
# ``{aside}``: a bracketed aside between a gene and its result ("HER2 (gastric scoring
# criteria): IHC 3+", "HER2 (4B5) 2+"), holding no result cue of its own.
ASIDE = r"\((?:(?!\b(?:" + "|".join(GAP_CUES) + r")\b)[^()\n]){0,40}\)"
ASSERTS = ("", "negated", "equivocal", "result")
# A "result" row is a bare gene or test name ("ALK", "MSI", "HER2"): a mention only where its
# sentence states a result for it, i.e. ConText gives it a status other than affirmed or
# historical, or its clause carries an affirming cue ("ALK (D5F3) IHC: positive"). "Discussed
# ALK testing" is no finding.
RESULT_CUES = (ctx.AFFIRMED,)

# Comparators as reports write them, normalised.
_COMPARATOR = re.compile(
    r"(<=|>=|≤|≥|<|>|=<|=>|less than or equal to|greater than or equal to|less than|"
    r"greater than|more than|under|below|above|over|at least|at most|up to|~|approx\.?|"
    r"approximately|about)\s*$", re.IGNORECASE)
_NORMAL = {"≤": "<=", "=<": "<=", "≥": ">=", "=>": ">=", "less than": "<", "under": "<",
           "below": "<", "greater than": ">", "more than": ">", "above": ">", "over": ">",
           "at least": ">=", "at most": "<=", "up to": "<=",
           "less than or equal to": "<=", "greater than or equal to": ">="}
_RANGE_BEFORE = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*(?:-|–|—|to)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ConceptRow:
    concept: str
    category: str
    regex: str
    value: str
    asserted: str
    negative_below: float | None = None
    anaphor: bool = False

    @property
    def value_rx(self) -> re.Pattern | None:
        return re.compile(self.value, re.IGNORECASE) if self.value else None


@dataclass(frozen=True)
class SectionRow:
    header: str
    section: str
    context: str


@dataclass(frozen=True)
class Chunk:
    begin: int
    end: int
    ident: str


@dataclass(frozen=True)
class Finding:
    concept: str
    category: str
    value: str | None
    context: str
    section: str | None
    start: int
    end: int
    snippet: str
    comparator: str | None = None


def _read_tsv(name: str) -> list[dict[str, str]]:
    text = resources.files("pipelines.notes.resources").joinpath(name).read_text(
        encoding="utf-8")
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))


@lru_cache(maxsize=1)
def concept_rows() -> tuple[ConceptRow, ...]:
    out = []
    for n, r in enumerate(_read_tsv(CONCEPTS_FILE), start=1):
        if r["category"] not in CATEGORIES:
            raise ValueError(f"{CONCEPTS_FILE} row {n}: unknown category {r['category']!r}")
        if (r.get("assert") or "") not in ASSERTS:
            raise ValueError(f"{CONCEPTS_FILE} row {n}: assert must be one of {ASSERTS}")
        below = (r.get("negative_below") or "").strip()
        anaphor = (r.get("anaphor") or "").strip()
        if anaphor not in ("", "yes"):
            raise ValueError(f"{CONCEPTS_FILE} row {n}: anaphor must be blank or 'yes'")
        regex = r["regex"].replace("{gap}", GAP).replace("{aside}", ASIDE)
        out.append(ConceptRow(r["concept"], r["category"], regex,
                              r.get("value") or "", r.get("assert") or "",
                              float(below) if below else None, anaphor == "yes"))
    return tuple(out)


def read_value(row: ConceptRow, mention: str) -> tuple[str | None, str | None]:
    """The value a mention states and its comparator: ``("50", "<")`` for "TPS <50%",
    ``("1-49", "range")`` for "TPS 1–49%", ``("80", None)`` for "80%".

    >>> row = next(r for r in concept_rows() if r.concept == "PD-L1 TPS" and r.value)
    >>> read_value(row, "PD-L1 (22C3) TPS: 1-49%"), read_value(row, "PD-L1 TPS ≥ 50%")
    (('1-49', 'range'), ('50', '>='))
    """
    rx = row.value_rx
    m = rx.search(mention) if rx else None
    if not m:
        return None, None
    before = mention[:m.start(1)]
    rng = _RANGE_BEFORE.search(before)
    if rng:
        return f"{rng.group(1)}-{m.group(1)}", "range"
    cmp_ = _COMPARATOR.search(before)
    if cmp_:
        word = " ".join(cmp_.group(1).lower().split())
        if word.startswith(("~", "approx", "about")):
            return m.group(1), None
        return m.group(1), _NORMAL.get(word, word)
    return m.group(1), None


def below_threshold(value: str | None, comparator: str | None, threshold: float) -> bool:
    """Is a stated value under a negative/positive cut-off ("ER <1%" under 1; "1-49" under 50)?
    An upper bound below the cut-off ("<1" with cut-off 1) counts; a lower bound never does.
    """
    if value is None:
        return False
    try:
        if comparator == "range":
            return float(value.split("-")[1]) < threshold
        v = float(value)
    except ValueError:
        return False
    if comparator in ("<", "<="):
        return v <= threshold if comparator == "<" else v < threshold
    if comparator in (">", ">="):
        return False
    return v < threshold


@lru_cache(maxsize=1)
def section_rows() -> tuple[SectionRow, ...]:
    out = []
    for r in _read_tsv(SECTIONS_FILE):
        if r.get("context") and r["context"] not in ctx.STATUSES:
            raise ValueError(f"{SECTIONS_FILE}: unknown context {r['context']!r}")
        out.append(SectionRow(r["header"], r["section"], r.get("context") or ""))
    return tuple(out)


def concept_matcher_rules() -> list[tuple[str, str]]:
    """``(regex, identifier)`` of the concept rules; the identifier is ``c`` + the row index."""
    return [(row.regex, f"c{i}") for i, row in enumerate(concept_rows())]


def section_matcher_rules() -> list[tuple[str, str]]:
    """Two rules per section: the header at a line start in any case, or anywhere in
    capitals (not inside a word or after a slash)."""
    out = []
    for i, row in enumerate(section_rows()):
        out.append((rf"(?m)^[ \t]*(?i:{row.header})[ \t]*:", f"s{i}"))
        out.append((rf"(?<![\w/])(?:{row.header.upper()})[ \t]*:", f"s{i}"))
    return out


@lru_cache(maxsize=1)
def _matcher() -> RuleSet:
    """The concept and section rules (identifiers ``c…`` and ``s…``), compiled once per
    Python worker, so one literal scan of the note serves both."""
    return RuleSet(concept_matcher_rules() + section_matcher_rules())


def find_mentions(text: str) -> tuple[list[Chunk], list[Chunk]]:
    """Concept mentions and section headers of a note (every match of every rule)."""
    concepts: list[Chunk] = []
    headers: list[Chunk] = []
    for b, e, ident in _matcher().find(text):
        (concepts if ident[0] == "c" else headers).append(Chunk(b, e, ident))
    return concepts, headers


def _without_nested(chunks: list[Chunk]) -> list[Chunk]:
    """Drop a mention inside a longer one ("neutropenia" inside "febrile neutropenia"). Of two
    rules matching the same span, the one earlier in its file wins (specific rows come before
    the bare gene-name rows), so the result never depends on set order."""
    ordered = sorted(set(chunks), key=lambda c: (-(c.end - c.begin), c.begin,
                                                 c.ident[0], int(c.ident[1:])))
    kept: list[Chunk] = []
    for c in ordered:
        if all(c.end <= k.begin or k.end <= c.begin for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.begin)


def _bounds(triggers: list[ctx.Trigger]) -> list[ctx.Trigger]:
    """Where clauses begin: a comma, "and", or a termination term for every category (one
    for some categories only, such as "positive for" ending a negation, is no clause edge)."""
    return [t for t in triggers if t.category == ctx.CLAUSE
            or (t.category == ctx.TERMINATE and not t.applies_to)]


def _clause(c: Chunk, sentence: ctx.Span, triggers: list[ctx.Trigger]) -> tuple[int, int]:
    """The mention's clause: between the nearest comma, "and", termination term or sentence
    edge on either side."""
    bounds = _bounds(triggers)
    lo = max([t.end for t in bounds if t.end <= c.begin], default=sentence.begin)
    hi = min([t.begin for t in bounds if t.begin >= c.end], default=sentence.end)
    return lo, hi


def _clause_affirms(c: Chunk, sentence: ctx.Span, tokens: list[ctx.Span],
                    triggers: list[ctx.Trigger], mentions: list[Chunk]) -> bool:
    """Is there an affirming cue ("detected", "positive") in the mention's clause that no
    modifier reaches ("no L858R detected" affirms nothing)? A clause after it that names
    nothing and only gives a verdict ("BRAF c.1799T>A, pathogenic"; "IHC 3+, positive") is
    the verdict of the mention's clause."""
    lo, hi = _clause(c, sentence, triggers)
    local = ctx.resolve_triggers(triggers)
    mods = [t for t in local if t.category in ctx.MODIFIERS]

    def affirms(lo: int, hi: int) -> bool:
        return any(t.category in RESULT_CUES and lo <= t.begin and t.end <= hi
                   and not any(ctx.in_scope(m, ctx.Span(t.begin, t.end), sentence, tokens,
                                            local) for m in mods)
                   for t in local)

    if affirms(lo, hi):
        return True
    edge = next((t for t in _bounds(triggers) if t.begin == hi and t.category == ctx.CLAUSE),
                None)
    if edge is None:
        return False
    nxt = min([t.begin for t in _bounds(triggers) if t.begin >= edge.end],
              default=sentence.end)
    return (not any(edge.end <= m.begin < nxt for m in mentions)
            and not any(edge.end <= t.begin < nxt and t.category in ctx.MODIFIERS
                        for t in local)
            and affirms(edge.end, nxt))


def _states_result(row: ConceptRow, mention: str) -> bool:
    """Does the mention state its own result: a verdict ("HER2 negative", "IHC 2+") or a
    value ("PR 75%", "TMB 3 mut/Mb")?"""
    return (row.asserted in ("negated", "equivocal")
            or read_value(row, mention)[0] is not None)


# A mention framed as the name of a test, not as its result: "testing for X" (and the rest of
# a list it heads: "testing for X and Y"), "results for X", "X testing", "X results", "X:"
# (the label of a result line).
_TEST_BEFORE = re.compile(r"\b(?:testing|tested|test|analysis|assay|results?|sequencing)\s+"
                          r"(?:for|of)\s+(?:(?:[\w/-]+\s+){0,5}[\w/-]+"
                          r"(?:,\s*(?:(?:and|or)\s+)?|\s+(?:and|or)\s+))?$", re.IGNORECASE)
_TEST_AFTER = re.compile(r"\s*(?::|(?:testing|test|analysis|assay|results?|status)\b)",
                         re.IGNORECASE)


def _names_a_test(text: str, c: Chunk) -> bool:
    return bool(_TEST_BEFORE.search(text, max(0, c.begin - 80), c.begin)
                or _TEST_AFTER.match(text, c.end))


def _resolve_anaphors(concepts: list[Chunk], sentences: list[ctx.Span]
                      ) -> tuple[list[Chunk], dict[Chunk, Chunk]]:
    """Keep a mention that names no gene ("IHC 3+", "FISH negative", "ratio 2.4"; concept rows
    with ``anaphor``) only where it continues a mention of its concept earlier in the
    sentence, with no other biomarker named in between ("HER2 IHC 2+; FISH negative"), and
    where it is no part of another mention ("ALK FISH positive" stays ALK's). Returns the
    mentions kept and, per continuation, the mention it continues."""
    rows = concept_rows()
    named = [c for c in concepts if not rows[int(c.ident[1:])].anaphor]
    begins = [s.begin for s in sentences]
    out, heads = list(named), {}
    for c in concepts:
        row = rows[int(c.ident[1:])]
        if not row.anaphor or any(n.begin < c.end and c.begin < n.end for n in named):
            continue
        i = bisect.bisect_right(begins, c.begin) - 1
        lo = sentences[i].begin if i >= 0 and c.begin < sentences[i].end else c.begin
        before = [n for n in named if lo <= n.begin and n.end <= c.begin
                  and rows[int(n.ident[1:])].category == "biomarker"]
        head = max(before, key=lambda n: (n.end, n.end - n.begin)) if before else None
        if head is not None and rows[int(head.ident[1:])].concept == row.concept:
            out.append(c)
            heads[c] = head
    return out, heads


def snippet(text: str, sentence: ctx.Span, begin: int, end: int) -> str:
    """The mention's sentence, cut to about ``SNIPPET_CHARS`` around it, on one line."""
    lo, hi = sentence.begin, sentence.end
    if hi - lo > SNIPPET_CHARS:
        room = max(0, SNIPPET_CHARS - (end - begin)) // 2
        lo, hi = max(lo, begin - room), min(hi, end + room)
    s = " ".join(text[lo:hi].split())
    return ("…" if lo > sentence.begin else "") + s + ("…" if hi < sentence.end else "")


def extract(text: str, sentences: list[ctx.Span], concepts: list[Chunk],
            headers: list[Chunk], rules: tuple[ctx.Rule, ...] | None = None) -> list[Finding]:
    """All findings of one note (see the module docstring); ``rules`` replaces the ConText
    rules of ``context_rules.tsv`` (an evaluation that leaves rules out)."""
    rows, sections = concept_rows(), section_rows()
    header_list = sorted((h.begin, h.end, sections[int(h.ident[1:])])
                         for h in _without_nested(headers))
    concepts, heads = _resolve_anaphors(concepts, sentences)
    mentions = _without_nested(concepts)
    begins = [s.begin for s in sentences]
    per_sentence: dict[ctx.Span, tuple[list[ctx.Span], list[ctx.Trigger]]] = {}
    out = []
    for c in mentions:
        row = rows[int(c.ident[1:])]
        i = bisect.bisect_right(begins, c.begin) - 1
        sent = sentences[i] if i >= 0 and c.begin < sentences[i].end else ctx.Span(c.begin, c.end)
        if sent not in per_sentence:
            # A trigger word inside a concept phrase ("never" in "never smoker", "no" in "no
            # history of smoking") belongs to that phrase: it must not modify the next mention.
            # Clause cues stay: "HER2 positive" states its own result.
            triggers = [t for t in ctx.find_triggers(text, sent, rules)
                        if t.category in (ctx.TERMINATE, ctx.AFFIRMED, ctx.CLAUSE, ctx.LIST, ctx.VERDICT)
                        or not any(m.begin <= t.begin and t.end <= m.end for m in mentions)]
            # A mention that states its own result makes its clause one with a cue of its own.
            triggers += [ctx.Trigger(m.begin, m.end, ctx.STATED, "none", None, frozenset())
                         for m in mentions if sent.begin <= m.begin and m.end <= sent.end
                         and _states_result(rows[int(m.ident[1:])], text[m.begin:m.end])]
            per_sentence[sent] = (ctx.tokenize(text, sent), triggers)
        tokens, triggers = per_sentence[sent]
        stated_result = _states_result(row, text[c.begin:c.end])
        result = ctx.classify(sent, tokens, triggers, ctx.Span(c.begin, c.end), text)
        status = result.for_target(row.category == "biomarker").status
        section = None
        for _, he, sec in header_list:
            if he <= c.begin:
                section = sec
        if (row.category == "biomarker" and row.asserted != "result" and not stated_result
                and _names_a_test(text, c) and status in ("affirmed", "historical")
                and not _clause_affirms(c, sent, tokens, triggers,
                                        [m for m in mentions if m is not c])):
            # "Testing for EGFR L858R is in process", "KRAS G12V: quantity not sufficient":
            # a test named, with no result that affirms it, is no finding.
            continue
        if row.asserted == "result":
            # "EGFR: no L858R detected": the gene heads the variant mention in its clause.
            lo, hi = _clause(c, sent, triggers)
            if any(m is not c and lo <= m.begin < hi and rows[int(m.ident[1:])].category
                   == "biomarker" and rows[int(m.ident[1:])].asserted != "result"
                   and rows[int(m.ident[1:])].concept != row.concept for m in mentions):
                continue
            if status in ("affirmed", "historical") and not _clause_affirms(
                    c, sent, tokens, triggers, [m for m in mentions if m is not c]):
                continue
        value, comparator = read_value(row, text[c.begin:c.end])
        if value is None and c in heads:
            # The result of a later step carries the score it follows ("HER2 IHC 2+, FISH
            # amplified": amplified, IHC 2+; ASCO/CAP 2018 report both).
            head = heads[c]
            value, comparator = read_value(rows[int(head.ident[1:])], text[head.begin:head.end])
        stated = "" if row.asserted == "result" else row.asserted or (
            "negated" if row.negative_below is not None
            and below_threshold(value, comparator, row.negative_below) else "")
        # A cut-off only reads a number the report gives no verdict on: "FISH: equivocal
        # (ratio 1.8; average HER2 copy number 4.5)" is equivocal.
        if stated and not row.asserted and status == "equivocal":
            stated = ""
        # A phrase that states its own result ("HER2 negative", "ER <1%", "IHC 2+") decides
        # it, unless it could not be obtained. A test still to come does not undo a result
        # already stated ("HER2 IHC 2+ (equivocal) pending FISH").
        if stated and status not in ("indeterminate", "family", "hypothetical"):
            status = stated
        elif status == "affirmed" and section and section.context:
            status = section.context
        out.append(Finding(row.concept, row.category, value, status,
                           section.section if section else None, c.begin, c.end,
                           snippet(text, sent, c.begin, c.end), comparator))
    return out


def finding_id(note_id: str, f: Finding) -> str:
    """Stable id of a mention: the same note and span give the same id on every run."""
    key = f"{note_id}\u241f{f.start}\u241f{f.end}\u241f{f.concept}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]

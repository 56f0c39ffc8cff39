"""Oncology findings of one note from Spark NLP's matches (pure Python, no Spark).

Inputs per note are the de-identified text, the sentence spans Spark NLP's
``SentenceDetector`` produced on it, concept chunks (identifier = row of
``resources/concepts.tsv``) and section-header chunks (identifier = row of
``resources/sections.tsv``), both found by :func:`find_mentions` (the lexicon rules with a
literal prefilter, see :mod:`.rules`). Each concept mention becomes one finding with its
normalised concept, category, value, ConText status (triggers matched in the mention's
sentence, see :mod:`.context`), section, span and a short snippet.

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

from pipelines.notes import context as ctx
from pipelines.notes.rules import RuleSet

CATEGORIES = ("biomarker", "site", "performance_status", "therapy", "adverse_event", "smoking",
              "diagnosis")
CONCEPTS_FILE = "concepts.tsv"
SECTIONS_FILE = "sections.tsv"
SNIPPET_CHARS = 160


@dataclass(frozen=True)
class ConceptRow:
    concept: str
    category: str
    regex: str
    value: str
    asserted: str

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
        if (r.get("assert") or "") not in ("", "negated"):
            raise ValueError(f"{CONCEPTS_FILE} row {n}: assert must be blank or 'negated'")
        out.append(ConceptRow(r["concept"], r["category"], r["regex"], r.get("value") or "",
                              r.get("assert") or ""))
    return tuple(out)


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
    """Drop a mention inside a longer one ("neutropenia" inside "febrile neutropenia")."""
    ordered = sorted(set(chunks), key=lambda c: (-(c.end - c.begin), c.begin))
    kept: list[Chunk] = []
    for c in ordered:
        if all(c.end <= k.begin or k.end <= c.begin for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.begin)


def snippet(text: str, sentence: ctx.Span, begin: int, end: int) -> str:
    """The mention's sentence, cut to about ``SNIPPET_CHARS`` around it, on one line."""
    lo, hi = sentence.begin, sentence.end
    if hi - lo > SNIPPET_CHARS:
        room = max(0, SNIPPET_CHARS - (end - begin)) // 2
        lo, hi = max(lo, begin - room), min(hi, end + room)
    s = " ".join(text[lo:hi].split())
    return ("…" if lo > sentence.begin else "") + s + ("…" if hi < sentence.end else "")


def extract(text: str, sentences: list[ctx.Span], concepts: list[Chunk],
            headers: list[Chunk]) -> list[Finding]:
    """All findings of one note (see the module docstring)."""
    rows, sections = concept_rows(), section_rows()
    header_list = sorted((h.begin, h.end, sections[int(h.ident[1:])])
                         for h in _without_nested(headers))
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
            triggers = [t for t in ctx.find_triggers(text, sent)
                        if t.category == ctx.TERMINATE
                        or not any(t.begin < m.end and m.begin < t.end for m in mentions)]
            per_sentence[sent] = (ctx.tokenize(text, sent), triggers)
        tokens, triggers = per_sentence[sent]
        result = ctx.classify(sent, tokens, triggers, ctx.Span(c.begin, c.end))
        status = result.status
        section = None
        for _, he, sec in header_list:
            if he <= c.begin:
                section = sec
        if row.asserted == "negated":
            status = "negated"
        elif status == "affirmed" and section and section.context:
            status = section.context
        value = None
        if row.value_rx:
            m = row.value_rx.search(text[c.begin:c.end])
            value = m.group(1) if m else None
        out.append(Finding(row.concept, row.category, value, status,
                           section.section if section else None, c.begin, c.end,
                           snippet(text, sent, c.begin, c.end)))
    return out


def finding_id(note_id: str, f: Finding) -> str:
    """Stable id of a mention: the same note and span give the same id on every run."""
    key = f"{note_id}\u241f{f.start}\u241f{f.end}\u241f{f.concept}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]

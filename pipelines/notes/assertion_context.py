"""ConText: is a mention negated, possible, historical, hypothetical or about a family member?

This is the algorithm of Harkema et al. (ConText, J Biomed Inform 2009) and Chapman et al.
(NegEx, 2001) within the sentences that Spark NLP's ``SentenceDetector`` found: the trigger
terms of ``resources/context_rules.tsv`` are matched in that sentence (:func:`find_triggers`,
compiled once per worker) and its tokens counted for the rules' scope limits. The same
functions serve the ``extract-note-findings`` stage and ``oncorank notes context``.

How a trigger modifies a target:

* a *forward* trigger ("no", "history of") reaches the tokens after it, a *backward* trigger
  ("… was ruled out", "… is negative") the tokens before it, a *bidirectional* one both ways;
* the reach ends at the sentence edge, at a termination term that applies to the trigger's
  category ("but", "however", "who presents", a list enumerator "2)"), at a clause that states
  its own result ("No brain metastases, | liver metastases present"; "EGFR exon 19 deletion
  detected, | ALK negative"; but "no L858R, exon 19 deletion or T790M detected" is one list),
  or after ``max_scope`` tokens when the rule sets one;
* pseudo-triggers ("no increase", "not only", "gram negative") cancel any trigger they overlap
  (only the categories named in their ``applies_to`` when the rule names some: "not changed"
  is no negation but still says the finding was there before), and a trigger inside a longer
  trigger is dropped (longest match wins);
* a trigger that lies inside the target itself ("… without murmurs" as part of the target
  phrase) does not modify it.

Pure Python, no Spark: unit-testable on plain tuples.

>>> from pipelines.notes.assertion_context import Span, Trigger, classify
>>> sent = Span(0, 27)                       # "No evidence of brain mets."
>>> trig = [Trigger(0, 14, "NEGATED", "forward", None, frozenset())]
>>> toks = [Span(0, 2), Span(3, 11), Span(12, 14), Span(15, 20), Span(21, 25), Span(25, 26)]
>>> classify(sent, toks, trig, Span(15, 25)).status
'negated'
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from pipelines.notes.lexicon import trie_regex as _char_trie

# Modifier categories (the rule file's vocabulary) and the status each one gives. PENDING,
# EQUIVOCAL and INDETERMINATE are how laboratory reports state a result that is not (yet) a
# result: "sent out", "HER2 IHC 2+ (equivocal)", "insufficient tissue".
NEGATED, POSSIBLE, HISTORICAL, HYPOTHETICAL, FAMILY = (
    "NEGATED", "POSSIBLE", "HISTORICAL", "HYPOTHETICAL", "FAMILY")
PENDING, EQUIVOCAL, INDETERMINATE = "PENDING", "EQUIVOCAL", "INDETERMINATE"
PSEUDO, TERMINATE = "PSEUDO", "TERMINATE"
# Clause cues that modify nothing themselves: AFFIRMED ("detected", "present") marks a clause
# that states its own result; CLAUSE ("," "and") is where a clause may begin; LIST ("or",
# "nor") says a comma-separated run is one list ("no A, B or C detected"); VERDICT
# ("interpreted as") says the cue after it is the reading of the clause before it ("detected
# at low level, interpreted as equivocal").
AFFIRMED, CLAUSE, LIST, VERDICT = "AFFIRMED", "CLAUSE", "LIST", "VERDICT"
# STATED is no rule of the file: the extractor marks a concept mention that states its own
# result ("PR 75%", "HER2 IHC 2+", "EGFR wild-type") with it, so that the mention's clause
# counts as one with a cue of its own ("ER 98%, PR 75%, HER2 IHC 2+ equivocal": the verdict
# reads HER2, not PR).
STATED = "STATED"
MODIFIERS = (NEGATED, POSSIBLE, HISTORICAL, HYPOTHETICAL, FAMILY, PENDING, EQUIVOCAL,
             INDETERMINATE)
CATEGORIES = (*MODIFIERS, PSEUDO, TERMINATE, AFFIRMED, CLAUSE, LIST, VERDICT)
DIRECTIONS = ("forward", "backward", "bidirectional", "none")
# Cues that give a clause a result of its own (what ends another cue's scope at a CLAUSE),
# and the categories whose reach a clause of its own ends: results. The time and the
# experiencer of a narrative ("history of A, and B with ...") carry across clauses.
OWN_CUES = (*MODIFIERS, AFFIRMED, STATED)
CLAUSE_BOUND = (NEGATED, POSSIBLE, PENDING, EQUIVOCAL, INDETERMINATE)
# The statuses of a test result. Like medspaCy's ``allowed_types`` of a ConText rule, they
# modify test targets only: "HER2 IHC 2+ (equivocal) on the bone metastasis biopsy" says
# nothing uncertain about the metastasis (:func:`for_target`).
TEST_RESULTS = (PENDING, EQUIVOCAL, INDETERMINATE)

# One status per mention for tables and the command. A result still to come or that could
# not be obtained says nothing about presence, whatever else the clause says ("no KRAS result
# yet, sent out"); then negation wins (a negated family history is still "not present"); a
# family mention is never the patient's own finding; an event that may happen (hypothetical),
# a borderline result (equivocal) or a finding that may be present (possible) is not asserted;
# a historical mention is asserted but in the past.
STATUS_ORDER = (
    (PENDING, "pending"),
    (INDETERMINATE, "indeterminate"),
    (NEGATED, "negated"),
    (FAMILY, "family"),
    (HYPOTHETICAL, "hypothetical"),
    (EQUIVOCAL, "equivocal"),
    (POSSIBLE, "possible"),
    (HISTORICAL, "historical"),
)
STATUSES = ("affirmed", "negated", "possible", "historical", "hypothetical", "family",
            "pending", "equivocal", "indeterminate")
RULES_FILE = "context_rules.tsv"


@dataclass(frozen=True, order=True)
class Span:
    """Character span ``[begin, end)`` in the document."""

    begin: int
    end: int


@dataclass(frozen=True)
class Trigger:
    """A matched trigger term: ``[begin, end)`` plus the attributes of its rule."""

    begin: int
    end: int
    category: str
    direction: str
    max_scope: int | None
    applies_to: frozenset[str]
    # The two halves of a "no ... detected" frame: a negation that opens it ("no", "without")
    # and a participle that closes it ("detected", "identified", "found", "seen"). A closing
    # participle is not a clause of its own for the negation that opened the frame: "No
    # pathogenic variants in EGFR, KRAS, ALK, ROS1 detected" negates ROS1 too.
    frame: bool = False
    # Where the bracket that encloses the trigger closes ("HER2 IHC 2+ (equivocal) on the
    # bone metastasis biopsy"): a bracketed cue reaches no further forward than that.
    bracket_end: int | None = None
    # For a closing bracket, where its bracket opens: it ends the reach of a cue inside the
    # brackets only ("No EGFR (exon 19 or 21) or KRAS mutations detected" negates KRAS).
    opens: int | None = None

    @property
    def length(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class ContextResult:
    """All modifiers that reach a target, and the single status derived from them."""

    modifiers: frozenset[str] = field(default_factory=frozenset)

    @property
    def status(self) -> str:
        for category, status in STATUS_ORDER:
            if category in self.modifiers:
                return status
        return "affirmed"

    @property
    def negated(self) -> bool:
        return NEGATED in self.modifiers

    @property
    def historical(self) -> bool:
        return HISTORICAL in self.modifiers

    def for_target(self, is_test: bool) -> ContextResult:
        """The modifiers that apply to a target that is (or is not) a test result: a pending,
        equivocal or indeterminate cue says nothing about a target that is no test."""
        if is_test:
            return self
        return ContextResult(frozenset(m for m in self.modifiers if m not in TEST_RESULTS))


# ------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    pattern: str
    category: str
    direction: str
    max_scope: int | None
    applies_to: frozenset[str]

    @property
    def group_id(self) -> str:
        """Identifier shared by rules with the same attributes (one compiled regex each)."""
        scope = "" if self.max_scope is None else str(self.max_scope)
        return "|".join([self.category, self.direction, scope, ",".join(sorted(self.applies_to))])


def parse_group_id(group_id: str) -> tuple[str, str, int | None, frozenset[str]]:
    category, direction, scope, applies = group_id.split("|")
    return (category, direction, int(scope) if scope else None,
            frozenset(a for a in applies.split(",") if a))


@lru_cache(maxsize=4)
def load_rules(text: str | None = None) -> tuple[Rule, ...]:
    """Read ``resources/context_rules.tsv`` (or ``text`` in the same format) and validate it."""
    if text is None:
        text = resources.files("pipelines.notes.resources").joinpath(RULES_FILE).read_text(
            encoding="utf-8")
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)
    expected = {"pattern", "category", "direction", "max_scope", "applies_to"}
    if not reader.fieldnames or not expected <= set(reader.fieldnames):
        raise ValueError(f"{RULES_FILE} must have the columns {sorted(expected)}, "
                         f"found {reader.fieldnames}")
    rules = []
    for n, row in enumerate(reader, start=2):
        category, direction = row["category"].strip(), (row["direction"] or "none").strip()
        if category not in CATEGORIES or direction not in DIRECTIONS:
            raise ValueError(f"{RULES_FILE} row {n}: unknown category {category!r} or "
                             f"direction {direction!r}")
        scope = (row["max_scope"] or "").strip()
        applies = frozenset(a.strip() for a in (row["applies_to"] or "").split(",") if a.strip())
        if not applies <= set(MODIFIERS):
            raise ValueError(f"{RULES_FILE} row {n}: applies_to {sorted(applies)} must name "
                             f"categories among {MODIFIERS}")
        rules.append(Rule(row["pattern"].strip(), category, direction,
                          int(scope) if scope else None, applies))
    return tuple(rules)


def pattern_regex(pattern: str) -> str:
    """A rule's phrase as a regex (Java and Python alike): spaces match any run of whitespace
    (notes wrap lines mid-phrase) and word edges are required where the phrase has them."""
    body = re.sub(r"(?:\\s\+| )+", r"\\s+", pattern)
    left = r"(?<!\w)" if re.match(r"[\w(]", pattern) else ""
    right = r"(?!\w)" if re.search(r"[\w)?*+]$", pattern) else ""
    return left + body + right


# A phrase without regex syntax: words of letters/digits joined by spaces, "/", "-" or "'".
_PLAIN = re.compile(r"[a-z0-9](?:[a-z0-9/'-]| (?! ))*", re.IGNORECASE)


def _plain(pattern: str) -> bool:
    return bool(_PLAIN.fullmatch(pattern)) and pattern[-1].isalnum()


def trie_regex(phrases: list[str]) -> str:
    r"""One regex matching any of ``phrases`` (plain phrases, see :func:`_plain`), shaped as a
    character trie so the engine tests each position against the first letters once instead of
    trying every phrase in turn. At each node a longer continuation is tried before the phrase
    that ends there, so the longest phrase starting at a position wins, as in a longest-first
    alternation. Spaces match any run of whitespace; both ends need a word edge.

    >>> print(trie_regex(["no", "no evidence of", "not"]))
    (?<!\w)no(?:\s+evidence\s+of(?!\w)|t(?!\w)|(?!\w))
    """

    def token(ch: str) -> str:
        return r"\s+" if ch == " " else (ch if ch.isalnum() else "\\" + ch)

    return r"(?<!\w)" + _char_trie([p.lower() for p in phrases], token, r"(?!\w)")


def matcher_rules(rules: tuple[Rule, ...] | None = None) -> list[tuple[str, str]]:
    """``(regex, identifier)`` pairs: per group of rules with the same attributes, one
    character trie of its plain phrases and one longest-first alternation of the phrases that
    use regex syntax (both carry the group's identifier).

    The trie is what makes the matcher fast: a plain alternation of a few hundred phrases makes
    a regex engine try each phrase at every character of the sentence.
    """
    rules = rules or load_rules()
    groups: dict[str, list[str]] = {}
    for rule in rules:
        groups.setdefault(rule.group_id, []).append(rule.pattern)
    out = []
    for gid, patterns in groups.items():
        plain = sorted({p for p in patterns if _plain(p)})
        other = sorted({p for p in patterns if not _plain(p)}, key=lambda p: (-len(p), p))
        if plain:
            out.append((f"(?i){trie_regex(plain)}", gid))
        if other:
            alternation = "|".join(f"(?:{pattern_regex(p)})" for p in other)
            out.append((f"(?i)(?:{alternation})", gid))
    return out


@lru_cache(maxsize=4)
def compiled_rules(rules: tuple[Rule, ...] | None = None
                   ) -> tuple[tuple[re.Pattern, str, str, int | None, frozenset[str]], ...]:
    """The matcher rules compiled once per Python worker, with their trigger attributes."""
    return tuple((re.compile(rx), *parse_group_id(gid)) for rx, gid in matcher_rules(rules))


def find_triggers(text: str, sentence: Span, rules: tuple[Rule, ...] | None = None
                  ) -> list[Trigger]:
    """Every trigger match inside ``sentence`` (each rule scans the sentence on its own, so
    matches of different rules may overlap; :func:`resolve_triggers` sorts that out)."""
    chunk = text[sentence.begin:sentence.end]
    pairs = brackets(chunk)
    closes = {c for _, c in pairs}
    out = []
    for rx, category, direction, scope, applies in compiled_rules(rules):
        for m in rx.finditer(chunk):
            if m.end() > m.start():
                word = m.group(0).lower()
                # A term ending in the bracket that closes "(exon 3)" is that bracket, not a
                # list enumerator "3)"; the bracket rule itself matches the ")" alone.
                if category == TERMINATE and len(word) > 1 and m.end() - 1 in closes:
                    continue
                frame = bool((category == NEGATED and direction == "forward"
                              and _FRAME_OPENER.match(word))
                             or (category == AFFIRMED and _FRAME_CLOSER.fullmatch(word)))
                inside = [c for o, c in pairs if o < m.start() and m.end() <= c]
                opens = next((o for o, c in pairs if c == m.start() == m.end() - 1), None)
                out.append(Trigger(sentence.begin + m.start(), sentence.begin + m.end(),
                                   category, direction, scope, applies, frame,
                                   sentence.begin + min(inside) if inside else None,
                                   sentence.begin + opens if opens is not None else None))
    return out


def brackets(chunk: str) -> list[tuple[int, int]]:
    """``(open, close)`` offsets of the balanced round brackets of ``chunk``."""
    out, stack = [], []
    for i, ch in enumerate(chunk):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            out.append((stack.pop(), i))
    return out


_FRAME_OPENER = re.compile(r"(?:no|without)\b")
_FRAME_CLOSER = re.compile(r"detected|identified|found|seen")


# A sentence detector without abbreviation handling ends a sentence after a title ("seen by
# Dr. | Watanabe"); the name belongs to the sentence before.
_TITLE_END = re.compile(r"(?<!\w)(?:Dr|Mr|Mrs|Ms|Mx|Prof|Drs)\.\s*$")


def merge_title_breaks(text: str, sentences: list[Span]) -> list[Span]:
    """Join each sentence that ends with a title ("Dr.") to the sentence after it."""
    out: list[Span] = []
    for s in sorted(sentences):
        if out and _TITLE_END.search(text, out[-1].begin, out[-1].end) and \
                "\n\n" not in text[out[-1].end:s.begin]:
            out[-1] = Span(out[-1].begin, s.end)
        else:
            out.append(s)
    return out


# A token is a run of non-space characters that neither starts nor ends with punctuation, or
# one punctuation character: "(EGFR)" is three tokens, "non-small" and "w/o" are one.
_TOKEN = re.compile(r"""[.,;:!?*()"'-]|[^\s.,;:!?*()"'-](?:\S*[^\s.,;:!?*()"'-])?""")


def token_offsets(text: str) -> list[tuple[int, int]]:
    """``(begin, end)`` of every token of ``text`` (what the name lexicon walks)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def tokenize(text: str, sentence: Span) -> list[Span]:
    """Token spans inside ``sentence`` (what ``max_scope`` counts)."""
    chunk = text[sentence.begin:sentence.end]
    return [Span(sentence.begin + m.start(), sentence.begin + m.end())
            for m in _TOKEN.finditer(chunk)]


# ------------------------------------------------------------------------- algorithm
def resolve_triggers(triggers: list[Trigger]) -> list[Trigger]:
    """Drop triggers overlapped by a pseudo-trigger (of the categories in its ``applies_to``;
    blank: all) and triggers inside a longer trigger of the same category ("no" inside "no
    evidence of"); a trigger inside a longer one of another category still counts ("history of"
    inside "no history of" is negated *and* historical). A clause cue inside a modifier is part
    of it ("detected" in "not detected")."""
    pseudo = [t for t in triggers if t.category == PSEUDO]
    modifiers = [t for t in triggers if t.category in MODIFIERS]
    kept = []
    for t in triggers:
        if t.category == PSEUDO:
            continue
        if t.category in (AFFIRMED, CLAUSE) and any(
                m.begin <= t.begin and t.end <= m.end for m in modifiers):
            continue
        if t.category != TERMINATE and any(
                p.begin < t.end and t.begin < p.end
                and (not p.applies_to or t.category in p.applies_to) for p in pseudo):
            continue
        inside_longer = any(
            o is not t and o.category == t.category and o.length > t.length
            and o.begin <= t.begin and t.end <= o.end
            for o in triggers
        )
        if not inside_longer:
            kept.append(t)
    return sorted(set(kept), key=lambda t: (t.begin, -t.length))


def _terminates(term: Trigger, category: str, reach: str) -> bool:
    """Does ``term`` end a ``reach`` ("forward": of a trigger before it, "backward": after
    it) of a ``category`` trigger? A termination rule with a direction ends that reach only
    (a closing bracket ends a cue's reach out of its brackets, while a verdict after the
    brackets still reads the phrase before them: "EGFR (exons 18-21): wild-type")."""
    return (term.category == TERMINATE and (not term.applies_to or category in term.applies_to)
            and term.direction in ("none", "bidirectional", reach))


def _token_limit_forward(tokens: list[Span], start: int, n: int) -> int:
    """End offset of the ``n``-th token that begins at or after ``start``."""
    begins = [t.begin for t in tokens]
    i = bisect.bisect_left(begins, start)
    j = i + n - 1
    return tokens[j].end if j < len(tokens) else tokens[-1].end if tokens else start


def _token_limit_backward(tokens: list[Span], end: int, n: int) -> int:
    """Begin offset of the ``n``-th token that ends at or before ``end`` (counting back)."""
    ends = [t.end for t in tokens]
    i = bisect.bisect_right(ends, end) - 1
    j = i - n + 1
    return tokens[j].begin if j >= 0 else tokens[0].begin if tokens else end


def _has_own_cue(trigger: Trigger, lo: int, hi: int, triggers: list[Trigger],
                 list_ok: bool) -> bool:
    """Does ``[lo, hi)`` hold a result cue of its own (not one of ``trigger``'s category: a
    clause that repeats the verdict continues it, "-ve for A, B (occult nor overt)")? With
    ``list_ok``, a cue after "or"/"nor" in the same stretch closes a list the trigger heads
    ("no L858R, exon 19 deletion or T790M detected") and does not count."""
    cues = [t for t in triggers if t.category in OWN_CUES and t.category != trigger.category
            and lo <= t.begin and t.end <= hi
            and not (list_ok and trigger.frame and t.category == AFFIRMED and t.frame)]
    if not cues:
        return False
    if list_ok:
        first = min(c.begin for c in cues)
        if any(t.category == LIST and lo <= t.begin < first for t in triggers):
            return False
    return True


def clause_end(trigger: Trigger, end: int, triggers: list[Trigger]) -> int:
    """Where a forward trigger's reach ends at a clause with a result of its own: the first
    clause boundary ("," "and") after the trigger whose following stretch, up to the next
    boundary, carries its own cue ("No brain metastases, liver metastases present")."""
    bounds = sorted((t for t in triggers if t.category == CLAUSE and t.begin >= trigger.end
                     and t.begin < end), key=lambda t: t.begin)
    for i, b in enumerate(bounds):
        nxt = bounds[i + 1].begin if i + 1 < len(bounds) else end
        if _has_own_cue(trigger, b.end, nxt, triggers, list_ok=True):
            return b.begin
    return end


def clause_start(trigger: Trigger, start: int, triggers: list[Trigger]) -> tuple[int, bool]:
    """The mirror of :func:`clause_end` for a backward trigger: the nearest boundary before
    it whose preceding stretch carries its own cue ("EGFR exon 19 deletion detected, ALK
    negative"). After a verdict phrase ("..., interpreted as equivocal") the nearest clause
    with its own cue is the one the verdict reads, and the reach ends before it instead:
    "MET exon 14 skipping detected at low level, interpreted as equivocal" is equivocal;
    "KRAS G12C detected, MET exon 14 skipping detected at low level, interpreted as
    equivocal" leaves KRAS G12C detected. Returns the start and whether a verdict set it (its
    reach is the clause it reads, however many tokens that is)."""
    bounds = sorted((t for t in triggers if t.category == CLAUSE and t.end <= trigger.begin
                     and t.end > start), key=lambda t: -t.end)
    verdict = bool(bounds) and any(t.category == VERDICT and bounds[0].end <= t.begin
                                   and t.end <= trigger.begin for t in triggers)
    read = False
    for i, b in enumerate(bounds):
        prv = bounds[i + 1].end if i + 1 < len(bounds) else start
        if _has_own_cue(trigger, prv, b.begin, triggers, list_ok=False):
            if verdict:  # the clause this verdict reads: it belongs to the reach
                verdict, read = False, True
                continue
            return b.end, read
    return start, read


def in_scope(trigger: Trigger, target: Span, sentence: Span, tokens: list[Span],
             triggers: list[Trigger]) -> bool:
    """Does ``trigger`` reach ``target`` within ``sentence``?"""
    cat = trigger.category
    if trigger.direction in ("forward", "bidirectional") and target.begin >= trigger.end:
        end = sentence.end
        for term in triggers:
            if (_terminates(term, cat, "forward") and term.begin >= trigger.end
                    and term.begin < end
                    and (term.opens is None or term.opens < trigger.begin)):
                end = term.begin
        if cat in CLAUSE_BOUND:
            end = clause_end(trigger, end, triggers)
        if trigger.bracket_end is not None:
            end = min(end, trigger.bracket_end)
        if trigger.max_scope:
            end = min(end, _token_limit_forward(tokens, trigger.end, trigger.max_scope))
        if target.begin < end:
            return True
    if trigger.direction in ("backward", "bidirectional") and target.end <= trigger.begin:
        start = sentence.begin
        for term in triggers:
            if (_terminates(term, cat, "backward") and term.end <= trigger.begin
                    and term.end > start):
                start = term.end
        read = False
        if cat in CLAUSE_BOUND:
            start, read = clause_start(trigger, start, triggers)
        if trigger.max_scope and not read:
            start = max(start, _token_limit_backward(tokens, trigger.begin, trigger.max_scope))
        if target.end > start:
            return True
    return False


def classify(sentence: Span, tokens: list[Span], triggers: list[Trigger],
             target: Span, text: str | None = None) -> ContextResult:
    """The ConText modifiers of ``target`` given the sentence's tokens and matched triggers.

    ``triggers`` may include matches outside the sentence; only those inside it count. With
    the ``text``, a bracketed aside counts as one token for the rules' ``max_scope``.
    """
    local = [t for t in triggers if t.begin >= sentence.begin and t.end <= sentence.end]
    local = resolve_triggers(local)
    # A termination term inside the target phrase is part of the phrase, not a boundary.
    local = [t for t in local if not (t.category == TERMINATE and t.begin < target.end
                                      and target.begin < t.end)]
    toks = [t for t in tokens if t.begin >= sentence.begin and t.end <= sentence.end]
    if text is not None:
        toks = _asides_as_one(toks, target, text)
    found = set()
    for trig in local:
        if trig.category not in MODIFIERS or trig.category in found:
            continue
        if target.begin <= trig.begin and trig.end <= target.end:
            continue  # the trigger is part of the target phrase itself
        if (trig.direction in ("backward", "bidirectional")
                and target.begin < trig.begin < target.end < trig.end):
            # The target phrase took the cue's first word ("ROS1 FISH" + "FISH failed"):
            # the cue follows the target directly.
            found.add(trig.category)
            continue
        if in_scope(trig, target, sentence, toks, local):
            found.add(trig.category)
    return ContextResult(frozenset(found))


def _asides_as_one(tokens: list[Span], target: Span, text: str) -> list[Span]:
    """The tokens with each bracketed aside ("(exons 18-21)", "(VE1)") as one token, so that a
    cue's ``max_scope`` counts the words of the sentence, not those of its asides ("EGFR
    (exons 18-21): wild-type"). An aside that holds the target stays as it is."""
    out: list[Span] = []
    depth, start, held = 0, Span(0, 0), []
    for t in tokens:
        ch = text[t.begin:t.end]
        if depth == 0 and ch == "(":
            depth, start, held = 1, t, [t]
            continue
        if depth:
            held.append(t)
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if not depth:
                    if start.begin <= target.begin and target.end <= t.end:
                        out.extend(held)
                    else:
                        out.append(Span(start.begin, t.end))
            continue
        out.append(t)
    if depth:
        out.extend(held)
    return out


# ------------------------------------------------------------------------- targets
def _part_of_word(text: str, m: re.Match) -> bool:
    """Is the match glued to a longer word by an apostrophe, hyphen or slash ("PE's")?"""
    return bool(re.match(r"['/-]\w", text[m.end():m.end() + 2])
                or re.search(r"\w['/-]$", text[max(0, m.start() - 2):m.start()]))


def find_target(text: str, target: str, window: Span | None = None) -> Span | None:
    """Locate ``target`` in ``text`` tolerant of the quirks of real annotation files.

    Runs of whitespace match any run, case is ignored, and when the phrase occurs more than
    once the occurrence written in upper case (how annotators mark it), then one that stands
    as a word of its own rather than inside a longer one ("PE" in "PE's ... PE" is the
    second), then one written exactly as given is preferred. A target that is not found whole
    (a truncated sentence) falls back to its longest leading, then trailing, run of words that
    is found.
    """
    words = target.split()
    if not words:
        return None
    lo, hi = (window.begin, window.end) if window else (0, len(text))
    for n in range(len(words), 0, -1):
        for part in ([words[:n]] if n == len(words) else [words[:n], words[-n:]]):
            if n < len(words) and sum(len(w) for w in part) < 3:
                continue
            rx = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in part) + r"(?!\w)",
                            re.IGNORECASE)
            hits = [m for m in rx.finditer(text, lo, hi)]
            if not hits:
                rx = re.compile(r"\s+".join(re.escape(w) for w in part), re.IGNORECASE)
                hits = [m for m in rx.finditer(text, lo, hi)]
            if hits:
                def score(m, part=part):
                    s = m.group(0)
                    marked = s.isupper() and not text[lo:hi].isupper()
                    header = text[m.end():m.end() + 1] == ":"
                    return (not marked, header, _part_of_word(text, m), s.split() != part,
                            m.start())
                best = min(hits, key=score)
                return Span(best.start(), best.end())
    return None

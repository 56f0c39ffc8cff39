"""Lexicon rules (concepts, section headers) matched in a note, with a literal prefilter.

A rule is a regular expression from a data file. Run naively, every rule scans every
character of every note: for the ~100 concept rules that was 6 ms a note on the JVM (Spark
NLP's ``RegexMatcher``, 45% of the whole de-identification + extraction time) and 5 ms in
Python. Most rules can only match where one of a few literal words occurs ("L858R" or
"Leu858Arg"; "osimertinib" or "Tagrisso"), so :func:`required_literals` reads each rule's
parse tree once and derives such a set; a note is scanned with a rule only when the
lower-cased note contains one of its literals (all literals are looked up in one pass over
the note, far cheaper than a regex scan per rule). The prefilter is sound by construction (a
match always contains one of the literals), so the matches are exactly those of the plain
scan; rules without usable literals are always run.

Rules use Python's ``re`` syntax with ASCII classes (``\\w`` is ``[A-Za-z0-9_]``, as on the
JVM). Matches are reported like Spark NLP's ``RegexMatcher`` with the ``MATCH_ALL`` strategy:
every non-overlapping match of each rule, rules independent of each other.

>>> sorted(required_literals(r"(?i)(?:\\bEGFR\\b\\s)?\\b(?:p\\.)?(?:L858R|Leu858Arg)\\b"))
['l858r', 'leu858arg']
>>> rules = RuleSet([(r"(?i)\\bosimertinib\\b|\\bTagrisso\\b", "c0"), (r"\\bAC\\b", "c1")])
>>> rules.find("Started TAGRISSO after AC.")
[(8, 16, 'c0'), (23, 25, 'c1')]
>>> rules.find("No treatment yet.")
[]
"""

from __future__ import annotations

import re

# re's own parser (the public ``sre_parse`` alias is deprecated since Python 3.11): the
# literals must come from exactly the parse tree re compiles.
from re import _constants as sre
from re import _parser as sre_parse

# Literals shorter than this pass too many notes to be worth looking up.
MIN_LITERAL = 3
# Largest set of alternative strings followed through a rule ("[Ee]GFR" → {"egfr"}, but
# "[a-z]{3}" is not enumerated).
MAX_ALTERNATIVES = 64

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


def _exact(items) -> frozenset[str] | None:
    """Every lower-case string the sequence ``items`` can match, when that is a small finite
    set; None otherwise."""
    out = frozenset([""])
    for item in items:
        alts = _exact_item(*item)
        if alts is None:
            return None
        out = frozenset(a + b for a in out for b in alts)
        if len(out) > MAX_ALTERNATIVES:
            return None
    return out


def _exact_item(op, av) -> frozenset[str] | None:
    if op is sre.LITERAL:
        return frozenset([chr(av).lower()])
    if op is sre.AT:  # \b, ^, $: zero-width
        return frozenset([""])
    if op is sre.IN and all(o is sre.LITERAL for o, _ in av):
        return frozenset(chr(v).lower() for _, v in av)
    if op is sre.SUBPATTERN:
        return _exact(av[3])
    if op is sre.BRANCH:
        alts = [_exact(b) for b in av[1]]
        if any(a is None for a in alts):
            return None
        return frozenset().union(*alts)
    if op in _REPEATS and av[1] is not sre.MAXREPEAT and av[1] <= 2:
        one = _exact(av[2])
        if one is None:
            return None
        out, step = set(), frozenset([""])
        for n in range(av[1] + 1):
            if n >= av[0]:
                out |= step
            step = frozenset(a + b for a in step for b in one)
            if len(out) + len(step) > MAX_ALTERNATIVES:
                return None
        return frozenset(out)
    return None


def _requirement(items) -> frozenset[str] | None:
    """A set of lower-case strings one of which every match of the sequence ``items``
    contains, or None when no such set is known.

    Consecutive items that match a small set of strings are multiplied out into one set
    ("L(?:858R|eu858Arg)" → {"l858r", "leu858arg"}); any other item ends that run and
    offers its own requirement (a group or a repetition of at least one).
    """
    candidates: list[frozenset[str]] = []
    run = frozenset([""])

    def end_run() -> None:
        nonlocal run
        if run - {""}:
            candidates.append(run)
        run = frozenset([""])

    for op, av in items:
        alts = _exact_item(op, av)
        if alts is not None:
            product = frozenset(a + b for a in run for b in alts)
            if len(product) <= MAX_ALTERNATIVES:
                run = product
                continue
            end_run()
            run = alts
            continue
        end_run()
        if op is sre.SUBPATTERN:
            req = _requirement(av[3])
        elif op is sre.ATOMIC_GROUP:
            req = _requirement(av)
        elif op is sre.BRANCH:
            branches = [_requirement(b) for b in av[1]]
            req = None if any(b is None for b in branches) else frozenset().union(*branches)
        elif op in _REPEATS:
            req = _requirement(av[2]) if av[0] >= 1 else None
        else:  # wide classes, any, look-arounds, back-references: nothing required
            req = None
        if req is not None:
            candidates.append(req)
    end_run()
    if not candidates:
        return None
    # A literal that contains another one of its set adds nothing ("p.l858r" ⊃ "l858r").
    candidates = [frozenset(a for a in c if not any(b != a and b in a for b in c))
                  for c in candidates]
    # The set whose shortest literal is longest filters best; then the smaller set.
    return max(candidates, key=lambda s: (min(map(len, s)), -len(s)))


def required_literals(pattern: str) -> frozenset[str] | None:
    """Lower-case literals one of which occurs (in some letter case) in every match of
    ``pattern``; None when the rule has none of at least ``MIN_LITERAL`` characters."""
    req = _requirement(sre_parse.parse(pattern, re.ASCII))
    if req is None or min(map(len, req)) < MIN_LITERAL:
        return None
    return req


_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")


def split_leading_lookbehind(pattern: str) -> tuple[str, str] | None:
    """``("(?<![\\w/])", "HPI:")`` for ``"(?<![\\w/])HPI:"``: a rule's leading look-behind
    and the rest (global flags such as ``(?i)`` go with both); None when it has none.

    ``re`` cannot skip ahead to a possible match start when a pattern begins with a
    look-behind, so it tries it at every character; the rest alone often starts with a
    literal it can search for.
    """
    flags = _FLAGS.match(pattern)
    head = flags.group(0) if flags else ""
    body = pattern[len(head):]
    if not body.startswith(("(?<!", "(?<=")):
        return None
    depth, i, in_class = 0, 0, False
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if body[i + 1:i + 2] == "]":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                rest = body[i + 1:]
                return (head + body[:i + 1], head + rest) if rest else None
        i += 1
    return None


class _Rule:
    """One compiled rule: its prefilter literals and, when it starts with a look-behind,
    the rest compiled apart with the look-behind checked at each candidate start."""

    def __init__(self, pattern: str, ident: str):
        self.ident = ident
        self.literals = required_literals(pattern)
        parts = split_leading_lookbehind(pattern)
        self.behind = re.compile(parts[0], re.ASCII) if parts else None
        self.rx = re.compile(parts[1] if parts else pattern, re.ASCII)

    def finditer(self, text: str):
        if self.behind is None:
            yield from ((m.start(), m.end()) for m in self.rx.finditer(text)
                        if m.end() > m.start())
            return
        # Same matches as the whole pattern's finditer: the leftmost start where the
        # look-behind holds and the rest matches, then on from the end of that match.
        pos = 0
        while pos <= len(text):
            m = self.rx.search(text, pos)
            if m is None:
                return
            if self.behind.match(text, m.start()) and m.end() > m.start():
                yield m.start(), m.end()
                pos = m.end()
            else:
                pos = m.start() + 1


def trie_regex(words, token=re.escape, end: str = "") -> str:
    """One regex matching any of ``words``, shaped as a character trie: at each position the
    engine follows one path instead of trying every word in turn, and a longer continuation is
    tried before the word that ends at a node (the longest word wins). ``token`` renders one
    character, ``end`` is appended where a word ends (e.g. a word edge).

    >>> trie_regex(["met", "metastasis", "mets"])
    'met(?:astasis|s|)'
    """
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict) -> str:
        alts = [token(ch) + render(node[ch]) for ch in sorted(k for k in node if k)]
        if "" in node:
            alts.append(end)
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return render(root)


class RuleSet:
    """Compiled ``(regex, identifier)`` rules with their prefilter literals.

    Which literals a note holds is found in one pass: a look-ahead trie of all literals gives,
    at each position, the longest literal starting there; every other literal starting there
    is a prefix of it, so the prefixes of the found ones are exactly the literals present.
    """

    def __init__(self, rules: list[tuple[str, str]]):
        self.rules = [_Rule(rx, ident) for rx, ident in rules]
        literals = sorted({lit for r in self.rules if r.literals for lit in r.literals})
        self._prefixes = {a: frozenset(b for b in literals if a.startswith(b)) for a in literals}
        self._scan = (re.compile(f"(?=({trie_regex(literals)}))", re.DOTALL)
                      if literals else None)

    def literals_in(self, text: str) -> set[str]:
        """The rules' literals that occur in ``text`` (lower-cased)."""
        if self._scan is None:
            return set()
        found: set[str] = set()
        for m in self._scan.finditer(text.lower()):
            found |= self._prefixes[m.group(1)]
        return found

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """``(begin, end, identifier)`` of every match, ``[begin, end)``, by rule then position."""
        present = self.literals_in(text)
        out = []
        for rule in self.rules:
            if rule.literals is not None and present.isdisjoint(rule.literals):
                continue
            out.extend((b, e, rule.ident) for b, e in rule.finditer(text))
        return out

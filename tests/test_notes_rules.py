"""The lexicon rule matcher: its literal prefilter never changes what the rules find."""

from __future__ import annotations

import json
import random
import re

import pytest

from pipelines.notes import findings
from pipelines.notes.lexicon import RuleSet, required_literals, split_leading_lookbehind


def plain_scan(rules: list[tuple[str, str]], text: str) -> list[tuple[int, int, str]]:
    """What the rules find without the prefilter (every rule scans the whole text)."""
    return [(m.start(), m.end(), ident) for rx, ident in rules
            for m in re.finditer(rx, text, re.ASCII) if m.end() > m.start()]


ALL_RULES = {"concepts": findings.concept_matcher_rules(),
             "sections": findings.section_matcher_rules()}


@pytest.mark.parametrize(("pattern", "literals"), [
    (r"(?i)\bEGFR\b", {"egfr"}),
    # sre factors "L(?:858R|eu858Arg)"; the optional "p." prefix adds nothing.
    (r"(?i)(?:\bEGFR\b\s)?\b(?:p\.)?(?:L858R|Leu858Arg)\b", {"l858r", "leu858arg"}),
    (r"(?i)\bpembrolizumab\b|\bKeytruda\b", {"pembrolizumab", "keytruda"}),
    (r"[Ee]rlotinib|Tarceva", {"erlotinib", "tarceva"}),
    (r"(?i)ex(?:on)?\s?19\s?del", {"del"}),
    (r"(?i)\becog\s(?:ps\s)?[0-4]\b", {"ecog"}),
    (r"\d+ pack[- ]years?", {" pack-year", " pack year"}),
])
def test_required_literals(pattern, literals):
    assert required_literals(pattern) == frozenset(literals)


@pytest.mark.parametrize(("pattern", "literals"), [
    (r"(?i)\b(?:ER|PR)\b", None),              # two letters: too short to filter anything
    (r"\d{1,3}%", None),                       # no literal at all
    (r"(?i)(?:brain\s)?mets?", {"met"}),        # only the mandatory part counts
])
def test_rules_without_a_useful_literal_always_run(pattern, literals):
    assert required_literals(pattern) == (frozenset(literals) if literals else None)
    assert RuleSet([(pattern, "x")]).find("brain METS, ER+ 45%") == plain_scan(
        [(pattern, "x")], "brain METS, ER+ 45%")


@pytest.mark.parametrize(("pattern", "parts"), [
    (r"(?<![\w/])(?:HPI|PLAN)[ \t]*:", (r"(?<![\w/])", r"(?:HPI|PLAN)[ \t]*:")),
    (r"(?i)(?<=\bDr\.\s)[A-Z]\w+", (r"(?i)(?<=\bDr\.\s)", r"(?i)[A-Z]\w+")),
    (r"(?<!\))x", (r"(?<!\))", "x")),
    (r"(?<![)(])(?:a|b)", (r"(?<![)(])", "(?:a|b)")),
    (r"(?<!x)", None),
    (r"\bEGFR\b", None),
    (r"a(?<!b)c", None),
])
def test_split_leading_lookbehind(pattern, parts):
    assert split_leading_lookbehind(pattern) == parts


def test_a_rule_with_a_leading_lookbehind_finds_what_the_whole_pattern_finds():
    rule = r"(?<![\w/])(?:PAST MEDICAL HISTORY|MEDICAL HISTORY|HISTORY)[ \t]*:"
    text = "XHISTORY: a/HISTORY: PAST MEDICAL HISTORY: b HISTORY:HISTORY:"
    assert RuleSet([(rule, "s")]).find(text) == plain_scan([(rule, "s")], text)
    assert [text[b:e] for b, e, _ in RuleSet([(rule, "s")]).find(text)] == [
        "PAST MEDICAL HISTORY:", "HISTORY:", "HISTORY:"]


def test_every_rule_literal_is_in_every_match_of_the_corpus(shared_data):
    """On the real MTSamples notes and the NegEx sentences, each match of each rule holds
    one of the rule's literals (the property the prefilter rests on) and the matcher finds
    exactly what a plain scan finds."""
    texts = [json.loads(line)["transcription"] for line in
             (shared_data / "notes" / "mtsamples_oncology_notes.jsonl").read_text().splitlines()]
    negex = (shared_data / "negation" / "negex_rsAnnotations-1-120-random.dev.tsv")
    texts += [line.split("\t")[2] for line in negex.read_text().splitlines()[1:]]
    matched = 0
    for rules in ALL_RULES.values():
        matcher = RuleSet(rules)
        literals = {ident: required_literals(rx) for rx, ident in rules}
        for text in texts:
            found = matcher.find(text)
            assert found == plain_scan(rules, text)
            for b, e, ident in found:
                lits = literals[ident]
                assert lits is None or any(x in text[b:e].lower() for x in lits)
            matched += len(found)
    assert matched > 1000


def test_prefilter_agrees_with_plain_scan_on_random_texts():
    """Texts stitched from the rules' own literals in random letter case, digits, punctuation
    and space: wherever the prefilter skips a rule, the plain scan finds nothing either."""
    rng = random.Random(11)
    vocab = sorted({lit for rules in ALL_RULES.values() for rx, _ in rules
                    for lit in (required_literals(rx) or ())})
    vocab += ["ECOG", "PD-L1", "TPS", "60%", "1", "2", "G12C", "exon 19", ":", "\n", ".", ",",
              "-", "/", "no", "history", "HER2", "ER", "PR", "KRAS", "EGFR", "p.", "30 pack-years"]
    for rules in ALL_RULES.values():
        matcher = RuleSet(rules)
        for _ in range(400):
            words = [rng.choice(vocab) for _ in range(rng.randint(3, 25))]
            words = [w.upper() if rng.random() < 0.3 else w.capitalize() if rng.random() < 0.3
                     else w for w in words]
            text = "".join(w + rng.choice([" ", " ", "  ", "\n", ": ", ""]) for w in words)
            assert matcher.find(text) == plain_scan(rules, text), text

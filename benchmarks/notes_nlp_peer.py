"""Peer side of ``benchmarks/notes_nlp.py``: medspaCy and negspacy, run in their own venvs.

medspaCy 1.3.1 and negspacy 1.1.0 pin spaCy versions that conflict with each other (and with
nothing in oncorank, which does not depend on spaCy), so each lives in a venv under /tmp::

    python3 -m venv /tmp/nlp/medspacy-venv && /tmp/nlp/medspacy-venv/bin/pip install medspacy==1.3.1
    python3 -m venv /tmp/nlp/negspacy-venv && /tmp/nlp/negspacy-venv/bin/pip install negspacy==1.1.0

This file imports only the peer's packages and the standard library. It reads one JSON object
on stdin and prints one JSON object:

* ``negex-medspacy`` / ``negex-negspacy``: ``{"rows": [[sentence, begin, end], ...]}`` → per
  row whether the peer calls the target (the given character span, located by oncorank's
  target matcher so every system judges the same span) negated / historical.
* ``notes-medspacy``: ``{"texts": [...], "concepts": [[concept, category, regex], ...],
  "sentencizer": "simple"|"pyrush"}`` → seconds (wall and CPU) to run TargetMatcher with the
  same concept regexes + ConText with its default rules over the notes, and the mention count.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

# PyRuSH logs every token at DEBUG level through loguru; that alone would dominate the timing.
os.environ.setdefault("LOGURU_LEVEL", "WARNING")


def _medspacy(sentencizer: str = "pyrush"):
    import medspacy

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_target_matcher",
                                         "medspacy_context"])
    if sentencizer == "simple":
        nlp.remove_pipe("medspacy_pyrush")
        nlp.add_pipe("sentencizer", first=True)
    return nlp


def negex_medspacy(rows: list) -> list:
    nlp = _medspacy("pyrush")
    sentences = nlp.get_pipe("medspacy_pyrush")
    context = nlp.get_pipe("medspacy_context")
    out = []
    for text, begin, end in rows:
        doc = sentences(nlp.make_doc(text))
        span = doc.char_span(begin, end, label="TARGET", alignment_mode="expand")
        doc.ents = [span]
        doc = context(doc)
        ent = doc.ents[0]
        out.append([bool(ent._.is_negated), bool(ent._.is_historical)])
    return out


def negex_negspacy(rows: list) -> list:
    import spacy
    from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)

    nlp = spacy.blank("en")
    sentences = nlp.add_pipe("sentencizer")
    negex = nlp.add_pipe("negex")  # default termset: en_clinical
    out = []
    for text, begin, end in rows:
        doc = sentences(nlp.make_doc(text))
        span = doc.char_span(begin, end, label="TARGET", alignment_mode="expand")
        doc.ents = [span]
        doc = negex(doc)
        out.append([bool(doc.ents[0]._.negex), False])
    return out


def notes_medspacy(texts: list, concepts: list, sentencizer: str) -> dict:
    from medspacy.ner import TargetRule

    nlp = _medspacy(sentencizer)
    rules = []
    for concept, category, regex in concepts:
        try:
            re.compile(regex)
        except re.error:
            continue
        rules.append(TargetRule(concept, category, pattern=regex))
    nlp.get_pipe("medspacy_target_matcher").add(rules)
    list(nlp.pipe(texts[:10]))  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    mentions = sum(len(doc.ents) for doc in nlp.pipe(texts))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"notes": len(texts), "chars": sum(map(len, texts)), "mentions": mentions,
            "concept_rules": len(rules), "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    mode = sys.argv[1]
    req = json.loads(sys.stdin.read())
    if mode == "negex-medspacy":
        res = {"flags": negex_medspacy(req["rows"])}
    elif mode == "negex-negspacy":
        res = {"flags": negex_negspacy(req["rows"])}
    elif mode == "notes-medspacy":
        res = notes_medspacy(req["texts"], req["concepts"], req.get("sentencizer", "simple"))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()

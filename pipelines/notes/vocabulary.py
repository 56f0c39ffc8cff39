"""Word lists that tell a name from a word, for the de-identifier (:mod:`.deid`).

A capitalised word that no English dictionary, drug list or clinical word list knows is most
likely a name ("Colquhoun", "Theodorakis", "Olúwadámilọ́lá"): census name lists alone miss the
names of most of the world. A census given name that English spells only with a capital
("Claire", "Darnell") is a name even without a title or a surname beside it.

The lists ship as package data (``resources/``, made by ``benchmarks/make_deid_vocabulary.py``;
sources and licences in ``resources/VOCABULARY.md``):

* ``english_words.txt.gz``: SCOWL size-70 American and British English (Kevin Atkinson;
  permissive notice), proper nouns with their capital;
* ``drug_words.txt.gz``: one-word drug names and brands of ``drug-named-entity-recognition``
  2.0.9 (MIT);
* ``clinical_words.txt``: clinical terms and abbreviations of the MTSamples and NegEx texts
  that the two lists above lack;
* ``holidays.txt``: holiday names of the ``holidays`` package (MIT), read as dates.

>>> is_known("hepatosplenomegaly"), is_known("pembrolizumab"), is_known("Colquhoun")
(True, True, False)
>>> is_ordinary("rose"), is_ordinary("Dolores")
(True, False)
"""

from __future__ import annotations

import gzip
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["Vocabulary", "fold", "holiday_names", "is_known", "is_ordinary", "vocabulary"]


def fold(word: str) -> str:
    """Lower case without accents: "Montréal" → "montreal"."""
    plain = unicodedata.normalize("NFKD", word.replace("’", "'"))
    return "".join(c for c in plain if not unicodedata.combining(c)).lower()


def _lines(name: str) -> list[str]:
    raw = resources.files("pipelines.notes.resources").joinpath(name).read_bytes()
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")
    return [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]


@dataclass(frozen=True)
class Vocabulary:
    """Folded word sets: ``ordinary`` English spelt in lower case, ``proper`` English spelt
    only with a capital, ``clinical`` drug names and clinical terms."""

    ordinary: frozenset[str]
    proper: frozenset[str]
    clinical: frozenset[str]


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    english = _lines("english_words.txt.gz")
    ordinary = frozenset(fold(w) for w in english if w[:1].islower())
    proper = frozenset(fold(w) for w in english if not w[:1].islower()) - ordinary
    clinical = frozenset(_lines("drug_words.txt.gz")) | frozenset(_lines("clinical_words.txt"))
    return Vocabulary(ordinary, proper, clinical)


def is_ordinary(word: str) -> bool:
    """An English word spelt in lower case (folded), or a clinical word."""
    v = vocabulary()
    w = fold(word)
    return w in v.ordinary or w in v.clinical


def is_known(word: str) -> bool:
    """Any English word (proper nouns included) or a drug or clinical word."""
    v = vocabulary()
    w = fold(word)
    return w in v.ordinary or w in v.proper or w in v.clinical


@lru_cache(maxsize=1)
def holiday_names() -> tuple[str, ...]:
    """Holiday names, longest first (so "Christmas Eve" wins over "Christmas")."""
    return tuple(sorted(set(_lines("holidays.txt")), key=len, reverse=True))

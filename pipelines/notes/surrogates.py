"""Surrogate mode of de-identification: realistic, consistent replacements instead of masks.

With masks a note reads "Seen by Dr. [NAME] on [DATE:2023-03-24]"; with surrogates it reads
"Seen by Dr. Harris on 2023-03-24". Surrogates keep notes readable for annotators and models
trained on natural text, and a name the de-identifier missed hides among invented ones
("hiding in plain sight"; the i2b2 releases were made this way).

Every replacement is chosen by HMAC-SHA256 over the patient's secret seed (derived in Spark
from the lakehouse key and the patient id, never stored) and the original text: the same
name gets the same surrogate in every note of a patient and a different one for another
patient, and nobody without the key can map a surrogate back.

* names: census names of the same kind (given name or surname) and case, initials for
  initials;
* dates: the shifted date (the same per-patient offset as the masks) written as an ISO date,
  "Month yyyy" or "mm-dd"; a day alone moves by the offset within a 28-day month, a holiday
  becomes "the holiday";
* ages over 89: "90";
* phone and fax: fictional 555-01xx numbers; e-mail and URL under example.org; IP addresses
  from the documentation range 192.0.2.0/24; SSNs from the advertising range 987-65-432x;
* record, plan, account, licence, device and other numbers: the same shape with other digits
  and letters;
* streets, cities, states, countries, ZIP codes, facilities and organisations: invented
  places of the same kind; professions stay masked.

>>> a = surrogate("Smith", "NAME", "seed-1", 0)
>>> a == surrogate("Smith", "NAME", "seed-1", 0), a == "Smith"
(True, False)
>>> surrogate("MRN 0048213", "MRN", "seed-1", 0)[:4], len(surrogate("0048213", "MRN", "s", 0))
('MRN ', 7)
>>> surrogate("92", "AGE", "s", 0), surrogate("03/14/2023", "DATE", "s", 10)
('90', '2023-03-24')
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from functools import lru_cache

__all__ = ["surrogate"]


def _digest(seed: str, kind: str, original: str) -> bytes:
    from pipelines.notes.vocabulary import fold

    return hmac.new(seed.encode(), f"{kind}:{fold(original).strip()}".encode(),
                    hashlib.sha256).digest()


def _pick(options: tuple[str, ...], seed: str, kind: str, original: str,
          avoid: str = "") -> str:
    h = int.from_bytes(_digest(seed, kind, original)[:8], "big")
    choice = options[h % len(options)]
    if choice.lower() == avoid.lower():
        choice = options[(h + 1) % len(options)]
    return choice


@lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The 1,000 most frequent census given names and surnames (title case)."""
    from importlib import resources

    pkg = resources.files("names")

    def top(file: str, n: int) -> list[str]:
        return [line.split()[0].title() for line in
                pkg.joinpath(file).read_text().splitlines()[:n] if line.strip()]

    first = top("dist.female.first", 500) + top("dist.male.first", 500)
    return tuple(first), tuple(top("dist.all.last", 1000))


@lru_cache(maxsize=1)
def _places() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Cities of 100,000 people or more, US states and countries (GeoNames, title case)."""
    from pipelines.notes.deid import BIG_CITY, places

    pl = places()
    cities = tuple(sorted(c.title() for c, n in pl.cities.items()
                          if n >= BIG_CITY and c.isascii() and c.replace(" ", "").isalpha()))
    return (cities, tuple(sorted(s.title() for s in pl.states)),
            tuple(sorted(c.title() for c in pl.countries if c.isascii())))


def _case_like(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like.islower():
        return word.lower()
    return word


def _name(original: str, seed: str) -> str:
    """Each word of a name replaced: given names by given names, surnames by surnames,
    initials by initials; spaces, commas and particles stay."""
    first, last = _names()
    words = list(re.finditer(r"[^\W\d_][\w'’-]*", original))
    given = {m.start() for m in words[:1]} if len(words) > 1 and "," not in original else set()
    if "," in original and len(words) > 1:  # "Smith, John": the given name follows the comma
        given = {words[1].start()}
    out, pos = [], 0
    for m in words:
        w = m.group(0)
        out.append(original[pos:m.start()])
        if len(w) == 1:
            letter = _pick(tuple(string.ascii_uppercase), seed, "initial", w, avoid=w)
            out.append(letter)
        elif w.lower() in ("van", "von", "de", "del", "da", "der", "den", "di", "la", "le", "du",
                           "dos", "ap", "bin", "al", "el"):
            out.append(w)
        else:
            pool = first if m.start() in given else last
            out.append(_case_like(_pick(pool, seed, "name", w, avoid=w), w))
        pos = m.end()
    out.append(original[pos:])
    return "".join(out)


def _reshape(original: str, seed: str, kind: str) -> str:
    """Digits replaced by digits and letters by letters, in place: "MRN-0048213" keeps its
    shape and a leading label word of three letters or more stays ("MRN 0048213")."""
    h = _digest(seed, kind, original)
    stream = int.from_bytes(hashlib.sha256(h).digest() + h, "big")
    label = re.match(r"(?:[A-Za-z]{3,}[\s:#]+)?", original).group(0)
    out = [label]
    for c in original[len(label):]:
        if c.isdigit():
            out.append(str(stream % 10))
            stream //= 10
        elif c.isalpha():
            letter = string.ascii_uppercase[stream % 26]
            out.append(letter if c.isupper() else letter.lower())
            stream //= 26
        else:
            out.append(c)
    return "".join(out)


def _date(original: str, shift_days: int) -> str:
    import datetime as dt

    from pipelines.notes.deid import dayless, shifted_date

    if dayless(original):
        m = re.match(r"\s*(\d{1,2})", original)
        if not m:
            return "the holiday"
        day = (int(m[1]) - 1 + shift_days) % 28 + 1
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        return f"{day}{suffix}"
    value = shifted_date(original, shift_days)
    if re.fullmatch(r"\d{4}-\d{2}", value):
        return dt.date(int(value[:4]), int(value[5:]), 1).strftime("%B %Y")
    if value.startswith("--"):
        parts = value[2:].split("-")
        month = dt.date(2000, int(parts[0]), 1).strftime("%B")
        return f"{month} {int(parts[1])}" if len(parts) > 1 else month
    return value or "the date"


# Fictional numbers and addresses by type, from a number n drawn from the span's digest.
_NUMBERED = {
    "AGE": lambda n: "90",
    "PHONE": lambda n: f"555-01{n % 100:02d}",
    "FAX": lambda n: f"555-01{n % 100:02d}",
    "URL": lambda n: f"https://www.example.org/{n % 100000:05d}",
    "IP": lambda n: f"192.0.2.{n % 254 + 1}",
    "SSN": lambda n: f"987-65-432{n % 10}",
    "ZIP": lambda n: f"000{n % 100:02d}",
    "PROFESSION": lambda n: "[PROFESSION]",
}
# Invented places: (pool index in _places(), or None for a surname-based name, format).
_PLACES = {"CITY": 0, "STATE": 1, "COUNTRY": 2}
_SURNAMED = {"EMAIL": "{name}{n}@example.org", "ADDRESS": "{n3} {Name} Street",
             "FACILITY": "{Name} Medical Center", "ORGANIZATION": "{Name} Group"}


def surrogate(original: str, phi_type: str, seed: str, shift_days: int) -> str:
    """The surrogate of one PHI span (see the module docstring)."""
    n = int.from_bytes(_digest(seed, phi_type, original)[:4], "big")
    if phi_type == "NAME":
        return _name(original, seed)
    if phi_type == "DATE":
        return _date(original, shift_days)
    if phi_type in _NUMBERED:
        return _NUMBERED[phi_type](n)
    if phi_type in _PLACES:
        pool = _places()[_PLACES[phi_type]]
        return _pick(pool, seed, phi_type.lower(), original, avoid=original)
    if phi_type in _SURNAMED:
        name = _pick(_names()[1], seed, phi_type.lower(), original)
        return _SURNAMED[phi_type].format(name=name.lower(), Name=name, n=n % 100,
                                          n3=n % 900 + 100)
    return _reshape(original, seed, phi_type)

"""Scoring the de-identifier on a corpus with PHI marked inline (``tests/data/phi_corpus.tsv``).

The corpus marks each PHI span in place, ``{{NAME:Smith, John}}``; :func:`load_corpus` strips
the markup and keeps each span's offsets and category. :func:`run` sends the plain notes
through the real pipeline (:func:`pipelines.notes.stage.deidentify_frame`: Spark NLP's
RegexMatcher, then :mod:`pipelines.notes.deid`), and :func:`score` measures

* recall per category: a span is *caught* when every letter and digit of it lies inside some
  PHI span the pipeline found (separators such as the comma of "Smith, John" do not count),
  *partial* when only some do;
* token precision: of the word tokens the pipeline masked, the share inside a marked span, and
  the share of unmarked tokens it kept (with the masked ones listed);
* leaks: marked spans whose text still stands, as a whole word, in the de-identified note;
* dates: the share of DATE spans found whose placeholder carries a shifted date.

Categories follow the i2b2/UTHealth 2014 de-identification guidelines (Stubbs & Uzuner 2015);
``HIPAA`` lists the ones that are HIPAA Safe Harbor identifiers (45 CFR 164.514(b)(2)).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Safe Harbor identifiers (names; geographic subdivisions smaller than a state; all elements of
# dates but the year and ages over 89; telephone and fax numbers; e-mail addresses; URLs; IP
# addresses; SSN; medical record, health plan, account and licence numbers; device and vehicle
# identifiers; any other unique identifying number).
HIPAA = ("NAME", "STREET", "CITY", "ZIP", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "URL", "IP",
         "SSN", "MRN", "HEALTHPLAN", "ACCOUNT", "LICENSE", "DEVICE", "VEHICLE", "IDNUM")
# i2b2 PHI that Safe Harbor does not require removing (a state, a country, a profession, a
# hospital or employer name, a user name).
OTHER = ("STATE", "COUNTRY", "PROFESSION", "FACILITY", "ORGANIZATION", "USERNAME")
CATEGORIES = HIPAA + OTHER

_MARK = re.compile(r"\{\{([A-Z]+):(.*?)\}\}")
_TOKEN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class GoldSpan:
    begin: int
    end: int
    category: str
    text: str


@dataclass(frozen=True)
class CorpusNote:
    note_id: str
    note_type: str
    text: str
    spans: tuple[GoldSpan, ...]


def parse_marked(marked: str) -> tuple[str, list[GoldSpan]]:
    """The plain text of a marked snippet and its spans.

    >>> parse_marked("Seen by Dr. {{NAME:Smith, John}} on {{DATE:3/21}}.")
    ('Seen by Dr. Smith, John on 3/21.', [GoldSpan(begin=12, end=23, category='NAME', \
text='Smith, John'), GoldSpan(begin=27, end=31, category='DATE', text='3/21')])
    """
    out, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos:m.start()]
        out.append(before)
        length += len(before)
        cat, value = m.group(1), m.group(2)
        if cat not in CATEGORIES:
            raise ValueError(f"unknown PHI category {cat!r} in {marked[:60]!r}")
        spans.append(GoldSpan(length, length + len(value), cat, value))
        out.append(value)
        length += len(value)
        pos = m.end()
    rest = marked[pos:]
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"unbalanced markup in {marked[:60]!r}")
    out.append(rest)
    return "".join(out), spans


def load_corpus(path: Path) -> list[CorpusNote]:
    """Rows ``id, note_type, text`` (tab-separated, ``#`` comments, a header row); ``\\n`` in
    the text is a line break."""
    notes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("id\t"):
            continue
        note_id, note_type, marked = line.split("\t")
        text, spans = parse_marked(marked.replace("\\n", "\n"))
        notes.append(CorpusNote(note_id, note_type, text, tuple(spans)))
    return notes


def run(spark, notes: list[CorpusNote], key: bytes = b"phi-corpus") -> dict[str, dict]:
    """``note_id`` → ``{"text_deid", "spans": [(begin, end, type)]}`` from the real stage
    function; each note is its own patient."""
    from pipelines.notes.stage import deidentify_frame

    df = spark.createDataFrame(
        [(n.note_id, n.note_id, n.note_type, "2023-03-14", n.text) for n in notes],
        "note_id string, patient_id string, note_type string, note_date string, text string",
    ).selectExpr("note_id", "patient_id", "note_type", "to_date(note_date) AS note_date", "text")
    return {r.note_id: {"text_deid": r.text_deid,
                        "spans": [(s.begin, s.end, s.type) for s in r.phi_spans]}
            for r in deidentify_frame(spark, df, key).collect()}


@dataclass
class CategoryScore:
    spans: int = 0
    caught: int = 0
    partial: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.spans if self.spans else 1.0


@dataclass
class Report:
    categories: dict[str, CategoryScore]
    masked_tokens: int
    masked_phi_tokens: int
    other_tokens: int
    other_masked: list[str]
    leaks: list[tuple[str, str, str]]
    dates_found: int
    dates_with_value: int

    @property
    def precision(self) -> float:
        return self.masked_phi_tokens / self.masked_tokens if self.masked_tokens else 1.0

    @property
    def kept_other(self) -> float:
        """Share of the tokens outside every marked span that the pipeline left in place."""
        return 1 - len(self.other_masked) / self.other_tokens if self.other_tokens else 1.0

    def total(self, cats: Iterable[str]) -> CategoryScore:
        out = CategoryScore()
        for c in cats:
            s = self.categories.get(c)
            if s:
                out.spans += s.spans
                out.caught += s.caught
                out.partial += s.partial
        return out


def _covered(found: list[tuple[int, int, str]], n: int) -> list[bool]:
    mask = [False] * n
    for b, e, _ in found:
        for i in range(max(b, 0), min(e, n)):
            mask[i] = True
    return mask


def score(notes: list[CorpusNote], results: dict[str, dict]) -> Report:
    from pipelines.notes import deid

    cats = {c: CategoryScore() for c in CATEGORIES}
    masked = masked_phi = other = 0
    other_masked: list[str] = []
    leaks = []
    dates_found = dates_value = 0
    for note in notes:
        res = results[note.note_id]
        mask = _covered(res["spans"], len(note.text))
        for s in note.spans:
            chars = [i for i in range(s.begin, s.end) if note.text[i].isalnum()]
            hit = sum(mask[i] for i in chars)
            cs = cats[s.category]
            cs.spans += 1
            if chars and hit == len(chars):
                cs.caught += 1
            else:
                cs.missed.append(f"{note.note_id}: {s.text}")
                cs.partial += hit > 0
            if re.search(rf"(?<!\w){re.escape(s.text)}(?!\w)", res["text_deid"]):
                leaks.append((note.note_id, s.category, s.text))
        gold = _covered([(s.begin, s.end, "") for s in note.spans], len(note.text))
        for t in _TOKEN.finditer(note.text):
            is_masked = any(mask[t.start():t.end()])
            is_phi = any(gold[t.start():t.end()])
            masked += is_masked
            masked_phi += is_masked and is_phi
            if not is_phi:
                other += 1
                if is_masked:
                    other_masked.append(f"{note.note_id}: {t.group(0)}")
        for b, e, typ in res["spans"]:
            if typ == "DATE" and not deid.dayless(note.text[b:e]):
                dates_found += 1
                dates_value += bool(deid.shifted_date(note.text[b:e], 0))
    return Report({c: s for c, s in cats.items() if s.spans}, masked, masked_phi, other,
                  other_masked, leaks, dates_found, dates_value)


def _category_rows(report: Report) -> tuple[list[tuple[str, bool, CategoryScore]],
                                             list[tuple[bool, CategoryScore]]]:
    """The per-category rows (name, Safe Harbor?, score) and the two totals, in the order
    both renderings print them."""
    rows = [(c, sh, report.categories[c]) for sh, names in ((True, HIPAA), (False, OTHER))
            for c in names if report.categories.get(c)]
    return rows, [(True, report.total(HIPAA)), (False, report.total(OTHER))]


def summary_lines(report: Report) -> list[str]:
    """One line per category (category, spans, caught, partial, recall), then the totals."""
    rows, totals = _category_rows(report)
    lines = [f"{'category':<13} {'spans':>5} {'caught':>6} {'partial':>7} {'recall':>7}"]
    for sh, t in totals:
        group = [(c, s) for c, row_sh, s in rows if row_sh == sh]
        for c, s in [*group, ("all " + ("HIPAA" if sh else "other"), t)]:
            lines.append(f"{c:<13} {s.spans:>5} {s.caught:>6} {s.partial:>7} "
                         f"{s.recall:>7.3f}")
    lines.append(f"token precision {report.precision:.3f} ({report.masked_phi_tokens}/"
                 f"{report.masked_tokens} masked tokens are PHI); unmarked tokens kept "
                 f"{report.kept_other:.3f} ({report.other_tokens - len(report.other_masked)}/"
                 f"{report.other_tokens}); leaks {len(report.leaks)}; dates with a shifted "
                 f"value {report.dates_with_value}/{report.dates_found}")
    return lines


def markdown_table(report: Report) -> str:
    rows, totals = _category_rows(report)
    out = ["| category | Safe Harbor | spans | caught | partial | recall |",
           "|---|---|---:|---:|---:|---:|"]
    out += [f"| {c} | {'yes' if sh else 'no'} | {s.spans} | {s.caught} | {s.partial} | "
            f"{s.recall:.3f} |" for c, sh, s in rows]
    out += [f"| **all {'Safe Harbor' if sh else 'other'}** | | {t.spans} | {t.caught} | "
            f"{t.partial} | {t.recall:.3f} |" for sh, t in totals]
    out.append("")
    out.append(f"Token precision {report.precision:.3f} ({report.masked_phi_tokens} of "
                f"{report.masked_tokens} masked tokens are PHI); unmarked tokens kept "
                f"{report.kept_other:.3f} ({report.other_tokens - len(report.other_masked)} of "
                f"{report.other_tokens}); PHI texts left verbatim: {len(report.leaks)}; DATE "
                f"placeholders with a shifted value: {report.dates_with_value} of "
                f"{report.dates_found}.")
    return "\n".join(out)

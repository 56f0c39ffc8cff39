"""Lines of therapy from drug exposures: a documented, parameterised rule.

The rule (``[clinical]`` settings, defaults in brackets):

1. Exposures are ordered by start date. The first one opens line 1 on its start date.
2. Every drug started within ``regimen_window_days`` [28] of the line's start belongs to the
   line's regimen (combination chemotherapy is rarely started on one day).
3. A later exposure opens a **new line** when its drug is not yet in the current line AND either
   - it starts more than ``line_gap_days`` [90] after the current line's last activity (the
     latest end date, or start date when the end is unknown) - a treatment-free gap, or
   - a progression was documented after the current line started and on or before this start,
   - or it starts after every drug of the current line has stopped (all end dates known and
     before this start): the regimen was stopped and another started, a switch. The drugs
     started within ``regimen_window_days`` of that restart are judged together, so a restart
     that brings a new drug (FOLFOX resumed with bevacizumab at progression) is a new line
     even though FOLFOX's own drugs come back with it. A planned sequence is not a switch:
     when the restart brings only new drugs and they complete the current drugs into one
     catalog regimen of the cancer type (doxorubicin-cyclophosphamide, then paclitaxel: AC-T),
     the line goes on.
4. Otherwise the exposure continues the current line: the same drugs resumed after a break, or a
   drug added while the line runs, without a gap or progression (e.g. bevacizumab added at
   cycle 3), joins the line's drugs.
5. A line ends at its last activity, but never after the day before the next line starts
   (overlapping drugs are cut at the switch).
6. The line is mapped to the regimen catalog with ``RegimenCatalog.match_drugs``. With a known
   catalog cancer type the best-overlap regimen of that type is used if its Jaccard overlap is at
   least ``min_regimen_overlap`` [0.5]; with an unknown cancer type only an exact drug-set match
   to exactly one regimen counts. Otherwise ``treatment`` is null (the line is kept).

Pure Python so it can be checked on hand-built timelines; :func:`treatment_lines` runs it per
patient in Spark with ``applyInPandas``.

>>> d = dt.date
>>> ex = [Exposure("carboplatin", d(2020, 1, 1), d(2020, 4, 1)),
...       Exposure("pemetrexed", d(2020, 1, 2), d(2020, 6, 1)),
...       Exposure("osimertinib", d(2020, 12, 1), None)]
>>> [(ln.line_number, ln.treatment, ln.start) for ln in derive_lines(ex, cancer_type="NSCLC")]
[(1, 'platinum_pemetrexed', datetime.date(2020, 1, 1)), (2, 'osimertinib', datetime.date(2020, 12, 1))]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipelines.catalog import RegimenCatalog, regimen_catalog


@dataclass(frozen=True)
class LineRule:
    regimen_window_days: int = 28
    line_gap_days: int = 90
    min_regimen_overlap: float = 0.5

    @classmethod
    def from_settings(cls, settings) -> LineRule:
        from pipelines.lakehouse.errors import ConfigError

        section = settings.section("clinical")
        try:
            rule = cls(
                regimen_window_days=int(section.get("regimen_window_days", 28)),
                line_gap_days=int(section.get("line_gap_days", 90)),
                min_regimen_overlap=float(section.get("min_regimen_overlap", 0.5)),
            )
        except (TypeError, ValueError):
            raise ConfigError(
                "[clinical] regimen_window_days and line_gap_days must be whole numbers of days "
                f"and min_regimen_overlap a number, got {section!r}.") from None
        if rule.regimen_window_days < 0 or rule.line_gap_days < 0 or not (
                0 < rule.min_regimen_overlap <= 1):
            raise ConfigError(
                "[clinical] regimen_window_days and line_gap_days must be >= 0 and "
                f"min_regimen_overlap in (0, 1], got {section!r}.")
        return rule


@dataclass(frozen=True)
class Exposure:
    drug: str
    start: dt.date
    end: dt.date | None = None

    @property
    def last_day(self) -> dt.date:
        return self.end if self.end is not None and self.end >= self.start else self.start


@dataclass(frozen=True)
class Line:
    line_number: int
    drugs: tuple[str, ...]
    start: dt.date
    end: dt.date
    treatment: str | None


@dataclass
class _Open:
    start: dt.date
    drugs: list[str] = field(default_factory=list)
    last_activity: dt.date | None = None
    open_ended: bool = False     # some drug without an end date: a stop cannot be told

    def add(self, e: Exposure) -> None:
        if e.drug not in self.drugs:
            self.drugs.append(e.drug)
        if self.last_activity is None or e.last_day > self.last_activity:
            self.last_activity = e.last_day
        self.open_ended |= e.end is None

    def stopped_before(self, day: dt.date) -> bool:
        """Every drug of the line has a known end before ``day``."""
        return not self.open_ended and self.last_activity is not None and \
            self.last_activity < day


def _planned_sequence(current: list[str], new: set[str], cancer_type: str | None,
                      catalog: RegimenCatalog) -> bool:
    """``new`` drugs (none of them restarting a current one) complete ``current`` into one
    catalog regimen: a sequential regimen such as AC followed by paclitaxel."""
    have = {d.lower() for d in current}
    new = {d.lower() for d in new}
    if new & have:
        return False
    pool = catalog.for_cancer_type(cancer_type) if cancer_type in catalog.cancer_types \
        else catalog.regimens
    return any(have | new <= set(r.drugs) and have < set(r.drugs) for r in pool)


def match_treatment(drugs: Iterable[str], cancer_type: str | None, rule: LineRule,
                    catalog: RegimenCatalog | None = None) -> str | None:
    """The catalog regimen name for a line's drugs, or None (see rule 6 in the module doc)."""
    catalog = catalog or regimen_catalog()
    drugs = {d.lower() for d in drugs}
    if not drugs:
        return None
    if cancer_type in catalog.cancer_types:
        best = catalog.match_drugs(cancer_type, drugs)
        if best is None or best.cancer_type != cancer_type:
            return None
        overlap = len(drugs & set(best.drugs)) / len(drugs | set(best.drugs))
        return best.name if overlap >= rule.min_regimen_overlap else None
    exact = [r for r in catalog.regimens if set(r.drugs) == drugs]
    return exact[0].name if len(exact) == 1 else None


def derive_lines(exposures: Iterable[Exposure], progression_dates: Iterable[dt.date] = (),
                 cancer_type: str | None = None, rule: LineRule | None = None,
                 catalog: RegimenCatalog | None = None) -> list[Line]:
    """Group one patient's exposures into lines of therapy (see the module docstring)."""
    rule = rule or LineRule()
    catalog = catalog or regimen_catalog()
    ordered = sorted((e for e in exposures if e.start is not None),
                     key=lambda e: (e.start, e.drug))
    progressions = sorted(p for p in progression_dates if p is not None)
    window = dt.timedelta(days=rule.regimen_window_days)
    opened: list[_Open] = []
    switched: set[int] = set()   # exposures already placed in a new line with their restart
    for i, e in enumerate(ordered):
        if i in switched:
            continue
        cur = opened[-1] if opened else None
        if cur is None:
            opened.append(_Open(e.start))
            opened[-1].add(e)
            continue
        if e.start > cur.start + window and cur.stopped_before(e.start):
            restart = [j for j in range(i, len(ordered))
                       if ordered[j].start <= e.start + window]
            drugs = {ordered[j].drug for j in restart}
            if drugs - set(cur.drugs) and not _planned_sequence(cur.drugs, drugs, cancer_type,
                                                                 catalog):
                opened.append(_Open(e.start))
                for j in restart:
                    opened[-1].add(ordered[j])
                switched.update(restart)
                continue
        if e.start <= cur.start + window or e.drug in cur.drugs:
            cur.add(e)
            continue
        gap = (e.start - cur.last_activity).days > rule.line_gap_days
        progressed = any(cur.start < p <= e.start for p in progressions)
        if gap or progressed:
            opened.append(_Open(e.start))
            opened[-1].add(e)
        else:
            cur.add(e)
    lines = []
    for i, o in enumerate(opened):
        end = o.last_activity
        if i + 1 < len(opened):
            end = min(end, opened[i + 1].start - dt.timedelta(days=1))
        end = max(end, o.start)
        lines.append(Line(i + 1, tuple(o.drugs), o.start, end,
                          match_treatment(o.drugs, cancer_type, rule, catalog)))
    return lines


# ------------------------------------------------------------------------------------ Spark
LINES_SCHEMA = ("pid string, line_number int, treatment string, drugs array<string>, "
                "start_date date, end_date date")


def treatment_lines(exposures, rule: LineRule):
    """Spark wrapper: ``exposures`` (pid, drug, start_date, end_date, cancer_type,
    progression_dates array<date>) -> one row per line (:data:`LINES_SCHEMA`)."""
    import pandas as pd

    def per_patient(pdf: pd.DataFrame) -> pd.DataFrame:
        pid = pdf["pid"].iloc[0]
        cancer_type = pdf["cancer_type"].iloc[0]
        cancer_type = cancer_type if isinstance(cancer_type, str) else None
        prog = pdf["progression_dates"].iloc[0]
        prog = [_as_date(p) for p in prog] if hasattr(prog, "__iter__") else []
        ex = [Exposure(d, _as_date(s), _as_date(e))
              for d, s, e in zip(pdf["drug"], pdf["start_date"], pdf["end_date"], strict=True)]
        rows = [(pid, ln.line_number, ln.treatment, list(ln.drugs), ln.start, ln.end)
                for ln in derive_lines(ex, prog, cancer_type, rule)]
        return pd.DataFrame(rows, columns=["pid", "line_number", "treatment", "drugs",
                                           "start_date", "end_date"])

    return exposures.groupBy("pid").applyInPandas(per_patient, LINES_SCHEMA)


def _as_date(value) -> dt.date | None:
    """A pandas/Arrow cell (date, Timestamp, None, NaT, NaN) as a ``datetime.date`` or None."""
    import pandas as pd

    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, dt.datetime):
        return value.date()
    return value

"""FHIR/CSV dates: full, partial ("2019", "2019-03") and date-times, as Spark columns.

Partial dates are imputed to the first day of the period they name ("2019" -> 2019-01-01,
"2019-03" -> 2019-03-01); a date-time keeps its calendar date as written (no time-zone shift:
the source's local date is the clinical date). Anything else, or an impossible calendar date
("2019-02-30"), is invalid: :func:`invalid_date` is true and the row is quarantined by the
caller. Built from regexes and ``make_date`` behind guards, never a date parser, so the result
does not depend on Spark's parser policy or ANSI mode.

>>> parse_date_str("2019-03")
datetime.date(2019, 3, 1)
>>> parse_date_str("2016-12-10T02:39:21+00:00")
datetime.date(2016, 12, 10)
>>> parse_date_str("2019-02-30") is None
True
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column
from pyspark.sql import functions as F

DATE_PATTERN = r"^\s*(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T[0-9:.+\-Z]*)?\s*$"
_DATE_RE = re.compile(DATE_PATTERN)


def parse_date(raw: Column) -> Column:
    """The date a FHIR ``date``/``dateTime`` or CSV date string names, else null.

    One CASE over plain arithmetic: nested CASE trees make Catalyst's plan analysis slow when
    several date columns are parsed in one query.
    """
    s = raw.cast("string")
    year = F.nullif(F.regexp_extract(s, DATE_PATTERN, 1), F.lit("")).cast("int")
    month = F.coalesce(F.nullif(F.regexp_extract(s, DATE_PATTERN, 2), F.lit("")).cast("int"),
                       F.lit(1))
    day = F.coalesce(F.nullif(F.regexp_extract(s, DATE_PATTERN, 3), F.lit("")).cast("int"),
                     F.lit(1))
    # make_date on the 1st of a clamped month is always valid, so this never raises (ANSI).
    month_end = F.dayofmonth(F.last_day(F.make_date(year, F.least(F.greatest(month, F.lit(1)),
                                                                  F.lit(12)), F.lit(1))))
    valid = month.between(1, 12) & (day >= 1) & (day <= month_end)
    return F.when(valid, F.make_date(year, month, day))


def is_blank(raw: Column) -> Column:
    return raw.isNull() | (F.trim(raw.cast("string")) == "")


def invalid_date(raw: Column, parsed: Column | None = None) -> Column:
    """True when a value is present but is not a (partial) date.

    Pass the already-parsed column as ``parsed`` to avoid parsing twice in one query.
    """
    return ~is_blank(raw) & (parse_date(raw) if parsed is None else parsed).isNull()


def parse_date_str(value: str | None) -> dt.date | None:
    """Python twin of :func:`parse_date` (for pure functions and tests)."""
    if value is None:
        return None
    m = _DATE_RE.match(str(value))
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def shift_date_text(value: Column, shift: Column) -> Column:
    """A raw date string as received, moved by ``shift`` days when it is a date (ISO,
    partial dates on their first day, as :func:`parse_date` reads
    them); anything that is not a date stays as received (it is what was rejected). Used
    for the raw dates of a quarantined record (:func:`pipelines.lakehouse.privacy.shift_dates`
    moves the parsed ones)."""
    parsed = parse_date(value)
    return F.when(parsed.isNotNull(), F.date_format(F.date_add(parsed, shift), "yyyy-MM-dd")
                  ).otherwise(value)

"""Pseudonymisation: keyed HMAC-SHA256 of source identifiers, in Spark built-ins.

``patient_key`` = first 20 hex digits of HMAC-SHA256(key, source_patient_id). The key is a
secret (``ONCORANK_PSEUDONYM_KEY``, or locally a random key created once per lakehouse);
without it the pseudonym cannot be reversed or recomputed. The same function gives the
per-patient date shift applied to every date outside bronze and restricted (clinical tables,
notes, features, reports; :func:`shift_dates`), so intervals between a patient's dates survive
while the calendar dates do not. ZIP codes keep their first three digits (:func:`zip3_col`).

HMAC is built from ``sha2`` exactly as RFC 2104 defines it, so no Python UDF is needed:
H((K ^ opad) || H((K ^ ipad) || m)).

>>> import hmac, hashlib
>>> pseudonymise("P001", b"k") == hmac.new(b"k", b"P001", hashlib.sha256).hexdigest()[:20]
True
"""

from __future__ import annotations

import hashlib
import hmac

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

KEY_HEX_CHARS = 20
_BLOCK = 64


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256_col(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of a string column as 64 hex characters (null stays null)."""
    ipad, opad = _pads(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), value.cast("binary")), 256))
    return F.when(value.isNotNull(), F.sha2(F.concat(F.lit(opad), inner), 256))


def pseudonymise_col(value: Column, key: bytes) -> Column:
    """The ``patient_key`` of a source patient id column."""
    return F.substring(hmac_sha256_col(value.cast("string"), key), 1, KEY_HEX_CHARS)


def pseudonymise(value: str, key: bytes) -> str:
    """Python twin of :func:`pseudonymise_col` (for commands and tests)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]


# Date shifts move a patient's dates by 30 to 180 days either way: a shift of a few days
# would leave the calendar date nearly as it was (a week's admissions list re-identifies).
MIN_SHIFT_DAYS = 30
MAX_SHIFT_DAYS = 180


def date_shift_days_col(value: Column, key: bytes, max_days: int = MAX_SHIFT_DAYS,
                        min_days: int = MIN_SHIFT_DAYS) -> Column:
    """A per-patient offset in [-max_days, -min_days] ∪ [min_days, max_days], stable for a
    key."""
    h = hmac_sha256_col(F.concat(F.lit("date-shift:"), value.cast("string")), key)
    n = F.conv(F.substring(h, 1, 8), 16, 10).cast("long")
    span = max_days - min_days + 1
    magnitude = (n % span) + min_days
    return F.when(((n / span).cast("long") % 2) == 0, magnitude).otherwise(-magnitude).cast(
        "int")


def patient_shift_days_col(patient_key: Column, key: bytes) -> Column:
    """The date shift of a patient, from its ``patient_key``: what the notes stage moves the
    patient's note dates by. Keyed by the pseudonym (not the source id), so a later stage that
    holds only ``patient_key`` and the key can compare a shifted note date with a date that is
    not shifted (time zero) without storing any real date."""
    return date_shift_days_col(patient_key, key)


def patient_shift_days(patient_key: str, key: bytes) -> int:
    """Python twin of :func:`patient_shift_days_col` (for the report)."""
    return date_shift_days(patient_key, key)


def date_shift_days(value: str, key: bytes, max_days: int = MAX_SHIFT_DAYS,
                    min_days: int = MIN_SHIFT_DAYS) -> int:
    """Python twin of :func:`date_shift_days_col`."""
    h = hmac.new(key, f"date-shift:{value}".encode(), hashlib.sha256).hexdigest()
    n = int(h[:8], 16)
    span = max_days - min_days + 1
    magnitude = n % span + min_days
    return magnitude if (n // span) % 2 == 0 else -magnitude


def shift_dates(df: DataFrame, key: bytes, columns: list[str],
                patient_key: str = "patient_key") -> DataFrame:
    """``df`` with each date column moved by its patient's date shift.

    Every date an analyst can read (silver, gold, reports, notes) is a source date moved by
    the one per-patient offset of :func:`patient_shift_days_col`: intervals between a
    patient's dates survive, the calendar dates do not. Real dates stay in bronze and
    restricted only.
    """
    shift = patient_shift_days_col(F.col(patient_key), key)
    return df.withColumns({c: F.date_add(F.col(c), shift) for c in columns})


# HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(B)): the three-digit ZIP areas of 20,000 people
# or fewer (2000 Census, as listed in HHS OCR's "Guidance Regarding Methods for
# De-identification of Protected Health Information", 2012, section 3.3) become "000".
RESTRICTED_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821",
                             "823", "830", "831", "878", "879", "884", "890", "893"})


def zip3_col(value: Column) -> Column:
    """The first three digits of a US ZIP code, "000" for the small areas Safe Harbor names;
    null when the value does not start with five digits."""
    digits = F.regexp_extract(value.cast("string"), r"^\s*(\d{5})(?:-\d{4})?\s*$", 1)
    z3 = F.substring(digits, 1, 3)
    return (F.when(digits == "", F.lit(None).cast("string"))
            .when(z3.isin(*sorted(RESTRICTED_ZIP3)), F.lit("000")).otherwise(z3))

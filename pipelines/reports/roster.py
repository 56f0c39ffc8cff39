"""The board roster: which patients a tumor board reviews on a board date.

A nightly run scores every patient; a board reviews a handful. With a roster the report stage
renders (and prints) only the roster's patients for the board date, so a 10,000-patient night
does not spend hours printing reports nobody asked for. Without one it renders every patient
scored for the date, as before.

A roster is one of:

* a CSV or plain list: one patient per line, source ``patient_id`` or ``patient_key`` in the
  first column (a header such as ``patient_id`` is recognised); an optional ``board_date``
  column keeps only that date's rows, so one file can hold a season of boards;
* FHIR R4 JSON (a resource, a ``Bundle`` or NDJSON): a ``List`` of patients (``entry.item``
  ``Patient/<id>``; a ``List.date`` on another day is refused), or the board's
  ``Appointment`` resources (the patient participant of each appointment that starts on the
  board date and is not cancelled, entered in error or a no-show). Parsed with the
  ``fhir.resources`` R4B models, so a malformed resource is named, not guessed at.

>>> import tempfile, os
>>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
>>> _ = f.write("patient_id,board_date\\nPT1,2026-12-08\\nPT2,2026-12-15\\nPT3,2026-12-08\\n")
>>> f.close()
>>> read_roster(f.name, "2026-12-08").ids
['PT1', 'PT3']
>>> os.unlink(f.name)
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.lakehouse.errors import ConfigError, InputNotFoundError, SchemaMismatchError
from pipelines.ranking.stage import ID_HEADERS

__all__ = ["Roster", "read_roster"]

_INACTIVE = {"cancelled", "entered-in-error", "noshow"}


@dataclass(frozen=True)
class Roster:
    """Patient ids of one board date (source ids or patient keys, in roster order) and the
    entries left out, with the reason (for the stage's log; never a patient id)."""

    path: Path
    ids: list[str]
    skipped: dict[str, int]


def read_roster(path: str | Path, board_date: str) -> Roster:
    """The roster's patients for ``board_date`` (ISO); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Board roster {path} does not exist; set [reports] roster "
                                 "to a CSV of patient ids or a FHIR List/Appointment file.")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        ids, skipped = _fhir_roster(path, text, board_date)
    else:
        ids, skipped = _csv_roster(text, board_date)
    if not ids:
        raise ConfigError(f"Board roster {path} names no patient for board date {board_date}; "
                          "check the file and the board date.")
    return Roster(path, ids, skipped)


def _csv_roster(text: str, board_date: str) -> tuple[list[str], dict[str, int]]:
    rows = [r for r in csv.reader(line for line in text.splitlines()
                                  if line.strip() and not line.lstrip().startswith("#"))]
    if not rows:
        return [], {}
    header = [h.strip().lower() for h in rows[0]]
    has_header = header[0] in ID_HEADERS
    date_col = header.index("board_date") if has_header and "board_date" in header else None
    ids: list[str] = []
    skipped: dict[str, int] = {}
    for row in rows[1:] if has_header else rows:
        pid = row[0].strip() if row else ""
        if not pid:
            skipped["no patient id"] = skipped.get("no patient id", 0) + 1
            continue
        if date_col is not None:
            day = row[date_col].strip() if date_col < len(row) else ""
            if day and day[:10] != board_date:
                skipped["another board date"] = skipped.get("another board date", 0) + 1
                continue
        if pid not in ids:
            ids.append(pid)
    return ids, skipped


def _resources(path: Path, text: str) -> list[dict]:
    try:
        doc = json.loads(text)
        docs = [doc]
    except json.JSONDecodeError:
        try:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise SchemaMismatchError(f"Board roster {path} is neither JSON nor NDJSON "
                                      f"(line {exc.lineno}): {exc.msg}.") from None
    out = []
    for d in docs:
        if d.get("resourceType") == "Bundle":
            out += [e.get("resource") or {} for e in d.get("entry") or []]
        else:
            out.append(d)
    return out


def _patient_id(reference: str | None) -> str | None:
    if reference and reference.startswith("Patient/"):
        return reference.split("/", 1)[1] or None
    return None


def _fhir_roster(path: Path, text: str, board_date: str) -> tuple[list[str], dict[str, int]]:
    from fhir.resources.R4B.appointment import Appointment
    from fhir.resources.R4B.list import List
    from pydantic import ValidationError

    ids: list[str] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for res in _resources(path, text):
        kind = res.get("resourceType")
        try:
            if kind == "List":
                roster = List.model_validate(res)
                if roster.date is not None and str(roster.date)[:10] != board_date:
                    raise ConfigError(
                        f"Board roster {path}: the List is dated {str(roster.date)[:10]}, not "
                        f"the board date {board_date}; pass that board's roster.")
                for entry in roster.entry or []:
                    pid = _patient_id(entry.item.reference if entry.item else None)
                    if pid is None:
                        skip("List entry is not a Patient reference")
                    elif entry.deleted:
                        skip("List entry marked deleted")
                    elif pid not in ids:
                        ids.append(pid)
            elif kind == "Appointment":
                appt = Appointment.model_validate(res)
                if appt.status in _INACTIVE:
                    skip(f"appointment {appt.status}")
                    continue
                if appt.start is None or appt.start.date().isoformat() != board_date:
                    skip("appointment on another day")
                    continue
                found = [_patient_id(p.actor.reference if p.actor else None)
                         for p in appt.participant or []]
                found = [p for p in found if p]
                if not found:
                    skip("appointment without a patient")
                for pid in found:
                    if pid not in ids:
                        ids.append(pid)
            else:
                skip(f"{kind or 'unknown'} resource (not List or Appointment)")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise SchemaMismatchError(
                f"Board roster {path}: a {kind} resource is not valid FHIR R4 ({where}: "
                f"{first.get('msg')}).") from None
    return ids, skipped

"""What a command-line tool did with its input file: rows read, used and skipped (and why).

``oncorank comorbidity`` and ``oncorank notes deidentify`` return a :class:`Tally`; the
command prints :meth:`Tally.summary` on stderr and, with ``--rejects FILE.csv``, the skipped
rows go to that file with a ``reason`` column (:func:`write_rejects`).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    read: int = 0
    used: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    unit: str = "rows"
    verb: str = "used"
    written: str = ""  # what the used rows became, when that is another count ("3 patients")
    remarks: list[str] = field(default_factory=list)  # about rows used, e.g. a default applied

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """``read 7 rows: 5 used, 2 skipped (code is empty: 1; patient_id is empty: 1)``,
        then ``; 3 patients written`` when :attr:`written` is set."""
        text = f"read {self.read} {self.unit}: {self.used} {self.verb}, {self.n_skipped} skipped"
        if self.skipped:
            text += " (" + "; ".join(f"{reason}: {n}" for reason, n in
                                     sorted(self.skipped.items())) + ")"
        if self.written:
            text += f"; {self.written} written"
        return "; ".join([text, *self.remarks])


def write_rejects(path: str | Path, fieldnames: list[str], rows: list[dict]) -> None:
    """Skipped rows as CSV (header included even when none was skipped)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # errors="replace": a field with bytes that are not UTF-8 is written, not a crash.
    with path.open("w", encoding="utf-8", errors="replace", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

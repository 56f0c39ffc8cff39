"""Settings of the genomics stage (config section ``[genomics]``) and the sample map.

>>> GenomicsConfig.from_section({"target_size_mb": 30}).target_size_mb
30.0
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lakehouse.errors import (
    ConfigError,
    DataQualityError,
    InputNotFoundError,
    SchemaMismatchError,
)


@dataclass(frozen=True)
class GenomicsConfig:
    """``[genomics]`` keys.

    target_size_mb: size of the sequenced territory TMB is measured over (an exome capture
        is ~30-40 Mb; FoundationOne CDx reports over 0.8 Mb).
    tmb_high_threshold: mutations/Mb at or above which ``tmb_high`` is set (10, the
        pembrolizumab TMB-H label threshold, FDA 2020).
    tmb_class: which variants TMB counts: a class of ``resources/consequences.yaml``
        (default ``nonsynonymous``) or ``all`` (every PASS small variant).
    split_min_records: an indexed file with at least this many records is read in pieces
        of whole contigs, one Spark task each.
    piece_records: records per piece of a split file (about; a contig is never cut), or
        fewer when that keeps every Spark task slot busy.
    task_records: records per Spark read task: pieces and small files are packed into tasks
        of about this many, at least one per task slot. A Python task costs a fixed
        ~0.15 s on one core; 4 million records is ~8 s of reading.
    batch_rows: rows per Arrow batch a read task types and writes at a time.
    direct_write: the read tasks write bronze.variants_raw's Parquet files themselves and the
        job publishes them in one Delta commit (path-based lakehouse; ``false`` sends the rows
        through Spark's Delta writer, as catalog tables always do).
    """

    target_size_mb: float = 35.0
    tmb_high_threshold: float = 10.0
    tmb_class: str = "nonsynonymous"
    split_min_records: int = 200_000
    piece_records: int = 1_000_000
    task_records: int = 4_000_000
    batch_rows: int = 65_536
    direct_write: bool = True

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> GenomicsConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"Unknown key(s) {sorted(unknown)} in [genomics]; expected "
                              f"{', '.join(sorted(known))}.")
        values: dict[str, Any] = {}
        for name, typ in (("target_size_mb", float), ("tmb_high_threshold", float),
                          ("split_min_records", int), ("piece_records", int),
                          ("task_records", int), ("batch_rows", int)):
            if name in section:
                try:
                    values[name] = typ(section[name])
                except (TypeError, ValueError):
                    raise ConfigError(f"[genomics] {name} must be a number, got "
                                      f"{section[name]!r}.") from None
                if values[name] <= 0:
                    raise ConfigError(f"[genomics] {name} must be positive, got "
                                      f"{section[name]!r}.")
        if "tmb_class" in section:
            from pipelines.genomics.annotation import consequence_classes

            classes = set(consequence_classes()["classes"]) | {"all"}
            if section["tmb_class"] not in classes:
                raise ConfigError(f"[genomics] tmb_class must be one of {sorted(classes)}, "
                                  f"got {section['tmb_class']!r}.")
            values["tmb_class"] = str(section["tmb_class"])
        if "direct_write" in section:
            if not isinstance(section["direct_write"], bool):
                raise ConfigError("[genomics] direct_write must be true or false, got "
                                  f"{section['direct_write']!r}.")
            values["direct_write"] = section["direct_write"]
        return cls(**values)

    @classmethod
    def from_settings(cls, settings) -> GenomicsConfig:
        return cls.from_section(settings.section("genomics"))


def load_sample_map(path: str) -> dict[str, str]:
    """``sample -> source patient id`` from a CSV with columns ``sample,patient_id``.

    An empty path means no map (every sample name is its patient's id).
    """
    if not path:
        return {}
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputNotFoundError(f"Sample map {p} does not exist; pass a CSV with columns "
                                 "sample,patient_id (--sample-map or [inputs] sample_map).")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "sample" not in fields or "patient_id" not in fields:
            raise SchemaMismatchError(f"Sample map {p} must have columns sample,patient_id; "
                                      f"found {reader.fieldnames or 'no header'}.")
        out: dict[str, str] = {}
        conflicts, blanks = [], []
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            sample, patient = row.get("sample", ""), row.get("patient_id", "")
            if not sample or not patient:
                blanks.append(line_no)
                continue
            if sample in out and out[sample] != patient:
                conflicts.append(line_no)
            out[sample] = patient
    if blanks or conflicts:
        raise DataQualityError(
            f"Sample map {p} has rows with an empty sample or patient_id (lines "
            f"{blanks[:5]}) or samples mapped to two patients (lines {conflicts[:5]}); fix "
            "the file and re-run.")
    return out

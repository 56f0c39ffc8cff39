"""Count rank-1 options that contradict what is known of the patient, in a lakehouse.

    .venv/bin/python benchmarks/rank1_contradictions.py --lakehouse oncorank-demo/lakehouse

Reads gold.treatment_rankings (latest board), gold.patient_features and
silver.actionable_alterations with ``deltalake`` (no Spark) and prints, per regimen and
reason, the rank-1 options whose label requirement the patient is known not to meet or that
carry level-A resistance evidence (:func:`pipelines.analytics.ranking_audit.contradictions`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deltalake import DeltaTable

from pipelines.analytics import ranking_audit as audit
from pipelines.catalog import regimen_catalog


def _read(root: Path, schema: str, table: str):
    path = root / schema / table
    return DeltaTable(str(path)).to_pandas() if (path / "_delta_log").is_dir() else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lakehouse", type=Path, required=True)
    args = ap.parse_args(argv)
    rankings = audit.latest_board(_read(args.lakehouse, "gold", "treatment_rankings"))
    top = audit.top_choices(rankings)
    found = audit.contradictions(top, _read(args.lakehouse, "gold", "patient_features"),
                                 _read(args.lakehouse, "silver", "actionable_alterations"),
                                 regimen_catalog())
    print(f"{len(top)} patients with a rank-1 option; {found['patient_key'].nunique()} "
          f"contradict a known biomarker or carry level-A resistance")
    if len(found):
        print(found.groupby(["top_treatment", "reason"]).size().rename("patients")
              .reset_index().to_string(index=False))
    flagged = top["label_status"].fillna("").str.startswith("requirement") \
        if "label_status" in top else None
    if flagged is not None:
        print(f"rank-1 options whose label status is 'requirement ...': {int(flagged.sum())}")


if __name__ == "__main__":
    main()

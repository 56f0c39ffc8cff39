"""What every analyst notebook needs: where the lakehouse is, Spark, tables, figures.

The notebooks in ``notebooks/`` run unchanged in two places:

* **Databricks**: parameters are notebook widgets (``env``, ``catalog``, ``schema_prefix``),
  Spark is the cluster's session and tables are Unity Catalog tables;
* **a laptop**: parameters come from ``ONCORANK_*`` environment variables (``ONCORANK_LAKEHOUSE``
  names the local lakehouse folder, default ``.oncorank/lakehouse``), Spark is a local session
  and figures are also saved as PNG files when ``ONCORANK_FIGURES_DIR`` is set.

>>> param("horizon", "24", environ={"ONCORANK_HORIZON": "36"})
'36'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.lakehouse import delta
from pipelines.lakehouse.settings import Settings, TableRef

# Schemas a notebook may read: analysts never see bronze (as received) or restricted.
READABLE_SCHEMAS = ("silver", "gold", "ops")


def param(name: str, default: str, dbutils: Any = None,
          environ: dict[str, str] | None = None) -> str:
    """A notebook parameter: a widget on Databricks, ``ONCORANK_<NAME>`` locally."""
    if dbutils is not None:
        dbutils.widgets.text(name, default)
        return dbutils.widgets.get(name) or default
    environ = os.environ if environ is None else environ
    return environ.get(f"ONCORANK_{name.upper()}", default)


@dataclass
class Notebook:
    """The context a notebook works in (see :func:`open_notebook`)."""

    spark: Any
    settings: Settings
    dbutils: Any = None
    display: Any = None

    def table(self, key: str) -> TableRef:
        schema, _, name = key.partition(".")
        if schema not in READABLE_SCHEMAS:
            raise PermissionError(f"Notebooks read silver, gold and ops only, not {key}.")
        return self.settings.table(schema, name)

    def exists(self, key: str) -> bool:
        return delta.table_exists(self.spark, self.table(key))

    def read(self, key: str):
        """The table as a Spark DataFrame, or ``None`` (with a note) when it does not exist."""
        df = delta.read_optional(self.spark, self.table(key))
        if df is None:
            print(f"note: {key} does not exist yet in this lakehouse; its section is skipped.")
        return df

    def version(self, key: str) -> int | None:
        return delta.current_version(self.spark, self.table(key))

    def show(self, fig, name: str) -> Path | None:
        """Display a matplotlib figure; also save it under ``ONCORANK_FIGURES_DIR`` if set."""
        out = None
        directory = os.environ.get("ONCORANK_FIGURES_DIR")
        if directory:
            out = Path(directory) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=110, bbox_inches="tight")
        if self.display is not None:
            self.display(fig)
        else:
            import matplotlib.pyplot as plt

            plt.close(fig)
        return out

    def print_frame(self, pdf, title: str | None = None) -> None:
        """A pandas frame as a table: ``display`` on Databricks, text locally."""
        if title:
            print(f"\n## {title}")
        if self.display is not None:
            self.display(pdf)
        else:
            import pandas as pd

            with pd.option_context("display.width", 160, "display.max_columns", 30,
                                   "display.max_rows", 60):
                print(pdf.to_string(index=False) if len(pdf) else "(no rows)")


def open_notebook(namespace: dict[str, Any]) -> Notebook:
    """Build the notebook context from the notebook's globals (``dbutils``, ``spark``)."""
    dbutils = namespace.get("dbutils")
    display = namespace.get("display") if dbutils is not None else None
    if dbutils is not None:  # Databricks: widgets choose the Unity Catalog tables
        overrides = {"env": param("env", "prod", dbutils),
                     "catalog": param("catalog", "main", dbutils),
                     "schema_prefix": param("schema_prefix", "onc_", dbutils)}
        settings = Settings.load(None, overrides)
        spark = namespace["spark"]
    else:
        import matplotlib

        if not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")  # a script run has no screen; figures go to files
        from pipelines.lakehouse.session import spark_session

        settings = Settings.load()
        spark = spark_session(settings, app_name="oncorank-notebook")
    print(f"oncorank notebook: environment {settings.env}, "
          + (f"lakehouse {Path(settings.lakehouse).absolute()}" if settings.is_local
             else f"catalog {settings.catalog}, schemas {settings.schema_prefix}<schema>"))
    return Notebook(spark, settings, dbutils, display)

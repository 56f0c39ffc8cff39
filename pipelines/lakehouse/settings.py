"""One configuration for every environment.

Settings come from, in increasing precedence: built-in defaults, a TOML config file
(``--config`` or ``ONCORANK_CONFIG``), ``ONCORANK_*`` environment variables, and command-line
flags. The environment decides only *where* tables live, never what a step does:

* ``local`` (default): table ``schema.table`` is a Delta folder ``<lakehouse>/<schema>/<table>``,
  readable by Spark, DuckDB or the ``deltalake`` package alike.
* ``dev`` / ``prod``: Unity Catalog ``<catalog>.<schema_prefix><schema>.<table>``.

>>> s = Settings(lakehouse=Path("/tmp/lh"))
>>> s.table("silver", "variants").path
'/tmp/lh/silver/variants'
>>> Settings(env="prod", catalog="main", schema_prefix="onc_").table("gold", "drift").identifier
'`main`.`onc_gold`.`drift`'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.lakehouse.errors import ConfigError

ENVIRONMENTS = ("local", "dev", "prod")
SCHEMAS = ("bronze", "silver", "gold", "ops", "restricted")
DEFAULT_LAKEHOUSE = Path(".oncorank/lakehouse")
# Only for the local environment: without ONCORANK_PSEUDONYM_KEY a random key is created once
# per lakehouse in this file under restricted/ (pseudonyms and date shifts stay stable between
# runs of that lakehouse). dev/prod refuse to start without ONCORANK_PSEUDONYM_KEY (set from a
# secret scope).
LOCAL_KEY_FILE = "pseudonym.key"
_local_keys: dict[Path, bytes] = {}


@dataclass(frozen=True)
class TableRef:
    """Where one table lives: a Delta folder locally, a Unity Catalog name on Databricks."""

    schema: str
    name: str
    identifier: str
    path: str | None = None

    @property
    def key(self) -> str:
        """Environment-independent name, e.g. ``silver.variants`` (used by suites and audit)."""
        return f"{self.schema}.{self.name}"

    def __str__(self) -> str:
        return self.path or self.identifier


@dataclass(frozen=True)
class Inputs:
    """Raw inputs a full ``oncorank run`` reads (any may be empty)."""

    vcf: tuple[str, ...] = ()
    fhir: str = ""
    clinical_csv: str = ""
    notes: str = ""
    sample_map: str = ""
    # A single tumour without clinical records: its OncoTree code and, if known, the lines of
    # therapy before now (pipelines/genomics/declared.py).
    tumor_type: str = ""
    prior_lines: int | None = None


@dataclass(frozen=True)
class Settings:
    env: str = "local"
    lakehouse: Path = DEFAULT_LAKEHOUSE
    catalog: str = ""
    schema_prefix: str = ""
    inputs: Inputs = field(default_factory=Inputs)
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = "oncorank"
    registered_model: str = "oncorank_treatment_response"
    reports_dir: str = ""
    board_date: str = ""
    horizon_months: float = 24.0
    spark_master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 4
    debug: bool = False
    config_file: str = ""
    # Stage-specific sections of the config file, e.g. ``[genomics] target_size_mb = 35``.
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def load(
        cls,
        config: str | os.PathLike[str] | None = None,
        overrides: dict[str, Any] | None = None,
        environ: dict[str, str] | None = None,
    ) -> Settings:
        """Build settings from defaults < config file < ``ONCORANK_*`` env vars < overrides.

        ``overrides`` holds command-line flags; keys whose value is ``None`` are ignored.
        """
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        config = config or environ.get("ONCORANK_CONFIG") or ""
        if config:
            values.update(_read_config_file(Path(config)))
            values["config_file"] = str(config)
        values.update(_from_environ(environ))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls._from_values(values)

    @classmethod
    def _from_values(cls, values: dict[str, Any]) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = dict(values)
        inputs = values.pop("inputs", None) or {}
        if isinstance(inputs, Inputs):
            inputs = dataclasses.asdict(inputs)
        vcf = inputs.get("vcf", ())
        inputs["vcf"] = tuple([vcf] if isinstance(vcf, str) else vcf)
        unknown_inputs = set(inputs) - {f.name for f in dataclasses.fields(Inputs)}
        if unknown_inputs:
            raise ConfigError(
                f"Unknown key(s) {sorted(unknown_inputs)} in [inputs]; expected vcf, fhir, "
                "clinical_csv, notes, sample_map, tumor_type, prior_lines."
            )
        sections = dict(values.pop("sections", {}) or {})
        for key in list(values):
            if key not in known and isinstance(values[key], dict):
                sections[key] = values.pop(key)
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"Unknown setting(s) {sorted(unknown)}; check the config file.")
        if "lakehouse" in values:
            values["lakehouse"] = Path(values["lakehouse"]).expanduser()
        for name, typ in (("horizon_months", float), ("shuffle_partitions", int)):
            if name in values:
                try:
                    values[name] = typ(values[name])
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"Setting {name} must be a number, got {values[name]!r}."
                    ) from None
        settings = cls(inputs=Inputs(**inputs), sections=sections, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(
                f"Unknown environment {self.env!r}; choose one of {', '.join(ENVIRONMENTS)}."
            )
        if self.env != "local" and not self.catalog:
            raise ConfigError(
                f"Environment {self.env!r} uses Unity Catalog: set the catalog "
                "(--catalog, ONCORANK_CATALOG or `catalog` in the config file)."
            )
        if self.horizon_months <= 0:
            raise ConfigError(f"horizon_months must be positive, got {self.horizon_months}.")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- table names
    @property
    def is_local(self) -> bool:
        return self.env == "local"

    def schema_name(self, schema: str) -> str:
        if schema not in SCHEMAS:
            raise ValueError(f"Unknown schema {schema!r}; expected one of {SCHEMAS}.")
        return f"{self.schema_prefix}{schema}"

    def table(self, schema: str, name: str) -> TableRef:
        """Resolve ``schema.name`` for this environment (never typed by hand in a step)."""
        if not name or "/" in name or "`" in name or "." in name:
            raise ValueError(f"Invalid table name {name!r}.")
        if self.is_local:
            path = (self.lakehouse / schema / name).absolute()
            self.schema_name(schema)
            return TableRef(schema, name, f"delta.`{path}`", str(path))
        ident = f"`{self.catalog}`.`{self.schema_name(schema)}`.`{name}`"
        return TableRef(schema, name, ident, None)

    def quarantine_table(self, target: TableRef) -> TableRef:
        """The quarantine that receives rows rejected on the way into ``target``."""
        return self.table(target.schema, f"quarantine_{target.name}")

    # ---------------------------------------------------------------- other locations
    @property
    def tracking_uri(self) -> str:
        """MLflow tracking store; locally a SQLite file under the lakehouse folder."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.is_local:
            return f"sqlite:///{(self.lakehouse / 'mlflow.db').absolute()}"
        return "databricks"

    @property
    def registry_uri(self) -> str:
        if self.is_local or self.mlflow_tracking_uri:
            return self.tracking_uri
        return "databricks-uc"

    @property
    def registered_model_name(self) -> str:
        if self.is_local:
            return self.registered_model
        return f"{self.catalog}.{self.schema_name('gold')}.{self.registered_model}"

    @property
    def mlflow_artifact_root(self) -> str:
        return str((self.lakehouse / "mlruns").absolute())

    @property
    def reports_path(self) -> Path:
        return Path(self.reports_dir) if self.reports_dir else self.lakehouse.parent / "reports"

    @property
    def data_docs_path(self) -> Path:
        return self.lakehouse.parent / "data_docs"

    def section(self, name: str) -> dict[str, Any]:
        """A stage-specific config section (empty when absent)."""
        return dict(self.sections.get(name, {}))

    @property
    def pseudonym_key(self) -> bytes:
        key = os.environ.get("ONCORANK_PSEUDONYM_KEY", "")
        if key:
            return key.encode()
        if self.is_local:
            return local_pseudonym_key(self.lakehouse)
        raise ConfigError(
            f"Environment {self.env!r} needs ONCORANK_PSEUDONYM_KEY (a secret; on Databricks "
            "it comes from the secret scope named in databricks.yml)."
        )

    @property
    def pseudonym_key_source(self) -> str:
        """Where the key comes from, in words (never the key itself)."""
        if os.environ.get("ONCORANK_PSEUDONYM_KEY"):
            return "ONCORANK_PSEUDONYM_KEY"
        return str(Path(self.lakehouse) / "restricted" / LOCAL_KEY_FILE)

    # ---------------------------------------------------------------- provenance
    @property
    def config_hash(self) -> str:
        """Stable hash of everything that changes results (no secrets in it)."""
        data = dataclasses.asdict(self)
        data.pop("debug", None)
        data.pop("config_file", None)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def git_sha() -> str:
    """The code version: ``ONCORANK_GIT_SHA`` (set by CI/bundles) or the checkout's HEAD."""
    sha = os.environ.get("ONCORANK_GIT_SHA")
    if sha:
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; pass an existing TOML file.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None
    unity = data.pop("unity_catalog", {})
    data.update({k: v for k, v in unity.items() if k in ("catalog", "schema_prefix")})
    mlflow = data.pop("mlflow", {})
    for key, target in (
        ("tracking_uri", "mlflow_tracking_uri"),
        ("experiment", "mlflow_experiment"),
        ("registered_model", "registered_model"),
    ):
        if key in mlflow:
            data[target] = mlflow[key]
    spark = data.pop("spark", {})
    for key, target in (
        ("master", "spark_master"),
        ("driver_memory", "driver_memory"),
        ("shuffle_partitions", "shuffle_partitions"),
    ):
        if key in spark:
            data[target] = spark[key]
    base = path.parent
    if "lakehouse" in data and not Path(data["lakehouse"]).is_absolute():
        data["lakehouse"] = str(base / data["lakehouse"])
    reports = data.get("reports", {})
    if isinstance(reports.get("roster"), str) and reports["roster"] and \
            not Path(reports["roster"]).is_absolute():
        reports["roster"] = str(base / reports["roster"])
    inputs = data.get("inputs", {})
    for key, value in list(inputs.items()):
        if isinstance(value, str) and value and not Path(value).is_absolute():
            inputs[key] = str(base / value)
        elif isinstance(value, list):
            inputs[key] = [v if Path(v).is_absolute() else str(base / v) for v in value]
    return data


_ENV_VARS = {
    "ONCORANK_ENV": "env",
    "ONCORANK_LAKEHOUSE": "lakehouse",
    "ONCORANK_CATALOG": "catalog",
    "ONCORANK_SCHEMA_PREFIX": "schema_prefix",
    "ONCORANK_MLFLOW_URI": "mlflow_tracking_uri",
    "ONCORANK_MLFLOW_EXPERIMENT": "mlflow_experiment",
    "ONCORANK_REGISTERED_MODEL": "registered_model",
    "ONCORANK_BOARD_DATE": "board_date",
    "ONCORANK_REPORTS_DIR": "reports_dir",
    "ONCORANK_SPARK_MASTER": "spark_master",
    "ONCORANK_DRIVER_MEMORY": "driver_memory",
}


def _from_environ(environ: dict[str, str]) -> dict[str, Any]:
    return {target: environ[var] for var, target in _ENV_VARS.items() if environ.get(var)}


def local_pseudonym_key(lakehouse: Path | str) -> bytes:
    """The local lakehouse's pseudonym key: read from ``restricted/pseudonym.key``, created
    there (32 random bytes as hex, readable by the owner only) the first time, which is said
    once on the log. Never a constant: two lakehouses get unrelated pseudonyms."""
    import logging
    import secrets

    path = (Path(lakehouse) / "restricted" / LOCAL_KEY_FILE).absolute()
    if path in _local_keys:
        return _local_keys[path]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: read theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            logging.getLogger("oncorank").warning(
                "No ONCORANK_PSEUDONYM_KEY set: created a random pseudonym key for this local "
                "lakehouse in %s (keep it with the lakehouse; pseudonyms and date shifts "
                "depend on it).", path)
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"The pseudonym key file {path} is empty; restore it from a backup "
                          "or remove it to start a lakehouse with new pseudonyms.")
    _local_keys[path] = key.encode()
    return _local_keys[path]

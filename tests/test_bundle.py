"""The Databricks Asset Bundle: schema-valid, same DAG as ``oncorank run``, runnable tasks.

No Databricks workspace is needed: every file is validated against the official bundle JSON
schema (``shared/data/databricks``), ``${...}`` references are resolved per target the way the
Databricks CLI resolves them, and each task's parameters are parsed by the parser its job
script really uses.
"""

from __future__ import annotations

import ast
import copy
import glob
import importlib
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import regex
import yaml
from jsonschema.exceptions import ValidationError, best_match

from pipelines.lakehouse.jobmain import common_parser, settings_from_args
from pipelines.lakehouse.session import SPARK_NLP_VERSION
from pipelines.lakehouse.settings import Settings
from pipelines.stages import STAGES

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "databricks.yml"
TARGETS = ("dev", "prod")
JOBS = ("oncorank_pipeline", "nightly_scoring", "weekly_retraining")
SCHEMAS = ("bronze", "silver", "gold", "ops", "restricted")

# Values the Databricks CLI fills in at deploy time, for resolving references offline.
FAKE_USER = {"short_name": "jdoe", "userName": "jdoe@example.org"}
FAKE_SP_APPLICATION_ID = "6f1a0c1e-0000-4000-8000-00000000abcd"
FAKE_GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Databricks dynamic value references, as the jobs service fills them in at run time.
DYNAMIC_VALUES = {"{{job.run_id}}": "917263", "{{job.start_time.iso_date}}": "2026-12-03"}
# Spark version of each Databricks Runtime LTS we may name (Databricks release notes).
RUNTIME_SPARK = {"13.3": "3.4", "14.3": "3.5", "15.4": "3.5", "16.4": "3.5", "17.3": "4.0"}
NLP_STAGES = {"deidentify-notes", "extract-note-findings"}


# ---------------------------------------------------------------------------- loading
def _load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def _root() -> dict:
    return _load_yaml(BUNDLE)


def _included_files() -> list[Path]:
    files: list[Path] = []
    for pattern in _root()["include"]:
        files += sorted(Path(p) for p in glob.glob(str(REPO / pattern)))
    return files


@cache
def _merged() -> dict:
    """Root config with every included file's resources merged in (as the CLI does)."""
    root = copy.deepcopy(_root())
    for path in _included_files():
        _deep_merge(root, _load_yaml(path), str(path))
    return root


def _deep_merge(into: dict, other: dict, where: str) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, where)
        elif key in into and isinstance(value, dict):
            raise AssertionError(f"{where}: {key} is defined twice")
        else:
            into[key] = copy.deepcopy(value)


def _for_target(target: str) -> dict:
    """The configuration the CLI deploys for ``target`` (target overrides applied)."""
    cfg = copy.deepcopy(_merged())
    overrides = copy.deepcopy(cfg["targets"][target])
    for key in ("resources", "presets", "run_as", "workspace", "permissions"):
        if key in overrides:
            value = overrides[key]
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                _deep_merge(cfg[key], value, f"targets.{target}")
            else:
                cfg[key] = value
    cfg["mode"] = overrides.get("mode")
    if overrides.get("mode") == "development" and "name_prefix" not in cfg.get("presets", {}):
        cfg.setdefault("presets", {})["name_prefix"] = f"[dev {FAKE_USER['short_name']}] "
    cfg["_variables"] = _variables(cfg, target, overrides.get("variables", {}))
    return cfg


def _variables(cfg: dict, target: str, overrides: dict) -> dict:
    values = {}
    for name, spec in cfg["variables"].items():
        value = overrides.get(name, spec.get("default"))
        if isinstance(value, dict) and "lookup" in value:
            assert value["lookup"] == {"service_principal": "oncorank-prod"}, value
            value = FAKE_SP_APPLICATION_ID
        values[name] = value
    return values


def _normalize_prefix(prefix: str) -> str:
    """The schema-name prefix development mode derives from presets.name_prefix.

    Mirrors ``normalizePrefix`` in the Databricks CLI (bundle/config/mutator/apply_presets.go).
    """
    prefix = prefix.replace("[", "").strip(" ")
    suffix = "_" if prefix.endswith("]") else ""
    return re.sub(r"\W", "_", prefix.lower()) + suffix


_REF = re.compile(r"\$\{([A-Za-z0-9_.\-\[\]]+)\}")


def _resolve(value, cfg: dict, target: str):
    """Resolve ``${...}`` references recursively, like the CLI's variable resolution."""
    if isinstance(value, list):
        return [_resolve(v, cfg, target) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, cfg, target) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    for _ in range(10):
        whole = _REF.fullmatch(value)
        if whole:
            looked_up = _lookup(whole.group(1), cfg, target)
            if not isinstance(looked_up, str):
                return _resolve(looked_up, cfg, target)
        new = _REF.sub(lambda m: str(_lookup(m.group(1), cfg, target)), value)
        if new == value:
            return value
        value = new
    raise AssertionError(f"reference cycle in {value!r}")


def _lookup(path: str, cfg: dict, target: str):
    parts = path.split(".")
    if parts[0] == "var":
        assert parts[1] in cfg["_variables"], f"undeclared variable {parts[1]!r}"
        return cfg["_variables"][parts[1]]
    if path == "bundle.target":
        return target
    if path == "bundle.name":
        return cfg["bundle"]["name"]
    if path == "bundle.git.commit":
        return FAKE_GIT_COMMIT
    if parts[:2] == ["workspace", "current_user"]:
        return FAKE_USER[parts[2]]
    if parts[0] == "resources" and parts[1] == "schemas" and parts[3] == "name":
        return _schema_name(cfg, target, parts[2])
    raise AssertionError(f"unexpected reference ${{{path}}}")


def _schema_name(cfg: dict, target: str, key: str) -> str:
    """Name of schema resource ``key`` as deployed (development mode prefixes it)."""
    name = _resolve(cfg["resources"]["schemas"][key]["name"], cfg, target)
    prefix = cfg.get("presets", {}).get("name_prefix", "")
    return _normalize_prefix(_resolve(prefix, cfg, target)) + name if prefix else name


def _tasks(cfg: dict, job: str) -> dict[str, dict]:
    return {t["task_key"]: t for t in cfg["resources"]["jobs"][job]["tasks"]}


def _clusters(cfg: dict, job: str) -> dict[str, dict]:
    jobdef = cfg["resources"]["jobs"][job]
    return {c["job_cluster_key"]: c["new_cluster"] for c in jobdef["job_clusters"]}


# ---------------------------------------------------------------------------- schema
def _regex_pattern(validator, pattern, instance, schema):
    """``pattern`` with the ``regex`` module: the schema uses ECMA-262 ``\\p{L}`` classes."""
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@pytest.fixture(scope="module")
def validator(shared_data):
    schema = json.loads(
        (shared_data / "databricks" / "bundle_config_jsonschema.json").read_text())
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                       {"pattern": _regex_pattern})
    return cls(schema)


def _errors(validator, doc) -> str | None:
    error = best_match(validator.iter_errors(doc))
    if error is None:
        return None
    return f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"


def test_the_schema_check_accepts_the_official_examples(validator, shared_data):
    for path in sorted((shared_data / "databricks").glob("example_valid_*.yml")):
        assert _errors(validator, _load_yaml(path)) is None, path.name


@pytest.mark.parametrize("path", [BUNDLE, *_included_files()], ids=lambda p: p.name)
def test_every_bundle_file_validates_against_the_official_schema(validator, path):
    assert _errors(validator, _load_yaml(path)) is None


def _break_depends_on(doc):
    _tasks(doc, "oncorank_pipeline")["deidentify-notes"]["depends_on"] = "ingest-notes"


def _misspell_task_type(doc):
    task = _tasks(doc, "oncorank_pipeline")["train"]
    task["spark_pyhton_task"] = task.pop("spark_python_task")


def _worker_count_as_words(doc):
    _clusters(doc, "oncorank_pipeline")["gpu_training"]["num_workers"] = "two"


def _privilege_typo(doc):
    doc["resources"]["schemas"]["silver"]["grants"][0]["privileges"] = ["READ_ALL"]


def _schedule_without_time_zone(doc):
    del doc["resources"]["jobs"]["nightly_scoring"]["schedule"]["timezone_id"]


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (_break_depends_on, "depends_on"),
        (_misspell_task_type, "spark_pyhton_task"),
        (_worker_count_as_words, "num_workers"),
        (_privilege_typo, "privileges"),
        (_schedule_without_time_zone, "timezone_id"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_the_schema_check_rejects_a_broken_bundle(validator, break_it, expected):
    doc = copy.deepcopy(_merged())
    doc.pop("targets")
    break_it(doc)
    message = _errors(validator, doc)
    assert message is not None and expected in message, message


def test_a_file_that_is_not_yaml_is_rejected(tmp_path):
    broken = tmp_path / "broken.job.yml"
    broken.write_text("resources:\n  jobs:\n    x:\n      tasks: [\n")
    with pytest.raises(yaml.YAMLError):
        _load_yaml(broken)


# ---------------------------------------------------------------------------- structure
def test_includes_cover_every_job_file():
    included = set(_included_files())
    on_disk = set((REPO / "jobs" / "resources").glob("*.yml"))
    assert included == on_disk and len(on_disk) >= 4
    assert set(_merged()["resources"]["jobs"]) == set(JOBS)


def _declared_dag(cfg: dict, job: str) -> dict[str, set[str]]:
    return {key: {d["task_key"] for d in task.get("depends_on", [])}
            for key, task in _tasks(cfg, job).items()}


def _projected_dag(names: set[str]) -> dict[str, set[str]]:
    """STAGES restricted to ``names``: an edge wherever a path runs only through others."""
    deps = {s.name: set(s.depends_on) for s in STAGES}

    def nearest(stage: str) -> set[str]:
        out = set()
        for d in deps[stage]:
            out |= {d} if d in names else nearest(d)
        return out

    return {n: nearest(n) for n in names}


def test_the_pipeline_job_chains_the_stage_dag():
    assert _declared_dag(_merged(), "oncorank_pipeline") == {
        s.name: set(s.depends_on) for s in STAGES}


@pytest.mark.parametrize("job, stages", [
    ("nightly_scoring", {"score", "report"}),
    ("weekly_retraining", {"build-features", "train"}),
])
def test_scheduled_jobs_run_their_stages_in_dag_order(job, stages):
    dag = _declared_dag(_merged(), job)
    assert set(dag) == stages
    assert dag == _projected_dag(stages)


def test_every_task_runs_the_script_of_its_stage():
    modules = {s.name: s.module for s in STAGES}
    for job in JOBS:
        for key, task in _tasks(_merged(), job).items():
            script = Path(task["spark_python_task"]["python_file"])
            assert f"jobs.{script.stem}" == modules[key], (job, key)


# ---------------------------------------------------------------------------- entry points
def _task_cases():
    for target in TARGETS:
        for job in JOBS:
            for key in _tasks(_merged(), job):
                yield pytest.param(target, job, key, id=f"{target}-{job}-{key}")


def _has_main_guard(path: Path) -> bool:
    """``if __name__ == "__main__": main()`` — a spark_python_task runs the file as a script."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return any("main(" in ast.unparse(stmt) for stmt in node.body)
    return False


@pytest.mark.parametrize("target, job, key", list(_task_cases()))
def test_task_entry_point_exists_and_accepts_its_parameters(target, job, key, tmp_path):
    cfg = _for_target(target)
    task = _tasks(cfg, job)[key]
    yml = REPO / "jobs" / "resources"
    script = (yml / task["spark_python_task"]["python_file"]).resolve()
    assert script.is_file(), f"{job}.{key}: {script} does not exist"
    assert _has_main_guard(script), f"{script} does not call main() when run as a script"
    module = importlib.import_module(f"jobs.{script.stem}")
    assert callable(module.main) and callable(module.run)

    argv = [DYNAMIC_VALUES.get(a, a) for a in _resolve(task["spark_python_task"]["parameters"],
                                                       cfg, target)]
    assert not [a for a in argv if "${" in a or "{{" in a], argv
    parser = common_parser(f"oncorank-{key}")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    ns = parser.parse_args(argv)  # exits (SystemExit) on a flag the job does not accept
    assert ns.parent_run_id == DYNAMIC_VALUES["{{job.run_id}}"]

    # The config file is read from the landing volume on Databricks; here the repo's template.
    catalog = cfg["_variables"]["catalog"]
    landing = cfg["resources"]["volumes"]["landing"]
    landing_dir = f"/Volumes/{catalog}/{_schema_name(cfg, target, 'bronze')}/{landing['name']}"
    assert ns.config == f"{landing_dir}/oncorank.toml"
    ns.config = str(yml / "oncorank.databricks.toml")
    settings = settings_from_args(ns)

    assert settings.env == target
    gold = _schema_name(cfg, target, "gold")
    assert settings.table("gold", "treatment_rankings").identifier == (
        f"`{catalog}`.`{gold}`.`treatment_rankings`")
    for schema in SCHEMAS:
        assert settings.schema_name(schema) == _schema_name(cfg, target, schema)
    reports = cfg["resources"]["volumes"]["reports"]
    assert settings.reports_path == Path(
        f"/Volumes/{catalog}/{_schema_name(cfg, target, 'restricted')}/{reports['name']}")
    assert settings.inputs.notes.startswith(str(yml))  # relative inputs resolve next to it


@pytest.mark.parametrize("target", TARGETS)
def test_clusters_pass_the_mlflow_names_and_the_key_from_the_secret_scope(target):
    cfg = _for_target(target)
    for job in JOBS:
        for name, cluster in _clusters(cfg, job).items():
            env = cluster["spark_env_vars"]
            assert env["ONCORANK_PSEUDONYM_KEY"] == (
                "{{secrets/${var.secret_scope}/${var.pseudonym_key_secret}}}"), (job, name)
            resolved = _resolve(env, cfg, target)
            assert re.fullmatch(r"\{\{secrets/[\w-]+/[\w-]+\}\}",
                                resolved["ONCORANK_PSEUDONYM_KEY"])
            assert resolved["ONCORANK_GIT_SHA"] == FAKE_GIT_COMMIT
            environ = {k: v for k, v in resolved.items() if k != "ONCORANK_PSEUDONYM_KEY"}
            settings = Settings.load(None, {"env": target, "catalog": "main"}, environ=environ)
            assert settings.mlflow_experiment == resolved["ONCORANK_MLFLOW_EXPERIMENT"], (
                "Settings must read ONCORANK_MLFLOW_EXPERIMENT")
            assert settings.registered_model == resolved["ONCORANK_REGISTERED_MODEL"]


# ---------------------------------------------------------------------------- clusters, stack
def _pinned(package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d.split("==")[1] for d in deps if d.startswith(f"{package}=="))


def test_clusters_run_the_spark_and_scala_of_our_pins():
    import pyspark

    cfg = _for_target("prod")
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    assert cfg["_variables"]["spark_nlp_maven"] == (
        f"com.johnsnowlabs.nlp:spark-nlp_2.12:{SPARK_NLP_VERSION}")
    assert _pinned("spark-nlp") == SPARK_NLP_VERSION
    for job in JOBS:
        clusters = _clusters(cfg, job)
        for cluster in clusters.values():
            runtime = _resolve(cluster["spark_version"], cfg, "prod")
            assert runtime.endswith("-scala2.12"), runtime
            assert RUNTIME_SPARK[re.match(r"\d+\.\d+", runtime).group()] == spark_minor
            assert cluster["data_security_mode"] == "SINGLE_USER"  # Maven libraries, ML runtime
        for key, task in _tasks(cfg, job).items():
            cluster = clusters[task["job_cluster_key"]]
            runtime = _resolve(cluster["spark_version"], cfg, "prod")
            gpu = "-gpu-ml-" in runtime
            assert gpu == (key == "train"), f"{job}.{key} runs on {runtime}"
            libraries = _resolve(task["libraries"], cfg, "prod")
            assert {"whl": "../../dist/*.whl"} in libraries
            maven = [lib["maven"]["coordinates"] for lib in libraries if "maven" in lib]
            if key in NLP_STAGES:
                assert maven == [cfg["_variables"]["spark_nlp_maven"]], (job, key)


def test_training_gets_a_gpu_cluster_with_one_task_per_gpu():
    cfg = _for_target("prod")
    for job in ("oncorank_pipeline", "weekly_retraining"):
        cluster = _clusters(cfg, job)[_tasks(cfg, job)["train"]["job_cluster_key"]]
        assert cluster["spark_conf"]["spark.task.resource.gpu.amount"] == "1"
        assert _resolve(cluster["node_type_id"], cfg, "prod").startswith("g5.")


def test_the_wheel_artifact_is_every_task_s_library():
    artifact = _root()["artifacts"]["oncorank_wheel"]
    assert artifact["type"] == "whl" and artifact["path"] == "."
    assert "--wheel-dir dist" in artifact["build"]


def test_the_wheel_builds_from_pyproject_and_carries_the_job_code(tmp_path):
    build = _root()["artifacts"]["oncorank_wheel"]["build"].split()
    assert build[:4] == ["python3", "-m", "pip", "wheel"]
    out = tmp_path / "dist"
    cmd = [sys.executable, *build[1:]]
    cmd[cmd.index("dist")] = str(out)
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("oncorank-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stage in STAGES:
        assert stage.module.replace(".", "/") + ".py" in names
    assert {"pipelines/lakehouse/jobmain.py", "pipelines/resources/regimens.yaml",
            "pipelines/lakehouse/comments.py",
            "pipelines/lakehouse/resources/comments.yaml"} <= names


# ---------------------------------------------------------------------------- targets, access
def test_dev_is_a_per_user_development_copy():
    dev = _for_target("dev")
    assert dev["mode"] == "development" and _merged()["targets"]["dev"]["default"] is True
    prefix = _normalize_prefix(_resolve(dev["presets"]["name_prefix"], dev, "dev"))
    assert prefix == "dev_jdoe_"
    assert _resolve("${var.user_prefix}", dev, "dev") == prefix
    assert _schema_name(dev, "dev", "silver") == "dev_jdoe_onc_silver"
    assert _resolve("${var.mlflow_experiment}", dev, "dev").startswith("/Users/jdoe@example.org/")


def test_prod_runs_as_the_service_principal_with_schedules_unpaused():
    prod = _for_target("prod")
    assert prod["mode"] == "production"
    assert _resolve(prod["run_as"], prod, "prod") == {
        "service_principal_name": FAKE_SP_APPLICATION_ID}
    assert prod["presets"]["trigger_pause_status"] == "UNPAUSED"
    assert _schema_name(prod, "prod", "silver") == "onc_silver"
    jobs = prod["resources"]["jobs"]
    assert "schedule" not in jobs["oncorank_pipeline"]
    # Quartz fields: second minute hour day-of-month month day-of-week.
    for job, day_of_week in (("nightly_scoring", "?"), ("weekly_retraining", "SUN")):
        schedule = jobs[job]["schedule"]
        # No explicit pause status: development mode pauses it, prod's preset unpauses it.
        assert "pause_status" not in schedule
        assert schedule["quartz_cron_expression"].split()[5] == day_of_week
    assert _resolve(jobs["nightly_scoring"]["email_notifications"]["on_failure"], prod,
                    "prod") == ["oncorank-oncall@example.org"]


@pytest.mark.parametrize("target", TARGETS)
def test_grants_keep_identifiers_away_from_analysts(target):
    cfg = _for_target(target)
    v = cfg["_variables"]
    grants = {key: {_resolve(g["principal"], cfg, target): set(g["privileges"])
                    for g in schema.get("grants", [])}
              for key, schema in cfg["resources"]["schemas"].items()}
    assert set(grants) == set(SCHEMAS)
    for schema in ("silver", "gold", "ops"):
        assert {"USE_SCHEMA", "SELECT"} <= grants[schema][v["analysts_group"]]
    for schema in ("bronze", "restricted"):
        assert v["analysts_group"] not in grants[schema]
    assert set(grants["restricted"]) == {_resolve(v["pipeline_principal"], cfg, target),
                                         v["care_team_group"]}
    assert grants["restricted"][v["care_team_group"]] == {"USE_SCHEMA"}
    for volume in cfg["resources"]["volumes"].values():
        principals = {_resolve(g["principal"], cfg, target) for g in volume["grants"]}
        assert v["analysts_group"] not in principals


def test_every_variable_is_declared_and_used():
    texts = [BUNDLE.read_text()] + [p.read_text() for p in _included_files()]
    used = set()
    for text in texts:
        used |= set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", text))
    declared = set(_root()["variables"])
    assert used <= declared, used - declared
    assert declared <= used, declared - used
    for target in TARGETS:
        assert set(_root()["targets"][target].get("variables", {})) <= declared

"""The command line's error contract: one clear sentence, exit code != 0, no stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main


def _cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return exc.value.code, captured.out + captured.err


def test_missing_config_file(capsys, tmp_path):
    code, text = _cli(capsys, "run", "--config", str(tmp_path / "nope.toml"))
    assert code != 0
    assert "Config file" in text and "does not exist" in text
    assert "Traceback" not in text


def test_unreadable_config(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[inputs\nvcf = 1")
    code, text = _cli(capsys, "run", "--config", str(bad))
    assert code != 0 and "not valid TOML" in text and "Traceback" not in text


def test_unknown_stage(capsys, tmp_path):
    code, text = _cli(capsys, "run", "--lakehouse", str(tmp_path), "--only", "transmogrify")
    assert code != 0 and "Unknown stage 'transmogrify'" in text


@pytest.mark.parametrize("args", [["--only", "score", "transmogrify"],
                                  ["--only", "score,transmogrify"],
                                  ["--only", "score", "--only", "transmogrify"]])
def test_only_takes_several_stages_as_the_readme_writes_them(capsys, tmp_path, args):
    """Every form names both stages: the unknown second one is what stops the run."""
    code, text = _cli(capsys, "run", "--lakehouse", str(tmp_path), *args)
    assert code != 0 and "Unknown stage 'transmogrify'" in text


def test_stage_names_without_only_are_a_clear_error(capsys, tmp_path):
    code, text = _cli(capsys, "run", "--lakehouse", str(tmp_path), "score", "report")
    assert code != 0 and "need --only" in text and "Traceback" not in text


def test_missing_input_path(capsys, tmp_path):
    code, text = _cli(capsys, "ingest", "vcf", str(tmp_path / "missing.vcf.gz"))
    assert code != 0 and "missing.vcf.gz does not exist" in text


def test_missing_cohort_file(capsys, tmp_path):
    code, text = _cli(capsys, "train", "--cohort", str(tmp_path / "c.csv"), "--time-col", "t",
                      "--event-col", "e", "--treatment-col", "a")
    assert code != 0 and "Cohort file" in text


def _subprocess_cli(args, env_updates, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_no_java_is_one_sentence(tmp_path):
    env = {"JAVA_HOME": str(tmp_path / "no-jdk"), "ONCORANK_JVM_DIR": str(tmp_path / "none"),
           "PATH": str(Path(sys.executable).parent)}
    vcf = tmp_path / "x.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n")
    proc = _subprocess_cli(["ingest", "vcf", str(vcf), "--lakehouse", str(tmp_path / "lh")],
                           env, tmp_path)
    assert proc.returncode != 0
    assert "Java 17 was not found" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_failed_jar_download_is_one_sentence(tmp_path):
    env = {"ONCORANK_JARS_DIR": str(tmp_path / "empty-cache"),
           "ONCORANK_MAVEN_REPO": "http://127.0.0.1:9/maven2"}
    vcf = tmp_path / "x.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n")
    proc = _subprocess_cli(["ingest", "vcf", str(vcf), "--lakehouse", str(tmp_path / "lh")],
                           env, tmp_path)
    assert proc.returncode != 0
    assert "Could not download the JVM jar" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_debug_shows_the_stack_trace(tmp_path):
    proc = _subprocess_cli(["--debug", "run", "--config", str(tmp_path / "nope.toml")], {},
                           tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr

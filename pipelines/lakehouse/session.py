"""Spark session factory.

* On Databricks (``DATABRICKS_RUNTIME_VERSION`` is set) the cluster's session and libraries are
  used as they are: Delta is built in and Spark NLP comes from the job's Maven library.
* On a laptop or CI a ``local[*]`` session starts with the Delta extension and catalog and the
  Spark NLP jar. The JVM jars are fetched from Maven Central once into a cache folder
  (``ONCORANK_JARS_DIR``, default ``~/.cache/oncorank/jars``), checked against Maven's SHA-1,
  and passed as ``spark.jars``: a machine that already has them starts offline.

We pin each jar explicitly instead of letting Ivy resolve ``spark.jars.packages``: Spark NLP's
POM drags in TensorFlow, ONNX Runtime and three cloud SDKs (hundreds of MB) that the rule-based
annotators oncorank uses never load.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.lakehouse.errors import EnvironmentProblem
from pipelines.lakehouse.settings import Settings

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
_LOG4J = Path(__file__).resolve().parent.parent / "resources" / "log4j2.properties"


@dataclass(frozen=True)
class MavenJar:
    group: str
    artifact: str
    version: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        group_path = self.group.replace(".", "/")
        return f"{repo.rstrip('/')}/{group_path}/{self.artifact}/{self.version}/{self.file_name}"

    def __str__(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


# Must match the Python packages pinned in pyproject.toml (README, "Version matrix").
SPARK_NLP_VERSION = "5.5.3"
DELTA_VERSION = "3.3.3"
JARS: tuple[MavenJar, ...] = (
    MavenJar("io.delta", "delta-spark_2.12", DELTA_VERSION),
    MavenJar("io.delta", "delta-storage", DELTA_VERSION),
    MavenJar("org.antlr", "antlr4-runtime", "4.9.3"),
    MavenJar("com.johnsnowlabs.nlp", "spark-nlp_2.12", SPARK_NLP_VERSION),
    MavenJar("com.typesafe", "config", "1.4.2"),
    # Spark NLP's ResourceHelper references the AWS SDK even for local files.
    MavenJar("com.amazonaws", "aws-java-sdk-core", "1.12.500"),
    MavenJar("com.amazonaws", "aws-java-sdk-s3", "1.12.500"),
    MavenJar("com.amazonaws", "jmespath-java", "1.12.500"),
    MavenJar("joda-time", "joda-time", "2.8.1"),
)


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def jars_dir() -> Path:
    return Path(os.environ.get("ONCORANK_JARS_DIR", Path.home() / ".cache" / "oncorank" / "jars"))


def ensure_jars(directory: Path | None = None, repo: str | None = None) -> list[Path]:
    """Return local paths of every JVM jar, downloading (and verifying) missing ones."""
    directory = directory or jars_dir()
    repo = repo or os.environ.get("ONCORANK_MAVEN_REPO", MAVEN_CENTRAL)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for jar in JARS:
        target = directory / jar.file_name
        if not target.is_file():
            _download(jar, target, repo)
        paths.append(target)
    return paths


def _download(jar: MavenJar, target: Path, repo: str) -> None:
    url = jar.url(repo)
    try:
        with urllib.request.urlopen(url + ".sha1", timeout=60) as resp:
            expected = resp.read().decode().split()[0].strip().lower()
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
        digest = hashlib.sha1()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=300) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise EnvironmentProblem(
            f"Could not download the JVM jar {jar} from {repo} ({exc}). Connect to Maven Central "
            f"once, set ONCORANK_MAVEN_REPO to a mirror, or copy {jar.file_name} into "
            f"{target.parent}."
        ) from None
    if digest.hexdigest() != expected:
        os.unlink(tmp_name)
        raise EnvironmentProblem(
            f"The download of {jar} failed its SHA-1 check; delete {target.parent} and retry."
        )
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, target)


def java_home() -> str:
    """Locate a Java 17 runtime (Spark 3.5 supports 8/11/17; newer JDKs break it)."""
    candidates = [os.environ.get("JAVA_HOME", "")]
    jvm_root = Path(os.environ.get("ONCORANK_JVM_DIR", "/usr/lib/jvm"))
    candidates += sorted(str(p) for p in jvm_root.glob("*17*"))
    for home in candidates:
        if home and (Path(home) / "bin" / "java").is_file() and _java_major(home) == 17:
            return home
    java = shutil.which("java")
    if java:
        home = str(Path(java).resolve().parent.parent)
        if _java_major(home) in (11, 17):
            return home
    raise EnvironmentProblem(
        "Java 17 was not found: install it (e.g. `apt-get install openjdk-17-jre-headless`) "
        "or set JAVA_HOME to a Java 17 installation."
    )


def _java_major(home: str) -> int | None:
    try:
        out = subprocess.run(
            [str(Path(home) / "bin" / "java"), "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for token in out.stderr.split():
        token = token.strip('"')
        if token[:1].isdigit() and "." in token:
            major = token.split(".")[0]
            return int(major) if major != "1" else int(token.split(".")[1])
    return None


def spark_session(settings: Settings, app_name: str = "oncorank"):
    """Return the active session, or start a local one configured for oncorank.

    >>> spark = spark_session(Settings())  # doctest: +SKIP
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()

    os.environ["JAVA_HOME"] = java_home()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Workers must run this interpreter, else they lack pysam and the other pinned packages.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    jars = ensure_jars()
    scratch = settings.lakehouse.absolute().parent / "spark"
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(p) for p in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
        .config("spark.kryoserializer.buffer.max", "1000M")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.maxResultSize", "0")
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, os.cpu_count() or 2)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dderby.system.home={scratch / 'derby'} -Dlog4j2.configurationFile={_LOG4J}",
        )
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Spark lists more than 32 paths with a Spark job; on a local master that job runs on
        # the same machine and is pure overhead (2.2 s for a cohort's 200 staged files on one
        # core, against milliseconds on the driver).
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")
        .config("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    )
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: name the cause, not the Py4J trace
        raise EnvironmentProblem(
            f"Spark could not start ({str(exc).splitlines()[0][:200]}); check Java 17 "
            "and the jars in " + str(jars_dir()) + "."
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def require_spark_nlp(spark) -> None:
    """Fail with one sentence when the Spark NLP jar is not on the session's classpath."""
    from py4j.java_gateway import JavaClass

    if not isinstance(spark._jvm.com.johnsnowlabs.nlp.DocumentAssembler, JavaClass):
        raise EnvironmentProblem(
            "The Spark NLP jar is not on this Spark session's classpath: on Databricks add "
            f"the Maven library com.johnsnowlabs.nlp:spark-nlp_2.12:{SPARK_NLP_VERSION} to the "
            "cluster; locally start Spark through oncorank (pipelines.lakehouse.spark_session)."
        )

"""Every package under pipelines/ names its public surface in ``__all__``, and importing a
package does not start Spark's Python side."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pipelines

PACKAGES = ["pipelines"] + [
    m.name for m in pkgutil.walk_packages(pipelines.__path__, "pipelines.") if m.ispkg]


def test_every_package_lists_what_it_exports():
    for name in PACKAGES:
        package = importlib.import_module(name)
        assert isinstance(getattr(package, "__all__", None), list), name
        for export in package.__all__:
            if not hasattr(package, export):
                importlib.import_module(f"{name}.{export}")  # a public submodule


def test_importing_the_stage_packages_leaves_pyspark_unloaded():
    names = [n for n in PACKAGES if n.count(".") == 1 and n not in (
        "pipelines.lakehouse", "pipelines.knowledge", "pipelines.synth")]
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "print('pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False", names

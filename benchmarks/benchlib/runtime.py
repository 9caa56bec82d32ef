"""The interpreter wakeproxy runs on in the benchmark: what a user's install gives.

Owns building, once, and then reusing a virtual environment (`OUT/runtime-venv`) that
holds exactly the runtime dependencies of `pyproject.toml`, no extras, and describing
the interpreter a run used. It matters for memory: a development venv carries the test
tools, and structlog imports `rich` (and pygments) whenever it is installed, which adds
~4 MiB to the daemon's RSS that `pip install .` or the Docker image never load.
wakeproxy itself is not installed there: it runs from the working tree (`PYTHONPATH`),
so the code measured is the code checked out. Never changes the interpreter running
this harness.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
VENV_DIR = "runtime-venv"
STAMP = "wakeproxy-runtime.json"
# Installed with the dev or test extras, never by `pip install .`; their presence in the
# interpreter is what made the memory rows read high.
DEV_ONLY = ("rich", "pygments", "pytest", "mypy", "hypothesis", "importlinter")


class RuntimeUnavailable(Exception):
    """The runtime-only venv could not be built (pip failed, no network, no venv module)."""


@dataclass(frozen=True)
class Runtime:
    """The interpreter that runs wakeproxy and the probes, and what to add to their env."""

    python: str
    kind: str  # "runtime-only venv" or "given with --python"
    env: dict[str, str] = field(default_factory=dict)


def runtime_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """`[project].dependencies`: what `pip install .` installs, no extras."""
    doc = tomllib.loads(pyproject.read_text())
    return [str(d) for d in doc["project"]["dependencies"]]


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, deps: list[str], timeout: float = 900.0) -> Path:
    """The venv's interpreter; built (or rebuilt when the dependencies changed) if needed."""
    stamp = {"dependencies": deps, "base_python": sys.version,
             "base_executable": getattr(sys, "_base_executable", sys.executable)}
    python = _venv_python(venv)
    try:
        if python.exists() and json.loads((venv / STAMP).read_text()) == stamp:
            return python
    except (OSError, ValueError):
        pass
    print(f"  building the runtime-only venv for wakeproxy in {venv} (pip install, once)",
          flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    # The stamp is written last: a build cut short is rebuilt by the next run.
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *deps],
    )
    for argv in steps:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                 check=False)
        except subprocess.TimeoutExpired as e:
            raise RuntimeUnavailable(f"{' '.join(argv[:4])} took over {timeout:.0f}s") from e
        if out.returncode != 0:
            raise RuntimeUnavailable(
                f"{' '.join(argv[:4])} exited with {out.returncode}: "
                f"{out.stderr.strip()[-1500:]}\n(or pass --python PATH to run wakeproxy on an "
                "interpreter that already has it)")
    (venv / STAMP).write_text(json.dumps(stamp))
    return python


def resolve(given: str | None, out: Path) -> Runtime:
    """`--python` as given, or the runtime-only venv under OUT (built on first use)."""
    if given:
        return Runtime(python=given, kind="given with --python")
    python = ensure_venv(out / VENV_DIR, runtime_dependencies())
    # Only the working tree on the path: whatever PYTHONPATH the caller had (a dev
    # checkout's site-packages, say) must not leak into the measured process.
    return Runtime(python=str(python), kind="runtime-only venv", env={"PYTHONPATH": str(REPO)})


_DESCRIBE = """
import importlib.metadata as md, importlib.util as iu, json, platform, sys
names = json.loads(sys.argv[1]); dev = json.loads(sys.argv[2])
def version(n):
    try:
        return md.version(n)
    except md.PackageNotFoundError:
        return None
print(json.dumps({"python": platform.python_version(), "executable": sys.executable,
    "packages": {n: version(n) for n in names},
    "dev_only_present": [d for d in dev if iu.find_spec(d) is not None]}))
"""


def describe(rt: Runtime) -> dict[str, Any]:
    """The interpreter's version, its runtime packages' versions, any dev-only package."""
    names = [_name(d) for d in runtime_dependencies()]
    argv = [rt.python, "-c", _DESCRIBE, json.dumps(names), json.dumps(DEV_ONLY)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                         env=_env(rt))
    info: dict[str, Any] = {"kind": rt.kind}
    if out.returncode == 0 and out.stdout.strip():
        info.update(json.loads(out.stdout.strip().splitlines()[-1]))
    else:
        info["executable"] = rt.python
    return info


def _name(requirement: str) -> str:
    """`aiohttp>=3.9` → `aiohttp`."""
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in "-_."):
            return requirement[:i]
    return requirement


def _env(rt: Runtime) -> dict[str, str]:
    return {**os.environ, **rt.env}

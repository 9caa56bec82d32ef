"""A bounded run of the request-head fuzz target (fuzz/fuzz_request_head.py): coverage-
guided with atheris when it is installed, and always the same entry point with plain
random mutations, so the harness and its checks stay working."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.soak.support import figure

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "fuzz" / "fuzz_request_head.py"
SEEDS = ROOT / "fuzz" / "corpus" / "request_head"


def fuzz(tmp_path: Path, runs: int, *, plain: bool) -> tuple[int, str]:
    corpus = tmp_path / "corpus"  # the fuzzer adds to its corpus: never to the seeds
    shutil.copytree(SEEDS, corpus)
    env = {k: v for k, v in os.environ.items() if k != "WAKEPROXY_FUZZ_PLAIN"}
    if plain:
        env["WAKEPROXY_FUZZ_PLAIN"] = "1"
    proc = subprocess.run(
        [sys.executable, str(TARGET), f"-runs={runs}", "-max_len=4096", "-seed=6",
         f"-dict={TARGET.parent / 'request_head.dict'}", f"-artifact_prefix={tmp_path}/",
         str(corpus)],
        capture_output=True, text=True, timeout=100, cwd=tmp_path, env=env,
    )
    tail = "\n".join(proc.stderr.splitlines()[-30:])
    assert proc.returncode == 0, tail
    done = re.search(r"Done (\d+) runs", proc.stderr)
    assert done is not None and int(done.group(1)) >= runs, tail
    return int(done.group(1)), proc.stderr


def test_the_fuzz_target_survives_a_bounded_run(tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        mode = "random mutations (atheris not installed)"
    else:
        mode = "atheris, coverage-guided"
    runs, _ = fuzz(tmp_path, 20_000, plain=False)
    figure("hostile", f"fuzz smoke ({mode}): {runs} inputs through the request-head path, "
                      f"from {len(list(SEEDS.iterdir()))} seeds; no failure")


def test_the_fuzz_target_runs_without_atheris(tmp_path: Path) -> None:
    runs, stderr = fuzz(tmp_path, 5_000, plain=True)
    assert "random mutations" in stderr
    figure("hostile", f"fuzz smoke (plain random mutations): {runs} inputs; no failure")

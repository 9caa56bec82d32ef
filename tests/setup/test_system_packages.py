"""The README's test command sets a fresh machine up itself: scripts/install-system-packages
installs, with apt-get, the Debian package of every tool in scripts/system-packages that is
missing, and names what it could not install. apt-get, apt-cache, sudo and id are recording
stand-ins on PATH here: the script's real behaviour (which packages, through what, what it
says) is what is checked, without touching this machine's packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def listed_tools() -> dict[str, str]:
    tools = {}
    for line in (SCRIPTS / "system-packages").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names, package = line.split()[:2]
            for tool in names.split("|"):  # any of these names will do
                tools[tool] = package
    return tools


class Machine:
    """A copy of the scripts with extra lines in the list, and stand-ins that record."""

    def __init__(self, tmp: Path, *, uid: int = 0, sudo: bool = False,
                 unavailable: tuple[str, ...] = ()) -> None:
        self.scripts = tmp / "scripts"
        self.scripts.mkdir()
        shutil.copy(SCRIPTS / "install-system-packages", self.scripts)
        shutil.copy(SCRIPTS / "system-packages", self.scripts)
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.calls = tmp / "calls"
        self.calls.touch()
        # "Installing" a fake package puts its tool (package name minus "-pkg") on PATH.
        self.stub("apt-get", f"""
            echo "apt-get $*" >>{self.calls}
            if [ "$1" = install ]; then
              for p in "$@"; do case "$p" in *-pkg) touch {self.bin}/"${{p%-pkg}}";
                chmod +x {self.bin}/"${{p%-pkg}}";; esac; done
            fi""")
        gone = " ".join(unavailable)
        self.stub("apt-cache", f"""
            for p in {gone}; do [ "$2" = "$p" ] && {{ echo "  Candidate: (none)"; exit 0; }}; done
            echo "  Candidate: 1.0" """)
        self.stub("id", f"echo {uid}")
        self.stub("systemctl", f'echo "systemctl $*" >>{self.calls}')
        self.stub("sudo", f"""
            echo "sudo $*" >>{self.calls}
            {'[ "$1" = -n ] && shift && exec "$@"' if sudo else ''}
            exit 1""")

    def stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(0o755)

    def add(self, line: str) -> None:
        with (self.scripts / "system-packages").open("a") as f:
            f.write(line + "\n")

    def run(self) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}
        return subprocess.run([str(self.scripts / "install-system-packages")], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    def recorded(self) -> list[str]:
        return self.calls.read_text().splitlines()


def test_a_missing_tool_is_installed_with_apt_get_as_root(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.add("wakeproxy-fake-tool  wakeproxy-fake-tool-pkg")
    r = machine.run()
    assert r.returncode == 0, r.stderr
    assert machine.recorded() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends wakeproxy-fake-tool-pkg",
    ]
    assert (machine.bin / "wakeproxy-fake-tool").exists()


def test_without_root_it_installs_through_passwordless_sudo(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000, sudo=True)
    machine.add("wakeproxy-fake-tool  wakeproxy-fake-tool-pkg")
    r = machine.run()
    assert r.returncode == 0, r.stderr
    assert "sudo -n apt-get install -y -qq --no-install-recommends wakeproxy-fake-tool-pkg" \
        in machine.recorded()


def test_without_root_or_sudo_it_names_what_to_install(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000, sudo=False)
    machine.add("wakeproxy-fake-tool  wakeproxy-fake-tool-pkg  # what it is for")
    r = machine.run()
    assert r.returncode == 1
    assert not [c for c in machine.recorded() if c.startswith(("apt-get", "sudo -n apt-get"))]
    assert "wakeproxy-fake-tool: Debian package wakeproxy-fake-tool-pkg — what it is for" \
        in r.stderr
    assert "sudo " in r.stderr and "install-system-packages" in r.stderr


def test_a_package_apt_cannot_find_is_named_with_its_note_and_the_rest_installed(
        tmp_path: Path) -> None:
    machine = Machine(tmp_path, unavailable=("wakeproxy-gone-pkg",))
    machine.add("wakeproxy-fake-tool  wakeproxy-fake-tool-pkg")
    machine.add("wakeproxy-gone  wakeproxy-gone-pkg  # get it from its vendor")
    r = machine.run()
    assert r.returncode == 1
    assert "apt-get install -y -qq --no-install-recommends wakeproxy-fake-tool-pkg" \
        in machine.recorded()
    assert "wakeproxy-gone: Debian package wakeproxy-gone-pkg — get it from its vendor" \
        in r.stderr
    assert "wakeproxy-fake-tool:" not in r.stderr


def test_a_tool_with_several_names_is_there_when_any_one_is(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.add("wakeproxy-nowhere|sh  some-shell-pkg")
    assert machine.run().returncode == 0
    assert machine.recorded() == []


def test_a_service_the_install_starts_is_stopped(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.add("wakeproxy-fake-daemon  wakeproxy-fake-daemon-pkg  stop:fake-daemon  # why")
    machine.add("wakeproxy-fake-tool  wakeproxy-fake-tool-pkg")
    assert machine.run().returncode == 0
    assert machine.recorded() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends wakeproxy-fake-daemon-pkg "
        "wakeproxy-fake-tool-pkg",
        "systemctl stop fake-daemon",
    ]


def test_the_note_after_a_service_is_still_shown(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000)
    machine.add("wakeproxy-fake-daemon  wakeproxy-fake-daemon-pkg  stop:fake-daemon  # why")
    r = machine.run()
    assert "wakeproxy-fake-daemon: Debian package wakeproxy-fake-daemon-pkg — why" in r.stderr


def test_every_tool_the_checks_run_is_listed() -> None:
    used = set()
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r'shutil\.which\("([\w-]+)"\)', text))
        used |= set(re.findall(r'\btool\("([\w-]+)"\)', text))
        used |= set(re.findall(r'\[\s*"(git|curl|nc|socat|ab|openssl|chromium)"\s*,', text))
    assert used, "the scan found no tool: its patterns no longer match the tests"
    assert used - set(listed_tools()) == set()


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "```sh\n./scripts/test\n```" in readme
    commands = [line for line in (ROOT / ".ci/run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd ", "systemctl "))]
    assert commands == ["./scripts/test"]


def test_a_tool_the_test_extras_bring_is_left_to_pip(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000)
    machine.add("wakeproxy-fake-pip-tool  pip:wakeproxy-fake-wheel  # from the test extras")
    r = machine.run()
    assert r.returncode == 0, r.stderr
    assert machine.recorded() == []


def test_every_pip_tool_is_in_the_test_extras_and_first_on_path() -> None:
    extras = (ROOT / "pyproject.toml").read_text()
    wheels = {package.removeprefix("pip:") for package in listed_tools().values()
              if package.startswith("pip:")}
    assert wheels, "kubectl comes from the test extras"
    for wheel in wheels:
        assert re.search(rf'^\s*"{re.escape(wheel)}[>=<~ "]', extras, re.M), wheel
    assert 'export PATH="$PWD/.venv/tools:$PATH"' in (SCRIPTS / "test").read_text()

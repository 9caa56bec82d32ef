"""The package metadata users and tools read: the licence as an SPDX expression (the
`license = {text = ...}` table is deprecated by setuptools and warned about on every
install)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_licence_is_an_spdx_expression_in_the_installed_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    metadata = importlib.metadata.metadata("wakeproxy")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License"] is None

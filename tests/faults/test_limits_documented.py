"""Every protection limit is a setting, shown in config/cluster.example.yaml at its default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.limits import Limits
from wakeproxy.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "cluster.example.yaml"


def test_every_limit_is_in_the_example_config_with_its_default() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert set(raw["limits"]) == {f.name for f in dataclasses.fields(Limits)}
    assert load_settings(EXAMPLE).limits == Limits()


def test_the_per_app_limits_are_in_the_example_config_with_their_defaults() -> None:
    defaults = load_settings(EXAMPLE).defaults
    policy = AppPolicy(name="-", hosts=())
    for key in ("idle_after", "wake_timeout", "max_held_requests", "release_concurrency"):
        assert key in yaml.safe_load(EXAMPLE.read_text())["defaults"], key
        assert getattr(defaults, key) == getattr(policy, key), key

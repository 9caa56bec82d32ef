"""The config file → Settings: every key, every default, and every error a user can make.

Every error must name the file, the key path and what was expected.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from wakeproxy.model.apps import AppPolicy
from wakeproxy.settings import (
    ConfigError,
    Limits,
    Savings,
    Settings,
    load_settings,
    parse_address,
    parse_duration,
    parse_settings,
)

SRC = "config/cluster.yaml"
APP = {"name": "hello", "hosts": ["hello.localhost"], "command": "python3 -m http.server $PORT"}


def parse(doc: Any, **kw: Any) -> Settings:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    return parse_settings(text, SRC, **kw)


def problems(doc: Any, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(doc, **kw)
    found = info.value.problems
    assert found, "a ConfigError always lists at least one problem"
    for p in found:
        assert p.startswith(f"{SRC}: "), p
    return found


def problem(doc: Any, **kw: Any) -> str:
    found = problems(doc, **kw)
    assert len(found) == 1, found
    return found[0]


def with_app(**fields: Any) -> dict[str, Any]:
    return {"apps": [{**APP, **fields}]}


# -- defaults and every key ----------------------------------------------------------------


def test_an_empty_file_gives_the_documented_defaults() -> None:
    s = parse("")
    assert s.source == SRC
    assert s.cluster == "default"
    assert s.platform == "local"
    assert s.listen == ("127.0.0.1", 8080)
    assert s.admin_listen == ("127.0.0.1", 9090)
    assert s.admin_token is None
    assert (s.log_format, s.log_level, s.log_access) == ("json", "info", True)
    assert s.trusted_proxies == ()
    assert s.sweep_interval == 1.0
    assert s.drain_grace == 30.0
    assert s.limits == Limits()
    assert s.apps == ()
    assert s.policies == ()
    assert s.savings == Savings(cost_per_replica_hour=0.0, currency="USD")


def test_an_app_with_only_the_required_keys_gets_policy_defaults() -> None:
    [app] = parse({"apps": [APP]}).apps
    assert app.policy == AppPolicy(name="hello", hosts=("hello.localhost",))
    assert app.policy.idle_after == 300.0
    assert app.policy.wake_timeout == 60.0
    assert app.policy.max_held_requests == 1000
    assert app.command == "python3 -m http.server $PORT"
    assert app.cwd is None
    assert dict(app.env) == {}
    assert app.stop_grace == 10.0


def test_every_key_is_read() -> None:
    doc = """
cluster: prod-eu
platform: local
listen: 0.0.0.0:80
admin_listen: "[::1]:9191"
admin_token: 0123456789abcdef-token
log: {format: console, level: DEBUG, access: false}
trusted_proxies: [10.0.0.0/8, 192.168.1.1, "fd00::/8"]
sweep_interval: 250ms
drain_grace: 1m
limits:
  max_head_bytes: 32768
  max_headers: 50
  max_connections: 500
  connect_timeout: 2s
  response_header_timeout: 2m
  client_idle_timeout: 10s
  client_head_timeout: 5s
  upstream_idle_timeout: 15s
  upstream_pool_size: 64
defaults:
  idle_after: 10m
  wake_timeout: 90s
  max_held_requests: 50
  waiting_page: true
  release_concurrency: 4
  ignored_paths: [/healthz, /metrics]
  probe_interval: 20ms
  readiness_path: /ready
  stop_grace: 3s
apps:
  - name: web
    hosts: [Web.Example.COM., "*.preview.example.com"]
    command: ./run $PORT
    cwd: /srv/web
    env: {MODE: prod, WORKERS: 4, DEBUG: false, RATIO: 0.5}
    idle_after: 30s
    wake_timeout: 5s
    max_held_requests: 7
    waiting_page: false
    release_concurrency: 2
    ignored_paths: /ping
    probe_interval: 1s
    readiness_path: /up
    stop_grace: 0
  - name: api
    hosts: [api.example.com]
    command: ./api
kubernetes: {namespaces: [apps]}
review_apps: {enabled: false}
"""
    s = parse(doc)
    assert s.cluster == "prod-eu"
    assert s.listen == ("0.0.0.0", 80)
    assert s.admin_listen == ("::1", 9191)
    assert s.admin_token == "0123456789abcdef-token"
    assert (s.log_format, s.log_level, s.log_access) == ("console", "debug", False)
    assert s.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.1/32"),
        ipaddress.ip_network("fd00::/8"))
    assert s.sweep_interval == 0.25
    assert s.drain_grace == 60.0
    assert s.limits == Limits(
        max_head_bytes=32768, max_headers=50, max_connections=500, connect_timeout=2.0,
        response_header_timeout=120.0, client_idle_timeout=10.0, client_head_timeout=5.0,
        upstream_idle_timeout=15.0, upstream_pool_size=64)

    web, api = s.apps
    assert web.policy == AppPolicy(
        name="web", hosts=("web.example.com", "*.preview.example.com"), idle_after=30.0,
        wake_timeout=5.0, max_held_requests=7, waiting_page=False, release_concurrency=2,
        ignored_paths=("/ping",), probe_interval=1.0, readiness_path="/up")
    assert web.command == "./run $PORT"
    assert web.cwd == "/srv/web"
    assert dict(web.env) == {"MODE": "prod", "WORKERS": "4", "DEBUG": "false", "RATIO": "0.5"}
    assert web.stop_grace == 0.0
    # `api` sets nothing: it inherits every default.
    assert api.policy == AppPolicy(
        name="api", hosts=("api.example.com",), idle_after=600.0, wake_timeout=90.0,
        max_held_requests=50, waiting_page=True, release_concurrency=4,
        ignored_paths=("/healthz", "/metrics"), probe_interval=0.02, readiness_path="/ready")
    assert api.stop_grace == 3.0
    assert s.policies == (web.policy, api.policy)


def test_the_shipped_local_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    s = load_settings(root / "config" / "local.yaml")
    assert [a.policy.name for a in s.apps] == ["hello"]


def test_kubernetes_apps_need_no_command() -> None:
    s = parse({"platform": "kubernetes", "apps": [{"name": "a", "hosts": ["a.example.com"]}]})
    assert s.platform == "kubernetes"
    assert s.apps[0].command == ""


def test_null_values_mean_the_default() -> None:
    s = parse({"listen": None, "defaults": {"idle_after": None}, "apps": [APP]})
    assert s.listen == ("127.0.0.1", 8080)
    assert s.apps[0].policy.idle_after == 300.0


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "seconds"), [
    (300, 300.0), ("300", 300.0), ("300s", 300.0), ("5m", 300.0), ("1h", 3600.0),
    ("250ms", 0.25), ("1m30s", 90.0), ("1h5m", 3900.0), (1.5, 1.5), ("1.5s", 1.5),
    ("0.5m", 30.0), (" 5m ", 300.0), (0, 0.0), ("0s", 0.0),
])
def test_parse_duration(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", [
    "five", "5 m", "5M", "-5s", -1, "5d", "", "ms", "s5", "5s ago", True, None, [5],
    math.inf, math.nan, "9" * 400, "1e3",
])
def test_parse_duration_refuses(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)


@pytest.mark.parametrize(("yaml_value", "seconds"), [
    ("300", 300.0), ("300s", 300.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25),
])
def test_durations_in_the_file(yaml_value: str, seconds: float) -> None:
    s = parse(f"""
sweep_interval: {yaml_value}
defaults: {{wake_timeout: {yaml_value}}}
apps:
  - {{name: a, hosts: [a.localhost], command: x, idle_after: {yaml_value}}}
""")
    assert s.sweep_interval == seconds
    assert s.apps[0].policy.idle_after == seconds
    assert s.apps[0].policy.wake_timeout == seconds


@pytest.mark.parametrize("bad", ["five", "0", "0s", "-5s", ".inf", ".nan", "true", "5 minutes"])
def test_a_bad_idle_after_names_file_key_and_expectation(bad: str) -> None:
    p = problem(f"apps: [{{name: a, hosts: [a.localhost], command: x, idle_after: {bad}}}]")
    assert p.startswith(f"{SRC}: apps[0].idle_after: expected a duration above zero like 30s "
                        "or 5m, or never, got ")


def test_the_documented_duration_error_reads_as_promised() -> None:
    p = problem({"apps": [APP, APP | {"name": "b", "hosts": ["b.localhost"]},
                          APP | {"name": "c", "hosts": ["c.localhost"], "idle_after": "five"}]})
    assert p == f"{SRC}: apps[2].idle_after: expected a duration above zero like 30s or 5m, " \
                "or never, got 'five'"


def test_stop_grace_and_drain_grace_may_be_zero_but_not_negative() -> None:
    s = parse({"drain_grace": 0, "defaults": {"stop_grace": "0s"}, "apps": [APP]})
    assert s.drain_grace == 0.0
    assert s.apps[0].stop_grace == 0.0
    assert problem({"drain_grace": "-1s"}) == \
        f"{SRC}: drain_grace: expected a duration like 30s or 5m, got '-1s'"


# -- every key's error ---------------------------------------------------------------------


@pytest.mark.parametrize(("key", "bad", "expected"), [
    ("idle_after", "soon", "a duration above zero like 30s or 5m, or never"),
    ("wake_timeout", 0, "a duration above zero like 30s or 5m"),
    ("max_held_requests", 0, "a whole number above 0"),
    ("max_held_requests", 1.5, "a whole number above 0"),
    ("max_held_requests", True, "a whole number above 0"),
    ("waiting_page", "yes please", "true or false"),
    ("release_concurrency", -2, "a whole number above 0"),
    ("ignored_paths", ["healthz"], "a list of paths starting with /"),
    ("ignored_paths", 5, "a list of paths starting with /"),
    ("probe_interval", "0ms", "a duration above zero like 5ms"),
    ("readiness_path", "ready", "a path starting with /"),
    ("stop_grace", "-3s", "a duration like 30s or 5m"),
])
def test_each_policy_key_error_in_an_app_and_in_defaults(
    key: str, bad: object, expected: str
) -> None:
    assert problem(with_app(**{key: bad})) == f"{SRC}: apps[0].{key}: expected {expected}, " \
                                              f"got {bad!r}"
    assert problem({"defaults": {key: bad}}) == f"{SRC}: defaults.{key}: expected {expected}, " \
                                               f"got {bad!r}"


@pytest.mark.parametrize(("key", "bad", "expected"), [
    ("max_head_bytes", 0, "a whole number above 0"),
    ("max_headers", "many", "a whole number above 0"),
    ("max_connections", -1, "a whole number above 0"),
    ("connect_timeout", "0s", "a duration above zero like 30s or 5m"),
    ("response_header_timeout", "forever", "a duration above zero like 30s or 5m"),
    ("client_idle_timeout", -5, "a duration above zero like 30s or 5m"),
    ("client_head_timeout", "1 s", "a duration above zero like 30s or 5m"),
    ("upstream_idle_timeout", [1], "a duration above zero like 30s or 5m"),
    ("upstream_pool_size", 2.5, "a whole number above 0"),
])
def test_each_limit_error(key: str, bad: object, expected: str) -> None:
    assert problem({"limits": {key: bad}}) == f"{SRC}: limits.{key}: expected {expected}, " \
                                              f"got {bad!r}"


@pytest.mark.parametrize(("doc", "message"), [
    ({"cluster": 5}, "cluster: expected a cluster name, got 5"),
    ({"cluster": "  "}, "cluster: expected a cluster name, got '  '"),
    ({"platform": "nomad"}, "platform: expected one of: local, kubernetes, got 'nomad'"),
    ({"listen": "8080"}, "listen: expected an address like 127.0.0.1:8080, got '8080'"),
    ({"listen": 8080}, "listen: expected an address like 127.0.0.1:8080, got 8080"),
    ({"admin_listen": "localhost:99999"},
     "admin_listen: expected an address like 127.0.0.1:9090, got 'localhost:99999'"),
    ({"log": {"format": "xml"}}, "log.format: expected json or console, got 'xml'"),
    ({"log": {"level": "loud"}}, "log.level: expected one of: debug, info, warning, error, "
                                 "got 'loud'"),
    ({"log": "json"}, "log: expected a mapping of keys to values, got 'json'"),
    ({"log": {"access": "off"}}, "log.access: expected true or false, got 'off'"),
    ({"limits": [1]}, "limits: expected a mapping of keys to values, got [1]"),
    ({"defaults": "5m"}, "defaults: expected a mapping of keys to values, got '5m'"),
    ({"trusted_proxies": "10.0.0.0/8"},
     "trusted_proxies: expected a list of addresses or CIDR ranges, got '10.0.0.0/8'"),
    ({"trusted_proxies": ["10.0.0.0/8", "not-an-ip"]},
     "trusted_proxies[1]: expected an address or CIDR range like 10.0.0.0/8, got 'not-an-ip'"),
    ({"sweep_interval": "0s"},
     "sweep_interval: expected a duration above zero like 30s or 5m, got '0s'"),
    ({"apps": "hello"}, "apps: expected a list of apps, got 'hello'"),
    ({"apps": {"name": "hello"}}, "apps: expected a list of apps, got {'name': 'hello'}"),
])
def test_top_level_errors(doc: dict[str, Any], message: str) -> None:
    assert problem(doc) == f"{SRC}: {message}"


# -- apps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": None}, "apps[0].name: expected a lowercase name of letters, digits and '-' "
                     "(at most 63), got None"),
    ({"name": "Hello"}, "apps[0].name: expected a lowercase name of letters, digits and '-' "
                        "(at most 63), got 'Hello'"),
    ({"name": "a" * 64}, None),
    ({"name": "-a"}, None),
    ({"name": "a_b"}, None),
    ({"hosts": None}, "apps[0].hosts: expected a non-empty list of host names or *.domain "
                      "wildcards, got None"),
    ({"hosts": []}, "apps[0].hosts: expected a non-empty list of host names or *.domain "
                    "wildcards, got []"),
    ({"hosts": "hello.localhost"}, "apps[0].hosts: expected a non-empty list of host names or "
                                   "*.domain wildcards, got 'hello.localhost'"),
    ({"hosts": ["ok.localhost", "hello.localhost:8080"]},
     "apps[0].hosts[1]: expected a host name like app.example.com or *.example.com, "
     "got 'hello.localhost:8080'"),
    ({"hosts": ["a.*.com"]}, "apps[0].hosts[0]: expected a host name like app.example.com or "
                             "*.example.com, got 'a.*.com'"),
    ({"hosts": ["*"]}, None),
    ({"hosts": ["a..b"]}, None),
    ({"hosts": [5]}, "apps[0].hosts[0]: expected a host name like app.example.com or "
                     "*.example.com, got 5"),
    ({"command": None}, "apps[0].command: expected a shell command that listens on $PORT, "
                        "got None"),
    ({"command": "  "}, "apps[0].command: expected a shell command that listens on $PORT, "
                        "got '  '"),
    ({"cwd": 5}, "apps[0].cwd: expected a directory path, got 5"),
    ({"env": ["A=1"]}, "apps[0].env: expected a mapping of keys to values, got ['A=1']"),
    ({"env": {"A": {"nested": 1}}}, "apps[0].env.A: expected a string value, got {'nested': 1}"),
    ({"env": {"A": None}}, "apps[0].env.A: expected a string value, got None"),
])
def test_app_errors(fields: dict[str, Any], message: str | None) -> None:
    p = problem(with_app(**fields))
    if message is None:
        key = next(iter(fields))
        assert p.startswith(f"{SRC}: apps[0].{key}"), p
    else:
        assert p == f"{SRC}: {message}"


def test_an_empty_app_entry_is_reported() -> None:
    assert problems("apps:\n  -\n  - {}\n") == [
        f"{SRC}: apps[0]: expected an app with at least name and hosts, got None",
        f"{SRC}: apps[1]: expected an app with at least name and hosts, got {{}}",
    ]


def test_an_app_that_is_not_a_mapping() -> None:
    assert problem({"apps": ["hello"]}) == \
        f"{SRC}: apps[0]: expected a mapping of keys to values, got 'hello'"


def test_hosts_are_normalized() -> None:
    [app] = parse(with_app(hosts=["Hello.LOCALHOST.", " *.Hello.localhost "])).apps
    assert app.policy.hosts == ("hello.localhost", "*.hello.localhost")


# -- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "path"), [
    ({"listn": "127.0.0.1:1"}, "listn"),
    ({"defaults": {"idle_afer": "5m"}}, "defaults.idle_afer"),
    ({"apps": [{**APP, "idle": "5m"}]}, "apps[0].idle"),
    ({"log": {"colour": True}}, "log.colour"),
    ({"limits": {"max_body": 5}}, "limits.max_body"),
])
def test_unknown_keys_are_named_with_what_is_allowed(doc: dict[str, Any], path: str) -> None:
    p = problem(doc)
    key = path.rsplit(".", 1)[-1]
    assert p.startswith(f"{SRC}: {path}: expected one of: ")
    assert p.endswith(f"got 'unknown key {key}'")


def test_unknown_top_level_key_lists_the_real_ones() -> None:
    p = problem({"idle_after": "5m"})
    for key in ("admin_listen", "apps", "cluster", "defaults", "listen", "platform"):
        assert key in p


# -- uniqueness ------------------------------------------------------------------------------


def test_duplicate_names_point_at_the_second_app() -> None:
    doc = {"apps": [APP, {**APP, "hosts": ["other.localhost"]}]}
    assert problem(doc) == f"{SRC}: apps[1].name: expected a name not already used by apps[0], " \
                           "got 'hello'"


def test_duplicate_names_are_found_after_an_invalid_app() -> None:
    doc = {"apps": [
        {"name": "Broken", "hosts": ["x.localhost"], "command": "x"},
        APP,
        {**APP, "hosts": ["other.localhost"]},
    ]}
    assert problems(doc)[1:] == [
        f"{SRC}: apps[2].name: expected a name not already used by apps[1], got 'hello'"]


@pytest.mark.parametrize(("first", "second"), [
    ("shared.localhost", "shared.localhost"),
    ("Shared.localhost", "shared.localhost."),
    ("*.review.localhost", "*.REVIEW.localhost"),
])
def test_a_host_claimed_by_two_apps(first: str, second: str) -> None:
    doc = {"apps": [
        {"name": "a", "hosts": ["a.localhost", first], "command": "x"},
        {"name": "b", "hosts": [second], "command": "x"},
    ]}
    assert problem(doc) == (f"{SRC}: apps[1].hosts[0]: expected a host not already claimed by "
                            f"apps[0] (a), got '{second.strip().lower().rstrip('.')}'")


def test_every_conflict_is_reported() -> None:
    doc = {"apps": [
        {"name": "a", "hosts": ["x.localhost", "y.localhost"], "command": "x"},
        {"name": "b", "hosts": ["y.localhost", "x.localhost"], "command": "x"},
    ]}
    assert [p.split(": ")[1] for p in problems(doc)] == ["apps[1].hosts[0]", "apps[1].hosts[1]"]


def test_what_is_not_a_conflict() -> None:
    s = parse({"apps": [
        {"name": "a", "hosts": ["a.localhost", "A.localhost"], "command": "x"},  # same app
        {"name": "b", "hosts": ["*.a.localhost"], "command": "x"},  # wildcard ≠ exact
        {"name": "c", "hosts": ["pr-1.a.localhost"], "command": "x"},  # exact beats wildcard
    ]})
    assert len(s.apps) == 3


# -- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "addr"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9090", ("::1", 9090)),
    ("localhost:0", ("localhost", 0)), ("0.0.0.0:65535", ("0.0.0.0", 65535)),
])
def test_parse_address(raw: str, addr: tuple[str, int]) -> None:
    assert parse_address(raw) == addr


@pytest.mark.parametrize("raw", ["8080", ":8080", "host:", "host:http", "host:65536", 8080, None])
def test_parse_address_refuses(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_address(raw)


@pytest.mark.parametrize(("listen", "admin"), [
    ("127.0.0.1:8080", "127.0.0.1:8080"),
    ("0.0.0.0:8080", "127.0.0.1:8080"),
    ("[::]:8080", "127.0.0.1:8080"),
])
def test_admin_listen_must_differ_from_listen(listen: str, admin: str) -> None:
    assert problem({"listen": listen, "admin_listen": admin}) == \
        f"{SRC}: admin_listen: expected an address other than listen's, got '{admin}'"


def test_admin_listen_default_colliding_is_explained() -> None:
    assert problem({"listen": "127.0.0.1:9090"}) == \
        f"{SRC}: admin_listen: expected an address other than listen's, " \
        "got '127.0.0.1:9090 (the default)'"


@pytest.mark.parametrize(("listen", "admin"), [
    ("127.0.0.1:0", "127.0.0.1:0"),  # port 0: the OS picks two ports
    ("127.0.0.1:8080", "127.0.0.2:8080"),
    ("0.0.0.0:8080", "[::1]:8080"),
])
def test_addresses_that_do_not_collide(listen: str, admin: str) -> None:
    parse({"listen": listen, "admin_listen": admin})


# -- the admin token -----------------------------------------------------------------------


def test_admin_token_inline() -> None:
    assert parse({"admin_token": "x" * 16}).admin_token == "x" * 16


@pytest.mark.parametrize("bad", ["short", 12345678901234567890, ""])
def test_a_bad_inline_token_is_never_echoed(bad: object) -> None:
    p = problem({"admin_token": bad})
    assert p == f"{SRC}: admin_token: expected a string of at least 16 characters, got '<hidden>'"
    assert str(bad) not in p or bad == ""


def test_admin_token_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "admin").write_text("  token-from-a-file-0123\n")
    s = parse({"admin_token_file": "secrets/admin"}, base_dir=tmp_path)
    assert s.admin_token == "token-from-a-file-0123"


def test_admin_token_file_absolute(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("absolute-path-token-0123")
    assert parse({"admin_token_file": str(token)}, base_dir=Path("/nonexistent")).admin_token \
        == "absolute-path-token-0123"


def test_admin_token_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert problem({"admin_token_file": "missing"}, base_dir=tmp_path) == \
        f"{SRC}: admin_token_file: expected a readable file, " \
        f"got '{missing}: No such file or directory'"
    (tmp_path / "short").write_text("tiny\n")
    assert problem({"admin_token_file": "short"}, base_dir=tmp_path) == \
        f"{SRC}: admin_token_file: expected a file holding a token of at least 16 characters, " \
        f"got '{tmp_path / 'short'}'"
    assert problem({"admin_token_file": 5}) == \
        f"{SRC}: admin_token_file: expected a file path, got 5"
    assert problem({"admin_token": "x" * 16, "admin_token_file": "t"}) == \
        f"{SRC}: admin_token_file: expected either admin_token or admin_token_file, not both"


# -- the file as a whole ---------------------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    found = problems({
        "platform": "nomad", "listen": "nowhere", "log": {"level": "loud"},
        "apps": [{"name": "A", "hosts": [], "command": "x", "idle_after": "soon"}],
    })
    assert len(found) == 6
    assert {p.split(": ")[1] for p in found} == {
        "platform", "listen", "log.level", "apps[0].name", "apps[0].hosts", "apps[0].idle_after"}


def test_config_error_lists_one_problem_a_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"platform": "nomad", "listen": "nowhere"})
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(str(info.value).splitlines()) == 2


def test_yaml_syntax_errors_say_where() -> None:
    p = problem("cluster: dev\napps: [\n  {name: a\n")
    assert p.startswith(f"{SRC}: line ")
    assert ", column " in p
    assert "expected valid YAML" in p


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n", "42\n"])
def test_the_top_level_must_be_a_mapping(text: str) -> None:
    assert problem(text).startswith(f"{SRC}: (top level): expected a mapping of keys to values")


def test_load_settings_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"cluster": "x", "apps": [APP]}))
    s = load_settings(path)
    assert s.source == str(path)
    assert s.cluster == "x"
    path.write_text("platform: nomad\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path))
    assert info.value.problems == [
        f"{path}: platform: expected one of: local, kubernetes, got 'nomad'"]


def test_load_settings_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "absent.yaml")
    assert info.value.problems == [
        f"{tmp_path / 'absent.yaml'}: expected a readable config file (No such file or directory)"]
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert info.value.problems[0].startswith(f"{tmp_path}: expected a readable config file")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"cluster: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_settings(binary)
    assert info.value.problems == [f"{binary}: expected UTF-8 text"]


# -- savings -------------------------------------------------------------------------------


def test_savings_cost_and_currency_are_read() -> None:
    s = parse({"savings": {"cost_per_replica_hour": 0.042, "currency": "EUR"}})
    assert s.savings == Savings(cost_per_replica_hour=0.042, currency="EUR")
    assert parse({"savings": {"cost_per_replica_hour": 2}}).savings.cost_per_replica_hour == 2.0


@pytest.mark.parametrize(("doc", "message"), [
    ({"cost_per_replica_hour": -1},
     "savings.cost_per_replica_hour: expected a cost of zero or more like 0.04, got -1"),
    ({"cost_per_replica_hour": "cheap"},
     "savings.cost_per_replica_hour: expected a cost of zero or more like 0.04, got 'cheap'"),
    ({"cost_per_replica_hour": True},
     "savings.cost_per_replica_hour: expected a cost of zero or more like 0.04, got True"),
    ({"cost_per_replica_hour": float("inf")},
     "savings.cost_per_replica_hour: expected a cost of zero or more like 0.04, got inf"),
    ({"currency": "euro"},
     "savings.currency: expected a three-letter currency code like USD or EUR, got 'euro'"),
    ({"price": 1}, "savings.price: expected one of: cost_per_replica_hour, currency, "
                   "got 'unknown key price'"),
])
def test_savings_errors_name_file_key_and_expectation(doc: dict[str, Any], message: str) -> None:
    assert problem({"savings": doc}) == f"{SRC}: {message}"


def test_savings_must_be_a_mapping() -> None:
    assert problem({"savings": 3}) == (
        f"{SRC}: savings: expected a mapping of keys to values, got 3")


def test_duplicates_are_reported_beside_the_other_problems_of_the_same_apps() -> None:
    doc = {"apps": [
        APP,
        {"name": "hello", "hosts": ["hello.localhost"], "idle_after": "five"},  # no command
        {"name": "hello", "hosts": ["third.localhost", 7], "command": "x"},  # a bad host
        {"name": "Bad Name", "hosts": ["third.localhost"], "command": "x"},
    ]}
    found = [p.split(": ")[1] for p in problems(doc)]
    for where in ("apps[1].command", "apps[1].idle_after", "apps[1].name", "apps[1].hosts[0]",
                  "apps[2].hosts[1]", "apps[2].name", "apps[3].name", "apps[3].hosts[0]"):
        assert where in found
    assert f"{SRC}: apps[3].hosts[0]: expected a host not already claimed by apps[2] (hello), " \
           "got 'third.localhost'" in problems(doc)


# -- pipelines (promote_to) -------------------------------------------------------------------


def _stage(name: str, **keys: object) -> dict[str, object]:
    return {"name": name, "hosts": [f"{name}.localhost"], "command": "x", "repo": "/srv/shop.git",
            **keys}


def test_promote_to_names_the_next_stage() -> None:
    s = parse({"apps": [_stage("shop", promote_to="shop-production"), _stage("shop-production")]})
    assert [a.policy.promote_to for a in s.apps] == ["shop-production", None]


@pytest.mark.parametrize(("apps", "expected"), [
    ([_stage("shop", promote_to="nope")],
     "apps[0].promote_to: expected the name of another app of this file built from source "
     "(with repo), got 'nope'"),
    ([_stage("shop", promote_to="shop")],
     "apps[0].promote_to: expected the name of another app of this file built from source "
     "(with repo), got 'shop'"),
    ([_stage("shop", promote_to="web"), {"name": "web", "hosts": ["w.localhost"], "command": "x"}],
     "apps[0].promote_to: expected the name of another app of this file built from source "
     "(with repo), got 'web'"),
    ([{"name": "web", "hosts": ["w.localhost"], "command": "x", "promote_to": "shop"},
      _stage("shop")],
     "apps[0].promote_to: expected to be set only with repo (only builds are promoted)"),
    ([_stage("shop", promote_to="Shop Prod")],
     "apps[0].promote_to: expected the name of the app that is its next stage, got 'Shop Prod'"),
])
def test_a_bad_promote_to_is_named(apps: list[dict[str, object]], expected: str) -> None:
    assert problems({"apps": apps}) == [f"{SRC}: {expected}"]


def test_promote_to_is_per_app_not_a_default() -> None:
    assert problems({"defaults": {"promote_to": "shop"}, "apps": [_stage("shop")]}) == [
        f"{SRC}: defaults.promote_to: expected to be set per app (each app has its own next "
        "stage)"]


def test_the_readmes_pipeline_example_is_a_valid_config() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Environments", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    s = parse_settings(example, "README.md")
    assert [(a.policy.name, a.policy.promote_to) for a in s.apps] == [
        ("shop", "shop-production"), ("shop-production", None)]

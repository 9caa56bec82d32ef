from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wakeproxy.model.routes import HostConflict, RouteTable, normalize_host


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Shop.Example.com", "shop.example.com"),
        ("shop.example.com:8080", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("SHOP.example.COM.:443", "shop.example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("  shop.example.com ", "shop.example.com"),
    ],
)
def test_host_normalization(raw, key):
    assert normalize_host(raw) == key


def table() -> RouteTable:
    return RouteTable.build([
        ("shop", ["shop.example.com", "*.shop.example.com"]),
        ("review", ["*.review.example.com"]),
        ("pr7", ["pr-7.review.example.com", "*.pr-7.review.example.com"]),
    ])


def test_exact_then_most_specific_wildcard():
    t = table()
    assert t.resolve("shop.example.com") == "shop"
    assert t.resolve("eu.shop.example.com") == "shop"
    assert t.resolve("a.b.shop.example.com") == "shop"
    assert t.resolve("pr-1.review.example.com") == "review"
    assert t.resolve("pr-7.review.example.com") == "pr7"
    assert t.resolve("x.pr-7.review.example.com") == "pr7"


def test_a_wildcard_does_not_match_its_bare_domain_or_other_domains():
    t = table()
    assert t.resolve("review.example.com") is None
    assert t.resolve("example.com") is None
    assert t.resolve("shop.example.org") is None
    assert t.resolve("evilshop.example.com") is None


def test_two_apps_claiming_one_host_is_refused():
    with pytest.raises(HostConflict, match=r"shop\.example\.com"):
        RouteTable.build([("a", ["shop.example.com"]), ("b", ["Shop.Example.com."])])


def test_routing_cost_does_not_depend_on_app_count():
    many = RouteTable.build((f"app{i}", [f"app{i}.example.com", f"*.app{i}.example.com"])
                            for i in range(10_000))
    assert len(many) == 20_000
    assert many.resolve("app9999.example.com") == "app9999"
    assert many.resolve("x.app42.example.com") == "app42"
    assert many.resolve("nobody.example.com") is None


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=5), st.lists(labels, min_size=1, max_size=3))
def test_any_subdomain_of_a_wildcard_routes_to_it(domain, prefix):
    base = ".".join(domain)
    t = RouteTable.build([("w", [f"*.{base}"])])
    assert t.resolve(".".join([*prefix, base])) == "w"
    assert t.resolve(base) is None


@given(st.lists(labels, min_size=1, max_size=5), st.integers(1, 65535), st.booleans())
def test_port_case_and_trailing_dot_never_change_the_route(domain, port, dot):
    host = ".".join(domain)
    t = RouteTable.build([("e", [host])])
    raw = host.upper() + ("." if dot else "") + f":{port}"
    assert t.resolve(normalize_host(raw)) == "e"

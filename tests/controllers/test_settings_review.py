"""The config keys of built apps and review apps: parsed, and every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from wakeproxy.settings import ConfigError, parse_settings


def parse(tmp: Path, text: str):  # type: ignore[no-untyped-def]
    return parse_settings(text, "cluster.yaml", base_dir=tmp)


def test_review_apps_and_a_built_app_are_read(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    s = parse(tmp_path, """
review_apps: {domain: Review.Localhost, webhook_secret_file: secret}
builds_dir: builds
apps:
  - name: shop
    hosts: [shop.localhost]
    repo: git/shop.git
    github_repo: acme/shop
    build: ./bin/build
    command: python3 app.py
""")
    assert s.review_apps is not None
    assert s.review_apps.domain == "review.localhost"
    assert s.review_apps.webhook_secret == b"s3cret"
    assert "s3cret" not in repr(s.review_apps)
    assert s.builds_dir == str((tmp_path / "builds").resolve())
    app = s.apps[0]
    assert app.repo == str((tmp_path / "git/shop.git").resolve())
    assert (app.github_repo, app.build) == ("acme/shop", "./bin/build")


def test_urls_are_kept_as_given(tmp_path: Path) -> None:
    s = parse(tmp_path, """
apps:
  - {name: a, hosts: [a.localhost], command: x, repo: "https://example.com/a.git"}
  - {name: b, hosts: [b.localhost], command: x, repo: "git@example.com:acme/b.git"}
""")
    assert [a.repo for a in s.apps] == ["https://example.com/a.git", "git@example.com:acme/b.git"]


def test_mistakes_name_the_file_the_key_and_the_expectation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse(tmp_path, """
review_apps: {domain: "*.bad", webhook_secret_file: missing}
apps:
  - name: shop
    hosts: [shop.localhost]
    command: x
    github_repo: not-a-repo
    build: ./b
  - {name: web, hosts: [web.localhost], command: x, repo: /srv/web.git, cwd: /srv}
""")
    problems = "\n".join(e.value.problems)
    assert "cluster.yaml: review_apps.domain: expected a domain like review.example.com" in problems
    assert "cluster.yaml: review_apps.webhook_secret_file: expected a readable file" in problems
    assert ("cluster.yaml: apps[0].github_repo: expected a GitHub repository like acme/shop"
            in problems)
    assert "cluster.yaml: apps[0].build: expected to be set only with repo" in problems
    assert "cluster.yaml: apps[1].cwd: expected no cwd with repo" in problems


def test_who_gets_built_and_what_review_apps_see_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    base = """
review_apps:
  domain: review.localhost
  webhook_secret_file: secret
{review}
apps:
  - name: shop
    hosts: [shop.localhost]
    repo: git/shop.git
    github_repo: acme/shop
    command: python3 app.py
    env: {{DB_PASSWORD: hunter2}}
    review_env: {{DB_PASSWORD: review-only}}
"""
    s = parse(tmp_path, base.format(review=""))
    assert s.review_apps is not None
    assert (s.review_apps.forks, s.review_apps.fork_label) == ("never", "safe-to-build")
    assert s.review_apps.trusted_associations == ("OWNER", "MEMBER", "COLLABORATOR")
    assert s.review_apps.max_per_repo == 10
    assert s.apps[0].review_env == {"DB_PASSWORD": "review-only"}
    s = parse(tmp_path, base.format(review="""  forks: label
  fork_label: ok-to-test
  trusted_authors: [Alice, "dependabot[bot]"]
  trusted_associations: [owner]
  max_per_repo: 3"""))
    assert s.review_apps is not None
    assert (s.review_apps.forks, s.review_apps.fork_label) == ("label", "ok-to-test")
    assert s.review_apps.trusted_authors == ("alice", "dependabot[bot]")
    assert (s.review_apps.trusted_associations, s.review_apps.max_per_repo) == (("OWNER",), 3)
    with pytest.raises(ConfigError) as e:
        parse(tmp_path, base.format(review="""  forks: sometimes
  trusted_associations: [FRIEND]
  max_per_repo: 0"""))
    text = str(e.value)
    assert "review_apps.forks: expected one of: never, label, always, got 'sometimes'" in text
    assert "review_apps.trusted_associations: expected a list of: OWNER" in text
    assert "review_apps.max_per_repo: expected a whole number above 0" in text
    with pytest.raises(ConfigError, match="run_as: expected a user of this host"):
        parse(tmp_path, "run_as: no-such-user-here\n")

"""README prerequisites, and the testcontainers path being reachable from make."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import broker_source

ROOT = Path(__file__).resolve().parents[2]


def test_readme_states_prerequisites_and_links_the_settings_reference() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"Python >= 3\.11", readme) and "`make`" in readme
    assert "root" in readme and "apt-get" in readme
    assert "docs/settings.md" in readme


def test_make_does_not_force_amqp_url_so_testcontainers_can_be_used() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?AMQP_URL\s*\??=", makefile, re.M)
    no = lambda: False  # noqa: E731
    yes = lambda: True  # noqa: E731
    assert broker_source({}, local_answers=no, docker=yes) == "testcontainers"
    assert broker_source({}, local_answers=yes, docker=yes) == "local"
    assert broker_source({"AMQP_URL": "amqp://x/"}, local_answers=no, docker=yes) == "env"
    assert broker_source({}, local_answers=no, docker=no) == "local"


def test_packages_are_typed_for_their_users() -> None:
    import tomllib

    for package in ("worker", "schemas"):
        assert (ROOT / package / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-data"] == {"worker": ["py.typed"],
                                                          "schemas": ["py.typed"]}

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


def test_readme_first_order_commands_parse_and_operations_doc_is_linked() -> None:
    import shlex

    from worker.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Your first order by hand", 1)[1].split("```sh", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    commands = [line.split("#")[0].strip().rstrip("&").strip() for line in block.splitlines()]
    commands = [c for c in commands if " orderworker " in f" {c}"]
    assert len(commands) == 6
    for command in commands:
        words = shlex.split(command)
        words = words[words.index("orderworker") + 1:]
        build_parser().parse_args(words)  # SystemExit on an argument the CLI does not take
    assert "docs/operations.md" in readme
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "orderworker reshard --to" in operations
    assert "tests/integration/test_shard_contract.py" in operations

"""`relayctl`, as the README names it, is a real command: an entry point, with the subcommands used."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from shared.ops import cli

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_installs_relayctl_from_the_cli_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["relayctl"] == "shared.ops.cli:main"
    assert "relayctl" not in (ROOT / "requirements.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "command",
    sorted(set(re.findall(r"relayctl ([a-z]+)", (ROOT / "README.md").read_text(encoding="utf-8")))),
)
def test_every_subcommand_the_readme_names_exists(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert "usage: relayctl" in capsys.readouterr().out

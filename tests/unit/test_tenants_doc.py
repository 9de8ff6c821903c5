"""docs/TENANTS.md's relayctl examples are commands relayctl takes: each parses and passes its
checks, so the only thing that fails is the call (nothing listens at the URL)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from local.standins.server import free_port
from shared.ops.cli import main as relayctl

DOC = Path(__file__).resolve().parents[2] / "docs" / "TENANTS.md"


def _commands() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("relayctl tenant "):
                found.append(shlex.split(line)[1:])
    return found


COMMANDS = _commands()


def test_the_doc_has_an_example_per_credential_kind() -> None:
    kinds = {argv[argv.index("--credential") + 1] for argv in COMMANDS if "--credential" in argv}
    assert kinds == {"managed_identity", "app_secret", "app_certificate", "federated_identity"}


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a[:3]) for a in COMMANDS])
def test_each_example_passes_relayctls_own_checks(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens: only the call itself may fail
    code = relayctl(["--url", nobody, "--key", "k", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("relayctl: cannot reach the relay"), err

"""The README's first hour, walked as a user would: its own "Try it locally" commands, run as printed.

The test takes the fenced `sh` blocks of the README's "Try it locally" section: the block with
`scripts/run` gives the environment the relay starts with (its `export` lines; the line setting
`WEBHOOK_SHARED_SECRET` is the optional one), the other block is run line by line in one bash
session, as a second shell would run it. The only change is the port: the relay listens on a free
one instead of 7071. A printed command that fails fails the test; a command whose comment says it
answers `409 not_configured` must answer exactly that. It runs with and without the shared secret.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from e2e.test_local_runner import local_runner

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTED_PORT_URL = "http://127.0.0.1:7071"
# What a user must be able to do from the README, each matched against the commands run.
MUST_COVER = {
    "send": r"python -m local\.send ",
    "probe": r"curl .*/api/wallarm/test",
    "status": r"shared\.ops\.cli status",
    "disable": r"shared\.ops\.cli disable",
    "enable": r"shared\.ops\.cli enable",
    "replay": r"shared\.ops\.cli replay",
    "reconcile": r"shared\.ops\.cli reconcile",
}
EXPECTED_REFUSAL = "409 not_configured"


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n#", start + len(heading) + 2)
    return text[start : end if end != -1 else len(text)]


def sh_blocks(text: str) -> list[list[str]]:
    """The lines of each ```sh block, without blanks and comment-only lines."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [[ln for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")] for b in blocks]


def walk_blocks() -> tuple[list[str], list[str]]:
    """(the start block's lines before scripts/run, the second shell's lines)."""
    blocks = sh_blocks(section(README.read_text(encoding="utf-8"), "### Try it locally"))
    starts = [b for b in blocks if any(ln.strip() == "scripts/run" for ln in b)]
    assert len(starts) == 1, "the Try it locally section must have one block that runs scripts/run"
    start = starts[0]
    exports = start[: next(i for i, ln in enumerate(start) if ln.strip() == "scripts/run")]
    commands = [ln for b in blocks if b is not start for ln in b]
    return exports, commands


def exported(lines: list[str]) -> dict[str, str]:
    """The variables the README's export lines set, evaluated by bash as a user's shell would."""
    out = subprocess.run(
        ["bash", "-c", "\n".join([*lines, "env -0"])],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    names = {n for ln in lines for n in re.findall(r"\b([A-Z][A-Z0-9_]*)=", ln)}
    return {k: v for k, v in env.items() if k in names}


def run_walk(commands: list[str], env: dict[str, str], url: str) -> list[tuple[str, int, str]]:
    """Run the lines in one bash session; (line, exit code, output) of each."""
    script = [*(f"export {k}={_quote(v)}" for k, v in env.items())]
    for i, line in enumerate(commands):
        line = line.replace(DOCUMENTED_PORT_URL, url)
        script += [f"echo '::start {i}'", line, f'echo "::rc {i} $?"']
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOGS_", "RELAY_", "WEBHOOK_"))}
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    results = []
    for i, line in enumerate(commands):
        match = re.search(rf"::start {i}\n(.*?)::rc {i} (\d+)", done.stdout, flags=re.S)
        assert match, f"the walk stopped before line {i} ({line!r}):\n{output}"
        results.append((line, int(match.group(2)), match.group(1)))
    return results


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def probe_status(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"{url}/api/wallarm/test", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_the_walk_covers_every_first_hour_command() -> None:
    _, commands = walk_blocks()
    missing = [n for n, pattern in MUST_COVER.items() if not any(re.search(pattern, c) for c in commands)]
    assert not missing, f"the README's Try it locally section lost: {missing}"


@pytest.mark.parametrize("with_secret", [True, False], ids=["with-secret", "without-secret"])
def test_every_printed_command_works(with_secret: bool) -> None:
    exports, commands = walk_blocks()
    if not with_secret:
        exports = [ln for ln in exports if "WEBHOOK_SHARED_SECRET" not in ln]
    env = exported(exports)
    assert ("WEBHOOK_SHARED_SECRET" in env) is with_secret
    # Empty when left out: a WEBHOOK_SHARED_SECRET of the test's own environment must not leak in.
    with local_runner(**{"WEBHOOK_SHARED_SECRET": "", **env}) as relay:
        results = run_walk(commands, env, relay["url"])
        failed = [
            (line, rc, out[-600:])
            for line, rc, out in results
            if (rc != 0 or "Traceback" in out) and EXPECTED_REFUSAL not in line
        ]
        assert not failed, failed
        for line, rc, out in results:
            if EXPECTED_REFUSAL in line:
                assert rc != 0 and "not_configured" in out, (line, rc, out)
        if with_secret:
            # The walk passed because it sends the secret: without the header the probe is refused.
            key = {"x-functions-key": env["RELAY_LOCAL_FUNCTION_KEY"]}
            assert probe_status(relay["url"], key) == 401

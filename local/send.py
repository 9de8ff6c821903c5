"""Post Wallarm sample notifications to a running relay: `python -m local.send URL [NAME ...]`.

The samples are the test fixtures (tests/fixtures/wallarm/, built from Wallarm's docs). With no
NAME it sends every one and prints each response. `--header 'Name: value'` (repeatable) adds a
header to each request, as Wallarm's integration form does: the function key
(`x-functions-key: <key>`) and, when WEBHOOK_SHARED_SECRET is set, the secret
(`X-Wallarm-Relay-Secret: <secret>`, or the name WEBHOOK_SECRET_HEADER gives).
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "wallarm"


def body_of(name: str) -> tuple[bytes, str]:
    doc = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    if doc.get("format") == "ndjson":
        lines = doc["body"] if isinstance(doc["body"], list) else [doc["body"]]
        return "\n".join(json.dumps(x) for x in lines).encode(), "application/x-ndjson"
    return json.dumps(doc["body"]).encode(), "application/json"


def send(url: str, name: str, headers: dict[str, str]) -> tuple[int, str]:
    data, content_type = body_of(name)
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def header(text: str) -> tuple[str, str]:
    """`Name: value` as argparse takes it; a clear error for anything else. An empty value
    (`"X-Wallarm-Relay-Secret: $UNSET"`) drops the header, as curl does, so one printed command
    works with and without a secret set."""
    name, colon, value = text.partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise argparse.ArgumentTypeError("write a header as 'Name: value', e.g. 'x-functions-key: <key>'")
    return name, value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("names", nargs="*")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=header,
        help="'Name: value', repeatable: the function key (x-functions-key) and the shared secret header",
    )
    args = parser.parse_args(argv)
    headers = {name: value for name, value in args.header if value}
    names = args.names or sorted(p.stem for p in FIXTURES.glob("*.json"))
    failed = 0
    for name in names:
        status, text = send(args.url, name, headers)
        failed += status >= 300
        print(f"{status}  {name:32}  {text[:160]}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""relayctl's one error type for a call that cannot be made as given."""

from __future__ import annotations


class UserError(Exception):
    """A call that cannot be made as given: what is wrong, and how to fix it."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

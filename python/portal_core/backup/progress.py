"""Progress statuses of the flows, spelled and ordered as the seed system reports them.

A progress callback receives ``{"status": <one of Status>, "done": bool}``: ``done`` is
True only on the final ``"Done"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

__all__ = [
    "BACKUP_ORDER",
    "EJECT_ORDER",
    "KEYGEN_ORDER",
    "RECOVERY_ORDER",
    "VERIFY_ORDER",
    "Checkpoint",
    "ProgressCallback",
    "Status",
]


class Status(StrEnum):
    READING = "Reading share"
    GENERATING = "Generating share"
    PARSING = "Parsing share"
    ENCRYPTING = "Encrypting share"
    DECRYPTING = "Decrypting share"
    STORING = "Storing share"
    RECOVERING_BACKUP = "Recovering backup share"
    RECOVERING_SIGNING = "Recovering signing share"
    DONE = "Done"


ProgressCallback = Callable[[dict[str, object]], None]
# Called with a step name at each step of a flow; tests raise from it to simulate a crash.
Checkpoint = Callable[[str], None]

S = Status
BACKUP_ORDER: tuple[Status, ...] = (
    S.READING,
    S.GENERATING,
    S.PARSING,
    S.ENCRYPTING,
    S.STORING,
    S.DONE,
)
RECOVERY_ORDER: tuple[Status, ...] = (
    S.READING,
    S.DECRYPTING,
    S.PARSING,
    S.GENERATING,
    S.STORING,
    S.DONE,
)
# Eject and the backup check are not in the seed system's list of orders; they follow recovery
# as far as they share its steps, and eject names the custodian's part "Recovering backup share".
EJECT_ORDER: tuple[Status, ...] = (S.READING, S.DECRYPTING, S.PARSING, S.RECOVERING_BACKUP, S.DONE)
VERIFY_ORDER: tuple[Status, ...] = (S.READING, S.DECRYPTING, S.PARSING, S.DONE)
KEYGEN_ORDER: tuple[Status, ...] = (S.GENERATING, S.STORING, S.DONE)


class Progress:
    """Reports the steps of one flow, in its order, to an optional callback."""

    def __init__(self, callback: ProgressCallback | None, order: Sequence[Status]) -> None:
        self._callback = callback
        self._order = tuple(order)
        self._next = 0

    def step(self, status: Status) -> None:
        # The orders are fixed by the seed system; a flow that skips or reorders one is a bug.
        expected = self._order[self._next] if self._next < len(self._order) else None
        if status is not expected:
            raise AssertionError(f"progress step {status!r} out of order (expected {expected!r})")
        self._next += 1
        if self._callback is not None:
            self._callback({"status": status.value, "done": status is Status.DONE})

    def done(self) -> None:
        self.step(Status.DONE)

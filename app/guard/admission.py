"""Admission control: a bound on the upload requests in flight, by count and by bytes.

Every ``POST`` (they all carry uploads) holds a slot from the moment its
headers arrive until its response is sent: its body, its decoded images and
its place in the queue for the models all live in that time. Beyond
``max_requests`` slots, or ``max_bytes`` of declared bodies (a body without a
length counts as the most its route accepts), a request is refused at once
with 503 and ``Retry-After``, before a byte of its body is read: under
overload the service answers quickly and its memory stays bounded, instead of
queueing without end. ``GET /readyz`` answers 503 while it is saturated.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Admission"]


@dataclass
class Admission:
    """Slots for in-flight upload requests (asyncio: used from the event loop only)."""

    max_requests: int
    max_bytes: int
    requests: int = 0
    bytes: int = 0

    def enter(self, size: int) -> str | None:
        """Take a slot for a body of ``size`` bytes; the reason (``requests``/``bytes``) when full."""
        if self.requests >= self.max_requests:
            return "requests"
        if self.requests > 0 and self.bytes + size > self.max_bytes:  # one request alone is always admitted
            return "bytes"
        self.requests += 1
        self.bytes += size
        return None

    def leave(self, size: int) -> None:
        self.requests -= 1
        self.bytes -= size

    @property
    def saturated(self) -> bool:
        return self.requests >= self.max_requests or self.bytes >= self.max_bytes

"""Graceful shutdown: on SIGTERM the server drains what it has accepted, then exits 0.

What happens after the first ``SIGTERM`` (or ``SIGINT``), in order:

1. at once, every request whose head is read from then on, ``/readyz`` included,
   is answered ``503 shutting-down`` with ``Retry-After`` and the connection
   closed (by :class:`app.guard.server.GuardedProtocol`, which reads
   :attr:`DrainState.draining`); ``/healthz`` and ``/metrics`` are still answered
   (a liveness probe must not kill a replica that is draining), each on a
   connection that closes after it; the answers in progress close theirs too;
2. the requests read before the signal are answered in full: their decodes, their
   place in the models' queue and their inference run as usual;
3. when the last of them is answered, the server stops taking new connections in two
   steps, because closing a listener resets every connection the kernel has completed on
   it and no one has accepted yet (to its client, a request sent and then lost): first the
   kernel stops completing handshakes (:func:`refuse_new_handshakes`; a client connecting
   from then on is refused once the listener is closed), and the handshakes already under
   way get ``HANDSHAKE_S`` to complete and be accepted; then the server accepts what the
   kernel has still queued and closes the listener in the same step, lets the event loop
   register the connections it accepted just before, gives connections that were just
   accepted a moment to send their request (answered 503 too), closes
   the rest, and runs the app's shutdown, which stops the torch worker and kills the
   decode processes; the process exits 0.

The steps after the drain take at most ``AFTER_DRAIN_S`` (7.72 s; measured: about 2 s
to the process's exit). A second signal, or ``drain_timeout_s`` after the first, ends the drain at once:
the requests still running are cancelled, their connections reset, the app's
shutdown runs all the same, and the process exits 1 (requests were cut short).

This is uvicorn's :class:`uvicorn.Server` with its signal handling and shutdown
replaced: uvicorn's own stops listening at the first signal (``/readyz`` can no
longer answer 503), and raises the signal again once done, so that the process
ends with 143 rather than 0. Only the single-process server drains like this; with
``WEB_CONCURRENCY`` > 1 the workers are uvicorn's own.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import struct
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.server import ServerState

__all__ = ["AFTER_DRAIN_S", "DrainState", "DrainingServer", "refuse_new_handshakes"]

logger = logging.getLogger("app.guard.server")

HANDSHAKE_S = 0.2  # once the kernel completes no new handshakes: how long those under way have (a round trip)
SETTLE_S = 0.02  # after the listener closes: connections the event loop accepted just before become connections
LINGER_S = 0.5  # then: how long a just-accepted connection has to send its request
CLOSE_WAIT_S = 2.0  # then: how long closing connections have to flush what they were sent
APP_SHUTDOWN_S = 5.0  # then: the most the app's own shutdown (torch worker, decode processes) may take
# the most from the end of the drain to the exit
AFTER_DRAIN_S = HANDSHAKE_S + SETTLE_S + LINGER_S + CLOSE_WAIT_S + APP_SHUTDOWN_S


class DrainState(ServerState):
    """uvicorn's state shared by every connection, plus whether the server is draining."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = False


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain of the module docstring.

    Args:
        config: uvicorn's configuration (``http`` should be :class:`app.guard.server.GuardedProtocol`).
        drain_timeout_s: the most seconds from the first signal to the end of the drain.
    """

    def __init__(self, config: uvicorn.Config, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.server_state: DrainState = DrainState()
        self.drain_timeout_s = drain_timeout_s
        self.signalled_at: float | None = None  # time.monotonic() of the first signal
        self.cut_short = 0  # requests cancelled by a second signal or the deadline
        self._accepted: set[asyncio.Task[None]] | None = None  # the requests read before the signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal handler (main thread, between two bytecodes): only flags, no logging, no loop calls."""
        if self.server_state.draining:
            self.force_exit = True
        else:
            self.signalled_at = time.monotonic()
            self.server_state.draining = True

    @property
    def exit_code(self) -> int:
        """0 after a complete drain (or none), 1 when requests were cut short."""
        return 1 if self.cut_short else 0

    async def on_tick(self, counter: int) -> bool:
        await super().on_tick(counter)  # the Date header, once a second
        if self.should_exit or self.force_exit:
            return True
        if not self.server_state.draining:
            return False
        if self._accepted is None:
            self._start_drain()
        assert self._accepted is not None and self.signalled_at is not None
        self._accepted = {task for task in self._accepted if not task.done()}
        if not self._accepted:
            logger.info("drained in %.2f s", time.monotonic() - self.signalled_at)
            return True
        if time.monotonic() - self.signalled_at > self.drain_timeout_s:
            logger.error(
                "drain deadline of %g s passed with %d requests open", self.drain_timeout_s, len(self._accepted)
            )
            self.force_exit = True
            return True
        return False

    def _start_drain(self) -> None:
        # every task now was read before the signal, or is a 503 / health answer read since (quick)
        self._accepted = set(self.server_state.tasks)
        for connection in self.server_state.connections:
            cycle = getattr(connection, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False  # the answer in progress closes its connection
        logger.info(
            "signal received: draining %d requests (deadline %g s); new requests get 503 shutting-down",
            len(self._accepted),
            self.drain_timeout_s,
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if not self.force_exit:
            # The listeners stay open (and the loop accepts from them) while the handshakes under way complete;
            # from the close on, nothing new can have been completed on them, so the close resets no one.
            stopped = [refuse_new_handshakes(listener) for server in self.servers for listener in server.sockets]
            if any(stopped):
                await self._wait(lambda: False, HANDSHAKE_S)
        pending = []
        for server in self.servers:
            if not self.force_exit:
                pending += [connection for listener in server.sockets for connection in _accept_pending(listener)]
            server.close()  # from here new connections are refused
        for sock in sockets or []:
            sock.close()
        if pending:
            logger.info("accepted %d queued connections as the listener closed", len(pending))
        # A connection the event loop accepted in its last turns before the close is not one of
        # server_state.connections yet: its protocol's connection_made is scheduled with call_soon
        # (uvloop: one turn later; asyncio: two, a task then a callback). Missed, it would be left open
        # until the process exits and its request read a reset. A few turns of the loop register them all.
        await asyncio.sleep(SETTLE_S)
        if not self.force_exit:
            await self._adopt(pending)
            await self._wait(lambda: not self.server_state.connections, LINGER_S)
        if not self.force_exit:
            for connection in list(self.server_state.connections):
                connection.shutdown()  # idle: closed; answering (a 503): closed after its answer
            await self._wait(lambda: not self.server_state.connections, CLOSE_WAIT_S)
        if self.force_exit:
            self._cut_short()
        for connection in list(self.server_state.connections):
            connection.transport.abort()  # a client that does not read what it was sent
        try:
            async with asyncio.timeout(APP_SHUTDOWN_S):
                await self.lifespan.shutdown()  # the torch worker stopped, the decode processes killed
        except TimeoutError:
            logger.error("the app's shutdown did not finish within %g s", APP_SHUTDOWN_S)

    async def _adopt(self, connections: list[socket.socket]) -> None:
        """Serve connections accepted as the listener closed (their requests are answered 503)."""
        config, loop = self.config, asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:  # what uvicorn's startup() hands the listener
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        for connection in connections:
            await loop.connect_accepted_socket(protocol, connection)

    def _cut_short(self) -> None:
        """Reset every connection, then cancel the requests (reset first: a cancelled request is never answered 500)."""
        self.cut_short = len(self.server_state.tasks)
        if self.cut_short:
            logger.error("cutting %d requests short (second signal or drain deadline)", self.cut_short)
        for connection in list(self.server_state.connections):
            connection.transport.abort()
        for task in self.server_state.tasks:
            task.cancel("the server is shutting down")

    async def _wait(self, done: Callable[[], bool], seconds: float) -> None:
        """Until ``done()`` is true, ``seconds`` pass, or a second signal comes."""
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline and not self.force_exit:
            await asyncio.sleep(0.02)


# A classic BPF program (struct sock_filter: code, jt, jf, k) run by the kernel on every segment that reaches
# the listening socket, the TCP header at offset 0: a segment whose flags byte (offset 13) has SYN (0x02)
# without ACK (0x10), the first of a handshake, is dropped (return 0); every other is kept whole.
_DROP_SYN = (
    (0x30, 0, 0, 13),  # ld  [13]           BPF_LD | BPF_B | BPF_ABS: the flags byte
    (0x54, 0, 0, 0x12),  # and #SYN|ACK      BPF_ALU | BPF_AND | BPF_K
    (0x15, 0, 1, 0x02),  # jeq #SYN, drop, keep  BPF_JMP | BPF_JEQ | BPF_K
    (0x06, 0, 0, 0),  # drop: ret #0        BPF_RET | BPF_K
    (0x06, 0, 0, 0xFFFFFFFF),  # keep: ret #-1
)
_SO_ATTACH_FILTER = 26  # Linux, asm-generic/socket.h


def refuse_new_handshakes(listener: Any) -> bool:
    """Make the kernel drop the SYNs that reach ``listener``, so that it completes no new connection on it.

    The connections it has completed stay queued, and those it is completing (SYN-ACK sent) still complete;
    an established connection is not touched. A client whose SYN is dropped sends it again (after 1 s on
    Linux) and is refused if the listener is closed by then. TCP on Linux only (a socket filter), and only
    where the kernel lets this process attach one (on some kernels that takes privilege: in this project's
    container it is refused, docs/deploy.md); False elsewhere, and the listener is left as it was.
    """
    if listener.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # a Unix socket: no handshake, and the filter would read its data
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in _DROP_SYN))
    fprog = struct.pack("HP", len(_DROP_SYN), ctypes.addressof(program))  # struct sock_fprog {len, *filter}
    try:
        with listener.dup() as sock:  # the same listening socket (asyncio hands out a wrapper)
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)  # the kernel copies the program
    except OSError as error:
        logger.warning("cannot stop new handshakes before closing the listener (%s); some may be reset", error)
        return False
    return True


def _accept_pending(listener: Any, most: int = 4096) -> list[socket.socket]:
    """Accept the connections the kernel has completed on ``listener`` and no one has accepted yet.

    Closing a listening socket resets them: a client that connected a moment before the server
    stopped listening (or while its event loop was busy) would read a reset instead of an answer.
    Accepted here, in the same step as the close, they are served like any other. Nothing is
    completed between this and the close once :func:`refuse_new_handshakes` has run (without it, the
    few microseconds between them were enough to lose 1 of 618 requests in one of the load test's runs:
    tests/app/test_shutdown.py, impatient clients reconnecting at once).
    """
    accepted: list[socket.socket] = []
    with listener.dup() as sock:  # the same listening socket (asyncio hands out a wrapper)
        sock.setblocking(False)
        while len(accepted) < most:
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            connection.setblocking(False)
            accepted.append(connection)
    return accepted

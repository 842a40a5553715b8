"""Decoding uploads in worker processes that can be stopped: a hard budget per image.

No upload may hold the service. Structural checks refuse what is plainly out of
proportion before decoding (:func:`app.pictures.imaging.open_image`), but a decoder's
work cannot be interrupted from another thread, so every decode runs in one of
a few small processes (``python -m app.pictures.sandbox``: NumPy and Pillow, never
torch) that the service ends when it overruns:

- **time**: each call has ``budget_s`` seconds for the whole exchange, from
  sending the upload to the last byte of the reply; past it the process is
  killed (which ends the thread blocked on its pipes), a fresh one takes its
  place, and the request gets a 422 ``decode-budget`` problem. The torch worker
  and the other decode processes never wait for it.
- **memory**: each process runs under an address-space limit (``RLIMIT_AS``);
  a decode that needs more fails with a 413.
- **disconnects**: a request cancelled while its decode runs (its client went
  away) kills that process too, so abandoned work stops at once.
- **waiting**: a call waits at most :data:`WAIT_BUDGETS` budgets for a free
  process (``GCNN_DECODE_BUDGET_S`` each); beyond, a 503 ``overloaded`` problem with
  ``Retry-After``, so that a queue of costly uploads cannot make a request
  wait for minutes.

The wire format is length-prefixed frames over the child's stdin and stdout:
a JSON header, then raw bytes (the upload in, a NumPy array's buffer out).
Nothing is unpickled on either side, so a decoder that a crafted file
subverted still cannot reach into the service.

A process that is lost before it received the upload (it died while idle, or
never started) is the service's fault, not the upload's: the call is retried
once on a fresh process. Only a process that dies *with* the upload makes a
422 ("the image crashed the decoder"). Closing the pool (the service stops) ends
the calls in flight with a 503 ``overloaded`` ("retry"), starts no process, and
leaves none running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Concatenate, ParamSpec

import numpy as np

from app import errors
from app.pictures.decoding import DECODE_FUNCTIONS

__all__ = ["DecodePool"]

logger = logging.getLogger(__name__)
P = ParamSpec("P")
CHANNELS_MAX = 4  # a decode returns at most max_pixels x 4 channels of uint8 (or a 28x28 float32 input)
_REPLY_DTYPES = {"|u1", "<f4"}  # what app.pictures.decoding returns: 8-bit pixels, float32 model inputs
WAIT_BUDGETS = 4  # how long a call may wait for a free process, in decode budgets
STARTUP_TIMEOUT_S = 30.0  # a decode process imports NumPy and Pillow: ~0.3 s on an idle machine
DECODER = (sys.executable, "-m", "app.pictures.sandbox")  # the decode process's command, before its memory limit

# The errors a decode may answer with, by name: anything else is a bug (500).
_ANSWERABLE: tuple[type[errors.InputError], ...] = (
    errors.CorruptImageError,
    errors.EmptyUploadError,
    errors.ImageTooLargeError,
    errors.NoInkError,
    errors.NotAnImageError,
)
_INPUT_ERRORS = {cls.__name__: cls for cls in _ANSWERABLE}


class _LostError(Exception):
    """The decode process was gone (or never became ready) before it received the upload."""


class _Process:
    """One decode process and the parent's ends of its pipes."""

    def __init__(self, memory_bytes: int, command: Sequence[str] = DECODER) -> None:
        self.process = subprocess.Popen(
            [*command, str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.started = False

    def wait_started(self) -> None:
        """Wait for the process's "ready" frame (blocking: run it on a thread): its imports are not an upload's cost.

        Raises:
            _LostError: it was not ready within :data:`STARTUP_TIMEOUT_S`, or it died first.
        """
        try:
            if not self.replies.poll(STARTUP_TIMEOUT_S):
                raise _LostError(f"not ready within {STARTUP_TIMEOUT_S:g} s")
            self.replies.recv_bytes(16)
        except (EOFError, OSError) as error:
            raise _LostError(repr(error)) from error
        self.started = True

    def exchange(self, call: dict[str, Any], data: bytes, reply_limit: int) -> tuple[dict, bytes]:
        """Send one call and read its answer (blocking: run it on a thread, under a deadline that kills
        the process, which ends a blocked read or write with EOFError or OSError).

        Raises:
            _LostError: the process was not there to take the call; EOFError, OSError: it died with it.
        """
        try:
            if self.process.poll() is not None:
                raise _LostError(f"exited with {self.process.returncode} while idle")
            self.requests.send_bytes(json.dumps(call).encode())
        except (EOFError, OSError) as error:
            raise _LostError(repr(error)) from error
        self.requests.send_bytes(data)
        return json.loads(self.replies.recv_bytes(1 << 16)), self.replies.recv_bytes(reply_limit)

    def kill(self, exchange: Future[Any] | None = None) -> None:
        """End the process; its pipes are closed once ``exchange`` (a call still reading them on a
        thread) has seen the end, so that no thread reads a descriptor reused by a new process."""
        self.process.kill()
        try:
            self.process.wait(timeout=1)  # SIGKILL: at once, unless the kernel is swapping
        except subprocess.TimeoutExpired:
            logger.warning("decode process %d did not exit within 1 s of SIGKILL", self.process.pid)
        if exchange is None or exchange.done():
            self._close()
        else:
            exchange.add_done_callback(lambda _: self._close())

    def _close(self) -> None:
        self.requests.close()
        self.replies.close()


class DecodePool:
    """``processes`` decode processes, each call limited to ``budget_s`` seconds and ``memory_bytes``.

    ``command`` starts a decode process (its memory limit is appended): ``python -m app.pictures.sandbox``,
    or in tests a stand-in that speaks the same protocol.
    """

    def __init__(
        self,
        processes: int,
        budget_s: float,
        memory_bytes: int,
        on_overrun: Callable[[], object] | None = None,
        *,
        command: Sequence[str] = DECODER,
    ) -> None:
        if processes < 1 or budget_s <= 0 or memory_bytes <= 0:
            raise ValueError(f"invalid decode pool: {processes} processes, {budget_s} s, {memory_bytes} bytes")
        self.processes, self.budget_s, self.memory_bytes = processes, budget_s, memory_bytes
        self._command = tuple(command)
        self._idle: asyncio.Queue[_Process] = asyncio.Queue()
        self._all: set[_Process] = set()
        self._calls: dict[_Process, Future[Any]] = {}  # the work on a thread of each process taken by a call
        self._threads = ThreadPoolExecutor(max_workers=processes, thread_name_prefix="decode")
        self._closed = False
        self.overruns = 0  # calls stopped at the budget, abandoned by their client, or crashed
        self._on_overrun = on_overrun

    def start(self) -> None:
        """Start the processes (they import NumPy and Pillow: ~0.3 s, in parallel)."""
        for _ in range(self.processes):
            self._add(_Process(self.memory_bytes, self._command))

    def close(self) -> None:
        """Stop every process; the calls in flight end with :class:`~app.errors.ServiceOverloadedError`."""
        self._closed = True
        while not self._idle.empty():
            self._idle.get_nowait()
        for process in self._all:
            process.kill(self._calls.get(process))
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        """Processes decoding right now."""
        return len(self._all) - self._idle.qsize()

    async def run(
        self,
        function: Callable[Concatenate[bytes, int, P], np.ndarray],
        data: bytes,
        max_pixels: int,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> np.ndarray:
        """``function(data, max_pixels, *args, **kwargs)`` in a decode process: its array, or its input error.

        ``function`` is one of :data:`app.pictures.decoding.DECODE_FUNCTIONS` (the process runs its own copy, found
        by name); its other arguments travel as JSON.

        Raises:
            ValueError: ``function`` is not one of them.
            DecodeBudgetError: past ``budget_s``; CorruptImageError: the decoder crashed;
            ServiceOverloadedError: no process was free within ``WAIT_BUDGETS * budget_s``, or the pool closed.
        """
        if function not in DECODE_FUNCTIONS:
            raise ValueError(f"{function!r} is not one of app.pictures.decoding.DECODE_FUNCTIONS")
        call = {"function": function.__name__, "args": [max_pixels, *args], "kwargs": kwargs}
        reply_limit = max(CHANNELS_MAX * max_pixels, 1 << 16)  # a longer reply is not an image array
        for attempt in (1, 2):
            process = await self._free_process()
            try:
                header, payload = await self._exchange(process, call, data, reply_limit)
                break
            except _LostError as error:  # not the upload's doing: once more, on a fresh process
                logger.warning("decode process lost before the call (attempt %d): %s", attempt, error)
                self._replace(process, overrun=False)
                if attempt == 2:
                    raise RuntimeError(f"no decode process could take the call: {error}") from None
            except asyncio.CancelledError:  # the client went away: the process is spent
                self._replace(process)
                raise
            except Exception as error:  # past the budget, or crashed: the process is spent
                self._replace(process)
                raise self._failure(error) from None
        if "error" in header:
            self._release(process)
            error_class = _INPUT_ERRORS.get(header["error"])
            if error_class is None:
                raise RuntimeError(f"decode process failed: {header['message']}")
            raise error_class(header["message"])
        try:  # a decoder that a crafted file subverted may answer anything: check before use
            if header.get("dtype") not in _REPLY_DTYPES:
                raise ValueError(f"unexpected dtype {header.get('dtype')!r}")
            array = np.frombuffer(payload, dtype=header["dtype"]).reshape(header["shape"])
        except (KeyError, TypeError, ValueError) as error:
            self._replace(process)
            logger.warning("decode process answered nonsense: %s", error)
            raise errors.CorruptImageError("the image crashed the decoder; it is damaged or crafted") from None
        self._release(process)
        return array

    async def _exchange(
        self, process: _Process, call: dict[str, Any], data: bytes, reply_limit: int
    ) -> tuple[dict, bytes]:
        """One call on ``process``, its pipes worked on a thread (they block), never on the event loop.

        The first call waits for the process to have started; then the budget bounds the whole
        exchange: TimeoutError past it (the caller kills the process, which frees the thread).
        """
        if not process.started:
            self._calls[process] = self._threads.submit(process.wait_started)
            await asyncio.wrap_future(self._calls[process])
        self._calls[process] = self._threads.submit(process.exchange, call, data, reply_limit)
        return await asyncio.wait_for(asyncio.wrap_future(self._calls[process]), self.budget_s)

    async def _free_process(self) -> _Process:
        if self._closed:
            raise self._stopping()
        wait_s = WAIT_BUDGETS * self.budget_s
        try:
            return await asyncio.wait_for(self._idle.get(), wait_s)
        except TimeoutError:
            raise errors.ServiceOverloadedError(
                f"every decode process stayed busy for {wait_s:g} s; retry in a second"
            ) from None

    def _failure(self, error: Exception) -> Exception:
        """What a call whose process was spent by ``error`` answers."""
        if self._closed:
            return self._stopping()
        if isinstance(error, TimeoutError):  # the budget (an OSError too: before the crash below)
            logger.warning("decode stopped at its budget of %g s", self.budget_s)
            return errors.DecodeBudgetError(
                f"decoding this image took longer than the budget of {self.budget_s:g} s; "
                "send a smaller or simpler file (a plain PNG or a baseline JPEG)"
            )
        if isinstance(error, EOFError | OSError):
            logger.warning("decode process died: %r", error)
            return errors.CorruptImageError("the image crashed the decoder; it is damaged or crafted")
        return error

    @staticmethod
    def _stopping() -> errors.ServiceOverloadedError:
        return errors.ServiceOverloadedError("the service is stopping; retry in a second")

    def _add(self, process: _Process) -> None:
        self._all.add(process)
        self._idle.put_nowait(process)

    def _release(self, process: _Process) -> None:
        """A call is done with ``process``, which is idle again (unless the pool closed meanwhile)."""
        self._calls.pop(process, None)
        if process in self._all:
            self._idle.put_nowait(process)

    def _replace(self, process: _Process, *, overrun: bool = True) -> None:
        if overrun and not self._closed:  # a call ended by the service stopping is not the upload's overrun
            self.overruns += 1
            if self._on_overrun is not None:
                self._on_overrun()
        self._all.discard(process)
        process.kill(self._calls.pop(process, None))
        self._spawn()

    def _spawn(self) -> None:
        """A fresh process in the pool (none once it is closed); if one cannot be started now (out of
        processes or descriptors), try again in a second rather than lose the pool's capacity."""
        if self._closed:
            return
        try:
            self._add(_Process(self.memory_bytes, self._command))
        except OSError as error:
            logger.error("cannot start a decode process (%r); retrying in 1 s", error)
            asyncio.get_running_loop().call_later(1.0, self._spawn)


def _serve(memory_bytes: int) -> None:
    """The decode process: answer each request frame pair until stdin closes."""
    import resource
    import traceback

    from PIL import Image

    Image.init()  # import every format plugin now, not during the first upload (0.1-0.3 s)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    functions: dict[str, Callable[..., np.ndarray]] = {function.__name__: function for function in DECODE_FUNCTIONS}
    # the reply channel is a private copy of stdout; descriptor 1 then points at stderr, so that
    # nothing a library prints (from Python or from C) can corrupt the frames
    requests, replies = Connection(0, writable=False), Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    replies.send_bytes(b"ready")
    while True:
        try:
            request, data = json.loads(requests.recv_bytes(1 << 16)), requests.recv_bytes()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            function = functions[request["function"]]
            result = np.ascontiguousarray(function(data, *request["args"], **request["kwargs"]))
            header: dict[str, Any] = {"dtype": result.dtype.str, "shape": list(result.shape)}
            payload = result.tobytes()
        except MemoryError:
            message = "decoding this image needs more memory than one upload may use"
            header, payload = {"error": "ImageTooLargeError", "message": message}, b""
        except Exception as error:
            message = str(error) if isinstance(error, errors.InputError) else traceback.format_exc()
            header, payload = {"error": type(error).__name__, "message": message}, b""
        replies.send_bytes(json.dumps(header).encode())
        replies.send_bytes(payload)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))

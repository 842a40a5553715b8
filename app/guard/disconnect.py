"""Stop a request's work when its client goes away.

Starlette keeps running a route after its client disconnects. For the heavy
part of a request (decoding, waiting for the models) that is work nobody will
read: :func:`unless_disconnected` runs it beside a watch on the connection and
cancels it when the client leaves first. Cancelling stops it where it is: a
decode process is killed (:mod:`app.pictures.sandbox`), a request still queued for the
models leaves the queue (:mod:`app.answering.inference`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

__all__ = ["unless_disconnected"]

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then ``work`` is cancelled and
    :class:`starlette.requests.ClientDisconnect` raised. Call it once the body has been read."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watch.cancel()
        raise
    if task in done:
        watch.cancel()
        return task.result()
    if watch.exception() is not None:  # the connection cannot be watched: just wait for the work
        return await task
    task.cancel()
    raise ClientDisconnect()


async def _disconnected(request: Request) -> None:
    """Returns when the server reports the client gone (after the body, only that message comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass

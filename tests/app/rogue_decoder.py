"""A decode process that speaks :mod:`app.pictures.sandbox`'s wire protocol and misbehaves as each call asks.

Run by a :class:`app.pictures.sandbox.DecodePool` built with ``command=ROGUE_DECODER`` in place of
``python -m app.pictures.sandbox``. The call's first argument after ``max_pixels`` (the preprocessing
mode of ``model_input``) says what this process does with it, as a decoder subverted by a crafted
file could:

- ``answer``: reads the upload and answers a ``(28, 28)`` float32 array of zeros, as a real decode does;
- ``reply``: reads the upload and answers the reply header and payload given as the next two
  arguments (a JSON header, the payload in hex);
- ``never-reads``: stalls before reading the upload (the service's write blocks once the pipe is full);
- ``after-header``: reads the upload, sends the reply's header, then stalls;
- ``mid-payload``: reads the upload, sends the header and half of the payload's frame, then stalls.

A stall is a sleep of an hour: only the pool's budget, which kills the process, ends it.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from multiprocessing.connection import Connection

import numpy as np

ROGUE_DECODER = (sys.executable, os.path.abspath(__file__))
STALL_S = 3600.0


def serve() -> None:
    requests, replies = Connection(0, writable=False), Connection(os.dup(1), readable=False)
    replies.send_bytes(b"ready")
    while True:
        try:
            request = json.loads(requests.recv_bytes(1 << 16))
        except (EOFError, OSError):
            return
        behaviour, *details = request["args"][1:]
        if behaviour == "never-reads":
            time.sleep(STALL_S)
        requests.recv_bytes()
        header, payload = json.dumps({"dtype": "<f4", "shape": [28, 28]}), np.zeros((28, 28), np.float32).tobytes()
        if behaviour == "reply":
            header, payload = details[0], bytes.fromhex(details[1])
        replies.send_bytes(header.encode())
        if behaviour == "after-header":
            time.sleep(STALL_S)
        if behaviour == "mid-payload":
            os.write(replies.fileno(), struct.pack("!i", len(payload)) + payload[: len(payload) // 2])
            time.sleep(STALL_S)
        replies.send_bytes(payload)


if __name__ == "__main__":
    serve()

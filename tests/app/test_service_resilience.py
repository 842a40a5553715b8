"""The resilience fixes, one by one, through the app in process (the attack suite replays them over real HTTP)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, mnist_like, png_of, upload
from fastapi.testclient import TestClient
from PIL import Image
from rogue_decoder import ROGUE_DECODER
from starlette.requests import ClientDisconnect

from app.dependencies import get_engine
from app.errors import (
    CorruptImageError,
    DecodeBudgetError,
    ImageTooLargeError,
    NotAnImageError,
    ServiceOverloadedError,
)
from app.guard.admission import Admission
from app.guard.disconnect import unless_disconnected
from app.logs import RequestIdFilter
from app.main import create_app
from app.pictures.decoding import display_pixels, model_input
from app.pictures.imaging import MAX_JPEG_SCANS, open_image
from app.pictures.sandbox import DecodePool
from app.pictures.uploads import safe_filename
from app.settings import Settings, get_settings

STARTUP_S = 1.0  # a decode process's start (imports), generously on a loaded machine
SURROGATE_PART = (
    b'--B\r\nContent-Disposition: form-data; name="%s"; filename="+2AA-.png"\r\nContent-Type: %s\r\n\r\n%s\r\n--B--\r\n'
)
UTF7_FORM = {"content-type": "multipart/form-data; boundary=B; charset=utf-7"}


def surrogate_body(data: bytes, field: bytes = b"file", media_type: bytes = b"image/png") -> bytes:
    """One part whose file name, decoded with the form's charset utf-7, is a lone surrogate."""
    return SURROGATE_PART % (field, media_type, data)


# -- file names ------------------------------------------------------------------------------------
def test_safe_filename_drops_surrogates() -> None:
    assert safe_filename("\ud800.png") == ".png"
    assert safe_filename("a\udfffb.png") == "ab.png"
    assert safe_filename("\ud800") is None
    json.dumps(safe_filename("x\ud800y"), ensure_ascii=False).encode()  # encodable now


@pytest.mark.parametrize(
    ("path", "field", "data", "media_type", "status"),
    [
        ("/classify", b"file", png_of(3), b"image/png", 200),  # the name is echoed in the answer
        ("/orbit", b"file", png_of(3), b"image/png", 200),
        ("/rotate", b"file", png_of(3), b"image/png", 200),  # ... and in Content-Disposition
        ("/classify/batch", b"files", png_of(3), b"image/png", 200),
        ("/classify", b"file", png_of(3), b"application/pdf", 415),  # the 415 message names the file
        ("/classify/batch", b"files", b"not an image", b"image/png", 422),
    ],
)
def test_surrogate_file_names_are_answered_on_every_endpoint(
    client: TestClient, path: str, field: bytes, data: bytes, media_type: bytes, status: int
) -> None:
    response = client.post(path, content=surrogate_body(data, field, media_type), headers=UTF7_FORM)
    assert response.status_code == status, response.text
    if path == "/rotate":
        assert response.headers["content-disposition"].startswith('inline; filename="image-rotated.png"')


def test_surrogate_file_name_in_a_batch_error_message(client: TestClient) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="files"; filename="ok.png"\r\nContent-Type: image/png\r\n\r\n'
        + png_of(1)
        + b'\r\n--B\r\nContent-Disposition: form-data; name="files"; filename="+2AA-.png"\r\n'
        b"Content-Type: image/png\r\n\r\nnot an image\r\n--B--\r\n"
    )
    response = client.post("/classify/batch", content=body, headers=UTF7_FORM)
    assert response.status_code == 422 and "file 1 (.png)" in response.json()["detail"]


# -- structural checks and decode budgets --------------------------------------------------------------
def progressive_jpeg(extra_scans: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    table = bytes([0xFF, 0xC4, 0x00, 0x14, 0x11, 0x01]) + bytes(16)
    first_scan = data.index(b"\xff\xda")
    body = data[:first_scan] + table + data[first_scan:-2]
    return body + bytes.fromhex("ffda0008010101013f00") * extra_scans + b"\xff\xd9"


def test_jpeg_with_too_many_scans_is_refused_before_decoding() -> None:
    open_image(progressive_jpeg(MAX_JPEG_SCANS - 10), 10**6)  # within the limit
    with pytest.raises(CorruptImageError, match="scans"):
        open_image(progressive_jpeg(MAX_JPEG_SCANS + 1), 10**6)


def test_decode_budget_ends_a_slow_decode_through_the_api(make_client: Callable[..., TestClient]) -> None:
    client = make_client(decode_budget_s=0.02)
    slow = encode(np.random.default_rng(0).integers(0, 256, (2000, 2000), dtype=np.uint8))  # ~4 MB of noise
    response = client.post("/classify", files=upload(slow))
    assert response.status_code == 422 and response.json()["type"].endswith(":decode-budget")
    assert client.post("/classify", files=upload(png_of(7))).status_code == 200


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def big_png(side: int, mode: str = "L") -> bytes:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, len(mode)), dtype=np.uint8).squeeze()
    return encode(Image.fromarray(pixels, mode), "PNG", compress_level=1)


def test_decode_pool_kills_and_replaces_a_process_past_its_budget() -> None:
    async def scenario() -> tuple[int, tuple[int, ...]]:
        pool = DecodePool(1, 0.1, 1 << 30)  # a 2000x2000 noise PNG takes longer; a 28x28 digit 1-2 ms
        pool.start()
        try:
            with pytest.raises(DecodeBudgetError):
                await pool.run(model_input, big_png(2000), 10**8, "auto")
            shape = (await pool.run(model_input, png_of(7), 10**8, "auto")).shape
            return pool.overruns, shape
        finally:
            pool.close()

    assert run(scenario()) == (1, (28, 28))


def rogue_decoders() -> list[int]:
    """The process ids of this test process's live children that run ``rogue_decoder.py``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == os.getpid() and state != "Z" and ROGUE_DECODER[1].encode() in command:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stall", ["never-reads", "after-header", "mid-payload"])
def test_the_decode_budget_bounds_the_whole_exchange_not_just_the_first_reply_byte(stall: str) -> None:
    budget_s = 0.5

    async def scenario() -> tuple[float, tuple[int, ...], int, int, int]:
        pool = DecodePool(1, budget_s, 1 << 30, command=ROGUE_DECODER)
        pool.start()
        try:
            await pool.run(model_input, b"digit", 10**8, "answer")  # started: the budget alone counts below
            upload, started = bytes(1 << 20), time.monotonic()  # more than a pipe holds: unread, it blocks the write
            with pytest.raises(DecodeBudgetError):
                await asyncio.wait_for(pool.run(model_input, upload, 10**8, stall), 10 * budget_s)
            seconds = time.monotonic() - started
            # one process and one thread: this call is answered only if the stalled ones were freed
            shape = (await asyncio.wait_for(pool.run(model_input, b"digit", 10**8, "answer"), 10.0)).shape
            return seconds, shape, pool.overruns, pool.busy, len(rogue_decoders())
        finally:
            pool.close()

    seconds, shape, overruns, busy, running = run(scenario())  # type: ignore[misc]
    assert budget_s <= seconds < budget_s + STARTUP_S
    assert (shape, overruns, busy, running) == ((28, 28), 1, 0, 1)
    assert rogue_decoders() == []


@dataclass(frozen=True)
class ClosedMidCall:
    """What a pool closed while a call was in flight left behind."""

    error: BaseException
    busy_after_close: int
    busy_after_call: int
    running_after_call: list[int]


@pytest.fixture(scope="module")
def closed_mid_call() -> ClosedMidCall:
    async def scenario() -> ClosedMidCall:
        pool = DecodePool(2, 30.0, 1 << 30, command=ROGUE_DECODER)
        pool.start()
        call = asyncio.ensure_future(pool.run(model_input, b"digit", 10**8, "after-header"))
        while pool.busy < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(STARTUP_S)  # the header is sent, the payload never comes
        pool.close()
        busy_after_close = pool.busy
        error = (await asyncio.gather(asyncio.wait_for(call, 10.0), return_exceptions=True))[0]
        await asyncio.sleep(0.2)  # a process started after close would have started by now
        return ClosedMidCall(error, busy_after_close, pool.busy, rogue_decoders())

    try:
        return run(scenario())  # type: ignore[return-value]
    finally:
        for pid in rogue_decoders():  # what the pool left running: its own children, ended by their ids
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_closing_the_pool_mid_call_does_not_blame_the_upload(closed_mid_call: ClosedMidCall) -> None:
    assert isinstance(closed_mid_call.error, ServiceOverloadedError), repr(closed_mid_call.error)
    assert "stopping" in str(closed_mid_call.error)


def test_closing_the_pool_mid_call_leaves_no_decode_process_running(closed_mid_call: ClosedMidCall) -> None:
    assert closed_mid_call.running_after_call == []


def test_closing_the_pool_mid_call_leaves_none_busy(closed_mid_call: ClosedMidCall) -> None:
    assert (closed_mid_call.busy_after_close, closed_mid_call.busy_after_call) == (0, 0)


def test_decode_pool_stops_the_work_of_a_cancelled_call() -> None:
    async def scenario() -> int:
        pool = DecodePool(1, 30.0, 1 << 30)
        pool.start()
        try:
            call = asyncio.ensure_future(pool.run(model_input, big_png(3000), 10**8, "auto"))
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert (await pool.run(model_input, png_of(1), 10**8, "auto")).shape == (28, 28)
            return pool.overruns
        finally:
            pool.close()

    assert run(scenario()) == 1


def test_a_decode_process_that_died_while_idle_is_replaced_without_blaming_the_upload() -> None:
    async def scenario() -> tuple[tuple[int, ...], int]:
        pool = DecodePool(1, 5.0, 1 << 30)
        pool.start()
        try:
            assert (await pool.run(model_input, png_of(3), 10**8, "auto")).shape == (28, 28)
            (process,) = pool._all
            process.process.kill()  # as the kernel's OOM killer would, between two uploads
            process.process.wait()
            shape = (await pool.run(model_input, png_of(7), 10**8, "auto")).shape  # used to be a 422
            return shape, pool.overruns
        finally:
            pool.close()

    assert run(scenario()) == ((28, 28), 0)


def test_a_queue_of_costly_decodes_is_shed_rather_than_waited_for() -> None:
    costly = big_png(3000)

    async def scenario() -> tuple[list[str], float]:
        pool = DecodePool(1, 0.05, 1 << 30)  # a 9-megapixel noise PNG takes longer; a call waits at most 0.2 s
        pool.start()
        try:
            started = time.monotonic()
            calls = [pool.run(model_input, costly, 10**8, "auto") for _ in range(8)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            return sorted({type(result).__name__ for result in results}), time.monotonic() - started
        finally:
            pool.close()

    kinds, seconds = run(scenario())  # type: ignore[misc]
    assert "ServiceOverloadedError" in kinds and set(kinds) <= {"DecodeBudgetError", "ServiceOverloadedError"}
    assert seconds < 8 * (0.05 + STARTUP_S)  # each call was stopped at the budget or shed


@pytest.mark.parametrize(
    "reply",
    [({"dtype": "<f8", "shape": [2]}, b"x" * 16), ({"dtype": "|u1", "shape": [9, 9]}, b"x"), ({"shape": [1]}, b"x")],
)
def test_a_decode_reply_that_is_not_an_image_array_is_refused_and_the_process_replaced(
    reply: tuple[dict, bytes],
) -> None:
    async def scenario() -> tuple[int, int]:
        pool = DecodePool(1, 5.0, 1 << 30, command=ROGUE_DECODER)  # as a subverted decoder
        pool.start()
        try:
            (process,) = pool._all
            with pytest.raises(CorruptImageError):
                await pool.run(model_input, png_of(7), 10**8, "reply", json.dumps(reply[0]), reply[1].hex())
            assert (await pool.run(model_input, png_of(7), 10**8, "answer")).shape == (28, 28)  # a fresh one
            return pool.overruns, process.process.returncode
        finally:
            pool.close()

    assert run(scenario()) == (1, -signal.SIGKILL)


def test_decode_pool_bounds_memory() -> None:
    async def scenario() -> None:
        pool = DecodePool(1, 30.0, 200 << 20)  # the interpreter with NumPy and Pillow maps ~120 MiB
        pool.start()
        try:
            with pytest.raises(ImageTooLargeError, match="memory"):
                await pool.run(display_pixels, big_png(4000, "RGB"), 10**8)  # 48 MB of pixels, twice
            assert (await pool.run(model_input, png_of(2), 10**8, "auto")).shape == (28, 28)
        finally:
            pool.close()

    run(scenario())


def test_decode_pool_runs_only_the_decode_functions() -> None:
    async def scenario() -> None:
        pool = DecodePool(1, 5.0, 1 << 30)
        pool.start()
        try:
            with pytest.raises(ValueError, match="DECODE_FUNCTIONS"):
                await pool.run(open_image, png_of(7), 10**8)  # type: ignore[arg-type]
            assert (await pool.run(model_input, png_of(7), 10**8, mode="auto")).shape == (28, 28)  # by keyword
        finally:
            pool.close()

    run(scenario())


def test_decode_pool_passes_input_errors_through() -> None:
    async def scenario() -> None:
        pool = DecodePool(1, 5.0, 1 << 30)
        pool.start()
        try:
            with pytest.raises(NotAnImageError):
                await pool.run(model_input, b"hello", 10**8, "auto")
            assert pool.overruns == 0
        finally:
            pool.close()

    run(scenario())


# -- disconnects ---------------------------------------------------------------------------------------
class _Connection:
    """The part of a Request that :func:`unless_disconnected` uses: ``receive``."""

    def __init__(self, disconnect_after: float) -> None:
        self.disconnect_after = disconnect_after

    async def receive(self) -> dict[str, str]:
        await asyncio.sleep(self.disconnect_after)
        return {"type": "http.disconnect"}


def test_work_is_cancelled_when_the_client_disconnects() -> None:
    async def scenario() -> bool:
        stopped = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                stopped.set()

        with pytest.raises(ClientDisconnect):
            await unless_disconnected(_Connection(0.01), work())  # type: ignore[arg-type]
        await asyncio.sleep(0)
        return stopped.is_set()

    assert run(scenario()) is True


def test_work_that_finishes_first_is_returned() -> None:
    async def work() -> int:
        return 42

    assert run(unless_disconnected(_Connection(10), work())) == 42  # type: ignore[arg-type]


# -- admission -----------------------------------------------------------------------------------------
def test_admission_bounds_requests_and_bytes() -> None:
    admission = Admission(max_requests=3, max_bytes=100)
    assert admission.enter(500) is None  # one request alone is always admitted, whatever its size
    assert admission.enter(1) == "bytes"
    admission.leave(500)
    assert [admission.enter(40), admission.enter(40), admission.enter(40)] == [None, None, "bytes"]
    assert admission.enter(10) is None and admission.saturated
    assert admission.enter(0) == "requests"


def test_readyz_reports_saturation(make_client: Callable[..., TestClient]) -> None:
    client = make_client()  # its own app: the 503s below must not show in the shared app's metrics
    admission: Admission = client.app.state.admission  # type: ignore[attr-defined]
    ready = client.get("/readyz").json()
    assert ready["inflight_requests"] == 0 and ready["max_inflight_requests"] == admission.max_requests
    admission.requests = admission.max_requests
    try:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["type"].endswith(":overloaded")
        assert response.headers["retry-after"] == "1"
        shed = client.post("/classify", files=upload(png_of(7)))
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    finally:
        admission.requests = 0
    assert client.post("/classify", files=upload(png_of(7))).status_code == 200


# -- images, forms, methods, headers -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_twelve_bit_digits_are_read_not_refused(client: TestClient, fmt: str) -> None:
    twelve_bit = (255 - mnist_like(4)).astype(np.uint16) * 16  # dark ink on light paper, values 0..4080
    response = client.post("/classify", files=upload(encode(Image.fromarray(twelve_bit), fmt), "scan.tif"))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][1]["digit"] == 4


def test_two_file_parts_are_refused(client: TestClient) -> None:
    files = [("file", ("a.png", png_of(1), "image/png")), ("file", ("b.png", png_of(7), "image/png"))]
    response = client.post("/classify", files=files)
    assert response.status_code == 422 and response.json()["type"].endswith(":invalid-form")


@pytest.mark.parametrize("media_type", ["multipart/form-dataX", "multipart/form-data-evil", "multipart/mixed"])
def test_only_exactly_multipart_form_data_is_accepted(client: TestClient, media_type: str) -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n\r\n' + png_of(1) + b"\r\n--B--\r\n"
    )
    response = client.post("/classify", content=body, headers={"content-type": f"{media_type}; boundary=B"})
    assert response.status_code == 415


def test_head_requests_on_health_routes(client: TestClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""


def test_every_answer_says_nosniff(client: TestClient) -> None:
    for response in (client.get("/healthz"), client.post("/classify", files=upload(b"x")), client.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_an_unexpected_error_is_a_500_problem_logged_once_with_its_request_id() -> None:
    app = create_app()
    app.dependency_overrides[get_settings] = Settings

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.dependency_overrides[get_engine] = broken
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    collect.addFilter(RequestIdFilter())  # as the JSON handler stamps it
    logging.getLogger("app").addHandler(collect)
    try:
        # raise_server_exceptions: had the error gone on to the server, it would raise here (and uvicorn log it again)
        with TestClient(app, raise_server_exceptions=True) as client:
            response = client.post("/classify", files=upload(png_of(1)), headers={"X-Request-ID": "bug-report-1"})
    finally:
        logging.getLogger("app").removeHandler(collect)
    assert response.status_code == 500 and response.json()["type"].endswith(":internal-error")
    assert "bug-report-1" in response.json()["detail"]
    errors = [record for record in records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert errors[0].request_id == "bug-report-1"  # type: ignore[attr-defined]


# -- problem types and limits come from the code, not from lists kept by hand -----------------------
def test_every_input_error_has_a_problem_type_and_a_new_one_is_still_a_422() -> None:
    import inspect

    from app import errors
    from app.guard.problems import INVALID_INPUT, problem_for

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.InputError)]
    for cls in classes:
        if cls is not errors.InputError:
            assert problem_for(cls("x")) is not INVALID_INPUT, cls.__name__

    class BrandNewError(errors.InputError):
        pass

    problem = problem_for(BrandNewError("x"))
    assert problem is INVALID_INPUT and problem.status == 422


def test_body_limits_follow_the_routes(client: TestClient) -> None:
    from app.guard.middleware import MULTIPART_OVERHEAD, body_limit

    settings = Settings()
    one = settings.max_upload_bytes + MULTIPART_OVERHEAD

    def limit(path: str) -> int:
        return body_limit(settings, {"type": "http", "path": path, "method": "POST", "app": client.app})

    assert limit("/classify/batch") == settings.max_batch * one  # its body is a list of files
    assert limit("/classify") == limit("/orbit") == limit("/rotate") == limit("/nowhere") == one

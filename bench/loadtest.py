"""Load test of ``POST /classify``: starts the service as the README does, measures, stops it.

The server is ``python -m app.guard.server --host 127.0.0.1 --port <free port>``
(``make serve`` without the install step). The client is ``wrk`` (C, one
thread, ``apt-get install wrk``) driven by a generated Lua script that posts the
multipart upload and counts 5xx, or, where wrk is missing, one asyncio process
(httpx, one connection per concurrent request). Both stay within one core; the
client's CPU use is reported next to the server's (on 2 cores the Python client
costs the server noticeably more than wrk does). For each upload (a 28x28 digit
PNG and a 300x300 photo-like PNG) and each concurrency (1, 8, 32) it sends
requests for ``--seconds`` or ``--max-requests``, whichever comes first, then
optionally a soak at the highest concurrency. It reports requests/s, latency
percentiles, errors, 5xx, and the server's RSS (sampled every 100 ms).

Only loopback addresses are ever targeted, every loop is bounded, and the
server it started is stopped on exit.

With ``--docker IMAGE`` the server is the container image instead, run with
``--cpus`` and ``--memory`` limits (host networking, loopback port) and the
torch threads and decode processes the Kubernetes manifests derive from the
CPU limit; RSS and CPU are then those of the container's processes. ``--plan``
turns the CPU time a request cost into replicas for given loads, at the CPU
target of the HorizontalPodAutoscaler and the CPU request of deploy/kubernetes/
(arithmetic, printed as such).

    python -m bench.loadtest                    # 10 s per scenario, 60 s soak at concurrency 32
    python -m bench.loadtest --seconds 3 --soak-seconds 0 --concurrency 1 8
    python -m bench.loadtest --docker equivariant-digits:smoke --cpus 1 --concurrency 8 32 --soak-seconds 0 \\
        --plan 1000 10000                       # one replica's capacity (docs/deploy.md)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0


# -- uploads -------------------------------------------------------------------
def digit_png() -> bytes:
    """A 28x28 MNIST-style '7': light strokes on black, 8-bit grey."""
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    draw.line([(7, 7), (21, 7), (13, 22)], fill=255, width=3)
    return _png(image.filter(ImageFilter.GaussianBlur(0.6)))


def photo_png(size: int = 300, seed: int = 0) -> bytes:
    """A photo-like RGB picture of a '4': dark ink on uneven lit paper with sensor noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    paper = 200 + 40 * xs - 30 * ys  # a lighting gradient
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    s = size / 100
    draw.line([(60 * s, 20 * s), (30 * s, 60 * s), (75 * s, 60 * s)], fill=(35, 30, 45), width=int(6 * s))
    draw.line([(62 * s, 35 * s), (62 * s, 85 * s)], fill=(35, 30, 45), width=int(6 * s))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
    pixels += rng.normal(0, 6, pixels.shape)  # noise: what makes a photo's PNG large
    return _png(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- the server ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m app.guard.server`` on 127.0.0.1 (as ``make serve``), output to ``log_path``."""
    command = [sys.executable, "-m", "app.guard.server", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@dataclass
class Container:
    """The service in a container started by :func:`start_container`."""

    name: str
    pid: int  # the server's process id on this host (the container's first process)


def start_container(image: str, port: int, cpus: float, memory: str, env: dict[str, str]) -> Container:
    """``docker run`` of ``image`` on 127.0.0.1:``port`` (host networking) within ``cpus`` and ``memory``.

    Torch and OpenMP threads are half the CPU limit and decode processes the limit, rounded up,
    as deploy/kubernetes/deployment.yaml sets them (``env`` overrides).
    """
    name, threads, processes = f"bench-loadtest-{os.getpid()}-{port}", str(math.ceil(cpus / 2)), str(math.ceil(cpus))
    settings = {"GCNN_TORCH_THREADS": threads, "OMP_NUM_THREADS": threads, "GCNN_DECODE_PROCESSES": processes, **env}
    settings |= {"UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(port)}
    command = ["docker", "run", "-d", "--name", name, "--network", "host", "--cpus", f"{cpus:g}", "--memory", memory]
    command += [option for key, value in settings.items() for option in ("-e", f"{key}={value}")]
    subprocess.run([*command, image], check=True, capture_output=True, timeout=120)
    inspect = ["docker", "inspect", "-f", "{{.State.Pid}}", name]
    return Container(name, int(subprocess.run(inspect, check=True, capture_output=True, text=True).stdout))


def stop_container(container: Container) -> None:
    subprocess.run(["docker", "rm", "-f", container.name], capture_output=True, timeout=120)


def wait_ready(base_url: str, server: subprocess.Popen[bytes] | None) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before it was ready")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{base_url} not ready after {READY_TIMEOUT_S:.0f} s")


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash; ValueError unless its host is a loopback address."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"load tests target this machine only (127.0.0.0/8, ::1, localhost), got {url!r}")
    return url.rstrip("/")


class ProcessSampler:
    """Samples a process's RSS and CPU time from /proc every ``interval`` seconds, on a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (monotonic time, RSS bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)

    def rss_between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (worker processes, decode processes), from /proc."""
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        try:
            stack += [int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            continue
    return tree


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` and its descendants."""
    total, found = 0, False
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total, found = total + int(line.split()[1]) * 1024, True
        except OSError:
            continue
    return total if found else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (0 where /proc is unavailable)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def compute_bound(models: Sequence[str], batch: int = 8, seconds: float = 3.0) -> tuple[float, float]:
    """``(images/s per core, cores)``: the served models run as the service runs them
    (:func:`app.answering.inference.run_models`: a pose model reads a centred digit four times,
    :mod:`model.centring`) on one thread at the micro-batch size, timed here (not in the server), and the CPUs
    this machine has. Their product bounds any server's throughput: every request costs that much."""
    import torch

    from app.answering.inference import LoadedModel, run_models
    from model.centring import MNIST_CENTRE, recentre
    from model.checkpoint import load_checkpoint

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = [LoadedModel(name, *load_checkpoint(Path("weights") / f"{name}.json")) for name in models]
        x = recentre(torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)), MNIST_CENTRE)
        run_models(loaded, x)
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            run_models(loaded, x)
            runs += 1
        per_core = runs * batch / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return per_core, float(len(os.sched_getaffinity(0)))


# -- the client ----------------------------------------------------------------
@dataclass
class Scenario:
    upload: str
    concurrency: int
    seconds: float
    max_requests: int


@dataclass
class Result:
    scenario: Scenario
    requests: int = 0
    errors: int = 0  # transport errors and non-200 answers
    server_errors: int = 0  # 5xx
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds (httpx client)
    percentiles_ms: dict[int, float] = field(default_factory=dict)  # as reported by wrk
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    rss_trace: list[int] = field(default_factory=list)  # RSS at 11 evenly spaced moments of the run
    client_cpu: float = 0.0  # fraction of one core
    server_cpu: float = 0.0  # fraction of one core

    @property
    def capped(self) -> bool:
        """Whether the request cap ended the run early: wrk then reports the full duration, so req/s is a floor."""
        return self.requests >= self.scenario.max_requests

    @property
    def rate(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0

    def percentile(self, q: int) -> float:
        """Latency percentile ``q`` (0-100) in ms."""
        if q in self.percentiles_ms:
            return self.percentiles_ms[q]
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1e3 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _worker(
    client: httpx.AsyncClient, url: str, body: bytes, result: Result, deadline: float, budget: list[int]
) -> None:
    files = {"file": ("digit.png", body, "image/png")}
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            response = await client.post(url, files=files)
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        result.latencies.append(time.perf_counter() - started)
        result.requests += 1
        if status != 200:
            result.errors += 1
            result.server_errors += status >= 500


async def run_scenario(base_url: str, body: bytes, scenario: Scenario, server_pid: int | None) -> Result:
    result = Result(scenario)
    limits = httpx.Limits(max_connections=scenario.concurrency, max_keepalive_connections=scenario.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(min(3, scenario.concurrency)):  # warm the connections and the server's caches
            await client.post(f"{base_url}/classify", files={"file": ("digit.png", body, "image/png")})
        budget = [scenario.max_requests]
        server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
        client_cpu, started = time.process_time(), time.monotonic()
        deadline, url = started + scenario.seconds, f"{base_url}/classify"
        await asyncio.gather(
            *(_worker(client, url, body, result, deadline, budget) for _ in range(scenario.concurrency))
        )
        result.wall_seconds = time.monotonic() - started
        result.client_cpu = (time.process_time() - client_cpu) / result.wall_seconds
        if server_pid:
            result.server_cpu = (cpu_seconds(server_pid) - server_cpu) / result.wall_seconds
    return result


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=%(boundary)s"
wrk.body = "%(body)s"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) responses = 0; server_errors = 0 end
function response(status, headers, body)
  responses = responses + 1
  if status >= 500 then server_errors = server_errors + 1 end
  if responses >= %(max_requests)d then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local server = 0
  for _, thread in ipairs(threads) do server = server + thread:get("server_errors") end
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%.1f %%.1f %%.1f\\n", summary.requests,
    summary.duration, e.status, server, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def wrk_script(body: bytes, max_requests: int) -> str:
    """The Lua script that makes wrk post ``body`` as the multipart field ``file``."""
    boundary = "----bench-loadtest-7d1f0c"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    # a Lua string literal: printable ASCII as is, every other byte as a 3-digit decimal escape
    escaped = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in payload)
    return WRK_SCRIPT % {"boundary": boundary, "body": escaped, "max_requests": max_requests}


def run_wrk(base_url: str, body: bytes, scenario: Scenario, server_pid: int | None, workdir: Path) -> Result:
    script = workdir / f"post-{len(body)}.lua"
    script.write_text(wrk_script(body, scenario.max_requests))
    for _ in range(3):  # warm the server's caches
        httpx.post(f"{base_url}/classify", files={"file": ("upload.png", body, "image/png")}, timeout=REQUEST_TIMEOUT_S)
    seconds = max(1, round(scenario.seconds))
    command = ["wrk", "-t1", f"-c{scenario.concurrency}", f"-d{seconds}s", f"--timeout={REQUEST_TIMEOUT_S:.0f}s"]
    server_cpu, children = cpu_seconds(server_pid) if server_pid else 0.0, resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [*command, "-s", str(script), f"{base_url}/classify"], capture_output=True, text=True, timeout=seconds + 60
    )
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    requests, duration_us, status, server, *transport, p50, p95, p99 = (float(v) for v in lines[-1].split()[1:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = Result(scenario, requests=int(requests), wall_seconds=duration_us / 1e6)
    result.errors, result.server_errors = int(status + sum(transport)), int(server)
    result.percentiles_ms = {50: p50 / 1e3, 95: p95 / 1e3, 99: p99 / 1e3}
    result.client_cpu = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall
    if server_pid:
        result.server_cpu = (cpu_seconds(server_pid) - server_cpu) / wall
    return result


# -- reporting -----------------------------------------------------------------
def results_table(results: Sequence[Result]) -> str:
    header = (
        f"{'upload':<10} {'conc':>4} {'secs':>5} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'5xx':>4} {'RSS start/peak/end MiB':>23} {'server CPU':>10} {'client CPU':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        rss = f"{r.rss_start / 2**20:.0f}/{r.rss_peak / 2**20:.0f}/{r.rss_end / 2**20:.0f}"
        mark = "*" if r.capped else " "
        lines.append(
            f"{r.scenario.upload:<10} {r.scenario.concurrency:>4} {r.wall_seconds:>5.1f} {r.requests:>8} "
            f"{r.rate:>7.1f}{mark}{r.percentile(50):>7.2f} {r.percentile(95):>7.2f} {r.percentile(99):>7.2f} "
            f"{r.errors:>6} {r.server_errors:>4} {rss:>23} {r.server_cpu:>10.0%} {r.client_cpu:>10.0%}"
        )
    return "\n".join(lines)


def targets_table(results: Sequence[Result], bound: float | None = None) -> str:
    def find(upload: str, concurrency: int) -> Result | None:
        matches = [r for r in results if r.scenario.upload == upload and r.scenario.concurrency == concurrency]
        return max(matches, key=lambda r: r.wall_seconds) if matches else None

    rows: list[tuple[str, str, bool | None]] = []
    if (r := find("28x28", 1)) is not None:
        rows.append(("p50 at concurrency 1 (28x28) <= 8 ms", f"{r.percentile(50):.2f} ms", r.percentile(50) <= 8))
    for concurrency in (8, 32):
        if (r := find("28x28", concurrency)) is not None and bound:
            share = r.rate / bound
            label = f">= 60% of the compute bound at concurrency {concurrency}"
            rows.append((label, f"{share:.0%} ({r.rate:.0f} req/s)", share >= 0.6))
    if (r := find("28x28", 32)) is not None:
        ok = r.errors == 0 and r.server_errors == 0 and r.wall_seconds >= 60
        rows.append(("no errors, no 5xx at concurrency 32 for 60 s", f"{r.errors} in {r.wall_seconds:.0f} s", ok))
    if results:
        peak = max(r.rss_peak for r in results)
        growth = results[-1].rss_end - results[0].rss_start
        rows.append(("server RSS (all its processes) < 1.5 GiB", f"{peak / 2**20:.0f} MiB", peak < 1.5 * 2**30))
        rows.append(("RSS not growing (first start -> last end)", f"{growth / 2**20:+.0f} MiB", None))
    lines = ["targets:"]
    for name, value, met in rows:
        verdict = "" if met is None else ("met" if met else "NOT met")
        lines.append(f"  {name:<46} {value:>14}  {verdict}")
    if results and results[-1].rss_trace:
        trace = " ".join(f"{rss / 2**20:.0f}" for rss in results[-1].rss_trace)
        lines.append(f"  RSS over the last run, at each tenth (MiB): {trace}")
    return "\n".join(lines)


def autoscaling(manifests: Path = Path("deploy/kubernetes")) -> tuple[float, float]:
    """``(CPU target, CPU request)`` of the manifests: the utilisation of its request at which the
    HorizontalPodAutoscaler holds each pod (a fraction), and that request (CPUs)."""
    import yaml  # a dev dependency (kubernetes-validate's): only --plan needs it

    (metric,) = yaml.safe_load((manifests / "hpa.yaml").read_text())["spec"]["metrics"]
    (container,) = yaml.safe_load((manifests / "deployment.yaml").read_text())["spec"]["template"]["spec"]["containers"]
    request = str(container["resources"]["requests"]["cpu"])
    cpus = float(request[:-1]) / 1000 if request.endswith("m") else float(request)
    return float(metric["resource"]["target"]["averageUtilization"]) / 100, cpus


def plan_table(results: Sequence[Result], request: float, loads: Sequence[float], target: float) -> str:
    """Replicas for each of ``loads`` requests/s (28x28 digits), from the most loaded run: arithmetic.

    A request costs the CPU time measured per request in that run (the server's processes'
    CPU seconds over its requests); the autoscaler holds each pod at ``target`` of its CPU
    ``request``, so a pod serves ``target * request / cost`` requests/s, and a load of L needs
    ``ceil(L / that)`` pods. Flagged when that is more CPU than the server was seen using.
    """
    runs = [r for r in results if r.scenario.upload == "28x28" and r.rate > 0 and r.server_cpu > 0]
    if not runs:
        return "plan: needs a 28x28 run with the server's CPU measured"
    top = max(runs, key=lambda r: (r.scenario.concurrency, r.wall_seconds))
    cost = top.server_cpu / top.rate  # CPU seconds per request
    cpus = target * request
    per_replica = cpus / cost
    lines = [
        f"plan (arithmetic): measured {top.rate:.0f} req/s at concurrency {top.scenario.concurrency} using "
        f"{top.server_cpu:.2f} CPUs = {1e3 * cost:.2f} ms of CPU a request;",
        f"  at the HPA target of {target:.0%} of a {request:g}-CPU request ({cpus:.2f} CPUs) a replica serves "
        f"{per_replica:.0f} req/s",
    ]
    if cpus > top.server_cpu:
        lines.append(
            f"  NOTE: {cpus:.2f} CPUs is more than the {top.server_cpu:.2f} the server used here "
            "(a busy machine, or a bound of its own): that rate is extrapolated, not measured"
        )
    for load in loads:
        lines.append(f"  {load:>8.0f} req/s: {math.ceil(load / per_replica)} replicas")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="test a running server (loopback only) instead of starting one")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--uploads", nargs="+", choices=["28x28", "300x300"], default=["28x28", "300x300"])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each scenario")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap on requests per scenario")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="final 28x28 run at the top concurrency")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto", help="auto: wrk if installed")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra server environment")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument("--docker", metavar="IMAGE", default=None, help="serve from this container image instead")
    parser.add_argument("--cpus", type=float, default=2.0, help="with --docker: docker run --cpus")
    parser.add_argument("--memory", default="1536m", help="with --docker: docker run --memory")
    parser.add_argument("--plan", type=float, nargs="*", default=[], metavar="REQ_PER_S", help="replicas for these")
    args = parser.parse_args(argv)
    if args.docker is not None and args.url is not None:
        parser.error("--docker starts its own server: leave out --url")
    if not 0 < args.cpus <= 64:
        parser.error("--cpus must be in (0, 64]")
    if args.seconds <= 0 or args.seconds > 600 or args.soak_seconds < 0 or args.soak_seconds > 600:
        parser.error("--seconds must be in (0, 600] and --soak-seconds in [0, 600]")
    if not 1 <= args.max_requests <= 1_000_000 or not all(1 <= c <= 256 for c in args.concurrency):
        parser.error("--max-requests must be in [1, 1e6] and each --concurrency in [1, 256]")
    return args


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    plan = [Scenario(u, c, args.seconds, args.max_requests) for u in args.uploads for c in args.concurrency]
    if args.soak_seconds > 0:
        plan.append(Scenario("28x28", max(args.concurrency), args.soak_seconds, 1_000_000))
    return plan


def measure(
    base_url: str, server_pid: int | None, plan: Sequence[Scenario], client: str, workdir: Path
) -> list[Result]:
    bodies = {"28x28": digit_png(), "300x300": photo_png()}
    results = []
    sampler = ProcessSampler(server_pid) if server_pid else None
    if sampler is not None:
        sampler.__enter__()
    try:
        for scenario in plan:
            started = time.monotonic()
            rss_before = rss_bytes(server_pid) if server_pid else None
            body = bodies[scenario.upload]
            if client == "wrk":
                result = run_wrk(base_url, body, scenario, server_pid, workdir)
            else:
                result = asyncio.run(run_scenario(base_url, body, scenario, server_pid))
            if sampler is not None and server_pid:
                window = sampler.rss_between(started, time.monotonic()) or [0]
                result.rss_start, result.rss_peak = rss_before or window[0], max(window)
                result.rss_end = rss_bytes(server_pid) or window[-1]
                result.rss_trace = [window[round(i * (len(window) - 1) / 10)] for i in range(11)]
            results.append(result)
            print(results_table([result]).splitlines()[-1], flush=True)
    finally:
        if sampler is not None:
            sampler.__exit__()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    plan = scenarios(args)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        server, container, server_pid, origin = None, None, None, "already running"
        if args.url is not None:
            base_url = check_loopback(args.url)
        else:
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            if args.docker is None:
                server, origin = (
                    start_server(port, Path(tmp) / "server.log", env),
                    "started here: python -m app.guard.server",
                )
                server_pid = server.pid
            else:
                container = start_container(args.docker, port, args.cpus, args.memory, env)
                server_pid, origin = (
                    container.pid,
                    f"docker run {args.docker} --cpus {args.cpus:g} --memory {args.memory}",
                )
        try:
            ready = wait_ready(base_url, server)
            bodies = (len(digit_png()), len(photo_png()))
            threads = ready.get("torch_threads")
            print(f"server: {base_url} ({origin}), models {ready.get('models')}, {threads} torch threads")
            description = "wrk, 1 thread" if client == "wrk" else "one asyncio process (httpx)"
            print(f"client: {description}; uploads {bodies[0]} B (28x28) and {bodies[1]} B (300x300)")
            print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
            from app.settings import Settings  # the service's default models, when /readyz does not list them

            models = ready.get("models") or list(Settings().models)
            per_core, cores = compute_bound(models)
            cores = min(cores, args.cpus) if container else cores
            bound = per_core * cores
            print(
                f"compute bound: {per_core:.0f} images/s per core for {', '.join(models)} "
                f"(one thread, batch 8, timed in this process before the load) x {cores:g} cores = {bound:.0f}/s"
            )
            results = measure(base_url, server_pid, plan, client, Path(tmp))
        finally:
            if server is not None:
                stop_server(server)
            if container is not None:
                stop_container(container)
    print()
    print(results_table(results))
    if any(r.capped for r in results):
        print("* stopped by --max-requests: req/s is a lower bound")
    print()
    print(targets_table(results, bound))
    if args.plan:
        print()
        target, request = autoscaling()
        print(plan_table(results, request, args.plan, target))
    print(f"\nload average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{**asdict(r), "rate": r.rate, "p50_ms": r.percentile(50), "p95_ms": r.percentile(95),
                 "p99_ms": r.percentile(99), "latencies": None} for r in results]  # fmt: skip
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

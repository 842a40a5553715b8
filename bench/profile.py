"""Where the time goes: a training step by operator, a /classify request by stage.

    python -m bench.profile train [--compile]    # torch.profiler table of gcnn_c8_pose training steps (batch 128)
    python -m bench.profile request              # one /classify request split into its stages, in process

``train`` runs a few steps of ``gcnn_c8_pose``'s training (the same loss as
``python -m model.train``), prints the operators by self time, and with
``--compile`` also times eager against ``torch.compile`` steps. ``request``
sends a 28x28 PNG through the ASGI app in process (no socket) 300 times and
reports the median of the whole request and of each stage: the forward passes
on the torch worker, the hop to the worker with the batch's preparation, the
orientation fields of the answer, decoding; it also times a bare FastAPI route
with one and with twelve dependencies, the cost of dependency injection alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from unittest import mock

import torch

__all__ = ["main"]


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.3f} ms"


def profile_training(compiled: bool, batch: int = 128, steps: int = 5) -> None:
    from model.registry import create_model
    from model.train import keep_freed_memory, loss_and_logits

    keep_freed_memory()
    torch.manual_seed(0)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step_function(compile_it: bool) -> Callable[[], None]:
        model = create_model("gcnn_c8_pose").train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        eager: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
        eager = functools.partial(loss_and_logits, model)
        forward = torch.compile(eager) if compile_it else eager

        def step() -> None:
            loss, _ = forward(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    step = step_function(False)
    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    print(f"gcnn_c8_pose training, batch {batch}, {steps} steps, {torch.get_num_threads()} threads:")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    if compiled:
        for label, compile_it in (("eager", False), ("torch.compile", True)):
            step = step_function(compile_it)
            started = time.perf_counter()
            step()
            first = time.perf_counter() - started
            times = []
            for _ in range(8):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            print(f"{label:<14} step {_median_ms(times)} (first step, with any compilation: {first:.1f} s)")


async def _request_stages(rounds: int = 300) -> None:
    import httpx

    import app.answering.inference as inference
    import app.answering.pipeline as pipeline
    import app.routers.classify as classify
    from app.main import create_app

    stages: dict[str, list[float]] = {}

    def timed(name: str, function: Any) -> Any:
        if inspect.iscoroutinefunction(function):

            async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                result = await function(*args, **kwargs)
                stages.setdefault(name, []).append(time.perf_counter() - started)
                return result

            return wrapped_async

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = function(*args, **kwargs)
            stages.setdefault(name, []).append(time.perf_counter() - started)
            return result

        return wrapped

    stage_names = [
        (inference.InferenceEngine, "predict", "forward passes (torch worker)"),
        (inference.InferenceEngine, "classify", "hop to the worker + prepare + forward"),
        (classify, "predictions", "answer rows with orientation fields"),
        (pipeline, "decode_uploads", "decode (or hand over) the upload"),
    ]
    png = (Path(__file__).resolve().parent.parent / "app/static/sample-7.png").read_bytes()
    app = create_app()
    async with contextlib.AsyncExitStack() as patches:
        for owner, attribute, name in stage_names:  # each stage timed, put back as it was on the way out
            patches.enter_context(mock.patch.object(owner, attribute, timed(name, getattr(owner, attribute))))
        await patches.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            for _ in range(30):
                await client.post("/classify", files={"file": ("d.png", png, "image/png")})
            stages.clear()
            whole = []
            for _ in range(rounds):
                started = time.perf_counter()
                await client.post("/classify", files={"file": ("d.png", png, "image/png")})
                whole.append(time.perf_counter() - started)
    print(f"POST /classify, 28x28 PNG, in process, median of {rounds}: {_median_ms(whole)}")
    for name, samples in stages.items():
        print(f"  {name:<42} {_median_ms(samples)}")
    await _dependency_cost()


async def _dependency_cost(rounds: int = 500) -> None:
    """A bare FastAPI route with one and with twelve (distinct) dependencies."""
    import httpx
    from fastapi import Depends, FastAPI, Request

    bare = FastAPI()

    def dependency(n: int) -> Any:
        async def provide(request: Request) -> int:
            return n

        return Annotated[int, Depends(provide)]

    async def endpoint(**values: int) -> dict:
        return {}

    for count in (1, 12):
        handler = functools.partial(endpoint)
        parameters = [
            inspect.Parameter(f"p{n}", inspect.Parameter.KEYWORD_ONLY, annotation=dependency(n)) for n in range(count)
        ]
        handler.__signature__ = inspect.Signature(parameters, return_annotation=dict)  # type: ignore[attr-defined]
        bare.get(f"/deps{count}")(handler)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://bare") as client:
        results = {}
        for count in (1, 12):
            for _ in range(50):
                await client.get(f"/deps{count}")
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                await client.get(f"/deps{count}")
                samples.append(time.perf_counter() - started)
            results[count] = statistics.median(samples)
    print(
        f"bare FastAPI route: 1 dependency {results[1] * 1e3:.3f} ms, 12 dependencies {results[12] * 1e3:.3f} ms "
        f"({(results[12] - results[1]) / 11 * 1e6:.0f} us each)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "request"])
    parser.add_argument("--compile", action="store_true", help="train: also time torch.compile against eager")
    args = parser.parse_args(argv)
    if args.what == "train":
        profile_training(args.compile)
    else:
        asyncio.run(_request_stages())


if __name__ == "__main__":
    main()

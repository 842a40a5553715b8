"""The loaded models and the one place where torch runs.

All heavy work of the service (decoding and preprocessing uploads, model
forward passes, rotating large pictures) goes through the single thread of a
:class:`TorchWorker`. One thread, whose torch ops use ``torch.get_num_threads()``
intra-op threads, keeps the CPU from being oversubscribed however many requests
arrive at once, and keeps the event loop free.

Dynamic micro-batching: :meth:`InferenceEngine.classify` queues each request's
inputs (:class:`app.answering.inputs.ModelInputs`); whenever the worker is free it takes every
queued request (up to ``max_batch_requests`` of them), builds each one's batch, and
runs every model once on all of them. A request that finds the worker idle goes at once, so a
lone request waits for nothing; under concurrency, requests that arrive while
a batch runs share the next forward pass.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from app.answering.answers import ModelOutput, predictions
from app.answering.inputs import ModelInputs
from app.schemas import OrientationPrior
from model.centring import chosen_lean, predict_centred
from model.checkpoint import load_checkpoint
from model.serving import ServingModel, as_serving

__all__ = [
    "InferenceEngine",
    "LoadedModel",
    "ModelOutput",
    "TorchWorker",
    "configure_torch",
    "load_models",
    "run_models",
    "self_test",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint in eval mode, with its JSON card; what it can do is asked of the network
    (:class:`model.serving.ServingModel`), never read from the card. The card says only how the
    service reads it: the lean of the centred reading chosen for it (:func:`model.centring.chosen_lean`).

    Raises:
        TypeError: the network does not implement :class:`~model.serving.ServingModel`.
        ValueError: the card records a lean for the centred reading that is not a finite number >= 0.
    """

    name: str
    module: nn.Module = field(repr=False)
    card: dict[str, Any] = field(repr=False)
    serving: ServingModel = field(init=False, repr=False)
    lean: float = field(init=False)  # of the centred reading: chosen for this network on the tuning set

    def __post_init__(self) -> None:
        object.__setattr__(self, "serving", as_serving(self.module))
        object.__setattr__(self, "lean", chosen_lean(self.card))

    @property
    def architecture(self) -> str:
        return str(self.card["architecture"])

    @property
    def has_orientation(self) -> bool:
        """Whether the network estimates how its input is turned (a G-CNN with a joint head)."""
        return self.serving.has_pose

    @property
    def group(self) -> str | None:
        """The name of the symmetry group the network is built for (``None`` for the plain CNN)."""
        group = self.serving.group
        return group.name if group is not None else None


def configure_torch(threads: int) -> None:
    """Intra-op threads for this process; inter-op parallelism off (one model runs at a time)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any inter-op work (a second app in tests)
        logger.debug("inter-op thread count already fixed at %d", torch.get_num_interop_threads())


def load_models(weights_dir: Path, names: Sequence[str]) -> list[LoadedModel]:
    """Load ``<weights_dir>/<name>.json`` for each name, SHA-256 verified (CheckpointError otherwise)."""
    models = []
    for name in names:
        started = time.perf_counter()
        module, card = load_checkpoint(weights_dir / f"{name}.json")
        models.append(LoadedModel(name, module, card))
        logger.info(
            "loaded model %s (%s, %s parameters, sha256 %s) in %.2fs",
            name,
            card["architecture"],
            card.get("parameters"),
            card["sha256"][:12],
            time.perf_counter() - started,
        )
    return models


def run_models(models: Sequence[LoadedModel], images: torch.Tensor) -> list[ModelOutput]:
    """Every model on ``images`` ``(B, 1, 28, 28)`` float32 in [0, 1], as a request runs them (a joint
    head's pose included, read without the centre-of-mass cue where the preprocessing made it up:
    :func:`model.centring.predict_centred`); call it on the worker thread."""
    outputs = []
    with torch.inference_mode():
        for model in models:
            started = time.perf_counter()
            probabilities, pose = predict_centred(model.serving, images, model.lean)
            outputs.append(ModelOutput(model.name, probabilities, time.perf_counter() - started, pose))
    return outputs


def self_test(models: Sequence[LoadedModel]) -> None:
    """Run every model on a probe batch and build its answers; RuntimeError unless they are sane.

    Checks: shape ``(B, 10)``, finite logits, the same answer for an image alone
    and inside a batch, and for a G-CNN whose group holds a quarter turn, the
    same logits for the probe turned by 90 degrees (exact for these networks):
    proof that the weights behave as the architecture promises. Then the answers
    a request would get, built by :func:`app.answering.answers.predictions` with every
    orientation prior (a joint head's orientation, readings and upright image
    included), must hold finite numbers only.
    """
    probe = _probe_images()  # (2, 1, 28, 28)
    for model in models:
        _check_logits(model, probe)
        _check_answers(model, probe)
    logger.info("self-test passed for %s", ", ".join(model.name for model in models))


def _check_logits(model: LoadedModel, probe: torch.Tensor) -> None:
    with torch.inference_mode():
        logits = model.module(probe)
        if logits.shape != (len(probe), 10) or not torch.isfinite(logits).all():
            raise RuntimeError(f"self-test failed for {model.name}: logits {tuple(logits.shape)}, not finite/10")
        alone = model.module(probe[:1])
        if not torch.allclose(alone, logits[:1], atol=1e-4, rtol=1e-4):
            raise RuntimeError(f"self-test failed for {model.name}: batched and single outputs differ")
        group = model.serving.group
        if group is not None and group.rotations % 4 == 0:
            turned = model.module(torch.rot90(probe, 1, dims=(-2, -1)))
            if not torch.allclose(turned, logits, atol=1e-3, rtol=1e-3):
                raise RuntimeError(f"self-test failed for {model.name}: not invariant to quarter turns")


def _check_answers(model: LoadedModel, probe: torch.Tensor) -> None:
    outputs = run_models([model], probe)
    for prior in OrientationPrior:
        try:
            answers = [row[0].model_dump() for row in predictions(outputs, prior, probe)]
        except ValueError as error:  # a schema's bounds refused a number (NaN fails every bound)
            raise RuntimeError(f"self-test failed for {model.name}: its answer is not valid: {error}") from error
        if not all(math.isfinite(number) for answer in answers for number in _numbers(answer)):
            raise RuntimeError(f"self-test failed for {model.name}: its answer holds a number that is not finite")


def _numbers(value: object) -> list[float]:
    """Every number in a JSON-like value (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return [number for item in value.values() for number in _numbers(item)]
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    return [float(value)] if isinstance(value, int | float) else []


def _probe_images() -> torch.Tensor:
    """Two MNIST-like images: a bar (a '1') and a ring (a '0')."""
    probe = torch.zeros(2, 1, 28, 28)
    probe[0, 0, 4:24, 13:16] = 1.0
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    radius = ((rows - 14.0) ** 2 / 81.0 + (cols - 14.0) ** 2 / 36.0).sqrt()
    probe[1, 0] = ((radius > 0.75) & (radius < 1.1)).float()
    return probe


class TorchWorker:
    """The single thread that runs the service's torch work (see the module docstring)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch")

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function`` on the worker thread, with the caller's context (its request id, for log lines)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Job:
    """One request's work: ``inputs.batch()`` builds its ``(B, 1, 28, 28)`` images; ``future`` gets its answer."""

    inputs: ModelInputs
    context: contextvars.Context
    future: asyncio.Future[tuple[torch.Tensor, list[ModelOutput]]]


class InferenceEngine:
    """The loaded models, run on a :class:`TorchWorker`, with concurrent requests micro-batched."""

    def __init__(
        self,
        models: Sequence[LoadedModel],
        worker: TorchWorker,
        on_inference: Callable[[str, int, float], None] | None = None,
        *,
        max_batch_requests: int = 32,
    ) -> None:
        if not models:
            raise ValueError("an engine needs at least one model")
        if max_batch_requests < 1:
            raise ValueError(f"max_batch_requests must be >= 1, got {max_batch_requests!r}")
        self.models = tuple(models)
        self.max_batch_requests = max_batch_requests
        self._worker = worker
        self._on_inference = on_inference
        self._queue: list[_Job] = []
        self._draining: asyncio.Task[None] | None = None

    def predict(self, images: torch.Tensor) -> list[ModelOutput]:
        """:func:`run_models` with the engine's models; call it on the worker thread."""
        outputs = run_models(self.models, images)
        if self._on_inference is not None:
            for output in outputs:
                self._on_inference(output.name, len(images), output.seconds)
        return outputs

    async def classify(self, inputs: ModelInputs) -> tuple[torch.Tensor, list[ModelOutput]]:
        """``batch = inputs.batch()``, then :meth:`predict` on it: the batch and every model's output.

        Both run on the worker thread in one hop (every hop between threads costs a
        wake-up), together with whatever other requests are queued (see the module
        docstring); the outputs returned hold this request's rows only. An error while
        building the batch (an upload that does not decode) fails this request alone.
        """
        loop = asyncio.get_running_loop()
        job = _Job(inputs, contextvars.copy_context(), loop.create_future())
        self._queue.append(job)
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        """Run the queued jobs, a batch at a time, until the queue is empty."""
        try:
            while self._queue:
                jobs = self._take_batch()
                try:
                    answers = await self._worker.run(self._run_jobs, jobs)
                except asyncio.CancelledError:  # shutting down: nobody will answer the waiting requests
                    for job in [*jobs, *self._queue]:
                        job.future.cancel()
                    raise
                except Exception as error:  # the models failed (or the worker is shut down): every job fails
                    answers = [error] * len(jobs)
                for job, answer in zip(jobs, answers, strict=True):
                    if job.future.done():  # the client went away
                        continue
                    if isinstance(answer, Exception):
                        job.future.set_exception(answer)
                    else:
                        job.future.set_result(answer)
        finally:
            self._draining = None

    def _take_batch(self) -> list[_Job]:
        """The oldest queued jobs whose clients still wait, at most ``max_batch_requests`` of them."""
        live = [job for job in self._queue if not job.future.done()]
        jobs, self._queue = live[: self.max_batch_requests], live[self.max_batch_requests :]
        return jobs

    def _run_jobs(self, jobs: Sequence[_Job]) -> list[tuple[torch.Tensor, list[ModelOutput]] | Exception]:
        """On the worker thread: build every job's batch (in its request's context), then one forward pass for all."""
        prepared: list[torch.Tensor | Exception] = []
        for job in jobs:
            try:
                prepared.append(job.context.run(job.inputs.batch))
            except Exception as error:  # this request's input error: the others go on
                prepared.append(error)
        batches = [batch for batch in prepared if isinstance(batch, torch.Tensor)]
        if not batches:
            return list(prepared)  # type: ignore[arg-type]
        outputs = self.predict(batches[0] if len(batches) == 1 else torch.cat(batches))
        answers: list[tuple[torch.Tensor, list[ModelOutput]] | Exception] = []
        start = 0
        for batch in prepared:
            if isinstance(batch, Exception):
                answers.append(batch)
                continue
            rows = slice(start, start + len(batch))
            answers.append((batch, [output.rows(rows) for output in outputs]))
            start += len(batch)
        return answers

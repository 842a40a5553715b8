"""Dynamic micro-batching in the inference engine: concurrent requests share a
forward pass, each gets its own rows, one bad input fails only its request.
No timing assertions: throughput is measured by ``bench/loadtest.py``."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from app.answering.inference import InferenceEngine, LoadedModel, TorchWorker
from app.answering.inputs import InputSpec, ModelInputs
from app.errors import InputError
from app.pictures.imaging import open_image
from model.registry import create_model


@pytest.fixture
def models() -> list[LoadedModel]:
    torch.manual_seed(0)
    gcnn = create_model("gcnn_c8", hidden_channels=2).eval()
    cnn = create_model("cnn", hidden_channels=4).eval()
    return [
        LoadedModel("cnn", cnn, {"architecture": "BaselineCNN", "config": {}}),
        LoadedModel("gcnn", gcnn, {"architecture": "GroupEquivariantCNN", "config": {"group": "C8"}}),
    ]


@pytest.fixture
def worker() -> Iterator[TorchWorker]:
    worker = TorchWorker()
    yield worker
    worker.close()


def images(seed: int, count: int = 1) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def inputs(seed: int, count: int = 1) -> ModelInputs:
    """``count`` decoded pictures, as the pipeline hands them to the engine: ``images(seed, count)`` once batched."""
    pictures = list(images(seed, count)[:, 0].numpy())
    return ModelInputs(pictures, [None] * count, InputSpec(max_pixels=28 * 28))


def undecodable() -> ModelInputs:
    """A small upload whose header opens but whose pixels do not decode (the PNG is cut short)."""
    buffer = io.BytesIO()
    Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).save(buffer, format="PNG")
    header = open_image(buffer.getvalue()[:60], 10**6)
    return ModelInputs([header], ["cut.png"], InputSpec(max_pixels=10**6))


def run_concurrently(engine: InferenceEngine, worker: TorchWorker, requests: list[ModelInputs]) -> list:
    """Hold the worker, queue ``classify`` for every request, release the worker, gather the answers."""

    async def scenario() -> list:
        gate = threading.Event()
        held = asyncio.ensure_future(worker.run(gate.wait, 10))  # the worker is busy: requests queue up
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(engine.classify(request)) for request in requests]
        await asyncio.sleep(0.05)
        gate.set()
        await held
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(scenario())


def test_queued_requests_share_one_forward_pass(models: list[LoadedModel], worker: TorchWorker) -> None:
    passes: list[tuple[str, int]] = []
    engine = InferenceEngine(models, worker, on_inference=lambda name, batch, _: passes.append((name, batch)))
    answers = run_concurrently(engine, worker, [inputs(seed) for seed in [1, 2, 3, 4, 5]])
    assert passes == [("cnn", 5), ("gcnn", 5)]
    for seed, (batch, outputs) in zip([1, 2, 3, 4, 5], answers, strict=True):
        assert torch.equal(batch, images(seed))
        alone = engine.predict(images(seed))
        for output, expected in zip(outputs, alone, strict=True):
            assert output.name == expected.name and output.probabilities.shape == (1, 10)
            torch.testing.assert_close(output.probabilities, expected.probabilities, atol=1e-5, rtol=1e-4)


def test_a_lone_request_runs_at_once_on_its_own(models: list[LoadedModel], worker: TorchWorker) -> None:
    passes: list[int] = []
    engine = InferenceEngine(models[:1], worker, on_inference=lambda _, batch, __: passes.append(batch))

    async def one_by_one() -> None:
        for seed in range(3):
            batch, _ = await engine.classify(inputs(seed, count=2))
            assert batch.shape == (2, 1, 28, 28)

    asyncio.run(one_by_one())
    assert passes == [2, 2, 2]


def test_a_bad_input_fails_only_its_own_request(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)
    answers = run_concurrently(engine, worker, [inputs(1), inputs(2), undecodable()])
    assert isinstance(answers[2], InputError)
    assert all(isinstance(answer, tuple) for answer in answers[:2])


def test_multi_image_requests_get_their_own_rows(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)
    answers = run_concurrently(engine, worker, [inputs(1, 3), inputs(2, 2)])
    assert [answer[1][0].probabilities.shape for answer in answers] == [(3, 10), (2, 10)]
    torch.testing.assert_close(
        answers[1][1][1].probabilities, engine.predict(images(2, 2))[1].probabilities, atol=1e-5, rtol=1e-4
    )


def test_batches_are_capped(models: list[LoadedModel], worker: TorchWorker) -> None:
    sizes: list[int] = []
    engine = InferenceEngine(
        models[:1], worker, on_inference=lambda _, batch, __: sizes.append(batch), max_batch_requests=2
    )
    run_concurrently(engine, worker, [inputs(seed) for seed in [1, 2, 3, 4, 5]])
    assert sizes == [2, 2, 1]
    with pytest.raises(ValueError, match="max_batch_requests"):
        InferenceEngine(models, worker, max_batch_requests=0)


def test_a_cancelled_request_does_not_stop_the_others(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)

    async def scenario() -> list:
        gate = threading.Event()
        held = asyncio.ensure_future(worker.run(gate.wait, 10))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(engine.classify(inputs(seed))) for seed in range(3)]
        await asyncio.sleep(0.05)
        tasks[1].cancel()
        gate.set()
        await held
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert isinstance(answers[1], asyncio.CancelledError)
    assert isinstance(answers[0], tuple) and isinstance(answers[2], tuple)


def test_a_failing_model_fails_every_request_of_its_batch(models: list[LoadedModel], worker: TorchWorker) -> None:
    colour = create_model("cnn", hidden_channels=4, in_channels=3).eval()  # refuses the grey batch
    engine = InferenceEngine(
        [*models, LoadedModel("colour", colour, {"architecture": "BaselineCNN", "config": {}})], worker
    )
    answers = run_concurrently(engine, worker, [inputs(1), inputs(2)])
    assert len(answers) == 2 and all(isinstance(answer, RuntimeError | ValueError) for answer in answers)

"""Dynamic micro-batching in the inference engine: concurrent requests share a
forward pass, each gets its own rows, one bad input fails only its request.
No timing assertions: throughput is measured by ``bench/loadtest.py``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import torch

from app.errors import InputError
from app.inference import InferenceEngine, LoadedModel, TorchWorker
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


def image(seed: int, count: int = 1) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def held_up(gate: threading.Event) -> torch.Tensor:
    """A prepare step that keeps the worker busy until ``gate`` opens, so that others queue up."""
    gate.wait(timeout=10)
    return image(100)


def failing() -> torch.Tensor:
    raise InputError("not an image")


def run_concurrently(engine: InferenceEngine, seeds: list[int], *, extra: list | None = None) -> list:
    """Hold the worker, queue ``classify`` for every seed (and ``extra`` prepares), release, gather."""

    async def scenario() -> list:
        gate = threading.Event()
        first = asyncio.ensure_future(engine.classify(held_up, gate))
        await asyncio.sleep(0.05)  # the first job now occupies the worker
        calls = [engine.classify(image, seed) for seed in seeds] + [engine.classify(p) for p in extra or []]
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(scenario())


def test_queued_requests_share_one_forward_pass(models: list[LoadedModel], worker: TorchWorker) -> None:
    passes: list[tuple[str, int]] = []
    engine = InferenceEngine(models, worker, on_inference=lambda name, batch, _: passes.append((name, batch)))
    answers = run_concurrently(engine, [1, 2, 3, 4, 5])
    assert passes == [("cnn", 1), ("gcnn", 1), ("cnn", 5), ("gcnn", 5)]
    for seed, (batch, outputs) in zip([1, 2, 3, 4, 5], answers, strict=True):
        assert torch.equal(batch, image(seed))
        alone = engine.predict(image(seed))
        for output, expected in zip(outputs, alone, strict=True):
            assert output.name == expected.name and output.probabilities.shape == (1, 10)
            torch.testing.assert_close(output.probabilities, expected.probabilities, atol=1e-5, rtol=1e-4)


def test_a_lone_request_runs_at_once_on_its_own(models: list[LoadedModel], worker: TorchWorker) -> None:
    passes: list[int] = []
    engine = InferenceEngine(models[:1], worker, on_inference=lambda _, batch, __: passes.append(batch))

    async def one_by_one() -> None:
        for seed in range(3):
            batch, _ = await engine.classify(image, seed, count=2)
            assert batch.shape == (2, 1, 28, 28)

    asyncio.run(one_by_one())
    assert passes == [2, 2, 2]


def test_a_bad_input_fails_only_its_own_request(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)
    answers = run_concurrently(engine, [1, 2], extra=[failing])
    assert isinstance(answers[2], InputError)
    assert all(isinstance(answer, tuple) for answer in answers[:2])


def test_multi_image_requests_get_their_own_rows(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)
    answers = run_concurrently(engine, [], extra=[lambda: image(1, 3), lambda: image(2, 2)])
    assert [answer[1][0].probabilities.shape for answer in answers] == [(3, 10), (2, 10)]
    torch.testing.assert_close(
        answers[1][1][1].probabilities, engine.predict(image(2, 2))[1].probabilities, atol=1e-5, rtol=1e-4
    )


def test_batches_are_capped(models: list[LoadedModel], worker: TorchWorker) -> None:
    sizes: list[int] = []
    engine = InferenceEngine(
        models[:1], worker, on_inference=lambda _, batch, __: sizes.append(batch), max_batch_requests=2
    )
    run_concurrently(engine, [1, 2, 3, 4, 5])
    assert sizes == [1, 2, 2, 1]
    with pytest.raises(ValueError, match="max_batch_requests"):
        InferenceEngine(models, worker, max_batch_requests=0)


def test_a_cancelled_request_does_not_stop_the_others(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)

    async def scenario() -> list:
        gate = threading.Event()
        first = asyncio.ensure_future(engine.classify(held_up, gate))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(engine.classify(image, seed)) for seed in range(3)]
        await asyncio.sleep(0.05)
        tasks[1].cancel()
        gate.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert isinstance(answers[1], asyncio.CancelledError)
    assert isinstance(answers[0], tuple) and isinstance(answers[2], tuple)


def test_a_failing_model_fails_every_request_of_its_batch(models: list[LoadedModel], worker: TorchWorker) -> None:
    engine = InferenceEngine(models, worker)
    answers = run_concurrently(engine, [1, 2], extra=[lambda: torch.zeros(1, 3, 28, 28)])  # wrong channel count
    assert all(isinstance(answer, RuntimeError | ValueError) for answer in answers)

"""Library speed of the shipped models, measured against this machine's matrix-multiply rate.

For every checkpoint card it measures, in eval mode under ``torch.inference_mode``:
forward FLOPs per image, batch-1 latency, batch-256 throughput, and the training
step time at batch 64 (forward, backward, AdamW step, on a copy of the model);
models with a pose (a joint head) also have their batch-1 reading through the serving
interface (:class:`model.serving.ServingModel`'s ``predict``: digit and pose, what the
service calls) counted and timed;
models with a kernel-bank cache (the G-CNN) are also timed with it disabled, and
every model exported to ONNX (:mod:`model.export`) is timed in onnxruntime when
that is installed (a dev dependency), with the same threads.
Every rate is printed as GFLOP/s and as a fraction of the fp32 ``torch.mm``
rate measured in the same run. FLOPs: see :mod:`bench.timing`.

    python -m bench.speed                       # the two shipped models, default threads
    python -m bench.speed --threads 1 --json runs/speed.json
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from bench.timing import Timing, count_flops, matmul_gflops, set_kernel_cache, time_calls, train_step
from model.checkpoint import load_checkpoint
from model.export import export_onnx
from model.serving import Prediction, ServingModel, as_serving

DEFAULT_CARDS = ("weights/cnn_seed.json", "weights/gcnn_c8_wide.json")


@dataclass(frozen=True)
class Measurement:
    """One timed quantity: ``images`` processed per call, ``flops`` per call."""

    label: str
    timing: Timing
    images: int
    flops: int

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    @property
    def images_per_second(self) -> float:
        return self.images / self.timing.median


@dataclass
class ModelReport:
    name: str
    parameters: int
    flops_per_image: int
    measurements: dict[str, Measurement] = field(default_factory=dict)


def inference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def has_kernel_cache(model: nn.Module) -> bool:
    return any(hasattr(module, "cache_kernels") for module in model.modules())


def measure_forward(model: nn.Module, label: str, batch: int, runs: int) -> Measurement:
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    inference(model, x)  # fills any cache, so the FLOP count is the steady state
    flops = count_flops(lambda: inference(model, x))
    return Measurement(label, time_calls(lambda: inference(model, x), runs), batch, flops)


def measure_pose(model: ServingModel, runs: int) -> Measurement:
    """One batch-1 reading of digit and pose through the serving interface, caches filled first: the steady
    state's FLOPs, as the forwards'."""
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    def read() -> Prediction:
        with torch.inference_mode():
            return model.predict(x)

    read()  # fills any cache, so the FLOP count is the steady state
    flops = count_flops(read)
    return Measurement("pose reading (predict), batch 1", time_calls(read, runs), 1, flops)


def measure_train_step(model: nn.Module, batch: int, runs: int) -> Measurement:
    """Forward, cross-entropy backward and an AdamW step on a copy of ``model``."""
    step = train_step(copy.deepcopy(model), batch)
    flops = count_flops(step)
    return Measurement(f"train step, batch {batch}", time_calls(step, runs, warmup=2), batch, flops)


def measure_model(card: Path, args: argparse.Namespace) -> ModelReport:
    model, meta = load_checkpoint(card)
    report = ModelReport(meta["name"], sum(p.numel() for p in model.parameters()), 0)
    runs = {1: args.latency_runs, args.batch: args.throughput_runs}
    for batch, count in runs.items():
        report.measurements[f"b{batch}"] = measure_forward(model, f"eval forward, batch {batch}", batch, count)
    report.flops_per_image = report.measurements["b1"].flops  # steady state: cached banks are not re-expanded
    if has_kernel_cache(model):
        set_kernel_cache(model, False)
        for batch, count in runs.items():
            label = f"eval forward, batch {batch}, kernel cache off"
            report.measurements[f"b{batch}_nocache"] = measure_forward(model, label, batch, count)
        set_kernel_cache(model, True)
    serving = as_serving(model)
    if serving.has_pose:
        report.measurements["pose"] = measure_pose(serving, args.latency_runs)
    report.measurements["train"] = measure_train_step(model, args.train_batch, args.train_runs)
    report.measurements.update(measure_onnxruntime(model, runs, report.measurements))
    return report


def measure_onnxruntime(
    model: nn.Module, runs: dict[int, int], library: dict[str, Measurement]
) -> dict[str, Measurement]:
    """The exported network (:mod:`model.export`) in onnxruntime, same batches and threads; {} without it."""
    try:
        import onnxruntime
    except ImportError:
        return {}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / "model.onnx")
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    found = {}
    for batch, count in runs.items():
        x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).numpy()
        timing = time_calls(functools.partial(session.run, ["logits"], {"image": x}), count)
        flops = library[f"b{batch}"].flops  # the same convolutions
        found[f"b{batch}_onnx"] = Measurement(f"onnxruntime forward, batch {batch}", timing, batch, flops)
    return found


def value_text(measurement: Measurement) -> str:
    if measurement.images == 1:
        return f"{measurement.timing.median * 1e3:8.3f} ms"
    return f"{measurement.images_per_second:8.1f} img/s ({measurement.timing.median * 1e3:.1f} ms)"


def results_table(reports: Sequence[ModelReport], limit: float) -> str:
    header = f"{'model':<14} {'measurement':<40} {'value':>28} {'GFLOP/s':>8} {'of limit':>8} {'spread':>7} {'runs':>5}"
    lines = [header, "-" * len(header)]
    for report in reports:
        lines.append(f"{report.name:<14} {'parameters':<40} {report.parameters:>28,}")
        lines.append(f"{report.name:<14} {'forward FLOPs per image':<40} {report.flops_per_image / 1e9:>22.4f} GFLOP")
        if "pose" in report.measurements:
            pose_flops = report.measurements["pose"].flops
            lines.append(f"{report.name:<14} {'pose reading FLOPs per image':<40} {pose_flops:>28,}")
        for m in report.measurements.values():
            lines.append(
                f"{report.name:<14} {m.label:<40} {value_text(m):>28} {m.gflops:>8.1f} {m.gflops / limit:>8.0%} "
                f"{m.timing.spread:>7.0%} {m.timing.runs:>5}"
            )
    return "\n".join(lines)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x"


def ratios_table(cnn: ModelReport, gcnn: ModelReport, batch: int) -> str:
    c, g = cnn.measurements, gcnn.measurements
    rows = [
        ("FLOPs per image", ratio(gcnn.flops_per_image, cnn.flops_per_image)),
        ("parameters", ratio(gcnn.parameters, cnn.parameters)),
        ("batch-1 latency", ratio(g["b1"].timing.median, c["b1"].timing.median)),
        (f"batch-{batch} time per image", ratio(c[f"b{batch}"].images_per_second, g[f"b{batch}"].images_per_second)),
        ("train step time", ratio(g["train"].timing.median, c["train"].timing.median)),
        (f"batch-{batch} GFLOP/s", ratio(g[f"b{batch}"].gflops, c[f"b{batch}"].gflops)),
    ]
    lines = [f"{gcnn.name} / {cnn.name}:"] + [f"  {name:<28} {value:>8}" for name, value in rows]
    return "\n".join(lines)


def targets_table(gcnn: ModelReport, limit: float, batch: int) -> str:
    g = gcnn.measurements
    cache_b256 = g[f"b{batch}_nocache"].timing.median / g[f"b{batch}"].timing.median
    cache_b1 = g["b1_nocache"].timing.median / g["b1"].timing.median
    fraction = g[f"b{batch}"].gflops / limit
    latency_ms = g["b1"].timing.median * 1e3
    rows = [
        (f"kernel cache speed-up, batch {batch} >= 2x", f"{cache_b256:.2f}x", cache_b256 >= 2),
        ("kernel cache speed-up, batch 1 (for scale)", f"{cache_b1:.2f}x", None),
        (f"batch-{batch} GFLOP/s >= 50% of matmul rate", f"{fraction:.0%}", fraction >= 0.5),
        ("batch-1 latency <= 2.5 ms", f"{latency_ms:.2f} ms", latency_ms <= 2.5),
    ]
    lines = [f"targets ({gcnn.name}):"]
    for name, value, met in rows:
        verdict = "" if met is None else ("met" if met else "NOT met")
        lines.append(f"  {name:<44} {value:>9}  {verdict}")
    return "\n".join(lines)


def machine_line(threads: int) -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{threads} intra-op threads, load average {load}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="*", type=Path, default=[Path(card) for card in DEFAULT_CARDS])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--batch", type=int, default=256, help="throughput batch size")
    parser.add_argument("--latency-runs", type=int, default=200, help="timed batch-1 forwards (median)")
    parser.add_argument("--throughput-runs", type=int, default=10, help="timed large-batch forwards (median)")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--train-runs", type=int, default=10)
    parser.add_argument("--matmul-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    return parser.parse_args(argv)


def to_json(reports: Sequence[ModelReport], limit: float, threads: int) -> dict:
    def measurement(m: Measurement) -> dict:
        return {**asdict(m), "gflops": m.gflops, "images_per_second": m.images_per_second, "of_limit": m.gflops / limit}

    return {
        "matmul_gflops": limit,
        "threads": threads,
        "load_average": os.getloadavg(),
        "models": [
            {
                "name": r.name,
                "parameters": r.parameters,
                "flops_per_image": r.flops_per_image,
                "measurements": {key: measurement(m) for key, m in r.measurements.items()},
            }
            for r in reports
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(machine_line(threads))
    sizes = tuple(args.matmul_sizes)
    before = matmul_gflops(sizes)
    reports = [measure_model(card, args) for card in args.cards]
    after = matmul_gflops(sizes)
    # The larger of the two: a burst of load from elsewhere must not shrink the limit (and flatter the models).
    limit = max(before, after)
    print(
        f"fp32 matmul rate (the limit): {limit:.1f} GFLOP/s (torch.mm, best median over n = {list(sizes)}; "
        f"{before:.1f} before the models, {after:.1f} after)"
    )
    print()
    print(results_table(reports, limit))
    cnn = next((r for r in reports if not any(k.endswith("nocache") for k in r.measurements)), None)
    gcnn = next((r for r in reports if any(k.endswith("nocache") for k in r.measurements)), None)
    if gcnn is not None:
        if cnn is not None:
            print()
            print(ratios_table(cnn, gcnn, args.batch))
        print()
        print(targets_table(gcnn, limit, args.batch))
    print()
    print(machine_line(threads))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(reports, limit, threads), indent=2) + "\n")


if __name__ == "__main__":
    main()

"""This library beside e2cnn (the reference equivariant-CNN library): the same C8 network, one process, interleaved.

    pip install -e ".[bench]"        # e2cnn: never a dependency of the library or the service
    python -m bench.e2cnn_compare

The network is ``gcnn_c8_wide`` (model/registry.py) in both libraries: a
lifting convolution from one trivial field to 12 regular C8 fields, four group
convolutions between 12 regular fields, 5x5 kernels with 'same' padding (both
libraries' default bases give 144 and 12,684 parameters per layer), batch norm
and ReLU after each, 2x2 max pooling after the first and third, max over the
group axis, mean over space, a linear head. e2cnn runs ``R2Conv``,
``InnerBatchNorm``, ``ReLU``, ``PointwiseMaxPool`` and ``GroupPooling``; for
inference its documented fast path, ``export()`` (plain PyTorch modules with the
kernels expanded), against this library's eval path (fused and cached).

Each measurement alternates the two libraries, a few calls at a time, for
``--rounds`` rounds, and reports both medians and their ratio (e2cnn time /
this library's time: above 1, this library is faster), so both see the same
load on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bench.timing import train_step
from model.registry import create_model

__all__ = ["E2cnnNet", "main"]


class E2cnnNet(nn.Module):
    """``gcnn_c8_wide`` built from e2cnn's modules."""

    def __init__(self, width: int = 12, rotations: int = 8, hidden: int = 4) -> None:
        super().__init__()
        from e2cnn import gspaces
        from e2cnn import nn as enn

        space = gspaces.Rot2dOnR2(N=rotations)
        self.input_type = enn.FieldType(space, [space.trivial_repr])
        fields = enn.FieldType(space, width * [space.regular_repr])
        layers: list[enn.EquivariantModule] = []
        for index in range(hidden + 1):
            layers += [
                enn.R2Conv(self.input_type if index == 0 else fields, fields, 5, padding=2),
                enn.InnerBatchNorm(fields),
                enn.ReLU(fields, inplace=True),
            ]
            if index in (0, 2):
                layers.append(enn.PointwiseMaxPool(fields, 2))
        layers.append(enn.GroupPooling(fields))  # max over the group axis: width invariant channels
        self.features = enn.SequentialModule(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from e2cnn import nn as enn

        features = self.features(enn.GeometricTensor(x, self.input_type)).tensor  # (B, width, H, W)
        return self.head(features.mean(dim=(-2, -1)))


class _Exported(nn.Module):
    """e2cnn's ``export()`` of the features, with the same head."""

    def __init__(self, net: E2cnnNet) -> None:
        super().__init__()
        self.features, self.head = net.features.export(), net.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(-2, -1)))


def _interleaved(calls: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternation."""
    for call in calls.values():  # warm-up: caches, allocator, oneDNN primitives
        for _ in range(2):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(per_round):
                call()
            times[name].append((time.perf_counter() - started) / per_round)
    return {name: statistics.median(values) for name, values in times.items()}


def _inference(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours, theirs = create_model("gcnn_c8_wide"), E2cnnNet()
    count = {name: sum(p.numel() for p in m.parameters()) for name, m in (("ours", ours), ("e2cnn", theirs))}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(f"parameters: this library {count['ours']:,}, e2cnn {count['e2cnn']:,}")
    rows = []
    for batch, per_round in ((64, 2),):
        medians = _interleaved(
            {"ours": train_step(ours, batch), "e2cnn": train_step(theirs, batch)}, args.rounds, per_round
        )
        rows.append((f"training step, batch {batch} (forward, backward, AdamW)", medians))
    ours.eval()
    exported = _Exported(theirs.eval()).eval()
    for batch, per_round in ((1, 20), (256, 1)):
        x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        medians = _interleaved({"ours": _inference(ours, x), "e2cnn": _inference(exported, x)}, args.rounds, per_round)
        rows.append((f"eval, batch {batch} (e2cnn: its export())", medians))
    print(f"\n{'measurement':<52} {'this library':>14} {'e2cnn':>12} {'e2cnn / ours':>13}")
    for label, medians in rows:
        ratio = medians["e2cnn"] / medians["ours"]
        print(f"{label:<52} {medians['ours'] * 1e3:>11.2f} ms {medians['e2cnn'] * 1e3:>9.2f} ms {ratio:>12.2f}x")
    print("\ntargets: eval >= 1.3x at batch 1 and 256, training step >= 1.5x")


if __name__ == "__main__":
    main()

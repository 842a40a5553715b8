"""MNIST test digits sent as uploads: where the service loses turned digits that the protocol reads.

    python -m bench.mnist_uploads                                  # gcnn_c8_pose, the first 2,000 test digits
    python -m bench.mnist_uploads weights/gcnn_c8_pose.json runs/x/other.json --count 5000

The rotated-MNIST protocol (:mod:`model.evaluate`) turns each 28x28 test digit
about the grid's centre, so its centre of mass turns with it, and reads the
network as it is. An upload is turned before the service sees it: preprocessing
(:mod:`app.pictures.preprocessing`) crops it, scales it and centres its mass at
MNIST's (14, 14) whatever its turn, and the service reads a pose model's centred
input by :func:`model.centring.predict_centred`. Same digits, same angles (the
protocol's, seed 0), read step by step from the protocol towards an upload:

- ``protocol``: the network on the protocol's turned digits;
- ``mass at (14, 14)``: the same inputs with their mass moved back to (14, 14)
  (:func:`model.centring.recentre`, at most a pixel each way), the network as it is;
- ``centred reading, lean L``: those inputs read as the service reads them
  (:func:`model.centring.predict_centred`, leaning towards upright by ``L``; the
  default lean is :data:`model.centring.CENTRING_CONCENTRATION`);
- ``drawn large``: every digit enlarged 4x (bicubic) and turned at that size
  (bicubic, the canvas grown to hold it), then preprocessed as the service
  preprocesses an upload (``mnist_normalise``) and read as the service reads it.

Counts as :mod:`bench.acceptance` does: a turned 6 read as a 9 (or a 9 as a 6)
is right when flagged ambiguous with the true digit among the readings. Prints
the accuracy over all the turned digits, and by the angle's distance from the
nearest quarter turn (0-15, 15-30, 30-45 degrees); upright digits for reference.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.pictures.preprocessing import mnist_normalise
from model.centring import CENTRING_CONCENTRATION, MNIST_CENTRE, predict_centred, recentre
from model.checkpoint import load_checkpoint
from model.data import load_mnist
from model.evaluate import rotated_test_set
from model.orientation import Pose
from model.serving import Prediction, as_serving

__all__ = ["as_uploads", "main", "right_answers"]

HALF_TURN_PARTNER = {6: 9, 9: 6}
ENLARGE = 4  # the upload's size: 112 px for a 28 px digit
BATCH = 500
BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0))
Reader = Callable[[torch.Tensor], Prediction]


def as_uploads(images: torch.Tensor, degrees: np.ndarray) -> torch.Tensor:
    """``(N, 1, 28, 28)`` digits as the service makes its input from uploads of them: enlarged, turned
    counter-clockwise by ``degrees`` at that size, then :func:`mnist_normalise` (light ink on black)."""
    inputs = []
    for image, angle in zip(images[:, 0].numpy(), degrees, strict=True):
        grey = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))
        size = grey.width * ENLARGE
        upload = grey.resize((size, size), Image.Resampling.BICUBIC)
        upload = upload.rotate(float(angle), resample=Image.Resampling.BICUBIC, expand=True)
        inputs.append(mnist_normalise(np.asarray(upload)))
    return torch.from_numpy(np.stack(inputs))[:, None]


def right_answers(pose: Pose, labels: torch.Tensor, turned: bool) -> np.ndarray:
    """``(N,)`` bool: each answer right as :mod:`bench.acceptance` counts it."""
    readings = pose.top_readings(3)
    answer = readings.digits[:, 0]
    right = (answer == labels).numpy()
    if turned:
        swapped = np.array([HALF_TURN_PARTNER.get(int(d)) == int(a) for d, a in zip(labels, answer, strict=True)])
        among = (readings.digits == labels[:, None]).any(dim=1).numpy()
        right |= swapped & readings.ambiguous().numpy() & among
    return right


def _in_bin(distance: np.ndarray, low: float, high: float) -> np.ndarray:
    """Angles ``low <= distance < high`` from the nearest quarter turn; the last bin holds 45 degrees too."""
    return (distance >= low) & ((distance < high) | (high == BINS[-1][1]) & (distance <= high))


def _poses(read: Reader, inputs: torch.Tensor) -> Pose:
    poses = []
    for start in range(0, len(inputs), BATCH):
        pose = read(inputs[start : start + BATCH]).pose
        assert pose is not None  # main reads only networks with a pose
        poses.append(pose)
    return Pose(poses[0].group, torch.cat([pose.log_joint for pose in poses]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cards", nargs="*", type=Path, default=[Path("weights/gcnn_c8_pose.json")])
    parser.add_argument("--count", type=int, default=2000, help="the first N MNIST test digits (GCNN_DATA_DIR)")
    parser.add_argument("--leans", type=float, nargs="+", default=[0.0, CENTRING_CONCENTRATION])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    images, labels = load_mnist(train=False)
    images, labels = images[: args.count], labels[: args.count]
    rotated, degrees = rotated_test_set(images, seed=0)
    distance = np.abs((degrees + 45.0) % 90.0 - 45.0)
    recentred = recentre(rotated, MNIST_CENTRE)
    uploads, upright_uploads = as_uploads(images, degrees), as_uploads(images, np.zeros(len(images)))
    print(
        f"MNIST test digits 0-{args.count - 1}, turned as the protocol turns them (seed 0); default lean "
        f"{CENTRING_CONCENTRATION:g}\n"
    )
    header = " | ".join(f"{low:g}-{high:g}°" for low, high in BINS)
    print(f"| model | reading | upright | turned | {header} |")
    print("|---|---|---|---|" + "---|" * len(BINS))
    for card in args.cards:
        module, _ = load_checkpoint(card)
        network = as_serving(module.eval())
        if not network.has_pose:
            raise SystemExit(f"{card}: the network has no pose (a joint head is needed)")
        centred = {lean: functools.partial(predict_centred, network, concentration=lean) for lean in args.leans}
        readings: list[tuple[str, Reader, torch.Tensor, torch.Tensor]] = [
            ("protocol", network.predict, images, rotated),
            ("mass at (14, 14)", network.predict, images, recentred),
        ]
        for lean in args.leans:
            readings.append((f"mass at (14, 14), centred reading, lean {lean:g}", centred[lean], images, recentred))
        for lean in args.leans:
            readings.append((f"drawn large, centred reading, lean {lean:g}", centred[lean], upright_uploads, uploads))
        for name, read, upright_inputs, turned_inputs in readings:
            with torch.inference_mode():
                upright = right_answers(_poses(read, upright_inputs), labels, turned=False)
                turned = right_answers(_poses(read, turned_inputs), labels, turned=True)
            by_bin = " | ".join(f"{100 * turned[_in_bin(distance, low, high)].mean():.2f}%" for low, high in BINS)
            print(f"| `{card.stem}` | {name} | {100 * upright.mean():.2f}% | {100 * turned.mean():.2f}% | {by_bin} |")


if __name__ == "__main__":
    main()

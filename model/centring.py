"""Where the centre of mass sits: a cue the networks learnt from MNIST, and reading an input whose cue is made up.

MNIST places every digit with its centre of mass at pixel :data:`MNIST_CENTRE`
(row 14, column 14, 0-based), half a pixel off the centre ``(13.5, 13.5)`` that
:mod:`model.rotation` turns about. Networks trained on upright MNIST digits
learn the offset as a sign of "upright": a G-CNN exactly invariant to quarter
turns tells an upright 6 from an upright 9 by it (``python -m
bench.centre_of_mass``). Turning a digit by ``k`` quarter turns takes its mass to
:func:`mass_position` ``(k)``: (14, 14), (13, 14), (13, 13), (14, 13); on turned
MNIST digits (the rotated-MNIST protocol) the cue turns with the digit and
stays true.

A service that centres an upload by its mass after the upload was turned puts
the mass at (14, 14) whatever the turn: the cue then says "upright" for every
such input, and a turned typeset 6 (in most fonts a 9 turned by half a turn)
reads as a sure upright 9. :func:`centred_pose` reads such an input without
the made-up cue. The network reads the input with its mass moved to each of the
four positions, ``x_k``, and each copy answers for the angles near its own
quarter turn:

    p(d, theta) ~ pi(theta) sum_k w_k(theta) p(d, theta | x_k),
    w_k(theta) = softmax_k(HYPOTHESIS_CONCENTRATION cos(theta - 90 k)),
    pi(theta) = exp(CENTRING_CONCENTRATION (cos(theta - upright) - 1)) (model.orientation.upright_prior),

``p(d, theta | x_k)`` the joint reading of copy ``k`` (:mod:`model.orientation`).
Without ``pi`` the reading is exactly equivariant to quarter turns of the input:
turning it turns every copy's mass position into another's. ``pi`` is a lean
towards the angle ``upright`` (where an upright upload would be: 0 unless the
caller turned the input itself), so that a glyph that reads equally well as a
6 upright and as a 9 turned by half a turn is answered as the 6, and flagged
ambiguous; the made-up cue leaned all the way, the lean lets a clear reading of
a turned digit win. :data:`CENTRING_CONCENTRATION` was chosen on an acceptance
set made for tuning (docs/orientation.md), not on the reported one, for
``gcnn_c8_pose``; another network may read best at another lean, chosen the same
way (``python -m bench.centring --choose``) and passed to :func:`predict_centred`.

Positions are ``(row, column)`` of the ``(H, W)`` pixel grid; angles follow
:mod:`model.groups` (degrees, counter-clockwise).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from model.orientation import Pose, angles, upright_prior
from model.serving import Prediction, ServingModel

__all__ = [
    "CARD_SECTION",
    "CENTRING_CONCENTRATION",
    "HYPOTHESIS_CONCENTRATION",
    "MNIST_CENTRE",
    "centred_pose",
    "chosen_lean",
    "mass_position",
    "mass_quarter_turn",
    "predict_centred",
    "recentre",
]

MNIST_CENTRE = (14.0, 14.0)  # (row, column): measured on the test set, 13.99 and 14.01
HYPOTHESIS_CONCENTRATION = 8.0  # how sharply each mass position answers for its own quarter turn's angles
CENTRING_CONCENTRATION = 1.0  # the lean towards upright: 90 degrees keeps e^-1 = 0.37 of its weight, 180 e^-2
QUARTER_TURNS = 4
CARD_SECTION = "centred_reading"  # where a model card records the lean chosen for its network (bench.centring)


def mass_position(quarter_turns: int, size: tuple[int, int] = (28, 28)) -> tuple[float, float]:
    """Where MNIST's centre of mass goes when the ``size`` image is turned counter-clockwise by
    ``quarter_turns`` quarter turns about its centre."""
    centre_row, centre_col = (size[0] - 1) / 2, (size[1] - 1) / 2
    x, y = MNIST_CENTRE[1] - centre_col, centre_row - MNIST_CENTRE[0]  # x right, y up (model.groups)
    k = quarter_turns % QUARTER_TURNS
    cos, sin = (1, 0, -1, 0)[k], (0, 1, 0, -1)[k]
    return centre_row - (x * sin + y * cos), centre_col + (x * cos - y * sin)


def _centre_of_mass(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row ``(B,)``, column ``(B,)`` of each ``(B, 1, H, W)`` image's centre of mass, and whether it has mass."""
    mass = images[:, 0].double().clamp_min(0.0)
    total = mass.sum(dim=(1, 2))
    safe = total.clamp_min(1e-12)
    row = mass.sum(dim=2) @ torch.arange(images.shape[-2], dtype=torch.float64) / safe
    col = mass.sum(dim=1) @ torch.arange(images.shape[-1], dtype=torch.float64) / safe
    return row, col, total > 0


def recentre(images: torch.Tensor, position: tuple[float, float]) -> torch.Tensor:
    """``(B, 1, H, W)`` images moved by whole pixels so that each one's centre of mass is nearest ``position``
    (zero fill; an image without mass stays where it is)."""
    batch, _, height, width = images.shape
    row, col, has_mass = _centre_of_mass(images)
    down = torch.where(has_mass, torch.round(position[0] - row), 0.0).long().clamp(-height, height)
    right = torch.where(has_mass, torch.round(position[1] - col), 0.0).long().clamp(-width, width)
    margin = int(torch.cat([down.abs(), right.abs(), torch.zeros(1, dtype=torch.long)]).max())
    padded = F.pad(images, (margin, margin, margin, margin))  # (B, 1, H + 2m, W + 2m)
    rows = torch.arange(height)[None, :] - down[:, None] + margin  # (B, H): source row of each output row
    cols = torch.arange(width)[None, :] - right[:, None] + margin
    moved = padded[:, 0].gather(1, rows[:, :, None].expand(batch, height, padded.shape[-1]))
    return moved.gather(2, cols[:, None, :].expand(batch, height, width))[:, None]


def chosen_lean(card: dict[str, Any]) -> float:
    """The lean chosen for a network on the tuning set, as its card records it (``centred_reading.lean``,
    written by ``python -m bench.centring --choose``), else :data:`CENTRING_CONCENTRATION`.

    Raises:
        ValueError: the card records a lean that is not a finite number >= 0.
    """
    if CARD_SECTION not in card:
        return CENTRING_CONCENTRATION
    section = card[CARD_SECTION]
    lean = section.get("lean") if isinstance(section, dict) else None
    try:
        value = float(lean) if isinstance(lean, int | float) and not isinstance(lean, bool) else math.nan
    except OverflowError:  # an integer beyond any float
        value = math.inf
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"the card's {CARD_SECTION}.lean must be a finite number >= 0, not {lean!r}")
    return value


def _hypothesis_weights() -> torch.Tensor:
    """``log w_k(theta)`` ``(4, A)`` over :func:`model.orientation.angles`."""
    radians = torch.deg2rad(angles())
    scores = torch.stack([HYPOTHESIS_CONCENTRATION * torch.cos(radians - k * math.pi / 2) for k in range(4)])
    return scores - torch.logsumexp(scores, dim=0)


def centred_pose(
    model: ServingModel,
    images: torch.Tensor,
    upright: torch.Tensor | float = 0.0,
    concentration: float = CENTRING_CONCENTRATION,
) -> Pose:
    """The joint reading of ``images`` ``(B, 1, H, W)`` whose centre of mass was placed at MNIST's whatever
    their turn (the module docstring); ``upright``: the angle of the lean, one for all or ``(B,)``;
    ``concentration``: its strength (0: no lean).

    Raises:
        ValueError: the model has no pose.
    """
    if not model.has_pose or model.group is None:
        raise ValueError("a centred reading needs a network with a pose (a joint head)")
    size = (images.shape[-2], images.shape[-1])
    copies = torch.cat([recentre(images, mass_position(k, size)) for k in range(QUARTER_TURNS)])
    pose = model.predict(copies).pose
    assert pose is not None  # has_pose
    log_joint = pose.log_joint.view(QUARTER_TURNS, len(images), *pose.log_joint.shape[1:])  # (4, B, D, A)
    mixed = torch.logsumexp(log_joint + _hypothesis_weights()[:, None, None, :], dim=0)  # (B, D, A)
    centre = torch.as_tensor(upright, dtype=torch.float64).reshape(-1, 1, 1)
    weighed = mixed + upright_prior(angles() - centre, concentration)  # the lean: (1 or B, 1, A)
    return Pose(pose.group, weighed - torch.logsumexp(weighed, dim=(1, 2), keepdim=True))


def mass_quarter_turn(images: torch.Tensor) -> torch.Tensor:
    """``(B,)`` long: for each ``(B, 1, H, W)`` image, the ``k`` whose :func:`mass_position` is the pixel nearest
    its centre of mass (a digit centred as MNIST's, turned by ``k`` quarter turns), or -1 for none (or no mass)."""
    size = (images.shape[-2], images.shape[-1])
    row, col, has_mass = _centre_of_mass(images)
    found = torch.full((len(images),), -1, dtype=torch.long)
    for k in range(QUARTER_TURNS):
        position = mass_position(k, size)
        stays = (torch.round(position[0] - row) == 0) & (torch.round(position[1] - col) == 0)  # as recentre rounds
        found = torch.where(stays & has_mass & (found < 0), k, found)
    return found


def predict_centred(
    model: ServingModel, images: torch.Tensor, concentration: float = CENTRING_CONCENTRATION
) -> Prediction:
    """``model.predict(images)``, with every row whose centre of mass sits where MNIST's does after ``k`` quarter
    turns (:func:`mass_quarter_turn`) read by :func:`centred_pose`, leaning towards ``90 k`` degrees with strength
    ``concentration``: there the cue cannot say whether the digit is upright (every upload centred after it was
    turned sits at ``k = 0``; the service may turn such an input by quarter turns after that). Reading every such
    row so keeps the answer exactly equivariant to quarter turns. Other rows, and a network without a pose, read
    as they are."""
    turns = mass_quarter_turn(images) if model.has_pose else torch.full((len(images),), -1, dtype=torch.long)
    centred = turns >= 0
    if not bool(centred.any()):
        return model.predict(images)
    upright = 90.0 * turns.double()
    if bool(centred.all()):
        pose = centred_pose(model, images, upright, concentration)
    else:
        plain = model.predict(images[~centred]).pose
        assert plain is not None  # has_pose
        log_joint = torch.empty(len(images), *plain.log_joint.shape[1:], dtype=plain.log_joint.dtype)
        log_joint[~centred] = plain.log_joint
        log_joint[centred] = centred_pose(model, images[centred], upright[centred], concentration).log_joint
        pose = Pose(plain.group, log_joint)
    return Prediction(pose.digit_probabilities.float(), pose)

"""Which way is the digit turned: joint (digit, rotation) scores from equivariant features.

The last group feature map of a C_N network, ``F(c, g, x)``, is equivariant:
turning the input by ``r^k`` turns space and shifts the element axis,
``F'(c, g, x) = F(c, g - k, r^-k x)``. The invariant head pools that axis away.
:class:`JointHead` keeps what it knows about the pose:

    p(d, theta) = p(d) p(theta | d)

- ``p(d) = softmax(a)``, ``a = A . inv``, ``inv(c) = mean_x max_g F(c, g, x)``: the
  invariant head (rotation-invariant, exactly for quarter turns);
- ``p(theta | d) ~ exp(l_d(theta))``, a *pose profile* per digit, band-limited on
  the circle: ``l_d(theta) = sum_{m=1..M} Re(V_dm e^{-i m theta})`` with
  ``V_dm = sum_c W_dcm Z_cm`` (complex weights ``W``) and ``Z_cm`` the m-th Fourier
  coefficient, over the element axis, of the per-element features
  ``z(c, g) = mean_x F(c, g, x)`` (optionally also ``max_x F(c, g, x)``, as ``C`` more channels,
  :meth:`JointHead.per_element`; optionally each ``Z_cm`` multiplied first by an invariant
  complex gate, :mod:`model.pose_gate`); with ``R > 1`` *readers*, ``V`` is the mean of ``R``
  such maps (each ``W`` with its own gate), fitted apart (:mod:`model.pose_refit`): the mean of
  their log-profiles, an ensemble whose profile is still band-limited and turns as each one does.

Turning the input by ``r^k`` multiplies ``Z_cm`` by ``e^{i m theta_k}``, so
``l_d(theta) -> l_d(theta - theta_k)``: the profile turns with the input, exactly
for quarter turns, and it is a continuous function of ``theta``, so the pose is
read between group elements without any interpolation rule. The band limit
(``M < N/2``) is what makes that work: the top frequencies of the element axis
(``(-1)^g`` for N = 8) carry the pixel grid's signature, which tells the
exactly sampled elements from the 45-degree ones; a head that could see it
learns that upright digits never sit at odd elements (measured: a head with one
linear map per element never placed a digit turned by 45 degrees at 45 degrees).

Scores over (digit, element), ``(B, D, |G|)``: ``log p(d) + log_softmax_g l_d(theta_g)``,
whose softmax over all ``D |G|`` cells sums to 1; training on upright digits asks
for the cell ``(label, identity)`` (:meth:`JointHead.forward`). What the service
reports is read from the continuous profile, on a grid of :data:`ANGLE_STEPS`
angles (:class:`Pose`):

- *readings*: the peaks of every digit's profile, each with the mass
  ``p(d) p(basin | d)`` of the angles that climb to it (:meth:`Pose.readings`);
  the answered digit (the most probable one, ``argmax p(d)``) is read first, at
  its most probable peak, then the most probable readings of all the others;
- the *orientation* of the answered digit: the angle of that first reading, and
  as confidence the probability that the input is turned within half a group
  step of it (:meth:`Pose.orientation`);
- *ambiguous*: a reading of another digit holds at least
  :data:`AMBIGUITY_SHARE` of the first reading's probability (a 6 that may be a
  9 turned by half a turn) (:func:`is_ambiguous`);
- a *prior* ``pi(theta)`` (:func:`upright_prior`) for inputs known to be roughly
  upright: ``p(d, theta | prior) ~ p(d, theta) pi(theta)`` (:meth:`Pose.with_prior`).

Angles follow :mod:`model.groups`: degrees, counter-clockwise, in [0, 360).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from model.groups import Group
from model.pose_gate import PoseGate, gated_together

__all__ = [
    "AMBIGUITY_SHARE",
    "ANGLE_STEPS",
    "UPRIGHT_CONCENTRATION",
    "JointHead",
    "Pose",
    "Reading",
    "Readings",
    "is_ambiguous",
    "shifted_profile",
    "upright_prior",
]

ANGLE_STEPS = 360  # the pose profile is read every degree (and refined between: see _refine)
AMBIGUITY_SHARE = 0.1
UPRIGHT_CONCENTRATION = 2.0
POSE_POOLS = ("mean", "mean_max")  # how the pose pools space, per element (JointHead.per_element)


class JointHead(nn.Module):
    """Group feature map ``(B, C, N, H, W)`` of C_N -> (digit, element) log-probabilities ``(B, D, N)``."""

    cos_table: torch.Tensor  # buffers, annotated for type checkers
    sin_table: torch.Tensor

    def __init__(
        self,
        channels: int,
        classes: int,
        group: Group,
        frequencies: int = 2,
        *,
        pose_trains_features: bool = True,
        gate: int = 0,
        pool: str = "mean",
        readers: int = 1,
    ) -> None:
        super().__init__()
        if group.reflections:
            raise ValueError(f"the joint head needs a cyclic group C_N, got {group.name}")
        if not 1 <= frequencies < group.rotations / 2:
            raise ValueError(f"frequencies must be in 1..{math.ceil(group.rotations / 2) - 1}, got {frequencies!r}")
        if pool not in POSE_POOLS:
            raise ValueError(f"pool must be one of {POSE_POOLS}, got {pool!r}")
        if readers < 1:
            raise ValueError(f"readers must be >= 1, got {readers!r}")
        self.group, self.frequencies, self.pose_trains_features = group, frequencies, pose_trains_features
        self.pool, self.readers = pool, readers
        self.invariant = nn.Linear(channels, classes)
        pooled = 2 * channels if pool == "mean_max" else channels  # the per-element features' channels
        self.pose = nn.Parameter(torch.randn(readers, 2, classes, pooled, frequencies) / pooled**0.5)  # Re, Im of W
        m = torch.arange(1, frequencies + 1, dtype=torch.float64)
        theta = torch.tensor([group.radians(g) for g in group.elements()], dtype=torch.float64)
        self.register_buffer("cos_table", torch.cos(theta[:, None] * m).float(), persistent=False)  # (N, M)
        self.register_buffer("sin_table", torch.sin(theta[:, None] * m).float(), persistent=False)
        # gate > 0: each reader's invariant gates of that hidden width (model.pose_gate); 0: linear readers
        self.gates = nn.ModuleList(PoseGate(pooled, frequencies, gate) for _ in range(readers) if gate)
        self.register_load_state_dict_pre_hook(_one_reader_checkpoint)

    @property
    def is_linear(self) -> bool:
        """Whether the pose coefficients are linear in the feature maps: no gate, space pooled by its mean."""
        return not self.gates and self.pool == "mean"

    def digit_and_pose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Digit logits ``a`` ``(B, D)`` and pose coefficients ``V`` ``(B, D, M, 2)`` (Re, Im)."""
        invariant = x.amax(dim=2).mean(dim=(-2, -1))  # (B, C)
        per_element = self.per_element(x)
        if not self.pose_trains_features:  # the pose is read from features trained for the digit alone
            per_element = per_element.detach()
        return self.invariant(invariant), self.pose_coefficients(per_element)

    def per_element(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(B, C, N, H, W)`` -> the per-element features ``z`` ``(B, C', N)`` the pose is read from:
        space pooled by its mean (``C' = C``), or by its mean and its maximum (``"mean_max"``, ``C' = 2C``). Either
        pooling commutes with turning space, so ``z`` shifts along the element axis as ``F`` does."""
        per_element = x.mean(dim=(-2, -1))  # (B, C, N)
        if self.pool == "mean_max":
            per_element = torch.cat([per_element, x.amax(dim=(-2, -1))], dim=1)  # (B, 2C, N)
        return per_element

    def pose_coefficients(self, per_element: torch.Tensor) -> torch.Tensor:
        """Per-element features ``(B, C', N)`` -> pose coefficients ``V`` ``(B, D, M, 2)`` (Re, Im): the mean of
        the readers' (one reader: its own). Several readers in eval mode are read together, in one pass."""
        if self.readers == 1:
            return self.reader_coefficients(per_element, 0)
        if self.training:  # each gate's batch norm keeps its own statistics
            return torch.stack([self.reader_coefficients(per_element, r) for r in range(self.readers)]).mean(dim=0)
        z_re, z_im = self._fourier(per_element)  # (B, C, M)
        if self.gates:
            z_re, z_im = gated_together(self.gates, per_element, z_re, z_im)  # (R, B, C, M)
        else:
            z_re, z_im = z_re.expand(self.readers, *z_re.shape), z_im.expand(self.readers, *z_im.shape)
        return self._mapped(self.pose, z_re, z_im, "rdcm,rbcm->bdm") / self.readers  # summed over the readers

    def reader_coefficients(self, per_element: torch.Tensor, reader: int) -> torch.Tensor:
        """Per-element features ``(B, C', N)`` -> one reader's pose coefficients ``(B, D, M, 2)`` (Re, Im)."""
        z_re, z_im = self._fourier(per_element)
        if self.gates:
            z_re, z_im = self.gates[reader](per_element, z_re, z_im)  # G_cm Z_cm, G invariant
        return self._mapped(self.pose[reader], z_re, z_im, "dcm,bcm->bdm")

    def _fourier(self, per_element: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Z_cm = mean_g z(c, g) e^{i m theta_g}``: ``(Re, Im)``, each ``(B, C', M)``."""
        n = per_element.shape[-1]
        return per_element @ self.cos_table / n, per_element @ self.sin_table / n

    @staticmethod
    def _mapped(pose: torch.Tensor, z_re: torch.Tensor, z_im: torch.Tensor, equation: str) -> torch.Tensor:
        """``V_dm = sum_c W_dcm Z_cm`` (complex) for ``W = pose`` ``(..., 2, D, C, M)``: ``(B, D, M, 2)``."""
        w_re, w_im = pose.select(-4, 0), pose.select(-4, 1)  # (..., D, C, M)
        v_re = torch.einsum(equation, w_re, z_re) - torch.einsum(equation, w_im, z_im)
        v_im = torch.einsum(equation, w_re, z_im) + torch.einsum(equation, w_im, z_re)
        return torch.stack([v_re, v_im], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(d, g)`` ``(B, D, N)``: the digit's log-probability plus its pose profile's
        log-softmax over the group elements."""
        return self.scores(*self.digit_and_pose(x))

    def scores(self, digits: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """``log p(d, g)`` ``(B, D, N)`` from digit logits ``(B, D)`` and pose coefficients ``(B, D, M, 2)``."""
        profile = pose_profile(coefficients, self.cos_table, self.sin_table)  # (B, D, N)
        return torch.log_softmax(digits, dim=1)[:, :, None] + torch.log_softmax(profile, dim=2)

    def extra_repr(self) -> str:
        return (
            f"group={self.group.name}, frequencies={self.frequencies}, "
            f"pose_trains_features={self.pose_trains_features}, gated={bool(self.gates)}, pool={self.pool}, "
            f"readers={self.readers}"
        )


def _one_reader_checkpoint(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: object) -> None:
    """Load a joint head saved before it had readers (``pose`` ``(2, D, C', M)``, one ``gate``) as one reader."""
    pose = state_dict.get(prefix + "pose")
    if pose is not None and pose.dim() == 4:
        state_dict[prefix + "pose"] = pose.unsqueeze(0)
    for key in [key for key in state_dict if key.startswith(prefix + "gate.")]:
        state_dict[prefix + "gates.0." + key.removeprefix(prefix + "gate.")] = state_dict.pop(key)


def pose_profile(coefficients: torch.Tensor, cos_table: torch.Tensor, sin_table: torch.Tensor) -> torch.Tensor:
    """``l_d(theta) = sum_m Re(V_dm e^{-i m theta})`` at the angles of ``(A, M)`` tables: ``(B, D, A)``."""
    return coefficients[..., 0] @ cos_table.T + coefficients[..., 1] @ sin_table.T


def shifted_profile(coefficients: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """The coefficients ``(B, D, M, 2)`` of ``l_d(theta + tau_b)``, ``tau`` ``(B,)`` degrees, for every input:
    ``V'_dm = V_dm e^{-i m tau}``, an exact shift of the band-limited profile.

    A network that reads its input turned by ``tau`` (:mod:`model.canonical`) reads a profile of the turned
    input; shifted so, it is the profile of the input as it came.
    """
    m = torch.arange(1, coefficients.shape[2] + 1, dtype=coefficients.dtype, device=coefficients.device)
    phase = torch.deg2rad(degrees.to(coefficients.dtype))[:, None] * m  # (B, M)
    cos, sin = torch.cos(phase)[:, None], torch.sin(phase)[:, None]  # (B, 1, M)
    v_re, v_im = coefficients[..., 0], coefficients[..., 1]
    return torch.stack([v_re * cos + v_im * sin, v_im * cos - v_re * sin], dim=-1)


def upright_prior(degrees: torch.Tensor, concentration: float = UPRIGHT_CONCENTRATION) -> torch.Tensor:
    """``log pi(theta) = kappa (cos theta - 1)``, unnormalised: a von Mises weight peaked at 0 degrees.

    With the default ``kappa = 2``, 45 degrees keeps 0.56 of the weight of 0
    degrees, 90 degrees 0.14 and 180 degrees 0.018: upright readings win close
    calls, a clear reading of a turned digit still wins.
    """
    return concentration * (torch.cos(torch.deg2rad(degrees)) - 1.0)


@dataclass(frozen=True)
class Reading:
    """One hypothesis: the digit, turned by ``degrees``, with its probability."""

    digit: int
    degrees: float
    probability: float


@dataclass(frozen=True)
class Orientation:
    """Per input: the answered digit, its orientation, and the confidence in that orientation."""

    digits: torch.Tensor  # (B,) long
    degrees: torch.Tensor  # (B,) float64 in [0, 360): how far the input is turned from upright
    confidence: torch.Tensor  # (B,): probability of a turn within half a group step of ``degrees``


@dataclass(frozen=True)
class Pose:
    """The joint distribution ``p(d, theta)`` on :data:`ANGLE_STEPS` angles, for a batch.

    Build it with :meth:`from_head` from a network's :class:`JointHead` outputs.
    """

    group: Group
    log_joint: torch.Tensor  # (B, D, A): log p(d, theta_a), float64, summing to 1 over (d, a)

    @staticmethod
    def from_head(digit_logits: torch.Tensor, coefficients: torch.Tensor, group: Group) -> Pose:
        degrees = angles()
        m = torch.arange(1, coefficients.shape[2] + 1, dtype=torch.float64)
        radians = torch.deg2rad(degrees)[:, None] * m  # (A, M)
        profile = pose_profile(coefficients.double(), torch.cos(radians), torch.sin(radians))  # (B, D, A)
        log_joint = torch.log_softmax(digit_logits.double(), dim=1)[:, :, None] + torch.log_softmax(profile, dim=2)
        return Pose(group, log_joint)

    def rows(self, index: slice | torch.Tensor) -> Pose:
        """The poses of some inputs of the batch."""
        return replace(self, log_joint=self.log_joint[index])

    def with_prior(self, log_prior: torch.Tensor) -> Pose:
        """``p(d, theta) pi(theta)``, renormalised; ``log_prior`` over :func:`angles`, ``(A,)`` for the
        whole batch or ``(B, A)``, one per input."""
        weighted = self.log_joint + log_prior.double().unsqueeze(-2)
        return replace(self, log_joint=weighted - torch.logsumexp(weighted, dim=(1, 2), keepdim=True))

    @property
    def digit_probabilities(self) -> torch.Tensor:
        """``p(d)`` ``(B, D)``."""
        return torch.logsumexp(self.log_joint, dim=2).exp()

    def orientation(self) -> Orientation:
        """The most probable digit, the peak of its most probable reading, and the mass near that peak.

        The peak is the one :meth:`top_readings` lists first, to the last bit.
        """
        mass = self._reading_mass()
        digits, index = self._answered(mass)
        peaks = _refine(self.log_joint[torch.arange(len(digits)), digits], index)  # rows (B, A)
        step = 360.0 / self.group.rotations
        distance = torch.remainder(angles()[None] - peaks[:, None] + 180.0, 360.0) - 180.0  # (B, A)
        near = (distance >= -step / 2) & (distance < step / 2)  # half open: one group step of angles
        confidence = (torch.logsumexp(self.log_joint, dim=1).exp() * near).sum(dim=1)
        return Orientation(digits, peaks, confidence)

    def top_readings(self, top: int = 3) -> Readings:
        """The ``top`` best readings of every input: first the answered digit's most probable reading
        (the one :meth:`orientation` describes), then the most probable of all the others.

        A reading is a peak of a digit's profile with the mass of the angles that climb to it, so
        all readings of an input sum to 1. The answered digit is the most probable one in
        :attr:`digit_probabilities`, which sums the mass of its peaks: its best reading can hold less
        than another digit's best (its mass split between two peaks), and then comes first anyway.
        """
        mass = self._reading_mass()  # (B, D, A)
        digits, index = self._answered(mass)
        batch, count = torch.arange(len(digits)), mass.shape[2]
        first = mass[batch, digits, index]  # (B,)
        others = mass.clone()
        others[batch, digits, index] = -1.0  # listed already
        values, flat = others.flatten(1).topk(top - 1, dim=1)  # (B, top - 1)
        digits = torch.cat([digits[:, None], flat // count], dim=1)  # (B, top)
        index = torch.cat([index[:, None], flat % count], dim=1)
        rows = self.log_joint.gather(1, digits[:, :, None].expand(-1, -1, count))  # (B, top, A)
        degrees = _refine(rows.flatten(0, 1), index.flatten()).view_as(index)
        rivals = mass.clone()
        rivals[batch, digits[:, 0]] = 0.0  # every reading of another digit, listed or not
        return Readings(digits, degrees, torch.cat([first[:, None], values], dim=1), rivals.flatten(1).amax(dim=1))

    def _reading_mass(self) -> torch.Tensor:
        """``(B, D, A)``: at each peak of each digit's profile, the mass of the angles that climb to it; 0 elsewhere."""
        probabilities = self.log_joint.exp()
        return torch.zeros_like(probabilities).scatter_add_(2, _basins(self.log_joint), probabilities)

    def _answered(self, mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The most probable digit ``(B,)`` and the angle index of its most probable peak ``(B,)``."""
        digits = self.digit_probabilities.argmax(dim=1)
        return digits, mass[torch.arange(len(digits)), digits].argmax(dim=1)

    def readings(self, index: int, top: int = 3) -> list[Reading]:
        """:meth:`top_readings` of input ``index``, as a list."""
        found = self.top_readings(top)
        return [
            Reading(int(digit), float(degrees), float(probability))
            for digit, degrees, probability in zip(
                found.digits[index], found.degrees[index], found.probabilities[index], strict=True
            )
        ]


@dataclass(frozen=True)
class Readings:
    """The best readings of a batch (:meth:`Pose.top_readings`): each ``(B, top)``, the answered
    digit's first; ``rival`` ``(B,)``: the probability of the best reading of any other digit."""

    digits: torch.Tensor
    degrees: torch.Tensor
    probabilities: torch.Tensor
    rival: torch.Tensor

    def ambiguous(self, share: float = AMBIGUITY_SHARE) -> torch.Tensor:
        """``(B,)`` bool: :func:`is_ambiguous` for every input, over all its readings (listed or not)."""
        return self.rival >= share * self.probabilities[:, 0]


def angles() -> torch.Tensor:
    """The angles the pose is read at: ``(A,)`` degrees, float64, one degree apart from 0."""
    return torch.arange(ANGLE_STEPS, dtype=torch.float64) * (360.0 / ANGLE_STEPS)


def _refine(rows: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """Peak angles ``(B,)`` of ``(B, A)`` log-profiles at grid indices ``peaks``, refined by the
    vertex of the parabola through the peak and its two neighbours (the profile is smooth)."""
    count = rows.shape[1]
    left = rows.gather(1, ((peaks - 1) % count)[:, None])[:, 0]
    centre = rows.gather(1, peaks[:, None])[:, 0]
    right = rows.gather(1, ((peaks + 1) % count)[:, None])[:, 0]
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-300), 0.0)
    return torch.remainder((peaks.double() + offset.clamp(-0.5, 0.5)) * (360.0 / count), 360.0)


def _basins(rows: torch.Tensor) -> torch.Tensor:
    """For each index of circular rows ``(..., A)``, the local maximum that steepest ascent reaches."""
    count = rows.shape[-1]
    index = torch.arange(count).expand_as(rows)
    left, right = rows.roll(1, dims=-1), rows.roll(-1, dims=-1)  # the values at index - 1 and index + 1
    go_left = (left > rows) & (left >= right)  # ties stay where they are
    go_right = (right > rows) & (right > left)
    target = torch.where(go_left, (index - 1) % count, torch.where(go_right, (index + 1) % count, index))
    for _ in range(math.ceil(math.log2(count)) + 1):  # pointer jumping: paths shorter than A, doubled each time
        target = target.gather(-1, target)
    return target


def is_ambiguous(found: list[Reading], share: float = AMBIGUITY_SHARE) -> bool:
    """A reading of another digit than the first reading's holds at least ``share`` of the first's probability."""
    return any(r.digit != found[0].digit and r.probability >= share * found[0].probability for r in found[1:])

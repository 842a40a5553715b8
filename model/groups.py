"""Symmetry groups of the plane that act on images: cyclic C_N and dihedral D_N.

Conventions, stated once and used everywhere in the project:

- The plane has x to the right and y **up**; an image's centre is the origin.
- ``r`` rotates counter-clockwise (as the image is displayed) by ``2*pi/N``.
- ``m`` is the mirror about the vertical axis, ``(x, y) -> (-x, y)``: it flips
  an image left-right.
- An element is an ``int`` index ``i = s * N + k`` that stands for ``r^k m^s``
  (``0 <= k < N``, ``s`` in {0, 1}): the N rotations come first, then (for
  D_N) the N reflections. On a point, ``m^s`` acts first, then ``r^k``. The
  identity is index 0.
- Composition: ``(k1, s1)(k2, s2) = (k1 + (-1)^s1 k2 mod N, s1 xor s2)``.

A group acts on images ``(..., H, W)`` by ``(g.f)(x) = f(g^-1 x)`` and on group
feature maps ``(B, C, |G|, H, W)`` by ``(g.F)(h, x) = F(g^-1 h, g^-1 x)``: the
spatial transform of every group slice plus the regular representation's
permutation of the group axis. Quarter turns and mirrors are exact index
permutations; other angles are bilinear (see :mod:`model.rotation`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import torch

from model.rotation import is_right_angle, rotate

__all__ = ["GROUP_KINDS", "Group", "PlanarGroup", "cyclic", "dihedral", "get_group", "register_group_kind"]


@runtime_checkable
class PlanarGroup(Protocol):
    """What a symmetry group of the plane must provide to the layers, kernels, networks and the service.

    A new kind of group (another finite group, or SO(2) sampled through its irreducible representations)
    implements this, registers a name prefix with :func:`register_group_kind`, and provides a kernel basis
    (:mod:`model.kernels`); nothing else in the tree names the concrete class.

    - elements: ``order`` elements indexed ``0 .. order - 1``, the identity at 0; ``compose``, ``inverse``;
      ``regular_permutations[g, h] = g^-1 h`` (how the group axis of a feature map is permuted);
    - action on the plane: ``degrees(g)`` (the rotation angle), ``is_reflection(g)``, ``matrix(g)``;
    - action on images ``(..., H, W)``: ``transform_images``; on group feature maps ``(B, C, |G|, H, W)``:
      ``transform_feature_maps`` (spatial transform plus the regular permutation of the group axis);
    - angles for a nonlinearity or a pose: the group axis samples the circle at ``degrees(g)`` for
      ``g < rotations``, so a pointwise nonlinearity acts on those samples, and a pose profile is read there.
    """

    @property
    def name(self) -> str: ...

    @property
    def order(self) -> int: ...

    @property
    def rotations(self) -> int: ...

    def elements(self) -> range: ...

    def compose(self, a: int, b: int) -> int: ...

    def inverse(self, g: int) -> int: ...

    @property
    def regular_permutations(self) -> torch.Tensor: ...

    def degrees(self, g: int) -> float: ...

    def is_reflection(self, g: int) -> bool: ...

    def matrix(self, g: int) -> torch.Tensor: ...

    def transform_images(self, images: torch.Tensor, g: int) -> torch.Tensor: ...

    def transform_feature_maps(self, features: torch.Tensor, g: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class Group:
    """The group C_N (``reflections=False``) or D_N (``reflections=True``)."""

    rotations: int
    reflections: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rotations, int) or self.rotations < 1:
            raise ValueError(f"number of rotations must be an int >= 1, got {self.rotations!r}")

    @property
    def name(self) -> str:
        return f"{'D' if self.reflections else 'C'}{self.rotations}"

    @property
    def order(self) -> int:
        return self.rotations * (2 if self.reflections else 1)

    @property
    def identity(self) -> int:
        return 0

    def elements(self) -> range:
        return range(self.order)

    # -- structure ---------------------------------------------------------
    def split(self, g: int) -> tuple[int, int]:
        """``(k, s)`` with ``g = r^k m^s``."""
        self._check(g)
        return g % self.rotations, g // self.rotations

    def element(self, k: int, s: int = 0) -> int:
        if s and not self.reflections:
            raise ValueError(f"{self.name} has no reflections")
        return int(s) * self.rotations + k % self.rotations

    def compose(self, a: int, b: int) -> int:
        """The element ``a b`` (apply ``b`` first, then ``a``)."""
        (k1, s1), (k2, s2) = self.split(a), self.split(b)
        return self.element(k1 + (-k2 if s1 else k2), s1 ^ s2)

    def inverse(self, g: int) -> int:
        k, s = self.split(g)
        return g if s else self.element(-k)

    @cached_property
    def cayley_table(self) -> torch.Tensor:
        """``table[a, b] = a b`` as a ``(|G|, |G|)`` long tensor."""
        return torch.tensor([[self.compose(a, b) for b in self.elements()] for a in self.elements()])

    @cached_property
    def regular_permutations(self) -> torch.Tensor:
        """``perm[g, h] = g^-1 h``: where ``g`` reads group slice ``h`` from."""
        return torch.tensor([[self.compose(self.inverse(g), h) for h in self.elements()] for g in self.elements()])

    # -- geometry ----------------------------------------------------------
    def degrees(self, g: int) -> float:
        """Rotation angle of ``g`` in degrees, counter-clockwise, in [0, 360)."""
        return 360.0 * self.split(g)[0] / self.rotations

    def radians(self, g: int) -> float:
        return math.radians(self.degrees(g))

    def is_reflection(self, g: int) -> bool:
        return bool(self.split(g)[1])

    def is_exact(self, g: int) -> bool:
        """Whether ``g`` maps the square pixel grid onto itself (no interpolation)."""
        return is_right_angle(self.degrees(g))

    def matrix(self, g: int) -> torch.Tensor:
        """The 2x2 float64 matrix of ``g`` acting on plane points ``(x, y)``."""
        k, s = self.split(g)
        theta = 2 * math.pi * k / self.rotations
        rot = torch.tensor(
            [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64
        )
        mirror = torch.diag(torch.tensor([-1.0 if s else 1.0, 1.0], dtype=torch.float64))
        return rot @ mirror

    # -- actions -----------------------------------------------------------
    def transform_images(self, images: torch.Tensor, g: int) -> torch.Tensor:
        """``g . f`` for images ``(..., H, W)``: mirror first (if any), then rotate."""
        if self.is_reflection(g):
            images = torch.flip(images, dims=(-1,))
        return rotate(images, self.degrees(g))

    def transform_feature_maps(self, features: torch.Tensor, g: int) -> torch.Tensor:
        """``g . F`` for group feature maps ``(B, C, |G|, H, W)``."""
        if features.dim() != 5 or features.shape[2] != self.order:
            raise ValueError(f"expected (B, C, {self.order}, H, W) for {self.name}, got {tuple(features.shape)}")
        index = self.regular_permutations[g].to(features.device)
        return self.transform_images(features.index_select(2, index), g)

    def _check(self, g: int) -> None:
        if not 0 <= g < self.order:
            raise ValueError(f"element index {g} out of range for {self.name} (order {self.order})")

    def __repr__(self) -> str:
        return self.name


def cyclic(n: int) -> Group:
    """C_N: the N rotations by multiples of 360/N degrees."""
    return Group(n, reflections=False)


def dihedral(n: int) -> Group:
    """D_N: C_N plus N reflections (order 2N)."""
    return Group(n, reflections=True)


# Kinds of group by name prefix: "C8" is GROUP_KINDS["C"](8). A new kind registers its prefix here.
GROUP_KINDS: dict[str, Callable[[int], Group]] = {"C": cyclic, "D": dihedral}
_GROUP_NAME = re.compile(r"^([A-Z]+)([1-9][0-9]{0,2})$")


def register_group_kind(prefix: str, factory: Callable[[int], Group]) -> None:
    """Make ``get_group(f"{prefix}{n}")`` build ``factory(n)``; a prefix is upper-case letters, taken once."""
    if not re.fullmatch(r"[A-Z]+", prefix) or prefix in GROUP_KINDS:
        raise ValueError(f"group prefix {prefix!r} must be new upper-case letters; taken: {sorted(GROUP_KINDS)}")
    GROUP_KINDS[prefix] = factory


def get_group(name: str) -> Group:
    """Parse ``"C4"``, ``"D8"``, ... (a registered prefix, N from 1 to 999)."""
    match = _GROUP_NAME.match(name.strip().upper()) if isinstance(name, str) else None
    if match is None or match.group(1) not in GROUP_KINDS:
        raise ValueError(f"unknown group {name!r}: expected 'C<N>' or 'D<N>', e.g. 'C4', 'D8'")
    kind, n = match.groups()
    return GROUP_KINDS[kind](int(n))

"""Models by name: every named configuration the project trains or ships.

``create_model("gcnn_c4_seed")`` builds a fresh model; ``build_model`` rebuilds
one from the architecture name and config stored in a checkpoint's JSON.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from model.networks import BaselineCNN, CNNConfig, GCNNConfig, GroupEquivariantCNN, config_from_dict

__all__ = ["ARCHITECTURES", "MODELS", "build_model", "create_model", "model_names"]

ARCHITECTURES: dict[str, tuple[type[nn.Module], type[CNNConfig]]] = {
    "GroupEquivariantCNN": (GroupEquivariantCNN, GCNNConfig),
    "BaselineCNN": (BaselineCNN, CNNConfig),
}


def _robust(**fields: Any) -> GCNNConfig:
    defaults: dict[str, Any] = dict(padding=2, pool_after=(0, 2), group_pool="max", basis="harmonic")
    return GCNNConfig(**{**defaults, **fields})


# gcnn_c8_canon with the joint head (below): the network of the first shipped mixed G-CNN and of the G-CNNs served
# before the wide one
_CANON_POSE = _robust(
    group="C8", hidden_channels=12, subsample="blur", canonicalize=True, head="joint", pose_trains_features=False
)
# the served pose, fitted on a trained network's frozen features (python -m model.pose_refit): gates, a band limit
# of 3, each element's features pooled over space by their mean and their maximum
_GATED_MAX_POSE: dict[str, Any] = dict(pose_frequencies=3, pose_gate=128, pose_pool="mean_max")
# gcnn_c8_canon_pose on 14 channels per group element (gcnn_c8_canon_wide's width): the served network, and with
# the synthetic digits the shipped mixed one (gcnn_c8_canon_pose_wide_mixed)
_CANON_POSE_WIDE = replace(_CANON_POSE, hidden_channels=14)


MODELS: dict[str, tuple[str, CNNConfig]] = {
    # The seed design (the blog post / UvA notebook): C4, 5x5, five convs, no padding.
    "gcnn_c4_seed": ("GroupEquivariantCNN", GCNNConfig(group="C4", hidden_channels=16)),
    "cnn_seed": ("BaselineCNN", CNNConfig(hidden_channels=32)),
    # Rotation-robust designs: 'same' padding (so quarter turns stay exact),
    # 2x2 max pooling after the lifting conv and the second group conv
    # (28 -> 14 -> 7), max over the group axis, steerable (harmonic) filters.
    "gcnn_c4": ("GroupEquivariantCNN", _robust(group="C4", hidden_channels=16)),
    "gcnn_c8_grid": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=8, basis="grid")),
    "gcnn_c8": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=8)),
    "gcnn_c8_wide": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12)),
    # gcnn_c8_wide with the joint (digit, rotation) head: the digit and which way it is turned. The pose is
    # read from features trained for the digit alone (pose_trains_features=False): measured on held-out
    # training digits, letting the pose loss train the convolutions cost 4.5 points of rotated accuracy.
    "gcnn_c8_pose": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, head="joint", pose_trains_features=False),
    ),
    "gcnn_c8_hires": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=8, pool_after=(1, 3))),
    "gcnn_c16": ("GroupEquivariantCNN", _robust(group="C16", hidden_channels=6)),
    "gcnn_c16_wide": ("GroupEquivariantCNN", _robust(group="C16", hidden_channels=8)),
    # Candidates for equivariance between the grid's quarter turns (issue: "equivariant at every angle"):
    # gcnn_c8_wide with anti-aliased subsampling, a smooth nonlinearity, or one subsampling only
    # (14x14 maps after the lifting conv, ~1.6x the FLOPs), see model.antialias.
    "gcnn_c8_blur": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12, subsample="blur")),
    # gcnn_c8_pose with gcnn_c8_blur's anti-aliased subsampling (trained on mixed data, not served:
    # docs/preprocessing.md).
    "gcnn_c8_blur_pose": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, subsample="blur", head="joint", pose_trains_features=False),
    ),
    "gcnn_c8_soft": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12, nonlinearity="softplus")),
    "gcnn_c8_aa": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, subsample="blur", nonlinearity="softplus"),
    ),
    "gcnn_c8_fine": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12, pool_after=(0,), subsample="blur")),
    "gcnn_c8_fine_soft": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, pool_after=(0,), subsample="blur", nonlinearity="softplus"),
    ),
    # Features of SO(2) (model.fourier): gcnn_c8_blur's layout on 16 angles, every feature band-limited to the
    # frequencies 0..3 (7 Fourier coefficients per channel), so a turn by any angle moves it exactly; 8 channels
    # (1.8x the FLOPs of gcnn_c8_blur, fewer parameters: the weights are coefficients). Probed on held-out digits,
    # not a win: the error at 45° is the pixel grid's (docs/evaluation.md).
    "gcnn_c16_fourier": (
        "GroupEquivariantCNN",
        _robust(group="C16", hidden_channels=8, subsample="blur", band_limit=3),
    ),
    # gcnn_c8_blur on filters windowed to the disc inside their square (model.kernels.DiscBasis): 5x5 (6 basis
    # functions, the same FLOPs, fewer parameters), and 7x7 (11 functions, as many parameters as gcnn_c8_blur,
    # about 2x its FLOPs). Probed on held-out digits, not a win: filters closer to their continuous selves leave
    # the network's error between quarter turns where it was (docs/evaluation.md).
    "gcnn_c8_disc": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12, subsample="blur", basis="disc")),
    "gcnn_c8_disc7": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, subsample="blur", basis="disc", kernel_size=7, padding=3),
    ),
    # gcnn_c8_blur with no spatial maximum: every 2x subsampling a linear 4x4 binomial low-pass (model.antialias:
    # the first layer's error at 45° falls from 0.022 to 0.012 with it, measured on gcnn_c8_blur's trained filters);
    # with ReLU, and with softplus (no kink for the low-pass to leave behind). Probed on held-out digits, not a win:
    # trained so, the first layer's error falls and the later layers amplify more (docs/evaluation.md).
    "gcnn_c8_lowpass": ("GroupEquivariantCNN", _robust(group="C8", hidden_channels=12, subsample="low_pass")),
    "gcnn_c8_lowpass_soft": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, subsample="low_pass", nonlinearity="softplus"),
    ),
    # gcnn_c8_blur reading each input turned to its own principal axis (model.canonical): two inputs that differ by
    # any turn reach the network differing by a half turn, which it reads exactly (up to interpolation).
    "gcnn_c8_canon": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=12, subsample="blur", canonicalize=True),
    ),
    # gcnn_c8_canon with 14 channels per group element instead of 12: of 14 and 16, the width that keeps within twice
    # the FLOPs and the batch-1 latency of gcnn_c8_pose (1.36x and 1.69x; 16 channels: 1.77x and 2.14x; measured on
    # untrained networks, docs/evaluation.md).
    "gcnn_c8_canon_wide": (
        "GroupEquivariantCNN",
        _robust(group="C8", hidden_channels=14, subsample="blur", canonicalize=True),
    ),
    # gcnn_c8_canon with the joint head of gcnn_c8_blur_pose: the pose is read on the turned input and its
    # profile shifted back by the turn (model.orientation.shifted_profile).
    "gcnn_c8_canon_pose": ("GroupEquivariantCNN", _CANON_POSE),
    # gcnn_c8_canon_pose on gcnn_c8_canon_wide's 14 channels (issue 19's upright target).
    "gcnn_c8_canon_pose_wide": ("GroupEquivariantCNN", _CANON_POSE_WIDE),
    # gcnn_c8_canon_pose turning each input about its centre of mass, which lands on the image centre: the network
    # reads every digit at one place, wherever it sits (model.canonical, centred=True)
    "gcnn_c8_canon_pose_centred": ("GroupEquivariantCNN", replace(_CANON_POSE, canonical_centred=True)),
    # gcnn_c8_canon_pose with invariant gates on its pose (model.pose_gate) and a band limit of 3: made from a trained
    # gcnn_c8_canon_pose by fitting its pose anew on the frozen features (python -m model.pose_refit).
    "gcnn_c8_canon_pose_gated": (
        "GroupEquivariantCNN",
        replace(_CANON_POSE, pose_frequencies=3, pose_gate=128),
    ),
    # gcnn_c8_canon_pose_gated whose pose reads each element's features pooled over space by their maximum as well
    # as their mean (JointHead.per_element): made the same way, by python -m model.pose_refit.
    "gcnn_c8_canon_pose_gated_max": (
        "GroupEquivariantCNN",
        replace(_CANON_POSE, **_GATED_MAX_POSE),
    ),
    # gcnn_c8_canon_pose_gated_max with five such poses fitted apart and averaged (JointHead's readers): made the
    # same way, by python -m model.pose_refit.
    "gcnn_c8_canon_pose_gated_max_x5": (
        "GroupEquivariantCNN",
        replace(_CANON_POSE, **_GATED_MAX_POSE, pose_readers=5),
    ),
    # gcnn_c8_canon_pose_gated_max's pose on gcnn_c8_canon_pose_wide: made by python -m model.pose_refit.
    "gcnn_c8_canon_pose_wide_gated_max": (
        "GroupEquivariantCNN",
        replace(_CANON_POSE_WIDE, **_GATED_MAX_POSE),
    ),
    # gcnn_c8_canon_pose_gated_max_x5's five readers on gcnn_c8_canon_pose_wide, the served G-CNN: made by python -m
    # model.pose_refit.
    "gcnn_c8_canon_pose_wide_gated_max_x5": (
        "GroupEquivariantCNN",
        replace(_CANON_POSE_WIDE, **_GATED_MAX_POSE, pose_readers=5),
    ),
    "cnn": ("BaselineCNN", CNNConfig(hidden_channels=32, padding=2, pool_after=(0, 2))),
}


def model_names() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised model of a registered name, config fields optionally overridden."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(model_names())}")
    architecture, config = MODELS[name]
    model_cls, config_cls = ARCHITECTURES[architecture]
    return model_cls(config_from_dict(config_cls, {**config.to_dict(), **overrides}))


def build_model(architecture: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its architecture name and config dict (as stored in JSON)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    model_cls, config_cls = ARCHITECTURES[architecture]
    return model_cls(config_from_dict(config_cls, config))


def architecture_of(model: nn.Module) -> str:
    for name, (model_cls, _) in ARCHITECTURES.items():
        if type(model) is model_cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered architecture")

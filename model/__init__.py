"""Group-equivariant CNNs from scratch: groups -> kernel bases -> layers -> networks.

The most used names, for ``from model import ...``; each lives in its own module.
"""

from model.groups import Group, cyclic, dihedral, get_group
from model.layers import GroupBatchNorm, GroupConv2d, GroupPool, LiftingConv2d
from model.networks import BaselineCNN, CNNConfig, GCNNConfig, GroupEquivariantCNN
from model.registry import build_model, create_model, model_names
from model.rotation import rotate, rotate_bilinear

__all__ = [
    "BaselineCNN",
    "CNNConfig",
    "GCNNConfig",
    "Group",
    "GroupBatchNorm",
    "GroupConv2d",
    "GroupEquivariantCNN",
    "GroupPool",
    "LiftingConv2d",
    "build_model",
    "create_model",
    "cyclic",
    "dihedral",
    "get_group",
    "model_names",
    "rotate",
    "rotate_bilinear",
]

"""Invariant gates on the joint head's pose: the linear head when untrained, and a pose that turns with the input."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import nn

from model.groups import get_group
from model.networks import GroupEquivariantCNN
from model.orientation import JointHead
from model.pose_gate import PoseGate, gated_together
from model.registry import create_model


def gated(name: str = "gcnn_c8_pose", dtype: torch.dtype = torch.float32, **overrides: object) -> GroupEquivariantCNN:
    """A fresh network with a gated pose whose gate is far from 1, batch-norm statistics, eval mode."""
    torch.manual_seed(0)
    if name == "gcnn_c8_pose":
        overrides = {"pose_frequencies": 3, "pose_gate": 8, **overrides}
    model = create_model(name, hidden_channels=4, **overrides).to(dtype)
    assert isinstance(model, GroupEquivariantCNN) and isinstance(model.head, JointHead)
    assert model.head.gates
    for gate in model.head.gates:
        nn.init.normal_(gate.mlp[2].weight, std=0.5)  # a gate that is not 1
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 28, 28, dtype=dtype))  # batch-norm statistics, the gate's too
    return model.eval()


def test_an_untrained_gate_is_the_linear_head() -> None:
    torch.manual_seed(0)
    group = get_group("C8")
    plain, with_gate = JointHead(4, 10, group, 3), JointHead(4, 10, group, 3, gate=8)
    with_gate.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(5, 4, 8, 3, 3)
    for a, b in zip(plain.digit_and_pose(x), with_gate.digit_and_pose(x), strict=True):
        assert torch.equal(a, b)


def test_the_gate_reads_invariants_of_the_element_axis() -> None:
    torch.manual_seed(0)
    gate = PoseGate(channels=4, frequencies=3, hidden=8)
    z = torch.randn(5, 4, 8)
    z_re, z_im = torch.randn(5, 4, 3), torch.randn(5, 4, 3)
    turned = gate.invariants(z.roll(3, dims=-1), z_re * 0.6 - z_im * 0.8, z_re * 0.8 + z_im * 0.6)  # |Z| kept
    assert torch.allclose(turned, gate.invariants(z, z_re, z_im), atol=1e-6)
    with pytest.raises(ValueError, match="hidden width"):
        PoseGate(4, 3, 0)


@pytest.mark.parametrize("g", range(1, 8))
def test_gated_head_moves_its_scores_along_the_element_axis_with_the_features(g: int) -> None:
    head = gated(dtype=torch.float64).head
    assert isinstance(head, JointHead)
    x = torch.rand(3, 4, 8, 5, 5, dtype=torch.float64)  # (B, C, G, H, W): turning the input by g shifts the G axis
    with torch.no_grad():  # (and turns space, which the head averages over)
        joint, turned = head(x), head(x.roll(g, dims=2))
        ungated = JointHead(4, 10, get_group("C8"), 3).double()
        ungated.load_state_dict(head.state_dict(), strict=False)
    # exact but for the head's cos/sin tables, float32 values (measured: 2.7e-9 at g = 1)
    assert (turned - joint.roll(g, dims=2)).abs().max() <= 1e-7
    assert (ungated(x) - joint).abs().max() > 1e-2  # the gate changes the pose


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("g", [2, 4, 6])
def test_gated_network_moves_its_joint_scores_along_the_element_axis_under_quarter_turns(
    g: int, dtype: torch.dtype
) -> None:
    model = gated(dtype=dtype)
    x = torch.rand(3, 1, 28, 28, dtype=dtype)
    with torch.no_grad():
        joint, turned = model.forward_joint(x), model.forward_joint(get_group("C8").transform_images(x, g))
    tolerance = 1e-5 if dtype == torch.float64 else 5e-5  # the linear head's (tests/model/test_orientation.py)
    assert (turned - joint.roll(g, dims=2)).abs().max() <= tolerance


def several_readers(gate: int = 8) -> JointHead:
    """A float64 head of three readers, gates far from 1 with running statistics of their own; eval mode."""
    torch.manual_seed(0)
    head = JointHead(4, 10, get_group("C8"), 3, gate=gate, readers=3).double()
    for reader in head.gates:
        nn.init.normal_(reader.mlp[2].weight, std=0.5)
        cast(torch.Tensor, reader.norm.running_mean).uniform_(-0.5, 0.5)
        cast(torch.Tensor, reader.norm.running_var).uniform_(0.5, 1.5)
    return head.eval()


@pytest.mark.parametrize("gate", [8, 0], ids=["gated", "linear"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_head_of_several_readers_answers_their_mean(training: bool, gate: int) -> None:
    head = several_readers(gate).train(training)
    z = torch.randn(6, 4, 8, dtype=torch.float64)
    with torch.no_grad():
        readings = torch.stack([head.reader_coefficients(z, r) for r in range(3)])  # each reader alone
        together = head.pose_coefficients(z)  # in eval mode in one pass (model.pose_gate.gated_together)
    torch.testing.assert_close(together, readings.mean(dim=0), rtol=1e-12, atol=1e-12)
    assert (readings[0] - readings[1]).abs().max() > 1e-2  # the readers differ


def test_gates_applied_together_are_each_gate_applied_alone() -> None:
    gates = several_readers().gates
    z = torch.randn(6, 4, 8, dtype=torch.float64)
    z_re, z_im = torch.randn(6, 4, 3, dtype=torch.float64), torch.randn(6, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        together = gated_together(gates, z, z_re, z_im)
        for r, gate in enumerate(gates):
            for a, b in zip((t[r] for t in together), gate(z, z_re, z_im), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", range(1, 8))
def test_head_of_several_readers_moves_its_scores_along_the_element_axis(g: int) -> None:
    head = several_readers()
    x = torch.rand(3, 4, 8, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        joint, turned = head(x), head(x.roll(g, dims=2))
    assert (turned - joint.roll(g, dims=2)).abs().max() <= 1e-7  # as one gated head (above)


def test_a_joint_head_saved_before_it_had_readers_loads_as_one_reader() -> None:
    torch.manual_seed(0)
    head = JointHead(4, 10, get_group("C8"), 3, gate=8).eval()
    for name, value in head.named_buffers():  # batch-norm statistics that are not the defaults
        if name.endswith(("running_mean", "running_var")):
            value.uniform_(0.5, 1.5)
    nn.init.normal_(head.gates[0].mlp[2].weight, std=0.5)
    saved = {
        key.replace("gates.0.", "gate."): value.squeeze(0) if key == "pose" else value
        for key, value in head.state_dict().items()
    }  # the layout of the shipped checkpoints: pose (2, D, C', M) and one gate
    assert saved["pose"].dim() == 4 and "gate.mlp.0.weight" in saved
    loaded = JointHead(4, 10, get_group("C8"), 3, gate=8).eval()
    loaded.load_state_dict(saved)
    x = torch.rand(3, 4, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), head(x))
    with pytest.raises(ValueError, match="readers"):
        JointHead(4, 10, get_group("C8"), 3, readers=0)

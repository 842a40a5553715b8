"""Training, checkpoints and the shipped weights (needs MNIST: GCNN_DATA_DIR)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from model.checkpoint import CheckpointError, load_checkpoint
from model.data import DatasetUnavailableError, load_mnist, load_synthetic
from model.evaluate import curve_colours, evaluate
from model.evaluate import main as evaluate_main
from model.train import main as train_main

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def smoke_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("weights")
    return train_main([
        "--model", "gcnn_c8", "--set", "hidden_channels=4", "--epochs", "3", "--batch-size", "64",
        "--limit", "384", "--eval-limit", "200", "--lr", "0.01", "--device", "cpu", "--out-dir", str(out),
    ])  # fmt: skip


def test_smoke_training_lowers_the_loss_and_writes_a_full_card(smoke_card: Path) -> None:
    card = json.loads(smoke_card.read_text())
    history = card["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert card["parameters"] > 0 and len(card["sha256"]) == 64
    assert card["config"]["hidden_channels"] == 4 and card["architecture"] == "GroupEquivariantCNN"
    assert {"torch_version", "created", "metrics"} <= set(card)
    assert card["training"]["wall_time_s"] > 0 and card["training"]["seed"] == 0
    assert 0.0 <= card["metrics"]["rotated_accuracy"] <= 1.0


def test_training_is_reproducible_with_a_seed(smoke_card: Path, tmp_path: Path) -> None:
    card = json.loads(smoke_card.read_text())
    twin = train_main([
        "--model", "gcnn_c8", "--set", "hidden_channels=4", "--epochs", "3", "--batch-size", "64",
        "--limit", "384", "--eval-limit", "200", "--lr", "0.01", "--device", "cpu", "--out-dir", str(tmp_path),
    ])  # fmt: skip
    assert json.loads(twin.read_text())["training"]["history"] == card["training"]["history"]


def copy_checkpoint(card_path: Path, folder: Path) -> Path:
    card = json.loads(card_path.read_text())
    for name in (card_path.name, card["weights_file"]):
        (folder / name).write_bytes((card_path.parent / name).read_bytes())
    return folder / card_path.name


def test_sha256_mismatch_is_refused(smoke_card: Path, tmp_path: Path) -> None:
    copy = copy_checkpoint(smoke_card, tmp_path)
    card = json.loads(copy.read_text())
    card["sha256"] = "0" * 64
    copy.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_checkpoint(copy)


@pytest.mark.parametrize("damage", ["truncate", "corrupt_header", "garbage"])
def test_damaged_weights_are_a_clear_error(smoke_card: Path, tmp_path: Path, damage: str) -> None:
    copy = copy_checkpoint(smoke_card, tmp_path)
    card = json.loads(copy.read_text())
    weights = tmp_path / card["weights_file"]
    data = weights.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "corrupt_header": data[:8] + b"{not json" + data[17:],
        "garbage": b"\x00" * 64,
    }[damage]
    weights.write_bytes(damaged)
    # with the card's checksum updated the file passes the SHA check and must fail to parse cleanly
    card["sha256"] = __import__("hashlib").sha256(damaged).hexdigest()
    copy.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="cannot load"):
        load_checkpoint(copy)


def test_missing_or_invalid_card(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "bad.json")


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="GCNN_DATA_DIR"):
        load_mnist(train=False, root=tmp_path, download=False)


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench import training_set  # the generator lives outside model/ (it uses the service's preprocessing)

    if len(training_set.available_fonts()) < len(training_set.FONTS):
        pytest.skip("the training fonts are not installed (scripts/install_system_deps.sh)")
    path = tmp_path_factory.mktemp("synthetic") / "digits.safetensors"
    training_set.generate(path, count=20, seed=5, workers=1)
    return path


def test_the_card_records_the_synthetic_mix(synthetic_file: Path, tmp_path: Path) -> None:
    card_path = train_main([
        "--model", "gcnn_c8_pose", "--set", "hidden_channels=4", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "16", "--limit", "48", "--val-split", "100", "--skip-test", "--device", "cpu",
        "--synthetic", str(synthetic_file), "--out-dir", str(tmp_path),
    ])  # fmt: skip
    assert card_path is not None
    training = json.loads(card_path.read_text())["training"]
    data = training["data"]
    assert data["synthetic"]["sha256"] == hashlib.sha256(synthetic_file.read_bytes()).hexdigest()
    assert data["synthetic"]["seed"] == 5 and data["synthetic"]["count"] == 20 and data["synthetic"]["digits"] == 20
    assert len(data["synthetic"]["fonts"]) >= 30 and "TomsonTalks.ttf" in data["synthetic"]["fonts"]
    assert data["synthetic"]["hollow_share"] == 0.1  # bench.training_set.HOLLOW, the default share
    assert data["mnist"] == {"digits": 48, "held_out_for_validation": 100}
    assert data["mix"]["mnist"] == 48 and data["mix"]["synthetic"] == 20 and data["mix"]["synthetic_share"] == 0.2941
    assert "MNIST only" in data["mix"]["how"] and training["train_digits"] == 68
    assert training["world_size"] == 1 and training["per_process_batch_size"] == 16
    assert len(training["history"]) == 1


def test_without_synthetic_digits_the_card_says_mnist_only(smoke_card: Path) -> None:
    data = json.loads(smoke_card.read_text())["training"]["data"]
    assert data == {"mnist": {"digits": 384, "held_out_for_validation": 0}}


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"images": np.zeros((4, 28, 28), np.uint8)}, "labels"),
        ({"images": np.zeros((4, 28, 28), np.float32), "labels": np.zeros(4, np.int64)}, "uint8"),
        ({"images": np.zeros((4, 28, 28), np.uint8), "labels": np.full(4, 10, np.int64)}, "digits 0-9"),
    ],
    ids=["no labels", "float images", "label out of range"],
)
def test_a_malformed_synthetic_file_is_a_clear_error(
    tmp_path: Path, tensors: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(DatasetUnavailableError, match=message):
        load_synthetic(path)
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        load_synthetic(tmp_path / "missing.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "gcnn_c8_wide",
        "cnn_seed",
        "gcnn_c4_seed",
        "cnn_mixed",
        "gcnn_c8_canon_pose_mixed",
        "gcnn_c8_canon_pose_wide_mixed",
    ],
)
def test_shipped_weights_match_their_card(name: str) -> None:
    """On the first 2,000 test digits, rotated accuracy within 1.5 points of the card's full-test figure."""
    model, card = load_checkpoint(WEIGHTS / f"{name}.json")
    images, labels = load_mnist(train=False)
    report = evaluate(model, images[:2000], labels[:2000], per_angle=False)
    assert abs(report["rotated_accuracy"] - card["metrics"]["rotated_accuracy"]) <= 0.015
    assert abs(report["upright_accuracy"] - card["metrics"]["upright_accuracy"]) <= 0.015


@pytest.mark.slow
def test_trained_models_on_quarter_turned_digits() -> None:
    """The trained G-CNN gives identical predictions on quarter-turned digits; the trained CNN does not."""
    images, _ = load_mnist(train=False)
    images = images[:500]
    quarter = torch.rot90(images, 1, dims=(-2, -1))
    gcnn, _ = load_checkpoint(WEIGHTS / "gcnn_c4_seed.json")
    cnn, _ = load_checkpoint(WEIGHTS / "cnn_seed.json")
    with torch.no_grad():
        assert torch.equal(gcnn(quarter).argmax(1), gcnn(images).argmax(1))
        assert (cnn(quarter).argmax(1) != cnn(images).argmax(1)).float().mean() > 0.5


def fine_tune(card: Path, out: Path, *extra: str) -> Path:
    return train_main([
        "--model", "gcnn_c8", "--set", "hidden_channels=4", "--init", str(card), "--name", "tuned", "--epochs", "1",
        "--batch-size", "64", "--limit", "128", "--eval-limit", "200", "--device", "cpu", "--out-dir", str(out),
        *extra,
    ])  # fmt: skip


def test_fine_tuning_starts_from_the_checkpoint_and_records_it(smoke_card: Path, tmp_path: Path) -> None:
    start, _ = load_checkpoint(smoke_card)
    tuned_card = fine_tune(smoke_card, tmp_path, "--lr", "1e-9", "--max-steps", "1")  # one step that moves nothing
    tuned, card = load_checkpoint(tuned_card)
    assert card["training"]["initialised_from"]["sha256"] == json.loads(smoke_card.read_text())["sha256"]
    for (name, before), after in zip(start.state_dict().items(), tuned.state_dict().values(), strict=True):
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # batch-norm statistics follow the step's batch whatever the learning rate
        assert torch.allclose(before, after, atol=1e-6), name


def test_fine_tuning_refuses_a_checkpoint_of_another_config(smoke_card: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="differs"):
        train_main([
            "--model", "gcnn_c8", "--set", "hidden_channels=6", "--init", str(smoke_card), "--epochs", "1",
            "--limit", "64", "--device", "cpu", "--out-dir", str(tmp_path),
        ])  # fmt: skip


def test_training_with_shifts_records_them_and_sees_other_images(smoke_card: Path, tmp_path: Path) -> None:
    common = ["--model", "gcnn_c8", "--set", "hidden_channels=4", "--epochs", "1", "--batch-size", "64", "--limit",
              "128", "--eval-limit", "50", "--device", "cpu"]  # fmt: skip
    plain = json.loads(train_main([*common, "--name", "plain", "--out-dir", str(tmp_path)]).read_text())
    moved = json.loads(train_main([*common, "--name", "moved", "--shift", "2", "--out-dir", str(tmp_path)]).read_text())
    assert plain["training"]["shift"] == 0 and moved["training"]["shift"] == 2
    assert moved["training"]["history"] != plain["training"]["history"]  # same seed, other pixels


@pytest.mark.data
def test_evaluation_figures_go_beside_the_numbers_not_over_the_shipped_ones(tmp_path: Path) -> None:
    shipped = {name: (WEIGHTS / name).read_bytes() for name in ("accuracy_vs_angle.png", "orientation_error.png")}
    card, out = WEIGHTS / "gcnn_c8_pose.json", tmp_path / "evaluation.json"
    evaluate_main([str(card), "--limit", "24", "--device", "cpu", "--out", str(out)])
    assert {path.name for path in tmp_path.iterdir()} == {"evaluation.json", *shipped}
    assert all((WEIGHTS / name).read_bytes() == data for name, data in shipped.items())


def test_every_curve_of_the_figures_has_a_colour_of_its_own() -> None:
    """The shipped figures draw more models than matplotlib's ten default colours (the eleventh took the first's)."""
    from matplotlib.colors import to_rgba

    shipped = len(json.loads((WEIGHTS / "evaluation.json").read_text()))
    for count in (1, 10, 11, shipped, 20):
        colours = {to_rgba(colour) for colour in curve_colours(count)}
        assert len(colours) == count, count


@pytest.mark.data
def test_evaluation_with_add_keeps_the_other_models_and_refuses_another_protocol(tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    evaluate_main([str(WEIGHTS / "cnn_seed.json"), "--limit", "24", "--device", "cpu", "--out", str(out)])
    first = json.loads(out.read_text())["cnn_seed"]
    evaluate_main([str(WEIGHTS / "gcnn_c8_pose.json"), "--limit", "24", "--device", "cpu", "--out", str(out), "--add"])
    reports = json.loads(out.read_text())
    assert list(reports) == ["cnn_seed", "gcnn_c8_pose"] and reports["cnn_seed"] == first
    assert "orientation" in reports["gcnn_c8_pose"]
    kept = out.read_bytes()
    with pytest.raises(SystemExit, match="evaluate it again"):  # 12 digits are not the protocol the 24 were read by
        evaluate_main([str(WEIGHTS / "cnn_seed.json"), "--limit", "12", "--device", "cpu", "--out", str(out), "--add"])
    with pytest.raises(SystemExit, match="rotation seed 0"):  # nor are angles drawn with another seed
        evaluate_main([str(WEIGHTS / "cnn_seed.json"), "--limit", "24", "--seed", "1", "--out", str(out), "--add"])
    assert out.read_bytes() == kept  # a refused evaluation leaves the reports as they were

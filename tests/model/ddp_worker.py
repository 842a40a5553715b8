"""One training process for tests/model/test_distributed.py: trains as model.train does, saves its own weights.

    torchrun --standalone --nproc_per_node=2 tests/model/ddp_worker.py OUT_DIR STEPS BATCH   # data-parallel
    python tests/model/ddp_worker.py OUT_DIR STEPS BATCH [--frozen-norms]                   # one process

Every process (rank 0 and the others, which ``model.train`` never lets write)
saves its weights and buffers to ``OUT_DIR/rank<r>.safetensors``, so the test
can compare them. The model and data are those of the test: a 4-channel
``gcnn_c8_pose`` (joint head, batch norm) on the first 256 MNIST training digits.

``--frozen-norms`` keeps the batch norms in eval mode while the rest trains: they
normalise with their (initial) running statistics instead of each process's
share of the batch, which isolates what data parallelism itself does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from model.data import load_mnist
from model.distributed import start, stop
from model.registry import create_model
from model.train import seed_everything, train

SEED = 0
DIGITS = 256


def main() -> None:
    out, steps, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)  # torchrun's default per process; the single process matches it
    workers = start("cpu")
    seed_everything(SEED)
    model = create_model("gcnn_c8_pose", hidden_channels=4)
    if "--frozen-norms" in sys.argv:
        for module in model.modules():
            if isinstance(module, _BatchNorm):  # model.train() cannot switch it back to batch statistics
                module.train = lambda mode=True, norm=module: nn.Module.train(norm, False)  # type: ignore[method-assign]
    images, labels = load_mnist(train=True)
    train(
        model,
        images[:DIGITS],
        labels[:DIGITS],
        epochs=1,
        batch_size=batch,
        lr=0.01,
        weight_decay=1e-4,
        seed=SEED,
        device="cpu",
        max_steps=steps,
        workers=workers,
    )
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(out / f"rank{workers.rank}.safetensors"))
    stop(workers)


if __name__ == "__main__":
    main()

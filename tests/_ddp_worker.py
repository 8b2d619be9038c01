"""Worker of test_distributed.py, launched twice by ``torchrun --nproc_per_node 2``.

Fine-tunes the tiny causal LM with data parallelism through the ordinary
``CausalLMAnswerModel.fit`` → ``train_option_model`` → ``Trainer`` path (no
distributed-specific code) and writes what each rank saw to ``OUT/rank<r>.json``.

Usage: ``_ddp_worker.py MODEL_DIR ITEMS_PARQUET OUT_DIR``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from surveylm.items import ItemSet
from surveylm.models.causal_lm import CausalLMAnswerModel


class _SeenBatches(TrainerCallback):
    """Counts the items this rank trained on (its share of each global batch)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.sizes.append(args.per_device_train_batch_size)


def main() -> None:
    model_dir, items_path, out = sys.argv[1:4]
    items = ItemSet.read_parquet(items_path)
    config = {
        "learning_rate": 1e-2,
        "max_steps": 6,
        "batch_size": 2,
        "logging_steps": 1,
        "save_every_epoch": False,
        "lr_scheduler": "constant",
        "lora": {"dropout": 0.0},
    }
    seen = _SeenBatches()
    # no marginal start: its offsets put the first loss near the optimum of these few items,
    # and this test reads "training happened on every rank" off a falling loss
    model = CausalLMAnswerModel(model_dir, fine_tune=config, output_dir=str(Path(out) / "ckpt"),
                                marginal_start=False)  # fmt: skip
    model.fit(items, callbacks=[seen])
    adapter = {n: p.detach().cpu() for n, p in model._lm.named_parameters() if "lora_" in n}
    digest = hashlib.sha256()
    for name in sorted(adapter):
        digest.update(adapter[name].numpy().tobytes())
    result = {
        "rank": dist.get_rank() if dist.is_initialized() else -1,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "adapter_sha256": digest.hexdigest(),
        "lora_b_max": max(float(p.abs().max()) for n, p in adapter.items() if "lora_B" in n),
        "losses": [h["loss"] for h in model.history_ if "loss" in h],
        "steps": len(seen.sizes),
        "threads": torch.get_num_threads(),
    }
    Path(out, f"rank{result['rank']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()

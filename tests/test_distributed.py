"""Data-parallel fine-tuning: two CPU processes under ``torchrun`` (gloo) through the same
Trainer path as a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lm_fixtures import tiny_items, tiny_model_dir


def test_torchrun_two_processes_fine_tune_with_data_parallelism(tmp_path):
    items = tiny_items(8)
    items.to_parquet(tmp_path / "items.parquet")
    worker = Path(__file__).with_name("_ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        str(worker), str(tiny_model_dir("space")), str(tmp_path / "items.parquet"), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r, res in enumerate(ranks):
        assert res["rank"] == r and res["world_size"] == 2 and res["backend"] == "gloo"
        assert res["steps"] == 6 and res["lora_b_max"] > 0
        assert res["losses"][-1] < res["losses"][0]
    # gradients were all-reduced: both replicas end with the same adapter
    assert ranks[0]["adapter_sha256"] == ranks[1]["adapter_sha256"]

"""Tests of the forward-KL Trainer path, its configs, checkpoints and resuming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import TrainerCallback

from surveylm.errors import ConfigError, ModelError
from surveylm.training.config import FineTuneConfig, LoraSettings, parse_config
from surveylm.training.trainer import (
    find_layer_list,
    format_loss,
    freeze_all_but_top_layers,
    train_option_model,
)


class ToyScorer(nn.Module):
    """Scores 3 option slots from 4 features; the third slot is padding for half the items."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) / self.log_temperature.exp()


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 48) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = self.x[i]
        k = 3 if i % 2 else 2
        label = int(x[0] > 0) + (1 if k == 3 and x[1] > 0.5 else 0)
        target = torch.zeros(3)
        target[label] = 1.0
        mask = torch.tensor([True, True, k == 3])
        return {"x": x, "targets": target, "option_mask": mask, "item_weights": torch.tensor(1.0)}


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([b[key] for b in batch]) for key in batch[0]}


def _config(**kw) -> FineTuneConfig:
    base = dict(learning_rate=0.05, epochs=3, batch_size=8, logging_steps=2, seed=3)
    base.update(kw)
    return FineTuneConfig(**base)


def test_training_lowers_loss_and_writes_a_checkpoint_per_epoch(tmp_path: Path) -> None:
    module = ToyScorer()
    before = module.lin.weight.detach().clone()
    out = train_option_model(module, ToyData(), collate, _config(), tmp_path)
    losses = out.losses
    assert len(losses) >= 6
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert not torch.allclose(before, module.lin.weight)
    assert out.global_step == 18  # 48 items / 8 per batch * 3 epochs
    assert out.items_per_second > 0
    checkpoints = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-12", "checkpoint-18", "checkpoint-6"]
    saved = load_file(tmp_path / "checkpoint-18" / "model.safetensors")
    assert set(saved) == {"lin.weight", "lin.bias", "log_temperature"}
    torch.testing.assert_close(saved["lin.weight"], module.lin.weight.detach())


class _StopAfterFirstEpoch(TrainerCallback):
    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    full = ToyScorer()
    out_full = train_option_model(full, ToyData(), collate, _config(), tmp_path / "full")

    interrupted = ToyScorer()
    first = train_option_model(
        interrupted,
        ToyData(),
        collate,
        _config(),
        tmp_path / "cut",
        callbacks=[_StopAfterFirstEpoch()],
    )
    assert first.global_step == 6
    resumed = ToyScorer()  # a fresh process would start from fresh weights
    out = train_option_model(
        resumed, ToyData(), collate, _config(), tmp_path / "cut", resume_from_checkpoint=True
    )
    assert out.global_step == out_full.global_step
    torch.testing.assert_close(resumed.lin.weight, full.lin.weight)
    torch.testing.assert_close(resumed.log_temperature, full.log_temperature)
    assert out.losses[-1] == pytest.approx(out_full.losses[-1], rel=1e-6)


class _CrashInSave(TrainerCallback):
    """A crash while the checkpoint of step ``at`` is saved (before it is marked complete)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_resume_with_validation_restores_the_early_stopping_state(tmp_path: Path) -> None:
    """The best state, its loss and step, and the patience count live in memory during a
    fit; a resumed validating run reads them back from the checkpoint and ends exactly
    where the uninterrupted one does, even when the best state came before the crash; a
    checkpoint the crash left half-saved is never resumed from."""
    from surveylm.training.checkpoints import MARKER, last_checkpoint

    cfg = _config(epochs=8, learning_rate=0.3, early_stopping_patience=2, save_total_limit=2)
    val = ToyData(16)
    full = ToyScorer()
    ref = train_option_model(full, ToyData(), collate, cfg, tmp_path / "full", eval_dataset=val)
    assert ref.best_step is not None and ref.best_step < ref.global_step  # stopped early
    cut = tmp_path / "cut"
    # killed saving the second checkpoint (one each epoch: 6 steps) after the best one
    crash_at = 6 * (ref.best_step // 6 + 2)
    assert crash_at < ref.global_step
    with pytest.raises(KeyboardInterrupt):
        train_option_model(ToyScorer(), ToyData(), collate, cfg, cut, eval_dataset=val,
                           callbacks=[_CrashInSave(crash_at)])  # fmt: skip
    assert not (cut / f"checkpoint-{crash_at}" / MARKER).exists()  # half-saved
    assert last_checkpoint(cut) == cut / f"checkpoint-{crash_at - 6}"
    assert crash_at - 6 > ref.best_step
    resumed = ToyScorer()
    out = train_option_model(resumed, ToyData(), collate, cfg, cut, eval_dataset=val,
                             resume_from_checkpoint=True)  # fmt: skip
    assert (out.global_step, out.best_step) == (ref.global_step, ref.best_step)
    assert out.best_validation_loss == ref.best_validation_loss
    assert out.initial_validation_loss == ref.initial_validation_loss
    torch.testing.assert_close(resumed.lin.weight, full.lin.weight, rtol=0, atol=0)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_option_model(
            ToyScorer(), ToyData(), collate, _config(), tmp_path, resume_from_checkpoint=True
        )


def test_same_seed_same_result_and_temperature_lr(tmp_path: Path) -> None:
    a, b, c = ToyScorer(), ToyScorer(), ToyScorer()
    cfg = _config(epochs=1, save_every_epoch=False)
    train_option_model(a, ToyData(), collate, cfg, tmp_path / "a")
    train_option_model(b, ToyData(), collate, cfg, tmp_path / "b")
    torch.testing.assert_close(a.lin.weight, b.lin.weight)
    assert not list((tmp_path / "a").glob("checkpoint-*"))
    # a frozen temperature learning rate of ~0 keeps tau put while the rest trains
    train_option_model(
        c, ToyData(), collate, cfg.model_copy(update={"temperature_lr": 1e-12}), tmp_path / "c"
    )
    assert c.log_temperature.item() == pytest.approx(0.0, abs=1e-8)
    assert a.log_temperature.item() != pytest.approx(0.0, abs=1e-4)


def test_frozen_model_and_empty_data_are_refused(tmp_path: Path) -> None:
    module = ToyScorer().requires_grad_(False)
    with pytest.raises(ModelError, match="no trainable parameters"):
        train_option_model(module, ToyData(), collate, _config(), tmp_path)
    with pytest.raises(ModelError, match="no training items"):
        train_option_model(ToyScorer(), ToyData(0), collate, _config(), tmp_path)


def test_batch_without_targets_names_the_problem(tmp_path: Path) -> None:
    def bad_collate(batch):
        out = collate(batch)
        del out["targets"]
        return out

    with pytest.raises(ModelError, match="'targets'"):
        train_option_model(ToyScorer(), ToyData(), bad_collate, _config(), tmp_path)


def test_config_validation_and_training_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="learning_rat"):
        parse_config({"learning_rat": 1e-4})
    with pytest.raises(ConfigError, match="batch_size"):
        parse_config({"batch_size": 0})
    with pytest.raises(ConfigError, match=r"lora\.r"):
        parse_config({"lora": {"r": 0}})
    cfg = parse_config({"epochs": 2, "warmup_ratio": 0.1, "lora": {"target_modules": ["query"]}})
    args = cfg.to_training_arguments(tmp_path)
    assert args.num_train_epochs == 2 and args.warmup_steps == pytest.approx(0.1)
    assert args.save_strategy == "epoch" and args.remove_unused_columns is False
    assert args.report_to == [] or args.report_to == ["none"] or not args.report_to
    assert args.seed == 0 and args.data_seed == 0 and args.bf16 is False
    assert args.use_cpu is (not torch.cuda.is_available())
    lora = cfg.lora.to_peft()
    assert lora.r == 8 and lora.lora_alpha == 32 and set(lora.target_modules) == {"query"}
    assert LoraSettings().target_modules == ["q_proj", "v_proj"]
    yaml_file = tmp_path / "ft.yaml"
    yaml_file.write_text("epochs: 1.5\nlora:\n  enabled: false\n", encoding="utf-8")
    loaded = FineTuneConfig.from_yaml(yaml_file)
    assert loaded.epochs == 1.5 and loaded.lora.enabled is False
    yaml_file.write_text("epoch: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ft\.yaml.*epoch"):
        FineTuneConfig.from_yaml(yaml_file)


def test_freeze_all_but_top_layers_on_a_tiny_bert() -> None:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = BertModel(cfg)
    name, layers = find_layer_list(model)
    assert name == "encoder.layer" and len(layers) == 3
    trainable = freeze_all_but_top_layers(model, 1)
    assert trainable and all(n.startswith("encoder.layer.2.") for n in trainable)
    assert not any(p.requires_grad for p in model.embeddings.parameters())
    assert all(p.requires_grad for p in model.encoder.layer[2].parameters())
    with pytest.raises(ConfigError, match="between 1 and 3"):
        freeze_all_but_top_layers(model, 4)
    with pytest.raises(ModelError, match="cannot find the transformer layers"):
        find_layer_list(nn.Linear(2, 2))


def test_format_loss_makes_the_loss_the_full_vocabulary_cross_entropy() -> None:
    # scores are full-vocabulary log-probabilities of 3 option slots (the third padded on
    # row 1); KL to a one-hot target + -log format mass = -log p_vocab(answer)
    logits = torch.tensor([[2.0, 0.5, -1.0, 1.0, 0.0], [0.3, 1.2, 0.0, -0.5, 2.0]])
    logp = torch.log_softmax(logits, dim=-1)
    scores = logp[:, :3].clone()
    mask = torch.tensor([[True, True, True], [True, True, False]])
    targets = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    from surveylm.training.losses import forward_kl

    kl = forward_kl(scores, targets, mask)
    full_ce = -(logp[0, 1] + logp[1, 0]) / 2
    assert torch.allclose(kl + format_loss(scores, mask), full_ce, atol=1e-6)
    # offsets added to the scores (the marginal start) do not change the format term
    offsets = torch.tensor([[0.7, -0.2, 0.1], [1.5, 0.0, 0.0]])
    assert torch.allclose(format_loss(scores + offsets, mask, offsets), format_loss(scores, mask))
    # weights average it like the main loss
    w = torch.tensor([1.0, 3.0])
    mass = torch.logsumexp(scores.masked_fill(~mask, -torch.inf), dim=-1)
    assert torch.allclose(format_loss(scores, mask, weights=w), -(mass * w).sum() / 4)


def test_causal_lm_defaults_train_the_format_and_other_scorers_refuse_it(tmp_path) -> None:
    from surveylm.models.causal_lm import CausalLMAnswerModel

    cfg = CausalLMAnswerModel(fine_tune={"epochs": 1}).fine_tune_config()
    assert cfg.format_loss_weight == 1.0 and cfg.epochs == 1 and cfg.learning_rate == 1e-3
    assert not cfg.save_every_epoch
    # a scorer whose scores are logits (the encoder's head, this toy) has no format mass
    with pytest.raises(ConfigError, match="format_loss_weight is for causal LMs: ToyScorer"):
        train_option_model(ToyScorer(), ToyData(), collate,
                           _config(format_loss_weight=1.0), tmp_path)  # fmt: skip


class KeywordToyScorer(ToyScorer):
    """A forward taking ``**kwargs``, as the causal LM's option scorer does (the Trainer
    then assumes the loss may already be scaled for gradient accumulation)."""

    def forward(self, x: torch.Tensor, **_: object) -> torch.Tensor:
        return super().forward(x)


def test_forward_passes_of_a_split_batch_give_the_one_pass_result(tmp_path: Path) -> None:
    """``max_forward_batch`` runs a batch of 8 as 4 passes of 2 (gradient accumulation):
    the same optimiser steps and, up to float rounding, the same weights."""
    cfg = _config(epochs=2, save_every_epoch=False)
    assert cfg.model_copy(update={"max_forward_batch": 3}).forward_batch() == 2  # divides 8
    split = cfg.model_copy(update={"max_forward_batch": 2})
    args = split.to_training_arguments(tmp_path / "args")
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)
    assert args.per_device_eval_batch_size == 8
    whole, parts = KeywordToyScorer(), KeywordToyScorer()
    a = train_option_model(whole, ToyData(), collate, cfg, tmp_path / "a")
    b = train_option_model(parts, ToyData(), collate, split, tmp_path / "b")
    assert a.global_step == b.global_step == 12
    torch.testing.assert_close(whole.lin.weight, parts.lin.weight, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(whole.lin.weight, KeywordToyScorer().lin.weight)

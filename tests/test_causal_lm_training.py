"""Fine-tuning the causal-LM answer model: KL falls, adapter changes, save/load, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from lm_fixtures import fast_fine_tune, tiny_items, tiny_model_dir
from surveylm.errors import DataError, ModelError
from surveylm.models.base import AnswerModel
from surveylm.models.causal_lm import CausalLMAnswerModel

FAST = fast_fine_tune(max_steps=30)


def _mean_kl(items, pred):
    return float(np.mean([np.sum(p * np.log(p / q)) for p, q in
                          zip(items.targets, pred.distributions, strict=True)]))  # fmt: skip


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))


@pytest.fixture(scope="module")
def fitted():
    items = tiny_items(8)
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=FAST, batch_size=4)
    before = model.predict(items)
    model.fit(items)
    return items, model, before


def test_fine_tuning_drives_kl_down_and_changes_the_adapter(fitted):
    items, model, before = fitted
    after = model.predict(items)
    assert _mean_kl(items, before) > 0.3
    assert _mean_kl(items, after) < 0.05
    losses = [h["loss"] for h in model.history_ if "loss" in h]
    assert len(losses) == 30 and losses[-1] < 0.2 * losses[0]
    lora_b = [p for n, p in model._lm.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 4  # q_proj and v_proj in 2 layers (peft initialises B to zero)
    assert all(float(p.abs().max()) > 0 for p in lora_b)
    assert model.is_fitted and model.trained_ == "lora" and model.items_per_second_ > 0


def test_the_format_term_moves_mass_onto_the_option_tokens(fitted):
    items, plain, before = fitted
    with_format = CausalLMAnswerModel(str(tiny_model_dir("space")), batch_size=4,
                                      fine_tune={**FAST, "format_loss_weight": 1.0}).fit(items)
    mass = with_format.predict(items).format_mass.mean()
    plain_mass = plain.predict(items).format_mass.mean()
    # the tiny random LM starts at ~0.007 on the option tokens
    assert mass > 0.3 and mass > 2 * plain_mass, (before.format_mass.mean(), plain_mass, mass)


def test_save_load_predict_identical(fitted, tmp_path):
    items, model, _ = fitted
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "m" / "model.json").is_file()
    loaded = AnswerModel.load(tmp_path / "m")  # dispatches to CausalLMAnswerModel.load
    assert isinstance(loaded, CausalLMAnswerModel) and loaded.is_fitted
    a, b = model.predict(items), loaded.predict(items)
    assert _same(a, b) and np.array_equal(a.format_mass, b.format_mass)
    assert loaded.get_params()["fine_tune"]["learning_rate"] == FAST["learning_rate"]


def test_a_partial_fine_tune_mapping_survives_save_and_load(tmp_path):
    # saved as given, so the loaded model overrides the causal LM's defaults the same way
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune={"epochs": 1})
    model.save(tmp_path / "p")
    loaded = CausalLMAnswerModel.load(tmp_path / "p")
    assert loaded.get_params()["fine_tune"] == {"epochs": 1}
    assert loaded.fine_tune_config() == model.fine_tune_config()
    assert loaded.fine_tune_config().learning_rate == 1e-3


def test_unfitted_zero_shot_model_saves_and_loads(tmp_path):
    items = tiny_items(3)
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), permutations=2)
    model.save(tmp_path / "z")
    loaded = CausalLMAnswerModel.load(tmp_path / "z")
    assert not loaded.is_fitted and loaded.permutations == 2
    assert _same(model.predict(items), loaded.predict(items))
    with pytest.raises(ModelError, match="no saved model here"):
        CausalLMAnswerModel.load(tmp_path / "missing")


def test_top_layer_tuning_without_lora_saves_and_loads(tmp_path):
    items = tiny_items(8)
    cfg = {**FAST, "max_steps": 3, "learning_rate": 1e-3, "lora": {"enabled": False},
           "train_top_layers": 1}  # fmt: skip
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=cfg).fit(items)
    trained = model._trained_names
    assert trained and all(n.startswith("model.layers.1.") for n in trained)
    assert not any(p.requires_grad for p in model._lm.parameters())  # frozen for inference
    model.save(tmp_path / "t")
    loaded = CausalLMAnswerModel.load(tmp_path / "t")
    base = CausalLMAnswerModel(str(tiny_model_dir("space"))).predict(items)
    a, b = model.predict(items), loaded.predict(items)
    assert _same(a, b) and not _same(a, base)


def test_fit_needs_targets_and_respondent_items_train():
    items = tiny_items(4, kind="respondent")
    frame = items.frame.copy()
    frame["target"] = None
    from surveylm.items import ItemSet

    with pytest.raises(DataError, match="no items with a known target"):
        CausalLMAnswerModel(str(tiny_model_dir("space"))).fit(ItemSet(frame, items.questions))
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), prompt_format="persona",
                                fine_tune={**FAST, "max_steps": 2}).fit(items)  # fmt: skip
    assert len([h for h in model.history_ if "loss" in h]) == 2


class _Crash(TrainerCallback):
    """Simulates a crash right after the checkpoint of step ``at`` is written."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    items = tiny_items(8)
    cfg = {
        "learning_rate": 5e-3,
        "epochs": 3,
        "batch_size": 4,
        "logging_steps": 1,
        "save_every_epoch": True,
    }  # fmt: skip (dropout 0.05: RNG state matters; random_state=3 seeds it)
    path = str(tiny_model_dir("space"))

    def losses(model):
        return [h["loss"] for h in model.history_ if "loss" in h]

    full = CausalLMAnswerModel(
        path, fine_tune=cfg, output_dir=str(tmp_path / "full"), random_state=3
    ).fit(items)
    assert len(losses(full)) == 6  # 2 steps per epoch
    run = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        CausalLMAnswerModel(path, fine_tune=cfg, output_dir=str(run), random_state=3).fit(
            items, callbacks=[_Crash(4)]
        )
    assert (run / "checkpoint-4").is_dir() and not (run / "checkpoint-6").exists()
    resumed = CausalLMAnswerModel(path, fine_tune=cfg, output_dir=str(run), random_state=3)
    resumed.fit(items, resume_from_checkpoint=True)
    # the resumed run ran steps 5-6 only; its history continues the checkpoint's
    steps = [h["step"] for h in resumed.history_ if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert losses(resumed)[:4] == losses(full)[:4]
    assert losses(resumed)[-1] == pytest.approx(losses(full)[-1], abs=1e-6)
    a = full.predict(items).distributions
    b = resumed.predict(items).distributions
    assert max(np.abs(x - y).max() for x, y in zip(a, b, strict=True)) < 1e-6
    with pytest.raises(ModelError, match="needs output_dir"):
        CausalLMAnswerModel(path, fine_tune=cfg).fit(items, resume_from_checkpoint=True)


def test_lora_settings_reach_peft():
    items = tiny_items(8)
    cfg = {**FAST, "max_steps": 1, "lora": {"r": 4, "alpha": 8, "use_rslora": True,
                                            "target_modules": ["q_proj", "k_proj"]}}  # fmt: skip
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=cfg).fit(items)
    names = [n for n, _ in model._lm.named_parameters() if "lora_A" in n]
    assert len(names) == 4 and all("q_proj" in n or "k_proj" in n for n in names)
    a = next(p for n, p in model._lm.named_parameters() if "lora_A" in n)
    assert a.shape[0] == 4
    lora_cfg = model._lm.peft_config["default"]
    assert lora_cfg.use_rslora and lora_cfg.lora_alpha == 8
    assert torch.is_tensor(a)


def test_inner_validation_early_stops_and_keeps_the_best_state():
    """DESIGN.md "Fitting" on the tiny Llama: a held-out split is evaluated before and
    during training, the best state is restored, and the curves are kept."""
    items = tiny_items(40, seed=3)
    settings = {**fast_fine_tune(60), "validation_fraction": 0.25, "early_stopping_patience": 2,
                "evaluations_per_epoch": 1, "max_steps": None, "epochs": 30.0}  # fmt: skip
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=8, verbose=False).fit(items)  # fmt: skip
    v = model.validation_
    assert v["n_validation"] >= 8 and v["n_fit"] + v["n_validation"] == 40
    assert v["best"] <= v["initial"]
    evals = [r for r in model.curves_ if r["split"] == "validation"]
    assert len(evals) >= 2 and min(r["loss"] for r in evals) == pytest.approx(v["best"])
    # stopped before the 30-epoch budget (patience 2), or improved until its end
    assert model.history_[-1]["step"] < 30 * 4 or v["best_step"] >= 30 * 4 - 4


def test_a_fit_that_never_beats_its_start_warns():
    """Zero learning rate: validation cannot improve, the start is kept, and fit says so."""
    from surveylm.models.validation import NoValidationGainWarning

    settings = {**fast_fine_tune(8), "learning_rate": 1e-12, "validation_fraction": 0.25}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=8, verbose=False, marginal_start=False)  # fmt: skip
    with pytest.warns(NoValidationGainWarning, match="zero-shot"):
        model.fit(tiny_items(40, seed=3))
    assert model.validation_["best_step"] == 0


def _geometric_mean(dists):
    g = np.exp(np.mean(np.log(np.stack(dists)), axis=0))
    return g / g.sum()


def test_marginal_start_answers_with_the_training_marginal_on_average():
    """Issue 17: an untrained fit is the marginal on average (contextual calibration),
    not the random LM's answer; switched off, it is far from it."""
    from surveylm.models.item_texts import marginal_log_prior

    items = tiny_items(40, seed=3)
    settings = {**fast_fine_tune(1), "learning_rate": 1e-12}
    tv = {}
    for start in (True, False):
        model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                    batch_size=8, verbose=False, marginal_start=start).fit(items)
        pred = model.predict(items)
        assert pred.extra["marginal_start"] is start
        qids = items.frame["question_id"].to_numpy()
        gaps = []
        for q, log_m in marginal_log_prior(items).items():  # no validation: all items fit
            g = _geometric_mean([pred.distributions[i] for i in np.flatnonzero(qids == q)])
            gaps.append(0.5 * np.abs(g - np.exp(log_m)).sum())
        tv[start] = max(gaps)
    assert tv[True] < 1e-6
    assert tv[False] > 0.05


def _losing_fit(items, **kwargs):
    """A fit validation prefers the marginal to (zero learning rate: the calibrated start
    is the marginal on average, not item by item)."""
    from surveylm.models.encoder import MarginalWarning

    settings = {**fast_fine_tune(8), "learning_rate": 1e-12, "validation_fraction": 0.25}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=8, verbose=False, **kwargs)  # fmt: skip
    with pytest.warns(MarginalWarning, match="fitted questions are answered with the marginal"):
        model.fit(items)
    return model


def test_a_fit_that_loses_to_the_marginal_answers_with_it(tmp_path):
    """One MarginalWarning; fitted questions get pooling weight 0, so every prediction is
    the training marginal (the question-marginal baseline's, from every training item),
    also for the fit part's groups, whose untested weight would otherwise be 1; with its
    training cells
    (surveylm.models.seen_cells) a seen cell is its own data pooled with that marginal;
    the flag and the weights survive save/load."""
    from surveylm.models.marginals import QuestionMarginalModel

    items = tiny_items(40, seed=3)
    model = _losing_fit(items, pool_seen_cells=False)
    assert model.beats_marginal_ is False
    assert model.validation_["marginal"] < model.validation_["best"]
    assert (model.shrinkage_.seen, model.shrinkage_.new_group) == (0.0, 0.0)
    pred = model.predict(items)
    assert pred.extra["beats_marginal"] is False
    marginal = QuestionMarginalModel().fit(items).predict(items).distributions
    for ours, theirs in zip(pred.distributions, marginal, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-9)
    loaded = AnswerModel.load(model.save(tmp_path / "m"))
    assert _same(pred, loaded.predict(items))
    with_cells = _losing_fit(items)
    cells = with_cells.predict(items).distributions
    assert max(np.abs(a - b).max() for a, b in zip(cells, marginal, strict=True)) > 1e-3


def test_a_model_saved_before_pooling_that_lost_answers_with_the_marginal(tmp_path):
    """A model.json written before pooling (no ``shrinkage``, no ``marginal``) by a fit
    that lost predicted the marginal for fitted questions: it still does after loading."""
    import json

    from surveylm.models.marginals import QuestionMarginalModel

    items = tiny_items(40, seed=3)
    model = _losing_fit(items)
    folder = model.save(tmp_path / "m")
    saved = json.loads((folder / "model.json").read_text())
    state = saved["state"]  # write_model_json: {class, params, state, ...}
    for key in ("marginal", "seen_cells", "fit_groups"):
        state.pop(key)
    state["shrinkage"] = None
    (folder / "model.json").write_text(json.dumps(saved))
    loaded = AnswerModel.load(folder)
    marginal = QuestionMarginalModel().fit(items).predict(items).distributions
    for ours, theirs in zip(loaded.predict(items).distributions, marginal, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_format_alignment_moves_mass_onto_the_option_tokens():
    # self-distillation with the format loss; on the tiny random LM (mass ~.007) the
    # format term dominates and the answers move too (TV ~.2), so only the mass is checked
    # here (tests/test_real_models.py checks both on SmolLM2)
    items = tiny_items(24)
    cfg = {**FAST, "max_steps": 1, "format_loss_weight": 1.0}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=cfg, batch_size=4,
                                marginal_start=False, verbose=False).fit(items)
    aligned = model.validation_["format_alignment"]
    assert aligned["n_items"] == 24
    assert aligned["after"] > 5 * aligned["before"], aligned
    off = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=cfg, batch_size=4,
                              marginal_start=False, align_format=False, verbose=False).fit(items)
    assert off.validation_["format_alignment"] is None

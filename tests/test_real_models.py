"""Real pretrained weights and tokenizers from ``../shared`` (issue 11's acceptance).

* every tokenizer in ``../shared/tokenizers`` loads as its README says, and each prompt
  format's option letters get their ids from the encoding of the whole prompt + letter,
  base (plain text) and chat (template with the generation prompt), including the known
  traps: SentencePiece encoding ``" A"`` alone as two tokens (Phi-3) or ``"A"`` alone as
  ``▁A`` (Mistral v3) while ``"Answer: A"`` ends in ``▁A`` and ``"Answer:A"`` in ``A``;
  Gemma's distinct ``A`` / ``▁A``; Llama 3's ``(A`` merge after Cao et al.'s ``(`` cue;
* the real model (SmolLM2-135M-Instruct, GGUF Q4_1) loads through the de-quantised cache,
  puts most option mass on the right answer of a factual question zero-shot, and a few
  LoRA steps lower its loss on the training items and on held-out items.

The tests skip, with the reason, where ``../shared`` (or the ``gguf`` package) is absent,
and fail instead when ``CI`` is set (CI has both). The model is de-quantised once per
machine (~25-35 s on 2 cores) into ``$SURVEYLM_CACHE`` (default ``~/.cache/surveylm``);
later loads read the cache.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

from surveylm.errors import ModelError
from surveylm.items import ItemSet, item_frame
from surveylm.models.causal_lm import CausalLMAnswerModel
from surveylm.models.option_tokens import option_token_ids, prompt_option_ids
from surveylm.prompts import FORMATS, PromptFormat, apply_chat_template, option_labels
from surveylm.prompts import render_prompt as render
from surveylm.survey import Question

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SURVEYLM_SHARED", REPO.parent / "shared"))
TOKENIZERS = SHARED / "tokenizers"
GGUF = SHARED / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
#: How each tokenizer folder loads (../shared/models/README.md, "tokenizers/").
TOKENIZER_FILES = {
    "llama3": None, "qwen3": None, "gemma3": None, "mistral-v3": None, "mistral-tekken": None,
    "gpt2": "ggml-vocab-gpt-2.gguf", "phi3": "ggml-vocab-phi-3.gguf",
}  # fmt: skip
#: Python packages a tokenizer needs beyond the core dependencies.
TOKENIZER_NEEDS = {
    "mistral-v3": ["sentencepiece", "google.protobuf"],
    "gpt2": ["gguf"],
    "phi3": ["gguf"],
    "mistral-tekken": ["mistral_common"],
}
#: Not in the dev extra: mistral-common pins numpy<2.4 on Python <= 3.12, so CI skips it.
OPTIONAL = {"mistral_common"}

pytestmark = pytest.mark.shared_data


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _absent(why: str, *, optional: bool = False) -> None:
    if _ci() and not optional:
        pytest.fail(f"{why} (CI is set: .ci/run must provide it)")
    pytest.skip(why)


def _need(path: Path, modules: list[str] = ()) -> None:
    if not path.exists():
        _absent(f"{path} is absent (real-model test; see ../shared/models/README.md)")
    for mod in modules:
        if importlib.util.find_spec(mod.split(".")[0]) is None or (
            "." in mod and importlib.util.find_spec(mod) is None
        ):
            why = f"{path.name} needs the python package {mod}"
            if mod in OPTIONAL:
                why += " (not in the dev extra: mistral-common pins numpy<2.4 on Python <= 3.12)"
            _absent(why, optional=mod in OPTIONAL)


@functools.cache
def _tokenizer(name: str):
    from transformers import AutoTokenizer

    kw = {"gguf_file": TOKENIZER_FILES[name]} if TOKENIZER_FILES[name] else {}
    return AutoTokenizer.from_pretrained(TOKENIZERS / name, local_files_only=True, **kw)


@pytest.fixture(params=sorted(TOKENIZER_FILES))
def tokenizer(request):
    _need(TOKENIZERS / request.param, TOKENIZER_NEEDS.get(request.param, []))
    return request.param, _tokenizer(request.param)


VOTE = Question(
    "vote", "Who did you vote for in the presidential election?",
    ("Bill Clinton", "Bob Dole", "Ross Perot", "Someone else", "Did not vote"),
)  # fmt: skip
PID = Question(
    "PID", "Generally speaking, do you think of yourself as a",
    ("Democrat", "Republican", "Independent"), label="party identification",
)  # fmt: skip
CONTEXT = {"group": {"PID": ["Democrat"], "country": ["Kenya"]},
           "respondent": {"PID": "Republican", "age": 34}}  # fmt: skip


def _strip(piece: str) -> str:
    return piece.replace("▁", "").replace("Ġ", "").strip()


def _prompts(tok):
    """(format, chat, text) for every format, base and (where the tokenizer has a chat
    template) chat."""
    for name, fmt in FORMATS.items():
        text = render(VOTE, CONTEXT[fmt.kind], fmt, questions={"PID": PID})
        yield name, False, text
        if getattr(tok, "chat_template", None):
            yield name, True, apply_chat_template(tok, text)


def test_option_ids_in_every_format_base_and_chat(tokenizer):
    name, tok = tokenizer
    seen_chat = False
    for fmt_name, chat, text in _prompts(tok):
        fmt = FORMATS[fmt_name]
        labels = option_labels(VOTE, fmt, range(VOTE.n_options))
        ids = option_token_ids(tok, labels, prompt=text, first_token=fmt.labels == "options")
        where = f"{name}/{fmt_name}/{'chat' if chat else 'base'}"
        flat = [t for v in ids for t in v]
        assert len(flat) == len(set(flat)), where  # no token shared by two options
        base = tok(text, add_special_tokens=False)["input_ids"]
        for label, variants in zip(labels, ids, strict=True):
            assert 1 <= len(variants) <= 4, where
            # the model's own continuation: the token after the prompt + " label" is read
            ext = tok(text + " " + label, add_special_tokens=False)["input_ids"]
            if ext[: len(base)] == base:
                assert ext[len(base)] in variants, where
            if fmt.labels == "letters":  # every variant is the letter, with or without space
                assert {_strip(p) for p in tok.convert_ids_to_tokens(variants)} == {label}, where
            else:  # the first token of the option's name
                assert all(label.startswith(_strip(tok.decode([t]))) for t in variants), where
        seen_chat |= chat
    assert seen_chat == bool(getattr(tok, "chat_template", None))


@pytest.mark.parametrize("name", ["phi3", "mistral-v3", "gemma3"])
def test_sentencepiece_and_gemma_traps(name):
    """The letter's ids come from the encoding of prompt + letter, not of the letter alone."""
    _need(TOKENIZERS / name, TOKENIZER_NEEDS.get(name, []))
    tok = _tokenizer(name)
    text = render(VOTE, CONTEXT["respondent"], "profile", questions={"PID": PID})
    assert text.endswith("Answer:")
    alone_space = tok.convert_ids_to_tokens(tok.encode(" A", add_special_tokens=False))
    alone = tok.convert_ids_to_tokens(tok.encode("A", add_special_tokens=False))
    ids = option_token_ids(tok, ["A", "B", "C"], prompt=text)
    assert set(tok.convert_ids_to_tokens(ids[0])) == {"A", "▁A"}  # as the model writes them
    if name == "phi3":
        assert alone_space == ["▁", "▁A"]  # " A" alone: two tokens
    elif name == "mistral-v3":
        assert alone == alone_space == ["▁A"]  # "A" alone: the dummy prefix, no bare "A"
    else:
        assert alone == ["A"] and alone_space == ["▁A"]  # Gemma: distinct tokens


def test_llama3_reads_the_letter_after_caos_paren_cue():
    _need(TOKENIZERS / "llama3")
    tok = _tokenizer("llama3")
    text = render(VOTE, {"country": ["Kenya"]}, "country")
    assert text.endswith("(") and "(A)Bill Clinton" in text
    assert tok.convert_ids_to_tokens(tok.encode("(A", add_special_tokens=False)) == ["(A"]
    ids = option_token_ids(tok, ["A", "B"], prompt=text)
    assert set(tok.convert_ids_to_tokens(ids[0])) == {"A", "ĠA"}


def test_refusals_on_real_tokenizers():
    _need(TOKENIZERS / "gemma3")
    tok = _tokenizer("gemma3")  # digits are single tokens: "10" is two
    many = Question("many", "How many?", tuple(f"option {i}" for i in range(27)))
    text = render(many, {}, "profile")
    with pytest.raises(ModelError, match="option label '10' is not a single token") as err:
        prompt_option_ids(tok, [text], [option_labels(many, "profile", range(27))])
    assert "\n" not in str(err.value)
    pid = Question("PID7", "Party?", ("Strong Democrat", "Weak Democrat", "Strong Republican"))
    text = render(pid, {}, "classify")
    with pytest.raises(ModelError, match="'Strong Democrat' and 'Strong Republican' map to"):
        option_token_ids(tok, list(pid.options), prompt=text, first_token=True)


# -- the real model --------------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm2():
    """(model, tokenizer, seconds) of SmolLM2 through the GGUF cache (converted on first use)."""
    _need(GGUF, ["gguf"])
    from surveylm.models.hf_loading import load_causal_lm

    start = time.perf_counter()
    model, tok = load_causal_lm(GGUF)
    return model, tok, time.perf_counter() - start


def _items(questions, contexts=None, targets=None) -> ItemSet:
    rows = []
    for i, q in enumerate(questions):
        rows.append({
            "item_id": f"{q.id}-{i}", "kind": "respondent", "question_id": q.id,
            "source": "test", "respondent_id": f"r{i}", "group_var": None, "group": None,
            "context": (contexts or [{}] * len(questions))[i],
            "target": None if targets is None else targets[i], "n": 1, "n_eff": 1.0,
            "weight": 1.0,
        })  # fmt: skip
    return ItemSet(item_frame(rows), {q.id: q for q in questions})


def test_gguf_loads_through_the_cache(smollm2):
    from surveylm.models.hf_loading import gguf_cache_folder, load_causal_lm

    model, tok, _ = smollm2
    folder = gguf_cache_folder(GGUF)
    assert (folder / "model.safetensors").is_file() and (folder / "surveylm-gguf.json").is_file()
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    assert type(model).__name__ == "LlamaForCausalLM" and tok.chat_template
    start = time.perf_counter()
    again, _ = load_causal_lm(str(GGUF))  # cached: no de-quantisation
    assert time.perf_counter() - start < 30  # ~1-3 s measured; generous for a loaded box
    for (n, a), b in zip(model.named_parameters(), again.parameters(), strict=True):
        assert a.shape == b.shape and bool((a == b).all()), n


def test_the_default_causal_lm_is_smollm2_beside_the_repository(monkeypatch):
    _need(GGUF)
    from surveylm.models.hf_loading import DEFAULT_CAUSAL_LM_GGUF, SMOLLM2_ENV, default_causal_lm

    monkeypatch.delenv(SMOLLM2_ENV, raising=False)
    if SHARED.resolve() != (REPO.parent / "shared").resolve():
        pytest.skip("SURVEYLM_SHARED points away from ../shared")
    assert default_causal_lm() == (REPO / DEFAULT_CAUSAL_LM_GGUF).resolve() == GGUF.resolve()
    assert CausalLMAnswerModel().model_name is None  # resolved when loaded


#: A cloze over the options' names: a 135M model does not map letters to answers (its
#: letter distribution after 4 cyclic option orders is uniform, 0.25 +- 0.01, measured),
#: but it completes facts, so the answer is read off each name's first token.
CLOZE = PromptFormat(
    "cloze", "respondent", "Options: {options}\n{question}", option_line="{option}",
    option_joiner=", ", labels="options",
)  # fmt: skip


@pytest.mark.parametrize("chat", [False, True])
def test_zero_shot_factual_question_puts_most_mass_on_the_right_answer(smollm2, chat):
    model, tok, _ = smollm2
    q = Question("capital", "The capital of France is", ("Berlin", "Madrid", "Paris", "Rome"))
    lm = CausalLMAnswerModel.from_model(model, tok, prompt_format=CLOZE, chat=chat,
                                        permutations=4)  # fmt: skip
    pred = lm.predict(_items([q]))
    dist = pred.distributions[0]
    assert dist[2] > 0.5 and dist.argmax() == 2, dist  # Paris (0.95 base, 0.88 chat measured)
    assert 0 < pred.format_mass[0] <= 1
    assert pred.extra["chat"] is chat


def test_chat_template_is_used_for_the_instruct_model(smollm2):
    """SmolLM2 is an instruct model: after a plain "Answer:" most of its mass is on
    <|im_end|>, so its chat template is the default and the format mass says so."""
    model, tok, _ = smollm2
    q = Question("capital", "What is the capital of France?", ("Berlin", "Madrid", "Paris", "Rome"))
    items = _items([q])
    default = CausalLMAnswerModel.from_model(model, tok)
    assert default.uses_chat
    chat = default.predict(items)
    base = CausalLMAnswerModel.from_model(model, tok, chat=False).predict(items)
    assert chat.extra["chat"] and not base.extra["chat"]
    assert chat.format_mass[0] > 2 * base.format_mass[0]  # 0.42 vs 0.04 measured
    import torch

    text = render(q, {}, "profile")
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        top = model(input_ids=ids).logits[0, -1].argmax().item()
    assert tok.convert_ids_to_tokens(top) == "<|im_end|>"


def test_lora_fit_lowers_training_and_held_out_loss(anes):
    """Vote from party identification (ANES 1996 Democrats and Republicans): 6 LoRA steps
    on 48 respondents. Their prompts are one per party, so the loss of a set of
    respondents is the cross-entropy between each party's vote shares in it and the
    model's distribution for that party's prompt, weighted by the party's count: on the
    48 training respondents and on all the other (held-out) ones."""
    _need(GGUF, ["gguf"])
    from surveylm.items import build_respondent_items

    items = build_respondent_items(anes, "vote", ["party"])
    keep = [c.get("party") in ("Democrat", "Republican") for c in items.contexts]
    items = items.subset(np.flatnonzero(keep))
    order = np.random.default_rng(0).permutation(len(items))
    train, held_out = items.subset(order[:48]), items.subset(order[48:])
    parties = ["Democrat", "Republican"]
    probe = items.subset([next(i for i, c in enumerate(items.contexts) if c["party"] == p)
                          for p in parties])  # fmt: skip

    def shares(part):
        by = {p: [t for c, t in zip(part.contexts, part.targets, strict=True) if c["party"] == p]
              for p in parties}  # fmt: skip
        return [np.mean(by[p], axis=0) for p in parties], np.array([len(by[p]) for p in parties])

    def losses(model):
        dists = model.predict(probe).distributions
        out = []
        for part in (train, held_out):
            target, n = shares(part)
            ce = [-(t * np.log(d)).sum() for t, d in zip(target, dists, strict=True)]
            out.append(float(np.dot(n, ce) / n.sum()))
        return out

    model = CausalLMAnswerModel(str(GGUF), device="cpu", fine_tune={
        "max_steps": 6, "batch_size": 8, "logging_steps": 1, "save_every_epoch": False,
        "lora": {"dropout": 0.0},
        # a fixed 6 steps on all 48 (the defaults' 1e-3, warm-up and linear decay): with
        # the default inner split, 10 validation respondents judge step 6 worse than the
        # start and the start is (rightly) restored
        "validation_fraction": 0.0,
    })  # fmt: skip
    before = losses(model)
    model.fit(train)
    assert model.trained_ == "lora"
    after = losses(model)
    # measured (6 December, with format alignment first): training 0.680 -> 0.535,
    # held-out 0.688 -> 0.570 nats; without alignment 0.675 / 0.647. (At a constant 1e-3
    # without warm-up, alignment then 6 steps overshot: 0.783 / 0.895.)
    assert after[0] < before[0] - 0.02 and after[1] < before[1] - 0.02, (before, after)
    # format alignment: the calibration sample (all 48) answers in format, as before
    aligned = model.validation_["format_alignment"]  # measured .478 -> .985, TV .006
    assert aligned["before"] < 0.6 and aligned["after"] > 0.9, aligned
    assert aligned["answers_moved_tv"] < 0.05, aligned

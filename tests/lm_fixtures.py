"""Tiny causal LMs and tokenizers built locally, for offline tests (no hub, no network).

* :func:`build_tokenizer` trains a small byte-level BPE (``tokenizers``) on a few hundred
  lines of survey-like text and wraps it in ``PreTrainedTokenizerFast``. Variants:

  - ``"space"``: letters have leading-space tokens (``" A"`` is one token) — like GPT-2/Llama 3;
  - ``"nospace"``: the merges that make ``" A"`` ... ``" Z"`` are removed, so only ``"A"``
    is one token and ``" A"`` is two;
  - ``"split"``: a normaliser turns ``C`` into ``CC``, so the letter C is two tokens (the
    scorer must refuse it);
  - ``"shared"``: a character-level BPE without byte fallback that never saw ``Q``/``R``...
    so those letters all map to the unknown token (two options share a token: refuse).

  ``chat=True`` adds a small Jinja chat template.
* :func:`tiny_model_dir` saves a random 2-layer Llama (fixed seed, safetensors) with its
  tokenizer to a temporary folder, so tests go through ``from_pretrained(folder)``.
* :func:`tiny_items` builds synthetic items with known target distributions.

Builds are cached per process (``functools.cache``); folders live in one temporary
directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from surveylm.items import ITEM_COLUMNS, ItemSet
from surveylm.prompts import option_letters
from surveylm.survey import Question

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_QUESTIONS = [
    ("Who did you vote for in the presidential election?", ["Clinton", "Dole", "Perot"]),
    ("How interested are you in politics?", ["Very", "Somewhat", "Not much", "Not at all"]),
    ("Do you approve of the way the president is handling his job?", ["Approve", "Disapprove"]),
    ("In politics today, do you consider yourself a", ["Democrat", "Republican", "Independent"]),
    ("How often do you attend religious services?", ["Weekly", "Monthly", "Yearly", "Never"]),
    ("Should the government spend more on health care?", ["More", "Same", "Less"]),
    ("How would you describe the economy?", ["Very good", "Fairly good", "Fairly bad", "Bad"]),
]
_FEATURES = [
    ("age", ["18 to 29", "30 to 44", "45 to 64", "65 or older"]),
    ("education", ["High school", "Some college", "College degree", "Postgraduate"]),
    ("income", ["Low", "Middle", "High"]),
    ("region", ["Northeast", "Midwest", "South", "West"]),
    ("party identification", ["Strong Democrat", "Weak Democrat", "Independent", "Republican"]),
]


def survey_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """A few hundred survey-like lines: profiles, lettered questions and answers."""
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    for _ in range(n):
        text, options = _QUESTIONS[rng.integers(len(_QUESTIONS))]
        feats = [_FEATURES[j] for j in rng.permutation(len(_FEATURES))[:3]]
        profile = "\n".join(f"{name}: {vals[rng.integers(len(vals))]}" for name, vals in feats)
        letters = option_letters(len(options))
        opts = "\n".join(f"{a}. {o}" for a, o in zip(letters, options, strict=True))
        answer = letters[rng.integers(len(options))]
        lines.append(f"{profile}\n\nQuestion: {text}\n{opts}\nAnswer: {answer}")
        lines.append(
            f"Answer the following question as if your age were 45. My answer is {answer}."
        )
    # every capital letter after a space, so " A" ... " Z" become single tokens
    lines += [" ".join(f"Answer: {c}" for c in option_letters(26))] * 20
    return lines


def fast_fine_tune(max_steps: int) -> dict:
    """Fine-tuning settings that fit the tiny model in a few steps (no LR decay, no dropout).

    Torch runs on one thread in the tests (see ``conftest.py``): on a loaded 2-core machine
    a 30-step fine-tune took 0.6 s on one thread and 7-85 s on two.
    """
    return {
        "learning_rate": 1e-2,
        "max_steps": max_steps,
        "batch_size": 8,
        "logging_steps": 1,
        "save_every_epoch": False,
        "lr_scheduler": "constant",
        "validation_fraction": 0.0,  # a fixed step count: these tests check training itself
        "lora": {"dropout": 0.0},
        # the causal LM's defaults add these; off, training is the renormalised KL alone
        "warmup_ratio": 0.0,
        "format_loss_weight": 0.0,
    }


def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="surveylm-tiny-lm-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


_WORKDIR = functools.cache(_workdir)


@functools.cache
def _trained_bpe_json(vocab_size: int = 700) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(survey_corpus(), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return tok.to_str()


def _char_bpe_json() -> str:
    """Character-level BPE without byte fallback, trained without the letters Q..Z."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL, show_progress=False)
    corpus = [line.translate({ord(c): None for c in "QRSTUVWXYZ"}) for line in survey_corpus()]
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok.to_str()


@functools.cache
def build_tokenizer(variant: str = "space", chat: bool = False):  # -> PreTrainedTokenizerFast
    """A small tokenizer (see module docstring for the variants)."""
    from tokenizers import Tokenizer, normalizers
    from transformers import PreTrainedTokenizerFast

    if variant not in ("space", "nospace", "split", "shared"):
        raise ValueError(f"unknown tokenizer variant {variant!r}")
    if variant == "shared":
        raw = Tokenizer.from_str(_char_bpe_json())
    else:
        spec = json.loads(_trained_bpe_json())
        if variant == "nospace":
            space_letters = {"Ġ" + c for c in option_letters(26)}
            spec["model"]["merges"] = [
                m for m in spec["model"]["merges"]
                if ("".join(m) if isinstance(m, list) else m.replace(" ", "")) not in space_letters
            ]  # fmt: skip
        raw = Tokenizer.from_str(json.dumps(spec))
        if variant == "split":
            raw.normalizer = normalizers.Replace("C", "CC")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>",
    )  # fmt: skip
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


@functools.cache
def tiny_model_dir(
    variant: str = "space",
    chat: bool = False,
    *,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    head_std: float = 0.15,
) -> Path:
    """Save a random tiny Llama (safetensors) and its tokenizer; return the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(variant, chat)
    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok),
        max_position_embeddings=512, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init, so option scores differ
        model.lm_head.weight.normal_(0, head_std)
    path = (
        _WORKDIR()
        / f"llama-{variant}-{'chat' if chat else 'base'}-h{hidden}-l{layers}-s{seed}-std{head_std}"
    )
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def tiny_items(n: int = 8, seed: int = 0, *, kind: str = "group") -> ItemSet:
    """``n`` synthetic items over three small questions, with known target distributions.

    Group items get ``{attribute: [value]}`` contexts and a random target that depends on
    the question and on whether the age is under 45 (so the context matters);
    respondent items get ``{feature: value}`` contexts and one-hot targets.
    """
    rng = np.random.default_rng(seed)
    group_targets: dict[tuple[str, bool], np.ndarray] = {}
    questions = {
        f"q{j}": Question(f"q{j}", text, tuple(opts))
        for j, (text, opts) in enumerate(_QUESTIONS[:3])
    }
    rows = []
    for i in range(n):
        qid = f"q{i % 3}"
        k = questions[qid].n_options
        feats = {name: vals[rng.integers(len(vals))] for name, vals in _FEATURES[:2]}
        if kind == "group":
            context = {key: [v] for key, v in feats.items()}
            young = feats["age"] in ("18 to 29", "30 to 44")
            if (qid, young) not in group_targets:
                group_targets[qid, young] = rng.dirichlet(np.ones(k))
            target = group_targets[qid, young]
        else:
            context = feats
            target = np.eye(k)[rng.integers(k)]
        rows.append({
            "item_id": f"it{i}", "kind": kind, "question_id": qid, "source": "synthetic",
            "respondent_id": None if kind == "group" else f"r{i}", "group_var": None,
            "group": None, "context": context, "target": target, "n": 50, "n_eff": 50.0,
            "weight": 1.0,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    for col in ("respondent_id", "group_var", "group", "context", "target"):
        frame[col] = frame[col].astype(object)
    return ItemSet(frame, questions)


def naive_option_distribution(
    model, tokenizer, text: str, option_ids: list[list[int]], *, add_special_tokens: bool = True
) -> tuple[np.ndarray, float]:
    """Reference scoring of one prompt: batch size 1, no padding, full-vocabulary logits at
    every position; returns the option distribution and the format mass."""
    import torch

    ids = torch.tensor([tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    probs = torch.softmax(logits, dim=-1).numpy()
    per_option = np.array([probs[v].sum() for v in option_ids])
    return per_option / per_option.sum(), float(per_option.sum())

"""Speed of first-token option scoring: surveylm's scorer vs the naive reference.

The naive reference does what the lm-evaluation-harness Hugging Face backend does for a
multiple-choice question: batch size 1, full-vocabulary logits at *every* position and a
log-softmax over all of them, then the option-token rows of the last position. surveylm's
scorer (DESIGN.md, "Reading an answer off a causal LM") runs length-sorted, left-padded
batches, computes logits at the last position only (``logits_to_keep=1``, with a
contiguous input so that the head is one matrix product), runs the top layer's attention
output projection and feed-forward block at the last position only
(:mod:`surveylm.models.last_position`; ``--no-trim`` switches that off), computes the
keys and values of token prefixes that neighbouring prompts share once per batch
(:mod:`surveylm.models.prefix_cache`; ``--no-prefix`` switches that off) and gathers only
the option-token rows. Both run side by side in the same process on the same model
and prompts; the script prints prompts/s of each, the ratio, and the largest absolute
difference between their option distributions (float32: must be < 1e-5).

CPU mode (default): a random Llama (hidden 256, 4 layers, vocabulary 32k, so that
full-vocabulary logits cost what they cost in real models) and 256 prompts of about 150
tokens. ``--model PATH`` scores a real model instead (a hub id, folder or ``.gguf`` file,
e.g. ``../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf``, in float32 on the CPU): its
own tokenizer, its chat template where it has one (both scorers), 64 prompts by default.
GPU mode (``--gpu``): a random model with Qwen3-4B's configuration in bfloat16;
reports prompts/s and the fraction of the bf16 compute floor, where the floor is
``2 · params · tokens / peak`` (lm_head counted at one position per prompt).

Usage::

    python benchmarks/scoring.py                 # CPU, prints a table
    python benchmarks/scoring.py --model ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --threads 2 --repeats 2
    python benchmarks/scoring.py --gpu --peak-flops 989e12 --prompts 2048 --batch-size 64
    python benchmarks/scoring.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from lm_fixtures import build_tokenizer
from surveylm.items import ITEM_COLUMNS, ItemSet
from surveylm.models.causal_lm import CausalLMAnswerModel
from surveylm.models.option_tokens import option_token_ids
from surveylm.prompts import apply_chat_template, default_format, option_letters, render_prompt
from surveylm.survey import Question

#: Qwen3-4B's configuration (config.json of Qwen/Qwen3-4B), written inline: no hub access.
QWEN3_4B = {
    "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "hidden_act": "silu",
}  # fmt: skip

_FEATURES = {
    "age group": ["18 to 29", "30 to 44", "45 to 64", "65 or older"],
    "highest level of education": ["High school", "Some college", "College degree"],
    "household income": ["Low", "Middle", "High", "Very high"],
    "region of residence": ["Northeast", "Midwest", "South", "West"],
    "party identification": ["Strong Democrat", "Weak Democrat", "Independent", "Republican"],
    "interest in politics": ["Very interested", "Somewhat interested", "Not much interested"],
    "religious attendance": ["Every week", "Once a month", "A few times a year", "Never"],
    "marital status": ["Married", "Never married", "Divorced", "Widowed"],
}
_QUESTIONS = [
    Question("vote", "Who did you vote for in the presidential election this November?",
             ("Clinton", "Dole", "Perot", "Someone else")),
    Question("econ", "Would you say that over the past year the nation's economy has gotten "
             "better, stayed about the same or gotten worse?", ("Better", "Same", "Worse")),
    Question("health", "Should the federal government spend more, the same or less on health "
             "care for ordinary people?", ("More", "The same", "Less", "Don't know")),
]  # fmt: skip


def benchmark_items(n: int, seed: int = 0) -> ItemSet:
    """``n`` respondent items with an 8-feature profile each (prompts of ~150 tokens)."""
    rng = np.random.default_rng(seed)
    questions = {q.id: q for q in _QUESTIONS}
    rows = []
    for i in range(n):
        q = _QUESTIONS[i % len(_QUESTIONS)]
        context = {f: vals[rng.integers(len(vals))] for f, vals in _FEATURES.items()}
        rows.append({
            "item_id": f"b{i}", "kind": "respondent", "question_id": q.id, "source": "bench",
            "respondent_id": f"r{i}", "group_var": None, "group": None, "context": context,
            "target": None, "n": 1, "n_eff": 1.0, "weight": 1.0,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    for col in ("respondent_id", "group_var", "group", "context", "target"):
        frame[col] = frame[col].astype(object)
    return ItemSet(frame, questions)


def naive_scores(
    model: Any, tokenizer: Any, items: ItemSet, *, chat: bool = False
) -> tuple[list[np.ndarray], float]:
    """The lm-evaluation-harness way: one prompt at a time, full-vocabulary log-softmax at
    every position, then the option rows of the last one (``chat``: the prompt through the
    chat template, as ours does for a model that has one). Returns (distributions,
    seconds)."""
    device = next(model.parameters()).device
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for i, q in enumerate(items.item_questions()):
            text = render_prompt(q, items.contexts[i], default_format("respondent"),
                                 questions=items.questions)  # fmt: skip
            if chat:
                text = apply_chat_template(tokenizer, text)
            ids_per_option = option_token_ids(tokenizer, option_letters(q.n_options), prompt=text)
            ids = torch.tensor([tokenizer(text, add_special_tokens=not chat)["input_ids"]],
                               device=device)  # fmt: skip
            logits = model(input_ids=ids).logits  # [1, T, V] — every position
            logp = torch.log_softmax(logits.float(), dim=-1)[0, -1]
            per_option = torch.stack([logp[v].exp().sum() for v in ids_per_option]).double()
            out.append((per_option / per_option.sum()).cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def ours(scorer: CausalLMAnswerModel, items: ItemSet) -> tuple[list[np.ndarray], float, Any]:
    """surveylm's scorer (tokenisation included in the time)."""
    if scorer._device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    pred = scorer.predict(items)
    if scorer._device.startswith("cuda"):
        torch.cuda.synchronize()
    return pred.distributions, time.perf_counter() - start, pred


def interleaved(
    scorer: CausalLMAnswerModel,
    model: Any,
    tokenizer: Any,
    items: ItemSet,
    n_naive: int,
    *,
    chunk: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], float, float, dict]:
    """Both scorers over the items, alternating chunks so that a change in machine load
    (other processes) hits both alike. Returns both distributions, the format masses,
    both times and ours' token counts (``prefix_stats`` summed over the chunks)."""
    dist_ours, dist_ref, masses, t_ours, t_ref = [], [], [], 0.0, 0.0
    stats: dict[str, int] = {}
    for start in range(0, len(items), chunk):
        part = items.subset(np.arange(start, min(len(items), start + chunk)))
        d, t, pred = ours(scorer, part)
        for key, value in scorer.prefix_stats.items():
            stats[key] = stats.get(key, 0) + value
        dist_ours += d
        masses.append(pred.format_mass)
        t_ours += t
        if start < n_naive:
            keep = np.arange(min(len(part), n_naive - start))
            d, t = naive_scores(model, tokenizer, part.subset(keep), chat=scorer.uses_chat)
            dist_ref += d
            t_ref += t
    return dist_ours, dist_ref, masses, t_ours, t_ref, stats


def build_model(args: argparse.Namespace, vocab: int) -> Any:
    """Random model: the CPU Llama or (``--gpu``) Qwen3-4B's configuration in bf16."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    torch.manual_seed(args.seed)
    if args.gpu:
        config = Qwen3Config(**QWEN3_4B)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        return model.eval()
    config = LlamaConfig(
        hidden_size=args.hidden, intermediate_size=int(args.hidden * 2.6875),
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4,
        vocab_size=max(args.vocab, vocab), max_position_embeddings=1024,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # spread the logits so option probabilities differ
        model.lm_head.weight.normal_(0, 0.1)
    return model.eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print (and optionally write) the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="Qwen3-4B config, bf16, on CUDA")
    p.add_argument(
        "--model", default=None, help="a real model (hub id, folder or .gguf file) on the CPU"
    )
    p.add_argument(
        "--prompts", type=int, default=None, help="default 256 (CPU), 64 (--model), 1024 (GPU)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="default 16 (CPU), 64 (GPU)")
    p.add_argument(
        "--naive-prompts",
        type=int,
        default=None,
        help="prompts for the naive reference (default: all on CPU, 256 on GPU)",
    )
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument(
        "--peak-flops",
        type=float,
        default=989e12,
        help="peak dense bf16 FLOP/s (default: H100 SXM, 989e12)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--no-trim", action="store_true", help="ours without the top-layer last-position trim"
    )
    p.add_argument("--no-prefix", action="store_true", help="ours without shared-prefix reuse")
    p.add_argument("--repeats", type=int, default=3, help="report medians over repeats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.prompts or (1024 if args.gpu else 64 if args.model else 256)
    bs = args.batch_size or (64 if args.gpu else 16)
    n_naive = min(n, args.naive_prompts or (256 if args.gpu else n))

    if args.model:
        from surveylm.models.hf_loading import load_causal_lm, quiet_loading

        with quiet_loading():
            model, tokenizer = load_causal_lm(args.model, dtype=torch.float32)
        model = model.eval()
    else:
        tokenizer = build_tokenizer("space")
        model = build_model(args, len(tokenizer))
    items = benchmark_items(n, args.seed)
    scorer = CausalLMAnswerModel.from_model(
        model, tokenizer, batch_size=bs, max_length=4096, last_position_trim=not args.no_trim,
        prefix_sharing=not args.no_prefix, verbose=False,
    )  # fmt: skip
    lengths = [len(e.input_ids) for e in scorer._encode(items, 1)]

    ours(scorer, items.subset(np.arange(min(n, bs))))  # warm-up (kernels, allocator)
    naive_scores(model, tokenizer, items.subset(np.arange(2)), chat=scorer.uses_chat)
    speeds = []
    chunk = bs * 4
    for _ in range(args.repeats):
        dist_ours, dist_ref, masses, t_ours, t_ref, stats = interleaved(
            scorer, model, tokenizer, items, n_naive, chunk=chunk
        )
        speeds.append((n / t_ours, n_naive / t_ref))
    ratios = [o / r for o, r in speeds]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(dist_ours, dist_ref, strict=False))
    n_params = sum(p.numel() for p in model.parameters())
    trim = getattr(scorer, "_trim_cache", (None, None))[1]  # the trim ours used, if any
    plain_positions = 0  # what the plain path computes: length-sorted batches, with padding
    for start in range(0, n, chunk):
        desc = sorted(lengths[start : start + chunk], reverse=True)
        plain_positions += sum(max(desc[s : s + bs]) * len(desc[s : s + bs])
                               for s in range(0, len(desc), bs))  # fmt: skip
    head = model.get_output_embeddings().weight.numel()
    embed = model.get_input_embeddings().weight.numel()
    body = n_params - embed - (0 if model.config.tie_word_embeddings else head)
    result = {
        "device": "cuda:" + torch.cuda.get_device_name() if args.gpu else "cpu",
        "model": args.model or ("random Qwen3-4B config" if args.gpu else "random Llama"),
        "chat_template": scorer.uses_chat,
        "threads": torch.get_num_threads(),
        "dtype": str(next(model.parameters()).dtype),
        "params": n_params,
        "prompts": n,
        "batch_size": bs,
        "last_position_trim": trim is not None and trim.applicable,
        "prefix_sharing": getattr(scorer, "_prefix_check", (None, False))[1],
        "prefix_trees": stats["prefix_trees"],
        "plain_batches": stats["plain_batches"],
        "prompt_tokens": stats["prompt_tokens"],
        "tokens_run": stats["tokens_run"],
        "positions_run": stats["positions_run"],
        "token_reduction": 1.0 - stats["positions_run"] / plain_positions,
        "mean_tokens": float(np.mean(lengths)),
        "repeats": args.repeats,
        "ours_prompts_per_s": float(np.median([o for o, _ in speeds])),
        "naive_prompts_per_s": float(np.median([r for _, r in speeds])),
        "speedup": float(np.median(ratios)),
        "speedup_min": min(ratios),
        "speedup_max": max(ratios),
        "max_abs_diff": diff,
        "mean_format_mass": float(np.mean(np.concatenate(masses))),
    }
    if args.gpu:
        flops = 2.0 * body * sum(lengths) + 2.0 * head * n
        result["flops"] = flops
        result["compute_floor_s"] = flops / args.peak_flops
        result["fraction_of_bf16_floor"] = (
            result["compute_floor_s"] * result["ours_prompts_per_s"] / n
        )
        result["peak_flops"] = args.peak_flops
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    failures = []
    if not args.gpu and diff >= 1e-5:
        failures.append(f"max abs difference {diff:.3g} >= 1e-5 in float32")
    # a speed-up this run measures must have been on (never silently the plain forward)
    measured = {"last_position_trim": not args.no_trim, "prefix_sharing": not args.no_prefix}
    for name, wanted in measured.items():
        status = getattr(scorer, "speedups", {}).get(name, "unknown")
        result[f"{name}_status"] = status
        if wanted and status != "on":
            failures.append(f"{name} was {status}")
    if args.json:
        from surveylm.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1))
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()

"""ANES 1996 vote choice: marginal vs zero-shot vs fine-tuned sentence encoder, k-fold CV.

Respondent items: predict the expected vote (Clinton/Dole) from party identification,
ideology, education, age and income — the imputation task of the GLES study (Holtdirk et
al. 2025) on public data. For each stratified, seeded fold this prints accuracy and log
loss of

* the question marginal (the training folds' vote shares),
* the zero-shot encoder (untrained cosine similarity, all-MiniLM-L6-v2),
* the fitted encoder with its defaults (forward KL = cross-entropy; ``--train head``, the
  default, trains an option head on the frozen encoder; ``full`` / ``lora`` fine-tune it;
  the budget comes from the inner validation split, not from this script),

and the training speed in items/s. Runs offline on a laptop CPU.

Usage::

    python benchmarks/encoder_anes.py [--folds 5] [--train head|full|lora] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from surveylm.datasets.anes import load_anes1996
from surveylm.items import ItemSet, build_respondent_items
from surveylm.metrics.respondent import accuracy, log_loss
from surveylm.models.encoder import EncoderAnswerModel, encoder_default_config
from surveylm.models.marginals import QuestionMarginalModel
from surveylm.splits import kfold_respondents

TARGET = "vote"
FEATURES = ["PID", "selfLR", "educ", "age", "income"]


def _scores(items: ItemSet, distributions: list[np.ndarray]) -> tuple[float, float]:
    y = np.array([int(np.argmax(t)) for t in items.targets])
    q = np.vstack(distributions)
    return accuracy(y, q), log_loss(y, q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train", choices=["head", "full", "lora"], default="head")
    parser.add_argument("--model-name", default=None, help="sentence-transformers folder or id")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    survey = load_anes1996()
    config = encoder_default_config(args.train)
    print(f"ANES 1996: {survey.n_respondents} respondents; {TARGET} ~ {' + '.join(FEATURES)}")
    print(
        f"{args.folds}-fold CV stratified on {TARGET}, seed {args.seed}; "
        f"train={args.train}, up to {config.epochs:g} epochs with early stopping, "
        f"batch {config.batch_size}, lr {config.learning_rate:g}, max_length {args.max_length}"
    )

    zero_shot = EncoderAnswerModel(args.model_name, max_length=args.max_length, verbose=False)
    zero_shot._zero_shot_scorer()  # so the predict speed excludes loading the weights
    rows = []
    for fold, (train_mask, test_mask) in enumerate(
        kfold_respondents(survey, args.folds, seed=args.seed, stratify=TARGET), start=1
    ):
        train = build_respondent_items(survey.subset(train_mask), TARGET, FEATURES)
        test = build_respondent_items(survey.subset(test_mask), TARGET, FEATURES)
        marginal = QuestionMarginalModel(smoothing=0.0).fit(train).predict(test)
        t0 = time.perf_counter()
        zs = zero_shot.predict(test)
        predict_rate = len(test) / (time.perf_counter() - t0)
        model = EncoderAnswerModel(
            args.model_name, train=args.train, max_length=args.max_length,
            random_state=args.seed, verbose=False,
        )  # fmt: skip
        model.fit(train)
        ft = model.predict(test)
        row = {
            "fold": fold, "n_train": len(train), "n_test": len(test),
            "marginal": _scores(test, marginal.distributions),
            "zero_shot": _scores(test, zs.distributions),
            "fine_tuned": _scores(test, ft.distributions),
            "train_items_per_s": model.train_output_.items_per_second,
            "train_seconds": model.train_output_.seconds,
            "predict_items_per_s": predict_rate,
            "best_validation_loss": model.validation_["best"],
        }  # fmt: skip
        rows.append(row)
        print(_format_row(str(fold), row), flush=True)

    mean = {
        key: tuple(np.mean([r[key][i] for r in rows]) for i in range(2))
        for key in ("marginal", "zero_shot", "fine_tuned")
    }
    mean["train_items_per_s"] = float(np.mean([r["train_items_per_s"] for r in rows]))
    mean["predict_items_per_s"] = float(np.mean([r["predict_items_per_s"] for r in rows]))
    print(_HEADER)
    for r in rows:
        print(_format_row(str(r["fold"]), r))
    print(_format_row("mean", mean))
    beats = all(
        mean["fine_tuned"][0] > mean[k][0] and mean["fine_tuned"][1] < mean[k][1]
        for k in ("marginal", "zero_shot")
    )
    print(f"fine-tuned beats marginal and zero-shot on accuracy and log loss: {beats}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "folds": rows, "mean": mean}, fh, indent=2)


_HEADER = (
    f"{'fold':>5} | {'marginal acc':>12} {'log loss':>8} | {'zero-shot acc':>13} {'log loss':>8} "
    f"| {'fine-tuned acc':>14} {'log loss':>8} | {'train items/s':>13} {'predict items/s':>15}"
)


def _format_row(label: str, r: dict) -> str:
    m, z, f = r["marginal"], r["zero_shot"], r["fine_tuned"]
    return (
        f"{label:>5} | {m[0]:>12.3f} {m[1]:>8.3f} | {z[0]:>13.3f} {z[1]:>8.3f} | {f[0]:>14.3f} "
        f"{f[1]:>8.3f} | {r['train_items_per_s']:>13.1f} {r['predict_items_per_s']:>15.1f}"
    )


if __name__ == "__main__":
    main()

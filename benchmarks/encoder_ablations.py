"""Why the encoder answer model wins or loses against CatBoost: ablations on several surveys.

Issue 17 asks to *find out, with ablations kept in a benchmark*, what makes a sentence
encoder lose to tabular models on respondent items, and to keep the defaults that hold
on every survey. This script fits, on the same stratified folds of each survey (the
target's respondents, k-fold; MCAR 50 % is the 2-fold case), CatBoost, logistic
regression and the encoder answer model with its packaged defaults and with one
setting changed at a time, and prints accuracy and log loss per variant, averaged over
folds, with the difference to CatBoost.

The surveys are those of ``benchmarks/lm_vs_tabular.py`` plus feature sets with
*numeric* covariates (ANES's age and place population, the non-voters' age in years):
surveys users bring often carry numbers (income, age, a scale score), which a text
encoder sees as strings.

Run:  python benchmarks/encoder_ablations.py [--datasets anes1996,anes1996-numeric,...]
          [--variants default,no-bins,...] [--folds 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

#: Surveys: (dataset, target, features). "-numeric" feature sets use numeric covariates.
SURVEYS = {
    "anes1996": ("anes1996", "vote", ["PID", "selfLR", "educ", "income", "age"]),
    "anes1996-numeric": ("anes1996", "vote", ["PID", "selfLR", "age", "popul", "income"]),
    "nonvoters": ("nonvoters", "Q23", ["age_group", "educ", "race", "gender", "income_cat",
                                       "voter_category", "Q2_1", "Q3_1", "Q3_3", "Q4_1", "Q6",
                                       "Q14", "Q16", "Q25", "Q26", "Q30"]),
    "nonvoters-numeric": ("nonvoters", "Q23", ["ppage", "educ", "race", "gender", "income_cat",
                                               "Q30"]),
    "masculinity": ("masculinity", "q0001", ["q0002", "q0005", "q0018", "q0024", "age3",
                                             "racethn4", "educ4", "kids", "orientation",
                                             "q0035"]),
}  # fmt: skip

#: Encoder variants: constructor overrides of the packaged defaults; the key
#: ``table_scale`` sets :data:`surveylm.models.option_head.TABLE_SCALE` instead (0 = the
#: head without its (line, option) indicator table).
VARIANTS: dict[str, dict] = {
    "default": {},
    "no-table": {"table_scale": 0.0},
    "table-scale-3": {"table_scale": 3.0},
    "table-scale-30": {"table_scale": 30.0},
    "no-bins": {"numeric_bins": 0},
    "hidden-64": {"hidden": 64},
    "hidden-256": {"hidden": 256},
    "dropout-0.3": {"dropout": 0.3},
    "wd-0.1": {"fine_tune": {"weight_decay": 0.1}},
    "lr-5e-4": {"fine_tune": {"learning_rate": 5e-4}},
    "patience-30": {"fine_tune": {"early_stopping_patience": 30}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="anes1996,anes1996-numeric,nonvoters,masculinity")
    parser.add_argument("--variants", default="default,no-bins")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("-o", "--output", default=None, help="CSV of every fold's scores")
    args = parser.parse_args()

    from surveylm.threads import apply_thread_policy

    apply_thread_policy(args.threads)
    from surveylm.datasets import load_dataset
    from surveylm.items import build_respondent_items
    from surveylm.metrics.respondent import accuracy, log_loss
    from surveylm.models import make_model, option_head
    from surveylm.splits import kfold_respondents

    methods: dict[str, tuple[str, dict]] = {}
    if not args.no_baselines:
        methods["catboost"] = ("catboost", {"iterations": 300})
        methods["logistic"] = ("logistic", {})
    for v in filter(None, args.variants.split(",")):
        methods[f"encoder {v}"] = ("encoder", VARIANTS[v])
    default_scale = option_head.TABLE_SCALE
    rows = []
    for name in filter(None, args.datasets.split(",")):
        dataset, target, features = SURVEYS[name]
        survey = load_dataset(dataset)
        answered = survey.subset(survey.codes(target) >= 0)
        for rep in range(args.repeats):
            folds = kfold_respondents(answered, args.folds, seed=rep, stratify=target)
            for fold, (train_mask, test_mask) in enumerate(folds):
                train = build_respondent_items(answered.subset(train_mask), target, features)
                test = build_respondent_items(answered.subset(test_mask), target, features)
                y = np.array([int(np.argmax(t)) for t in test.targets])
                for label, (model_name, variant) in methods.items():
                    params = {k: v for k, v in variant.items() if k != "table_scale"}
                    model = make_model(model_name, random_state=rep, verbose=False, **params)
                    option_head.TABLE_SCALE = variant.get("table_scale", default_scale)
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(train)
                    seconds = time.perf_counter() - start
                    q = np.vstack(model.predict(test).distributions)
                    rows.append({"survey": name, "repeat": rep, "fold": fold, "method": label,
                                 "accuracy": accuracy(y, q), "log_loss": log_loss(y, q),
                                 "pred_std": float(q.std(axis=0).mean()),
                                 "seconds": seconds, "n_train": len(train)})  # fmt: skip
                    print(f"{name:18s} r{rep} f{fold} {label:22s} acc {rows[-1]['accuracy']:.3f}"
                          f"  ll {rows[-1]['log_loss']:.3f}  {seconds:5.1f} s", flush=True)
    table = pd.DataFrame(rows)
    if args.output:
        table.to_csv(args.output, index=False)
    summary = table.groupby(["survey", "method"], sort=False)[
        ["accuracy", "log_loss", "seconds"]].mean().reset_index()  # fmt: skip
    if "catboost" in methods:
        ref = summary[summary["method"] == "catboost"].set_index("survey")
        summary["d_acc_vs_catboost"] = summary["accuracy"] - summary["survey"].map(ref["accuracy"])
        summary["d_ll_vs_catboost"] = summary["log_loss"] - summary["survey"].map(ref["log_loss"])
    print()
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()

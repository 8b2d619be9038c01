"""Coverage and width of prediction-powered shares (issue 13's acceptance), seeded.

For ANES 1996 (vote: Clinton / Dole, unweighted) and the FiveThirtyEight non-voters
survey (Q23: Trump / Biden / unsure, weighted; needs ../shared/data), fits CatBoost and the
question marginal on a random half of the respondents, derives a deliberately biased model
from CatBoost (half of every prediction moved to the last option), and over ``--draws``
labelled samples of n = 50, 100, 200 from the other half computes PPI++ and classical 95 %
intervals of every option's share (:func:`surveylm.experiments.ppi_coverage.coverage_study`).
Prints, per survey × model × n: coverage over draws × options, mean widths, their ratio,
mean λ and mean effective sample size. Acceptance: coverage ≥ 0.93 everywhere; CatBoost
narrower than classical; the marginal no more than 5 % wider.

Usage::

    python benchmarks/ppi_coverage.py [--draws 200] [--seed 0] [--only anes1996|nonvoters]
        [--csv out.csv]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from surveylm.datasets import load_dataset
from surveylm.errors import SurveyLMError
from surveylm.experiments.ppi_coverage import coverage_study, summarise_coverage

SURVEYS = {
    "anes1996": ("vote", ["PID", "selfLR", "ClinLR", "DoleLR", "educ", "income", "age"]),
    "nonvoters": ("Q23", ["ppage", "educ", "race", "gender", "income_cat", "voter_category",
                          "Q30", "Q2_1", "Q3_1", "Q5"]),
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=sorted(SURVEYS))
    ap.add_argument("--csv", help="Write the summary table here.")
    args = ap.parse_args()
    tables = []
    for name, (target, features) in SURVEYS.items():
        if args.only and name != args.only:
            continue
        try:
            survey = load_dataset(name)
        except SurveyLMError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        features = [f for f in features if f in survey.questions or f in survey.covariates]
        t0 = time.perf_counter()
        models = {"catboost": "catboost", "marginal": "question-marginal"}
        draws = coverage_study(survey, target, features, models, draws=args.draws,
                               seed=args.seed, biased_from="catboost")  # fmt: skip
        table = summarise_coverage(draws).assign(survey=name)
        tables.append(table)
        print(f"\n{name} ({target}; {len(features)} features; {time.perf_counter() - t0:.0f} s)")
        print(table.drop(columns="survey").round(3).to_string(index=False))
    if not tables:
        return
    out = pd.concat(tables, ignore_index=True)
    ok = (
        (out["coverage"] >= 0.93).all()
        and (out.loc[out["model"] == "catboost", "width_ratio"] < 1).all()
        and (out.loc[out["model"] == "marginal", "width_ratio"] <= 1.05).all()
    )
    print(f"\nacceptance (coverage >= 0.93, CatBoost narrower, marginal <= 5 % wider): "
          f"{'met' if ok else 'NOT met'}; lowest coverage {out['coverage'].min():.3f}")  # fmt: skip
    if args.csv:
        out.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()

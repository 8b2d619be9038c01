"""A demo config with baseline methods only: the whole demo pipeline in seconds."""

from __future__ import annotations

from surveylm.experiments.demo import DemoConfig, demo_config

BASELINES_IMP = [
    {"name": "uniform", "model": "uniform"},
    {"name": "marginal", "model": "question-marginal"},
    {"name": "logistic", "model": "logistic"},
]
BASELINES_SIM = [
    {"name": "uniform", "model": "uniform"},
    {"name": "question marginal", "model": "question-marginal"},
    {"name": "group marginal", "model": "group-marginal"},
    {"name": "training data 25%", "model": "training-data", "params": {"fraction": 0.25}},
]


def baseline_demo_config(seed: int = 3) -> DemoConfig:
    """The packaged ``--quick`` demo with baseline methods instead of language models."""
    raw = demo_config(quick=True).model_dump()
    raw["seed"] = seed
    raw["imputation"]["methods"] = BASELINES_IMP
    raw["imputation"]["m"] = 3
    raw["imputation"]["n_boot"] = 20
    raw["simulation"]["methods"] = BASELINES_SIM
    raw["simulation"]["robustness"] = None
    raw["simulation"]["n_boot"] = 20
    raw["simulation"]["data_efficiency"] = {"fractions": [0.25, 1.0], "subsamples": 1,
                                            "methods": ["group marginal"]}  # fmt: skip
    return DemoConfig.model_validate(raw)

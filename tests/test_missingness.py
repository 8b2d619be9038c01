"""Missingness scenarios: MCAR, MAR, MNAR, convenience samples, the filter language, configs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm.errors import ConfigError, DataError, FileFormatError
from surveylm.filter_expressions import evaluate_filter
from surveylm.missingness import apply_missingness, convenience, mar, mcar, mnar
from surveylm.missingness_config import (
    ConvenienceConfig,
    MARConfig,
    MCARConfig,
    MNARConfig,
    load_scenarios,
    scenario_from_dict,
)


# -- MCAR --------------------------------------------------------------------------------
def test_mcar_hides_exact_share_of_answered_only(toy_survey):
    answered = toy_survey.answered("vote")
    mask = mcar(toy_survey, "vote", 0.3, seed=1)
    assert mask.sum() == round(0.3 * answered.sum())
    assert not (mask & ~answered).any()  # the 5 non-respondents are never "hidden"


def test_mcar_is_seeded(toy_survey):
    a = mcar(toy_survey, "vote", 0.5, seed=3)
    assert np.array_equal(a, mcar(toy_survey, "vote", 0.5, seed=3))
    assert not np.array_equal(a, mcar(toy_survey, "vote", 0.5, seed=4))


def test_mcar_is_unrelated_to_answers(anes):
    # over many draws each respondent is hidden about half the time, whatever their vote
    codes = anes.codes("vote")
    freq = np.mean([mcar(anes, "vote", 0.5, seed=s) for s in range(200)], axis=0)
    assert abs(freq[codes == 0].mean() - freq[codes == 1].mean()) < 0.01


@pytest.mark.parametrize("rate", [0, 1, -0.1, 1.5])
def test_rate_out_of_range(toy_survey, rate):
    with pytest.raises(DataError, match="rate"):
        mcar(toy_survey, "vote", rate)


def test_unknown_target(toy_survey):
    with pytest.raises(DataError, match="nope"):
        mcar(toy_survey, "nope", 0.5)


# -- MAR ---------------------------------------------------------------------------------
def test_mar_expected_rate_and_direction(anes):
    masks = [mar(anes, "vote", ["age"], 0.3, strength=1.5, seed=s) for s in range(60)]
    assert abs(np.mean([m.mean() for m in masks]) - 0.3) < 0.01  # intercept solved
    age = anes.data["age"].to_numpy()
    older_hidden = [age[m].mean() > age[~m].mean() for m in masks]
    assert all(older_hidden)


def test_mar_option_scores_for_nominal_question(anes):
    mask = mar(anes, "vote", {"party": {"Republican": 2.0}}, 0.3, seed=0)
    rep = (anes.answers("party") == "Republican").to_numpy()
    assert mask[rep].mean() > 2 * mask[~rep].mean()


def test_mar_strength_zero_is_mcar_like(anes):
    age = anes.data["age"].to_numpy()
    diffs = [
        age[m].mean() - age[~m].mean()
        for m in (mar(anes, "vote", ["age"], 0.5, strength=0.0, seed=s) for s in range(40))
    ]
    assert abs(np.mean(diffs)) < 1.0


def test_mar_refuses_target_and_unknown_columns(anes):
    with pytest.raises(DataError, match="MNAR"):
        mar(anes, "vote", ["vote"], 0.3)
    with pytest.raises(DataError, match="'agee'"):
        mar(anes, "vote", ["agee"], 0.3)
    with pytest.raises(DataError, match="'Dem'"):
        mar(anes, "vote", {"party": {"Dem": 1.0}}, 0.3)
    with pytest.raises(DataError, match="at least one"):
        mar(anes, "vote", [], 0.3)


# -- MNAR --------------------------------------------------------------------------------
def test_mnar_depends_on_the_answer(anes):
    codes = anes.codes("vote")
    masks = [mnar(anes, "vote", 0.3, strength=1.0, seed=s) for s in range(40)]
    assert abs(np.mean([m.mean() for m in masks]) - 0.3) < 0.01
    dole = np.mean([m[codes == 1].mean() for m in masks])
    clinton = np.mean([m[codes == 0].mean() for m in masks])
    assert dole > 1.5 * clinton  # later option missing more often by default
    flipped = mnar(anes, "vote", 0.3, option_effects={"Bill Clinton": 3.0}, seed=0)
    assert flipped[codes == 0].mean() > flipped[codes == 1].mean()


# -- convenience samples and filters -----------------------------------------------------
def test_convenience_hides_everyone_outside_the_filter(anes):
    mask = convenience(anes, "vote", "age < 30")
    age = anes.data["age"].to_numpy()
    assert np.array_equal(mask, age >= 30)


def _ans(s, col):
    return s.answers(col)


def _col(s, col):
    return s.data[col]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('educ3 == "Bachelor\'s degree or more"',
         lambda s: _ans(s, "educ3") == "Bachelor's degree or more"),
        ('party in ["Democrat", "Independent"]', lambda s: _ans(s, "party") != "Republican"),
        ('party not in ["Democrat"]', lambda s: _ans(s, "party") != "Democrat"),
        ("30 > age", lambda s: _col(s, "age") < 30),
        ("`age` >= 60 or age < 25", lambda s: (_col(s, "age") >= 60) | (_col(s, "age") < 25)),
        ('not (party == "Democrat") and popul > 10',
         lambda s: (_ans(s, "party") != "Democrat") & (_col(s, "popul") > 10)),
        ('educ3 >= "Some college (incl. AA)"', lambda s: _ans(s, "educ3") != "High school or less"),
        ("18 <= age < 30", lambda s: (_col(s, "age") >= 18) & (_col(s, "age") < 30)),
    ],
)  # fmt: skip
def test_filter_language(anes, expr, expected):
    assert np.array_equal(evaluate_filter(anes, expr), expected(anes).to_numpy(dtype=bool))


@given(st.integers(min_value=17, max_value=95))
@settings(max_examples=30, deadline=None)
def test_filter_threshold_property(threshold):
    survey = _anes()
    age = survey.data["age"].to_numpy()
    assert np.array_equal(evaluate_filter(survey, f"age < {threshold}"), age < threshold)
    assert np.array_equal(evaluate_filter(survey, f"not age < {threshold}"), age >= threshold)


@functools.cache
def _anes():
    from surveylm.datasets import load_anes1996

    return load_anes1996()


def test_missing_values_never_match(toy_survey):
    no_vote = ~toy_survey.answered("vote")
    assert not (evaluate_filter(toy_survey, 'vote == "A"') & no_vote).any()
    assert not (evaluate_filter(toy_survey, 'vote != "A"') & no_vote).any()


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("agee < 30", "unknown column 'agee'"),
        ('party == "Dem"', "'Dem' not an option of 'party'"),
        ('party < "Democrat"', "nominal"),
        ("age + 1 < 30", "compare a column"),
        ("__import__('os').system('echo hi')", "not allowed"),
        ("age.real < 3", "compare a column"),
        ("age < ", "not a valid expression"),
        ('party in "Democrat"', "needs a list"),
        ("age < popul", "literal"),
        ("age < [x for x in ()]", "not a literal"),
        ("age", "not allowed"),
    ],
)
def test_bad_filters_name_the_problem(anes, expr, message):
    with pytest.raises(DataError, match="filter") as info:
        convenience(anes, "vote", expr)
    assert message in str(info.value)


def test_filter_keeping_nobody_or_everybody(anes):
    with pytest.raises(DataError, match="hides every answer"):
        convenience(anes, "vote", "age > 200")
    with pytest.raises(DataError, match="hides no answer"):
        convenience(anes, "vote", "age < 200")


# -- applying a mask ---------------------------------------------------------------------
def test_apply_missingness_blanks_copy(anes):
    mask = mcar(anes, "vote", 0.5, seed=0)
    blanked = apply_missingness(anes, "vote", mask)
    assert np.array_equal(blanked.answered("vote"), ~mask)
    assert anes.answered("vote").all()  # the truth is kept
    keep = ~mask
    assert (blanked.answers("vote")[keep] == anes.answers("vote")[keep]).all()
    assert blanked.answers("PID").equals(anes.answers("PID"))
    with pytest.raises(DataError, match="shape"):
        apply_missingness(anes, "vote", mask[:10])


# -- configs -----------------------------------------------------------------------------
def test_configs_dispatch_on_kind(anes):
    cfg = scenario_from_dict({"kind": "mcar", "rate": 0.5})
    assert isinstance(cfg, MCARConfig)
    assert np.array_equal(cfg.mask(anes, "vote", 2), mcar(anes, "vote", 0.5, 2))
    assert cfg.label() == "MCAR 50%"
    conv = scenario_from_dict({"kind": "convenience", "filter": "age < 30", "name": "young"})
    assert isinstance(conv, ConvenienceConfig) and conv.label() == "young"
    mar_cfg = scenario_from_dict({"kind": "mar", "rate": 0.3, "covariates": ["age", "educ"]})
    assert np.array_equal(
        mar_cfg.mask(anes, "vote", 1), mar(anes, "vote", ["age", "educ"], 0.3, seed=1)
    )
    assert isinstance(scenario_from_dict({"kind": "mnar", "rate": 0.2}), MNARConfig)
    assert isinstance(mar_cfg, MARConfig)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "mcar", "rat": 0.5}, "rat"),
        ({"kind": "mcar", "rate": 1.5}, "rate"),
        ({"kind": "bogus", "rate": 0.5}, "bogus"),
        ({"kind": "convenience"}, "filter"),
    ],
)
def test_config_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        scenario_from_dict(data)


def test_load_scenarios_yaml(tmp_path):
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n"
        "  - {kind: mcar, rate: 0.5}\n"
        "  - kind: convenience\n"
        "    name: students\n"
        "    filter: age < 25\n",
        encoding="utf-8",
    )
    configs = load_scenarios(path)
    assert [type(c) for c in configs] == [MCARConfig, ConvenienceConfig]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {kind: mcar, rate: 0.5, sed: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*sed"):
        load_scenarios(bad)
    with pytest.raises(FileFormatError, match="no such file"):
        load_scenarios(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- [unclosed\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="YAML"):
        load_scenarios(broken)

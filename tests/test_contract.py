"""The AnswerModel contract, checked on every registered model (scikit-learn's
``check_estimator`` in spirit): the constructor only stores its arguments, which include
``random_state`` and ``verbose``; ``fit`` returns ``self``; predictions align with the items;
``sklearn.base.clone`` gives an unfitted model with equal parameters; a refit replaces the
old fit; save → load gives identical numbers; the same ``random_state`` gives the same
numbers.

Small items keep every case fast: the toy survey's respondents for the baselines and the
tabular models, :func:`tests.lm_fixtures.tiny_items` for the language models (the tiny
local Llama; the encoder's packaged all-MiniLM-L6-v2).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

from lm_fixtures import fast_fine_tune, tiny_items, tiny_model_dir
from surveylm.errors import ConfigError
from surveylm.items import ItemSet, build_respondent_items
from surveylm.models import MODELS, make_model, model_class
from surveylm.models.base import AnswerModel, Predictions

NAMES = sorted(MODELS)
LANGUAGE_MODELS = {"encoder", "causal-lm", "dsa"}
ENCODER_FAST = {
    "max_steps": 3, "batch_size": 8, "learning_rate": 3e-5, "logging_steps": 1,
    "save_every_epoch": False, "lora": {"enabled": False},
}  # fmt: skip


def _params(name: str) -> dict:
    """Small, fast constructor arguments (none of the common ones)."""
    causal = {"model_name": str(tiny_model_dir("space")), "fine_tune": fast_fine_tune(3),
              "batch_size": 4}  # fmt: skip
    return {
        "random-forest": {"n_estimators": 20},
        "catboost": {"iterations": 20, "thread_count": 1},
        "chained-equations": {"m": 2, "max_iter": 2},
        "encoder": {"fine_tune": ENCODER_FAST, "device": "cpu", "batch_size": 8},
        "causal-lm": causal,
        "dsa": {"backend": "causal-lm", "backend_params": causal, "stage2": fast_fine_tune(2),
                "per_question": 2},
        "blend": {"first": "logistic", "second": "random-forest",
                  "second_params": {"n_estimators": 20}},
    }.get(name, {})  # fmt: skip


@pytest.fixture()
def data(request, toy_survey) -> tuple[ItemSet, ItemSet, ItemSet]:
    """``(train_a, train_b, test)`` for the model named by the test's ``name``: two
    different training sets and items to predict (in shuffled order)."""
    name = request.node.callspec.params["name"]
    if name in LANGUAGE_MODELS:
        a, b = tiny_items(12, seed=0), tiny_items(12, seed=1)
        test = tiny_items(6, seed=2)
    else:
        items = build_respondent_items(toy_survey, "vote", ["party", "age"])
        half = len(items) // 2
        a, b = items.subset(list(range(half))), items.subset(list(range(half, len(items))))
        test = items
    order = np.random.default_rng(0).permutation(len(test))[: max(4, len(test) // 3)]
    return a, b, test.subset(list(order))


def _same(p: Predictions, q: Predictions) -> bool:
    """Identical numbers, item by item."""
    if list(p.item_ids) != list(q.item_ids):
        return False
    if (p.format_mass is None) != (q.format_mass is None):
        return False
    if p.format_mass is not None and not np.array_equal(p.format_mass, q.format_mass):
        return False
    return all(np.array_equal(x, y) for x, y in zip(p.distributions, q.distributions, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_constructor_takes_random_state_and_verbose_and_only_stores_arguments(name):
    sig = inspect.signature(model_class(name).__init__).parameters
    assert "random_state" in sig and sig["random_state"].default == 0
    assert "verbose" in sig and sig["verbose"].default is True
    params = _params(name)
    model = make_model(name, **params, random_state=7, verbose=False)
    assert isinstance(model, AnswerModel) and not model.is_fitted
    assert set(vars(model)) == set(model.get_params(deep=False))  # nothing else set in init
    got = model.get_params()
    assert got["random_state"] == 7 and got["verbose"] is False
    assert all(got[k] is v for k, v in params.items())  # stored as given, not copied
    assert model.set_params(random_state=3, verbose=True) is model
    assert model.random_state == 3 and model.verbose is True
    with pytest.raises(ConfigError, match="no parameter 'no_such_parameter'"):
        model.set_params(no_such_parameter=1)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_predictions_align_with_items(name, data):
    train, _, test = data
    model = make_model(name, **_params(name))
    assert model.fit(train) is model and model.is_fitted
    pred = model.predict(test)
    assert isinstance(pred, Predictions) and len(pred) == len(test)
    assert list(pred.item_ids) == list(test.item_ids)
    for d, q in zip(pred.distributions, test.item_questions(), strict=True):
        # Predictions refuses a non-distribution, so only the length can be wrong here
        assert d.shape == (q.n_options,)
    reordered = test.subset(list(range(len(test)))[::-1])
    again = model.predict(reordered)
    assert list(again.item_ids) == list(reordered.item_ids)
    assert _same(again.for_items(test), pred.for_items(test))


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_clone_is_unfitted_with_equal_parameters(name, data):
    train, _, _ = data
    model = make_model(name, **_params(name), random_state=5, verbose=False).fit(train)
    for copy in (clone(model), model.clone()):
        assert type(copy) is type(model) and copy is not model
        assert not copy.is_fitted
        assert copy.get_params(deep=False) == model.get_params(deep=False)
        assert copy.get_params(deep=True) == model.get_params(deep=True)


@pytest.mark.parametrize("name", NAMES)
def test_refit_replaces_the_old_fit(name, data):
    a, b, test = data
    refit = make_model(name, **_params(name)).fit(a).fit(b).predict(test)
    fresh = make_model(name, **_params(name)).fit(b).predict(test)
    assert _same(refit, fresh)


@pytest.mark.parametrize("name", NAMES)
def test_save_then_load_gives_identical_numbers(name, data, tmp_path):
    train, _, test = data
    model = make_model(name, **_params(name), random_state=2, verbose=False).fit(train)
    before = model.predict(test)
    model.save(tmp_path / "model")
    loaded = AnswerModel.load(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.is_fitted
    assert loaded.random_state == 2 and loaded.verbose is False
    assert _same(loaded.predict(test), before)


@pytest.mark.parametrize("name", NAMES)
def test_same_random_state_gives_the_same_numbers(name, data):
    train, _, test = data
    a = make_model(name, **_params(name), random_state=11).fit(train).predict(test)
    b = make_model(name, **_params(name), random_state=11).fit(train).predict(test)
    assert _same(a, b)


@pytest.mark.parametrize(
    "name, params",
    [
        ("random-forest", {"n_estimators": 5}),
        ("chained-equations", {"m": 2, "max_iter": 2}),
        ("causal-lm", {"model_name": str(tiny_model_dir("space")), "permutations": 2,
                       "permutation_scheme": "random", "zero_shot": True}),
    ],
)  # fmt: skip
def test_random_state_reaches_the_random_steps(name, params, toy_survey):
    """Where a model draws random numbers, another ``random_state`` changes them (so a
    runner's per-repetition seeds are not ignored)."""
    if name == "causal-lm":
        train = test = tiny_items(6)
    else:
        train = test = build_respondent_items(toy_survey, "vote", ["party", "age"])
    a = make_model(name, **params, random_state=0).fit(train).predict(test)
    b = make_model(name, **params, random_state=1).fit(train).predict(test)
    assert not _same(a, b)


def test_frames_and_predictions_compare_by_identity_without_raising(toy_survey):
    """``==`` on dataclasses holding frames/arrays is identity (``eq=False``), instead of
    pandas' "truth value of a DataFrame is ambiguous"."""
    import copy

    items = build_respondent_items(toy_survey, "vote", ["party"])
    pred = make_model("uniform").fit(items).predict(items)
    twin = copy.deepcopy(pred)
    assert pred == pred and pred != twin
    assert toy_survey == toy_survey and toy_survey != copy.deepcopy(toy_survey)


class _Wrapper(AnswerModel):
    """A model with an estimator as a parameter (as a meta-estimator would have)."""

    name = "wrapper"

    def __init__(self, inner: AnswerModel | None = None, random_state=0, verbose=True) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.inner = inner

    def fit(self, items):
        self.inner_ = clone(self.inner).fit(items)
        return self

    def predict(self, items):
        return self.inner_.predict(items)


def test_nested_parameters_as_scikit_learn(toy_survey):
    """``get_params(deep=True)`` lists an estimator parameter's own parameters as
    ``inner__name``; ``set_params`` routes them; ``clone`` clones the inner model too."""
    inner = make_model("logistic", C=0.5)
    model = _Wrapper(inner)
    deep = model.get_params(deep=True)
    assert deep["inner"] is inner and deep["inner__C"] == 0.5
    assert "inner__C" not in model.get_params(deep=False)
    model.set_params(inner__C=2.0, random_state=4)
    assert inner.C == 2.0 and model.random_state == 4
    copy = clone(model)
    assert copy.inner is not inner and copy.inner.get_params() == inner.get_params()
    with pytest.raises(ConfigError):
        model.set_params(outer__C=1.0)
    items = build_respondent_items(toy_survey, "vote", ["party"])
    assert model.fit(items).is_fitted and not copy.is_fitted


def test_a_saved_folder_with_an_old_parameter_name_is_one_model_error(toy_survey, tmp_path):
    """A folder saved before ``seed`` became ``random_state`` fails to load with a
    :class:`ModelError` naming the file, not a ``TypeError``."""
    import json

    from surveylm.errors import ModelError

    items = build_respondent_items(toy_survey, "vote", ["party"])
    make_model("logistic").fit(items).save(tmp_path)
    payload = json.loads((tmp_path / "model.json").read_text())
    payload["params"]["seed"] = payload["params"].pop("random_state")
    (tmp_path / "model.json").write_text(json.dumps(payload))
    with pytest.raises(ModelError, match=r"model\.json.*do not fit LogisticModel.*'seed'"):
        AnswerModel.load(tmp_path)

"""Predict-time speed-ups are never switched off silently (issue 10): the predictions
say which ran, and a declined one warns once."""

from __future__ import annotations

import warnings

import pytest

from lm_fixtures import tiny_items, tiny_model_dir
from surveylm.models.causal_lm import CausalLMAnswerModel, SpeedupDeclinedWarning


def test_speedups_are_reported_on_when_they_run():
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), batch_size=4, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpeedupDeclinedWarning)
        pred = model.predict(tiny_items(10, seed=5, kind="group"))
    assert pred.extra["speedups"] == {"prefix_sharing": "on", "last_position_trim": "on"}
    off = CausalLMAnswerModel(str(tiny_model_dir("space")), batch_size=4, verbose=False,
                              prefix_sharing=False, last_position_trim=False)  # fmt: skip
    assert off.predict(tiny_items(4, seed=5)).extra["speedups"] == {
        "prefix_sharing": "off", "last_position_trim": "off"}  # fmt: skip


def test_a_declined_prefix_cache_warns_once_and_is_recorded():
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), batch_size=4, verbose=False)
    model._ensure_loaded()

    def refuse(_m, _a, kwargs):
        if kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None:
            raise TypeError("this model takes no cache")

    handle = model._lm.model.register_forward_pre_hook(refuse, with_kwargs=True)
    try:
        with pytest.warns(SpeedupDeclinedWarning, match="prefix sharing declined"):
            pred = model.predict(tiny_items(10, seed=6, kind="group"))
        assert pred.extra["speedups"]["prefix_sharing"].startswith("declined")
        with warnings.catch_warnings():  # once per model, not once per call
            warnings.simplefilter("error", SpeedupDeclinedWarning)
            model.predict(tiny_items(10, seed=7, kind="group"))
    finally:
        handle.remove()

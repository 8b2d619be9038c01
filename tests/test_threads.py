"""The thread policy (surveylm.threads): where the count comes from, what it sets, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from surveylm import threads
from surveylm.cli import app
from surveylm.errors import ConfigError

VARIABLES = (*threads.POOL_VARIABLES, "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM",
             "SURVEYLM_THREADS")  # fmt: skip


@pytest.fixture()
def fresh(monkeypatch: pytest.MonkeyPatch):
    """No policy decided yet, no thread variable set, four cores; all restored after."""
    monkeypatch.setattr(threads, "_APPLIED", None)
    for name in VARIABLES:
        monkeypatch.setenv(name, "x")  # recorded, so the teardown restores the original
        monkeypatch.delenv(name)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def test_count_comes_from_the_explicit_setting_then_environment_then_cores(fresh) -> None:
    assert threads.resolve_threads() == (4, "cores")
    fresh.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve_threads() == (3, "$OMP_NUM_THREADS")
    fresh.setenv("SURVEYLM_THREADS", "2")
    assert threads.resolve_threads() == (2, "$SURVEYLM_THREADS")
    assert threads.resolve_threads(1) == (1, "--threads")
    assert threads.resolve_threads(16) == (4, "--threads")  # never more than the cores
    assert threads.resolve_threads(3, source="config") == (3, "config")


@pytest.mark.parametrize("bad", ["0", "two", "-1", "1.5"])
def test_a_bad_environment_setting_is_one_clear_error(fresh, bad: str) -> None:
    fresh.setenv("SURVEYLM_THREADS", bad)
    with pytest.raises(ConfigError, match=r"\$SURVEYLM_THREADS must be a positive whole"):
        threads.resolve_threads()
    with pytest.raises(ConfigError, match="--threads threads must be a positive"):
        threads.resolve_threads(0)


def test_apply_sets_every_pool_and_passive_waiting_but_keeps_user_settings(fresh) -> None:
    fresh.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own choice stays
    policy = threads.apply_thread_policy(2)
    assert (policy.threads, policy.source, policy.cores) == (2, "--threads", 4)
    for name in threads.POOL_VARIABLES:
        assert os.environ[name] == "2"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    assert torch.get_num_threads() == 2
    record = policy.as_dict()
    assert record["torch_threads"] == 2 and record["environment"]["MKL_NUM_THREADS"] == "2"
    assert "OMP_WAIT_POLICY" not in record["late"]  # not changed, so not late
    json.dumps(record)  # goes into run.json


def test_one_thread_turns_tokenizer_parallelism_off(fresh) -> None:
    threads.apply_thread_policy(1)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert torch.get_num_threads() == 1


def test_first_call_decides_and_a_config_never_overrides_the_command_line(fresh) -> None:
    first = threads.apply_thread_policy(1)
    assert threads.apply_thread_policy() is first
    assert threads.apply_thread_policy(3, source="config") is first
    assert threads.current_policy() is first
    assert threads.apply_thread_policy(3).threads == 3  # the caller's own choice does
    assert torch.get_num_threads() == 3


def test_a_config_setting_applies_when_the_command_line_gave_none(fresh) -> None:
    threads.apply_thread_policy()
    policy = threads.apply_thread_policy(2, source="config")
    assert (policy.threads, policy.source) == (2, "config")
    assert os.environ["OMP_NUM_THREADS"] == "2"


def test_catboost_threads_follow_the_policy_and_never_exceed_it(fresh) -> None:
    assert threads.catboost_threads(-1) == 4  # undecided: what the policy would say
    threads.apply_thread_policy(2)
    assert threads.catboost_threads(-1) == 2
    assert threads.catboost_threads(1) == 1
    assert threads.catboost_threads(8) == 2


def test_catboost_model_passes_the_policy_count(fresh) -> None:
    from surveylm.models.tabular import CatBoostModel

    threads.apply_thread_policy(1)
    est = CatBoostModel(iterations=5)._make_estimator([("age", "numeric")])
    assert est.get_params()["thread_count"] == 1


def test_cli_threads_option_and_bad_environment(fresh) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--threads", "1", "datasets"])
    assert result.exit_code == 0, result.output
    assert threads.current_policy().source == "--threads"
    assert threads.current_policy().threads == 1
    fresh.setattr(threads, "_APPLIED", None)
    fresh.setenv("SURVEYLM_THREADS", "many")
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 1
    assert "$SURVEYLM_THREADS must be a positive whole number" in result.output


def test_cli_applies_the_policy_before_torch_loads() -> None:
    """In a fresh process: OpenMP reads OMP_WAIT_POLICY when torch loads it, so the CLI
    must set it first, and torch must start with the policy's threads."""
    code = (
        "import sys, json; from surveylm.cli import app\n"
        "try: app(['--threads', '1', 'datasets'])\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules\n"
        "import os, torch; from surveylm.threads import current_policy\n"
        "print(json.dumps([os.environ['OMP_WAIT_POLICY'], torch.get_num_threads(),"
        " current_policy().late]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["PASSIVE", 1, []]

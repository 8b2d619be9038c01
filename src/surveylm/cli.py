"""The ``surveylm`` command line (typer).

Each command parses its options and calls one library function. Heavy imports (pandas,
torch, transformers) happen inside the commands, so ``surveylm --help`` is instant. A
:class:`~surveylm.errors.SurveyLMError` is printed as one line on stderr and the command
exits with status 1 — no traceback for bad input.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

if TYPE_CHECKING:
    from surveylm.items import ItemSet
    from surveylm.survey import Survey

app = typer.Typer(
    name="surveylm",
    help="Simulate how subpopulations answer survey questions and impute non-response "
    "with fine-tuned language models, beside honest baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: a flag shows no type tag (no "--quick <bool>")
)



def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"surveylm {version('surveylm')}")
        raise typer.Exit()


@app.callback()
def _threads_callback(
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads for every library (default: the "
                     "cores this process may use, or $SURVEYLM_THREADS)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """Apply the thread policy (surveylm.threads) before any library starts its pools."""
    from surveylm.errors import SurveyLMError
    from surveylm.threads import apply_thread_policy

    try:
        apply_thread_policy(threads)
    except SurveyLMError as exc:  # a bad $SURVEYLM_THREADS
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

@contextlib.contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn SurveyLMError into one line on stderr and exit status 1."""
    from surveylm.errors import SurveyLMError

    try:
        yield
    except SurveyLMError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _console() -> Any:
    from rich.console import Console

    # Piped output gets room for a whole table instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _load_survey(
    source: str, codebook: Path | None = None, weight: str | None = None
) -> Survey:
    """A built-in dataset name, or a survey file (csv, parquet, sav, dta) + codebook
    (``weight``: the file's weight column, else the codebook's)."""
    from surveylm.io.sources import load_survey_source

    return load_survey_source(source, codebook, weight=weight)


def _read_items(path: Path, labels: Path | None = None, strict: bool = False) -> ItemSet:
    """An item set (.parquet) or a distribution file in any layout (SubPOP JSONL, Cao et al.
    JSON, GlobalOpinionQA table, long CSV), chosen by content; a reader's warnings (skipped
    records) are printed as one line each."""
    import warnings

    from surveylm.io.distributions import read_items

    kwargs = {"strict": True} if strict else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            items = read_items(path, labels=labels, **kwargs)
        except TypeError:  # a layout whose reader has no strict mode (long CSV, tables)
            items = read_items(path, labels=labels)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    return items


def _floor_note(items: ItemSet, path: Path) -> str | None:
    """What to say when group items have no size for the sampling-noise floor."""
    groups = items.frame["kind"] == "group"
    missing = int((groups & (items.frame["n"] <= 0)).sum())
    if not missing:
        return None
    if missing == int(groups.sum()):
        return f"no noise floor: {path.name} gives no group sizes (n)"
    return f"noise floor from the {int(groups.sum()) - missing} items of {path.name} with an n"


_OVERWRITE = typer.Option("--overwrite", help="Replace an existing output folder whole.")
_RESUME_FIT = typer.Option("--resume", help="Continue a killed fit (encoder, causal-lm) "
                           "from its last checkpoint, with the same command.")  # fmt: skip
_WEIGHT = typer.Option("--weight", help="Survey file's weight column (else the codebook's; "
                       "none: every weight is 1).")
_LABELS = typer.Option("--labels", help="Label table (YAML/JSON) for a file's attributes/groups.")
_STRICT = typer.Option("--strict", help="Refuse records with all-zero or mis-summing shares.")


#: What ``surveylm items -o`` writes: Parquet item sets and three distribution layouts.
ITEM_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


def _write_items(items: ItemSet, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        from surveylm.io.distributions import write_subpop_jsonl

        write_subpop_jsonl(items, path)
    elif suffix == ".json":
        from surveylm.io.cao import write_cao_json

        write_cao_json(items, path)
    elif suffix == ".csv":
        from surveylm.io.distributions import write_long_csv

        write_long_csv(items, path)
    else:
        items.to_parquet(path)


def _split_list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _parse_by(by: list[str] | None) -> list[str | list[str]] | None:
    """``--by party --by party,educ3`` → ``["party", ["party", "educ3"]]``."""
    if not by:
        return None
    out: list[str | list[str]] = []
    for spec in by:
        parts = _split_list(spec) or []
        out.append(parts[0] if len(parts) == 1 else parts)
    return out


def _parse_params(params: list[str] | None) -> dict[str, Any]:
    """``--param smoothing=1 --param by=[a,b]`` → a dict (values parsed as YAML, the
    library's one dialect: only true/false are booleans)."""
    from surveylm.errors import ConfigError
    from surveylm.io.yaml_files import parse_yaml

    out: dict[str, Any] = {}
    for p in params or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects key=value, got {p!r}")
        try:
            out[key.strip()] = parse_yaml(value)
        except ConfigError as exc:
            raise ConfigError(f"--param {key.strip()}: {exc}") from None
    return out


def _show_table(frame: Any, title: str) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), justify="left" if frame[col].dtype == object else "right")
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(v) for v in row.tolist()])
    _console().print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.3f}"
    return str(v)


# -- commands --------------------------------------------------------------------------
@app.command("datasets")
def datasets_cmd() -> None:
    """List the built-in datasets."""
    from surveylm.datasets import DATASETS

    for info in DATASETS.values():
        typer.echo(f"{info.name:<12} {info.description} [{info.license}]")


@app.command("describe")
def describe_cmd(
    survey: Annotated[
        str, typer.Argument(help="Dataset name, survey file, distribution file or item set.")
    ],
    codebook: Annotated[
        Path | None, typer.Option("--codebook", "-c", help="Codebook (YAML/JSON).")
    ] = None,
    labels: Annotated[Path | None, _LABELS] = None,
    strict: Annotated[bool, _STRICT] = False,
    weight: Annotated[str | None, _WEIGHT] = None,
) -> None:
    """Describe a survey, or a distribution file (SubPOP, Cao et al., ...) or item set:
    questions, options, covariates, weights, groups, refusal rates and whether a noise
    floor can be computed."""
    with _friendly_errors():
        if _is_items_file(survey):
            _describe_items(_read_items(Path(survey), labels, strict), Path(survey))
            return
        s = _load_survey(survey, codebook, weight)
        typer.echo(repr(s))
        typer.echo(f"covariates (not questions): {', '.join(s.covariates) or 'none'}")
        w = s.weights.to_numpy(float)
        typer.echo("weights: none (every weight is 1: unweighted)" if (w == w[0]).all() else
                   f"weights: {w.min():.3g} to {w.max():.3g}, Kish n_eff "
                   f"{w.sum() ** 2 / (w ** 2).sum():.0f} of {len(w)}")  # fmt: skip
        frame = s.describe()
        frame["text"] = frame["text"].str.slice(0, 48)
        cols = ["question", "type", "options", "answered", "missing", "n_eff", "text"]
        _show_table(frame[cols], f"{s.name}: {s.n_respondents} respondents")


def _is_items_file(source: str) -> bool:
    """Whether ``source`` is a distribution file or item set (by content), not a survey."""
    from surveylm.errors import FileFormatError
    from surveylm.io.distributions import sniff_layout

    if not Path(source).is_file():
        return False
    try:
        sniff_layout(source)
    except FileFormatError:
        return False
    return True


def _describe_items(items: ItemSet, path: Path) -> None:
    import numpy as np
    import pandas as pd

    from surveylm.io.distributions import refusal_rates

    f = items.frame
    rates = refusal_rates(items)
    layout = items.summary.get("format", "item set")
    skipped = (items.summary.get("skipped_records") or {}).get("count", 0)
    attrs = ", ".join(sorted(set(f["group_var"].dropna())))
    extra = f", {skipped} records skipped" if skipped else ""
    typer.echo(f"{path.name}: {layout} layout, {len(items)} items, {len(items.question_ids)} "
               f"questions, {f['group'].nunique()} groups ({attrs}){extra}")  # fmt: skip
    rows = []
    for qid in items.question_ids:
        q = items.questions[qid]
        sub = f[f["question_id"] == qid]
        r = [rates[i] for i in sub["item_id"] if i in rates]
        rows.append({"question": qid, "type": "ordinal" if q.is_ordinal else "nominal",
                     "options": q.n_options, "groups": len(sub),
                     "n": int(sub["n"].min()) if (sub["n"] > 0).all() else 0,
                     "refusal": float(np.mean(r)) if r else float("nan"),
                     "text": q.text[:48]})  # fmt: skip
    _show_table(pd.DataFrame(rows), f"{path.name}: {len(items)} group items")
    typer.echo(_floor_note(items, path) or "noise floor: from each group's n")
    if rates:
        typer.echo(f"refusal rate (kept apart from the substantive shares): mean "
                   f"{np.mean(list(rates.values())):.3f} over {len(rates)} items")  # fmt: skip


@app.command("items")
def items_cmd(
    survey: Annotated[str, typer.Argument(help="Built-in dataset name or survey file.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help=".parquet, .jsonl (SubPOP), .json (Cao) or .csv"),
    ],
    kind: Annotated[str, typer.Option(help="'group' or 'respondent'.")] = "group",
    by: Annotated[
        list[str] | None,
        typer.Option(help="Grouping variable; comma-separated for an intersection. Repeat."),
    ] = None,
    questions: Annotated[str | None, typer.Option(help="Comma-separated target questions.")] = None,
    target: Annotated[str | None, typer.Option(help="Target question (respondent).")] = None,
    features: Annotated[str | None, typer.Option(help="Comma-separated features.")] = None,
    min_n: Annotated[int, typer.Option(help="Suppress group cells below this n.")] = 30,
    unweighted: Annotated[bool, typer.Option(help="Ignore survey weights.")] = False,
    include_unanswered: Annotated[
        bool, typer.Option(help="Respondent items for non-respondents too (to impute).")
    ] = False,
    codebook: Annotated[Path | None, typer.Option("--codebook", "-c")] = None,
    weight: Annotated[str | None, _WEIGHT] = None,
    half: Annotated[
        str | None,
        typer.Option(help="'train' or 'test': only that half of the respondents (split at "
                     "random with --seed), for a held-out evaluation."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --half split.")] = 0,
) -> None:
    """Build respondent or group items from a survey and write them."""
    with _friendly_errors():
        from surveylm.errors import DataError
        from surveylm.io.output_paths import check_file_output
        from surveylm.items import build_group_items, build_respondent_items

        check_file_output(output, ITEM_SUFFIXES, "--output")
        s = _load_survey(survey, codebook, weight)
        if half is not None:
            from surveylm.splits import split_respondents

            if half not in ("train", "test"):
                raise DataError(f"--half must be 'train' or 'test', got {half!r}")
            s = split_respondents(s, 0.5, seed=seed)[half == "test"]
        if kind == "group":
            items = build_group_items(
                s, _split_list(questions), by=_parse_by(by), min_n=min_n, weighted=not unweighted
            )
            extra = f", {items.summary['suppressed']} cells suppressed (n < {min_n})"
        elif kind == "respondent":
            if not target or not features:
                raise DataError("--kind respondent needs --target and --features")
            items = build_respondent_items(
                s, target, _split_list(features) or [], include_unanswered=include_unanswered
            )
            extra = ""
        else:
            raise DataError(f"--kind must be 'group' or 'respondent', got {kind!r}")
        _write_items(items, output)
        typer.echo(f"wrote {len(items)} items to {output}{extra}")


@app.command("evaluate")
def evaluate_cmd(
    items: Annotated[Path, typer.Argument(help="Items with targets or a distribution file.")],
    predictions: Annotated[list[Path], typer.Argument(help="Predictions (.parquet), 1 or more.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for tidy results.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    labels: Annotated[Path | None, _LABELS] = None,
    strict: Annotated[bool, _STRICT] = False,
) -> None:
    """Evaluate predictions against items or a distribution file (with uniform and
    noise-floor references)."""
    with _friendly_errors():
        from surveylm.evaluation import evaluate
        from surveylm.io.output_paths import check_folder_output
        from surveylm.models.base import Predictions

        if output is not None:
            check_folder_output(output, "--output folder")
        item_set = _read_items(items, labels, strict)
        preds = {}
        for path in predictions:
            p = Predictions.read_parquet(path)
            preds[p.model or path.stem] = p
        _warn_in_sample(item_set, predictions)
        result = evaluate(item_set, preds, n_boot=n_boot, seed=seed)
        _show_table(result.table().reset_index(), f"evaluation of {items.name}")
        note = _floor_note(item_set, items)
        if note:
            typer.echo(note)
        if output is not None:
            result.to_files(output)
            typer.echo(f"wrote results to {output}")


#: Every registered model, for the help (kept in step with surveylm.models.MODELS by a test).
MODEL_NAMES = ("uniform", "question-marginal", "group-marginal", "logistic", "random-forest",
               "catboost", "chained-equations", "encoder", "causal-lm", "dsa", "blend")  # fmt: skip

HELP_MODEL_NAME = (
    "Hugging Face id, local folder or .gguf file (LM models; causal-lm default: "
    "SmolLM2-135M-Instruct)."
)


def _warn_in_sample(items: ItemSet, predictions: list[Path]) -> None:
    """Warn for each predictions file made by a model fitted on exactly these items."""
    from surveylm.fingerprint import items_fingerprint, read_trained_on

    fingerprint = None
    for path in predictions:
        trained_on = read_trained_on(path)
        if trained_on:
            fingerprint = fingerprint or items_fingerprint(items)
            if trained_on == fingerprint:
                typer.echo(f"warning: {path.name} comes from a model fitted on these very "
                           "items: this is in-sample fit, not a held-out evaluation; "
                           "evaluate on held-out items", err=True)  # fmt: skip


def _build_model(model: str, model_name: str | None, params: list[str] | None) -> Any:
    from surveylm.models import make_model

    kwargs = _parse_params(params)
    if model_name is not None:
        kwargs["model_name"] = model_name
    return make_model(model, **kwargs)


@app.command("fit")
def fit_cmd(
    items: Annotated[Path, typer.Argument(help="Training items or a distribution file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the model.")],
    model: Annotated[
        str, typer.Option(help="Registry name: " + ", ".join(MODEL_NAMES) + ".")
    ] = "question-marginal",
    model_name: Annotated[
        str | None, typer.Option(help=HELP_MODEL_NAME)
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Model parameter key=value (YAML value). Repeat.")
    ] = None,
    labels: Annotated[Path | None, _LABELS] = None,
    strict: Annotated[bool, _STRICT] = False,
    overwrite: Annotated[bool, _OVERWRITE] = False,
    resume: Annotated[bool, _RESUME_FIT] = False,
) -> None:
    """Fit a model on items or a distribution file and save it (the folder is replaced
    whole: a crash leaves the old model or the new one). Language models save a training
    checkpoint each epoch beside the folder, so a killed fit continues with --resume."""
    with _friendly_errors():
        from surveylm.errors import ConfigError
        from surveylm.io.output_paths import check_folder_output
        from surveylm.training.resume import fit_and_save

        if overwrite and resume:
            raise ConfigError("give --overwrite (start again) or --resume (continue), not both")
        check_folder_output(output, "model folder", marker="model.json",
                            overwrite=overwrite, resume=resume)  # fmt: skip
        m = _build_model(model, model_name, param)
        train = _read_items(items, labels, strict)
        fit_and_save(m, train, output, resume=resume, overwrite=overwrite)
        typer.echo(f"fitted {model} on {len(train)} items; saved to {output}")


@app.command("predict")
def predict_cmd(
    items: Annotated[Path, typer.Argument(help="Items or a distribution file to predict.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictions (.parquet).")],
    model_dir: Annotated[Path | None, typer.Option(help="A model saved by `surveylm fit`.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Or: an unfitted model (zero-shot LM) by name.")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help=HELP_MODEL_NAME)] = None,
    param: Annotated[list[str] | None, typer.Option(help="Model parameter key=value.")] = None,
    labels: Annotated[Path | None, _LABELS] = None,
    strict: Annotated[bool, _STRICT] = False,
) -> None:
    """Predict answer distributions for items or a distribution file with a saved or a
    zero-shot model."""
    with _friendly_errors():
        from surveylm.errors import ConfigError
        from surveylm.io.output_paths import check_file_output
        from surveylm.models.base import AnswerModel

        if (model_dir is None) == (model is None):
            raise ConfigError("give exactly one of --model-dir and --model")
        check_file_output(output, (".parquet",), "--output")
        m = (AnswerModel.load(model_dir) if model_dir
             else _build_model(cast(str, model), model_name, param))  # exactly one given
        preds = m.predict(_read_items(items, labels, strict))
        preds.to_parquet(output)
        if model_dir:
            from surveylm.fingerprint import write_trained_on
            from surveylm.models.base import read_model_json

            write_trained_on(output, read_model_json(model_dir).get("training_items"))
        typer.echo(f"wrote {len(preds)} predictions to {output}")


@app.command("baselines")
def baselines_cmd(
    survey: Annotated[str, typer.Argument(help="Built-in dataset name or survey file.")] = (
        "anes1996"
    ),
    kind: Annotated[str, typer.Option(help="'group' or 'respondent'.")] = "group",
    by: Annotated[
        list[str] | None, typer.Option(help="Grouping variable(s); comma = intersection.")
    ] = None,
    questions: Annotated[str | None, typer.Option(help="Comma-separated questions.")] = None,
    target: Annotated[str | None, typer.Option(help="Respondent target question.")] = None,
    features: Annotated[str | None, typer.Option(help="Comma-separated features.")] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated models to fit (any registry name).")
    ] = "question-marginal,group-marginal",
    min_n: Annotated[int, typer.Option(help="Suppress group cells below this n.")] = 30,
    test_fraction: Annotated[float, typer.Option(help="Share of respondents held out.")] = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 1000,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Results folder.")] = None,
    codebook: Annotated[Path | None, typer.Option("--codebook", "-c")] = None,
) -> None:
    """Fit the baselines on half the respondents and evaluate them on the other half.

    Defaults on ANES 1996: group items by party × education (and each alone).
    """
    with _friendly_errors():
        from surveylm.experiments.baselines import evaluate_baselines
        from surveylm.io.output_paths import check_folder_output

        if output is not None:
            check_folder_output(output, "--output folder")
        s = _load_survey(survey, codebook)
        if by is None and kind == "group" and s.name == "ANES 1996":
            by = ["party,educ3", "party", "educ3", "age_group"]
        run = evaluate_baselines(
            s, kind=kind, by=_parse_by(by), questions=_split_list(questions), target=target,
            features=_split_list(features), models=_split_list(models) or [],
            test_fraction=test_fraction, min_n=min_n,
            seed=seed, n_boot=n_boot, progress=lambda m: typer.echo(f"· {m}", err=True),
        )  # fmt: skip
        ev = run.evaluation
        typer.echo(
            f"{s.name}: {len(run.train_items)} training and {len(run.test_items)} test "
            f"{kind} items (respondents split {1 - test_fraction:.0%}/{test_fraction:.0%}, "
            f"seed {seed})"
        )
        _show_table(ev.table().reset_index(), f"baselines on {s.name} ({kind} items)")
        if output is not None:
            ev.to_files(output)
            typer.echo(f"wrote results to {output}")


def _check_results_folder(output: Path, overwrite: bool) -> None:
    """A benchmark's results folder: refused when it holds results and no --overwrite."""
    from surveylm.io.output_paths import check_folder_output

    check_folder_output(output, "results folder", marker="settings.json", overwrite=overwrite)


benchmark_app = typer.Typer(help="Run a whole comparison from a YAML config.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("imputation")
def benchmark_imputation_cmd(
    config: Annotated[Path, typer.Argument(help="Imputation config (YAML).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    overwrite: Annotated[bool, _OVERWRITE] = False,
) -> None:
    """Impute non-response under each scenario with each method; score and pool (Rubin)."""
    with _friendly_errors():
        from surveylm.experiments.imputation import run_imputation_benchmark

        _check_results_folder(output, overwrite)
        results = run_imputation_benchmark(config, output, progress=progress)
        _show_table(results.table().reset_index(), f"imputation: {config.name}")
        typer.echo(f"wrote results to {output}")


@benchmark_app.command("simulation")
def benchmark_simulation_cmd(
    config: Annotated[Path, typer.Argument(help="Simulation config (YAML).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    data_efficiency: Annotated[
        bool, typer.Option(help="Also run the data-efficiency curves.")
    ] = False,
    overwrite: Annotated[bool, _OVERWRITE] = False,
) -> None:
    """Predict group answer distributions on unseen questions/groups; compare methods."""
    with _friendly_errors():
        from surveylm.experiments.simulation import run_simulation_benchmark

        _check_results_folder(output, overwrite)
        results = run_simulation_benchmark(config, output, progress=progress)
        table = results.table().rename_axis("method").reset_index()
        table.columns = [" ".join(x for x in c if x) if isinstance(c, tuple) else c
                         for c in table.columns]  # fmt: skip
        _show_table(table, f"simulation: {config.name}")
        if data_efficiency:
            from surveylm.experiments.data_efficiency import run_data_efficiency

            run_data_efficiency(config, output, progress=progress)
        typer.echo(f"wrote results to {output}")


@app.command("demo")
def demo_cmd(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder.")] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="One-minute smoke run (tiny settings).")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of every random step.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Own demo config (YAML) instead of ours.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    overwrite: Annotated[bool, _OVERWRITE] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run in the folder.")
    ] = False,
    causal_lm: Annotated[
        bool, typer.Option("--causal-lm", help="Also simulate with the real causal LM "
                           "(SmolLM2-135M, zero-shot and LoRA): minutes more on a CPU.")
    ] = False,
) -> None:
    """Impute vote choice and simulate group answers on ANES 1996; write report.html."""
    with _friendly_errors():
        from surveylm.experiments.demo import demo_config, demo_summary, run_demo

        cfg = demo_config(quick=quick, seed=seed, path=config, causal_lm=causal_lm)
        run_dir = output or Path("runs") / ("demo-quick" if quick else "demo")
        results = run_demo(cfg, run_dir, quick=quick, progress=progress,
                           command="surveylm " + " ".join(sys.argv[1:]),
                           overwrite=overwrite, resume=resume)  # fmt: skip
        imputation, simulation = demo_summary(results)
        _show_table(imputation, "imputing vote choice (ANES 1996): respondents and population")
        _show_table(simulation, "simulating group answer distributions: TV by split")
        if quick and config is None:
            typer.echo("--quick: tiny settings that show everything runs, not what the methods "
                       "can do; run `surveylm demo` for the real comparison.")  # fmt: skip
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in results.stage_seconds.items())
        typer.echo(f"{stages}; {results.wall_seconds:.0f} s in all")
        typer.echo(f"wrote {run_dir}/ and the report {results.report}")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `surveylm demo`.")],
) -> None:
    """(Re)build RUN_DIR/report.html and RUN_DIR/figures/ from the run's result files."""
    with _friendly_errors():
        from surveylm.experiments.run_folder import check_run_folder, read_run, run_status
        from surveylm.report import build_report

        check_run_folder(run_dir)
        status = run_status(read_run(run_dir))
        if status not in ("complete", "unknown"):
            typer.echo(f"warning: this run is incomplete ({status}); the report shows the "
                       "stages it finished", err=True)  # fmt: skip
        typer.echo(f"wrote {build_report(run_dir)}")


@app.command("impute")
def impute_cmd(
    survey: Annotated[str, typer.Argument(help="Built-in dataset name or survey file.")],
    target: Annotated[str, typer.Option(help="Question to impute.")],
    features: Annotated[str, typer.Option(help="Comma-separated features.")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".parquet or .csv")],
    model: Annotated[str, typer.Option(help="Registry name of the imputation model.")] = (
        "chained-equations"
    ),
    param: Annotated[list[str] | None, typer.Option(help="Model parameter key=value.")] = None,
    m: Annotated[int, typer.Option("-m", help="Number of completed datasets.")] = 20,
    seed: Annotated[int, typer.Option()] = 0,
    codebook: Annotated[Path | None, typer.Option("--codebook", "-c")] = None,
) -> None:
    """Write m completed datasets (mice's long format, `.imp` = 0..m) and pooled shares."""
    with _friendly_errors():
        from surveylm.completed_data import impute, pool_shares, write_imputations
        from surveylm.io.output_paths import check_file_output

        check_file_output(output, (".parquet", ".pq", ".csv"), "--output")
        s = _load_survey(survey, codebook)
        frame = impute(s, target, _split_list(features) or [], model, m=m, seed=seed,
                       model_params=_parse_params(param))  # fmt: skip
        write_imputations(frame, output)
        _show_table(pool_shares(frame, target), f"{target}: shares pooled over {m} imputations")
        typer.echo(f"wrote {m} completed datasets to {output}")


@app.command("correct")
def correct_cmd(
    survey: Annotated[str, typer.Argument(help="Built-in dataset name or survey file.")],
    target: Annotated[str, typer.Option(help="Question whose option shares are estimated.")],
    model: Annotated[
        str | None, typer.Option(help="Model cross-fitted on the respondents who answered.")
    ] = None,
    features: Annotated[str | None, typer.Option(help="Comma-separated features.")] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Or: predictions of every respondent (surveylm predict) from a "
                     "model that never saw these answers."),
    ] = None,
    keep: Annotated[
        int | None, typer.Option(help="Keep only N random answers (the rest become unlabelled).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds.")] = 5,
    level: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=".csv or .parquet")] = None,
    codebook: Annotated[Path | None, typer.Option("--codebook", "-c")] = None,
    group: Annotated[
        str | None,
        typer.Option(help="One group's shares only, e.g. 'party=Democrat' or "
                     "'party=Democrat;educ3=High school or less' (with --keep: a pilot)."),
    ] = None,
) -> None:
    """Shares from a model plus the real answers, by prediction-powered inference (PPI++),
    beside the answers alone, with how many respondents the model is worth."""
    with _friendly_errors():
        from surveylm.correct import correct_survey
        from surveylm.io.output_paths import check_file_output

        if output is not None:
            check_file_output(output, (".csv", ".parquet"), "--output")
        s = _load_survey(survey, codebook)
        preds = None
        if predictions is not None:
            from surveylm.models.base import Predictions

            preds = Predictions.read_parquet(predictions)
        table = correct_survey(s, target, predictions=preds, model=model,
                               features=_split_list(features) or [], keep=keep, folds=folds,
                               seed=seed, level=level, group=_parse_group(group))  # fmt: skip
        cols = ["option", "estimate", "lower", "upper", "lam", "classical", "classical_lower",
                "classical_upper", "effective_n", "effective_n_low", "effective_n_high"]
        cols += ["truth"] if "truth" in table else []  # fmt: skip
        _show_table(table[cols].round(3), f"{target}: PPI++ vs the answers alone")
        if output is not None:
            from surveylm.io.atomic import atomic_path

            with atomic_path(output) as tmp:
                if output.suffix == ".csv":
                    table.to_csv(tmp, index=False)
                else:
                    table.to_parquet(tmp, index=False)
            typer.echo(f"wrote {output}")


def _parse_group(text: str | None) -> dict[str, str] | None:
    """``"a=x;b=y"`` → ``{"a": "x", "b": "y"}`` (``None`` stays ``None``)."""
    if text is None:
        return None
    out: dict[str, str] = {}
    for part in text.split(";"):
        attr, sep, value = part.partition("=")
        if not sep or not attr.strip() or not value.strip():
            raise typer.BadParameter(f"--group: expected attribute=value, got {part!r}")
        out[attr.strip()] = value.strip()
    return out


def main() -> None:
    """Entry point of the ``surveylm`` command."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

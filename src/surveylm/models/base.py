"""The AnswerModel contract and the Predictions it returns.

Every model in surveylm — the uniform baseline, CatBoost, a LoRA-tuned 8B causal LM —
predicts the same thing: ``p(option | question, context)`` for each item it is given.
The contract follows scikit-learn's: the constructor only stores its arguments,
``fit(items)`` returns ``self``, fitted state lives in attributes ending in ``_``, and
``predict(items)`` returns :class:`Predictions` aligned with the items. Models are
interchangeable in every runner and every test.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import importlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from surveylm.distribution_checks import check_distribution
from surveylm.errors import (
    ConfigError,
    DataError,
    FileFormatError,
    ModelError,
    NotFittedError,
    where,
)
from surveylm.items import ItemSet


@dataclass(eq=False)
class Predictions:
    """One predicted distribution per item.

    Attributes:
        item_ids: The items predicted, in order.
        distributions: ``distributions[i]`` is the distribution over the options of item
            ``i``'s question (lengths differ between questions).
        model: Name of the model that made them.
        format_mass: For language models, the probability mass the model put on the
            option tokens *before* renormalising (low = not answering the question);
            ``None`` for other models.
    """

    item_ids: np.ndarray
    distributions: list[np.ndarray]
    model: str = ""
    format_mass: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=object)
        if len(self.item_ids) != len(self.distributions):
            raise DataError(
                f"{len(self.item_ids)} item ids but {len(self.distributions)} distributions"
            )
        dup = pd.Index(self.item_ids).duplicated()
        if dup.any():
            first = self.item_ids[np.flatnonzero(dup)[0]]
            raise DataError(f"{int(dup.sum())} duplicate item ids among the predictions, e.g. "
                            f"{first!r}: each item gets one prediction")  # fmt: skip
        self.distributions = [
            check_distribution(d, context=where(item=i))
            for i, d in zip(self.item_ids, self.distributions, strict=True)
        ]
        if self.format_mass is not None:
            self.format_mass = np.asarray(self.format_mass, dtype=np.float64)
            if self.format_mass.shape != (len(self.item_ids),):
                raise DataError("format_mass must have one value per item")

    def __len__(self) -> int:
        return len(self.item_ids)

    def for_items(self, items: ItemSet) -> Predictions:
        """Reorder (and subset) to match ``items``, checking every item has a prediction
        whose length matches its question."""
        pos = {iid: k for k, iid in enumerate(self.item_ids)}
        missing = [i for i in items.item_ids if i not in pos]
        if missing:
            raise DataError(
                f"no prediction for {len(missing)} of {len(items)} items, e.g. {missing[0]!r}"
            )
        idx = [pos[i] for i in items.item_ids]
        for i, q in zip(idx, items.item_questions(), strict=True):
            if len(self.distributions[i]) != q.n_options:
                raise DataError(
                    f"{where(item=self.item_ids[i], question=q.id)}prediction has "
                    f"{len(self.distributions[i])} values but the question has "
                    f"{q.n_options} options"
                )
        return Predictions(
            self.item_ids[idx],
            [self.distributions[i] for i in idx],
            self.model,
            None if self.format_mass is None else self.format_mass[idx],
            dict(self.extra),
        )

    def renamed(self, model: str, **extra: Any) -> Predictions:
        """The same predictions under another model name (a method's display name), with
        ``extra`` added to :attr:`extra`."""
        return Predictions(self.item_ids, list(self.distributions), model, self.format_mass,
                           {**self.extra, **extra})  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per item with the distribution as a list."""
        return pd.DataFrame({
            "item_id": self.item_ids,
            "model": self.model,
            "distribution": [d.tolist() for d in self.distributions],
            "format_mass": self.format_mass if self.format_mass is not None else np.nan,
        })  # fmt: skip

    def to_parquet(self, path: str | Path) -> Path:
        """Write the predictions to Parquet (atomically)."""
        from surveylm.io.atomic import atomic_path

        with atomic_path(path) as tmp:
            self.to_frame().to_parquet(tmp, index=False)
        return Path(path)

    @classmethod
    def read_parquet(cls, path: str | Path) -> Predictions:
        """Read predictions written by :meth:`to_parquet` (validated)."""
        path = Path(path)
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:
            raise FileFormatError(f"{where(file=path)}no such file") from None
        except Exception as exc:
            msg = f"{where(file=path)}not a readable Parquet file ({exc})"
            raise FileFormatError(msg) from None
        need = {"item_id", "distribution"}
        if not need <= set(frame.columns):
            raise FileFormatError(f"{where(file=path)}needs columns {sorted(need)}")
        mass = frame["format_mass"].to_numpy(dtype=float) if "format_mass" in frame else None
        if mass is not None and np.isnan(mass).all():
            mass = None
        model = str(frame["model"].iat[0]) if "model" in frame and len(frame) else ""
        try:
            return cls(
                frame["item_id"].to_numpy(),
                [np.asarray(d, dtype=float) for d in frame["distribution"]],
                model,
                mass,
            )
        except DataError as exc:
            raise type(exc)(f"{where(file=path)}{exc}") from None


@dataclass(eq=False)
class TrainingParts:
    """What a further training stage needs from a fitted LM back end, so that a method
    built on top (DSA's stage 2) uses no private state of the back end.

    Returned by ``training_parts(items)`` of the encoder and the causal LM; after
    training, the caller hands back with ``end_training()``.

    Attributes:
        module: The back end's option scorer (``nn.Module``: batch → option scores).
        base: The transformer inside it whose layers may be trained (``None`` when the
            back end trains only a head on a frozen encoder).
        dataset: A ``torch`` dataset of the items, as ``collator`` expects.
        collator: Turns dataset rows into batches with ``targets``/``option_mask``.
        split_seed: Seed of the back end's inner validation split, so a further stage
            validates on the items the back end never trained on.
    """

    module: Any
    base: Any
    dataset: Any
    collator: Any
    split_seed: int = 0


class AnswerModel(ABC):
    """Base class of every answer model (see module docstring).

    Every model's constructor takes, stores and honours two common parameters, after its
    own:

    * ``random_state`` (``int | None``, default 0): the seed of every random step of the
      model (option orders, bootstrap draws, tree building, adapter initialisation, data
      order). The same value gives the same numbers; ``None`` draws fresh entropy each
      time (not reproducible). Read it through :meth:`_seed`.
    * ``verbose`` (``bool``, default True): progress bars on long work (fine-tuning,
      language-model scoring). Runners turn it off, as they show their own bar.

    A subclass lists both, with these defaults, in its own ``__init__`` signature (which
    :meth:`get_params` reads) and passes them to ``super().__init__``; runners set both
    with :meth:`set_params` (:func:`surveylm.models.make_run_model`).

    Subclasses implement :meth:`fit`, :meth:`predict`, and — to be saved — the
    :meth:`_get_state` / :meth:`_set_state` pair returning/accepting JSON-able fitted
    state. Models with weights (language models) override :meth:`save`/:meth:`load`.
    Parameters follow scikit-learn's conventions (:meth:`get_params`, :meth:`set_params`),
    so :func:`sklearn.base.clone` works on every model.
    """

    #: Short registry name, e.g. ``"uniform"``.
    name: ClassVar[str] = "model"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "save" in cls.__dict__:  # every model's save writes a whole folder or nothing
            cls.save = whole_folder(cls.__dict__["save"])  # type: ignore[method-assign]

    def __init__(self, *, random_state: int | None = 0, verbose: bool = True) -> None:
        self.random_state = random_state
        self.verbose = verbose

    @abstractmethod
    def fit(self, items: ItemSet) -> AnswerModel:
        """Learn from items with known targets; returns ``self``."""

    @abstractmethod
    def predict(self, items: ItemSet) -> Predictions:
        """One distribution per item, aligned with ``items``."""

    def _seed(self) -> int:
        """``random_state`` as an int seed (fresh entropy when it is ``None``)."""
        return resolve_seed(self.random_state)

    # -- fits that a kill does not lose ------------------------------------------------
    #: Whether :meth:`fit_resumable` can continue a killed fit: models trained in
    #: optimiser steps through :func:`surveylm.training.trainer.train_option_model`
    #: (which then implement ``fit(items, *, resume_from_checkpoint=...)`` and
    #: :meth:`_checkpointing` on their training settings).
    resumable: ClassVar[bool] = False
    _save_checkpoints: bool = False

    def fit_resumable(
        self, items: ItemSet, checkpoint_dir: str | Path, resume: bool = False
    ) -> AnswerModel:
        """:meth:`fit`, saving a training checkpoint into ``checkpoint_dir`` each epoch;
        with ``resume``, continue from the latest complete one there instead of starting
        again. The resumed fit ends with the same parameters as an uninterrupted one (the
        weights, optimiser, scheduler, RNG and early-stopping states are restored).

        Raises:
            ModelError: the model does not train in steps (``resumable`` is false).
            ConfigError: ``resume`` and no complete checkpoint in ``checkpoint_dir``.
        """
        if not self.resumable:
            raise ModelError(f"model '{self.name}' is fitted in one pass, without training "
                             "checkpoints: nothing to resume; fit it again")  # fmt: skip
        stepped = cast(Any, self)  # output_dir and fit's resume argument are theirs
        previous = stepped.output_dir
        stepped.output_dir, self._save_checkpoints = str(checkpoint_dir), True
        try:
            resumed = True if resume else None
            return cast(AnswerModel, stepped.fit(items, resume_from_checkpoint=resumed))
        finally:
            stepped.output_dir, self._save_checkpoints = previous, False

    def _checkpointing(self, config: Any) -> Any:
        """``config`` (a ``FineTuneConfig``) saving every epoch, two checkpoints kept,
        while :meth:`fit_resumable` runs; unchanged otherwise."""
        if self._save_checkpoints:
            return config.model_copy(update={"save_every_epoch": True, "save_total_limit": 2})
        return config

    # -- scikit-learn style parameters -------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (scikit-learn's ``BaseEstimator.get_params``).

        Args:
            deep: Also list the parameters of parameters that are estimators themselves
                (as ``"<param>__<name>"``); no model has one today, so this equals
                ``deep=False`` unless a model is given an estimator as a parameter.
        """
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> AnswerModel:
        """Change constructor arguments (scikit-learn's ``BaseEstimator.set_params``);
        ``"<param>__<name>"`` sets a parameter of an estimator parameter. Returns ``self``.

        Raises:
            ConfigError: a name that is not a parameter of this model.
        """
        valid = set(self._param_names())
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter '{name}'; "
                    f"its parameters are {sorted(valid)}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def clone(self) -> AnswerModel:
        """An unfitted copy with the same parameters (as :func:`sklearn.base.clone`)."""
        params = {k: copy.deepcopy(v) for k, v in self.get_params(deep=False).items()}
        return type(self)(**params)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({params})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(items) first")

    # -- persistence -------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        raise ModelError(f"{type(self).__name__} cannot be saved")

    def _set_state(self, state: dict[str, Any]) -> None:
        raise ModelError(f"{type(self).__name__} cannot be loaded")

    def save(self, directory: str | Path) -> Path:
        """Write parameters and fitted state to ``directory/model.json`` (atomically)."""
        self._check_fitted()
        directory = Path(directory)
        write_model_json(self, directory, self.get_params(deep=False), self._get_state())
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> AnswerModel:
        """Load a model written by :meth:`save` (any subclass, found from the file)."""
        directory = Path(directory)
        path = directory / "model.json"
        payload = read_model_json(directory)
        try:
            module, _, qualname = payload["class"].partition(":")
            module = _MOVED_MODULES.get(module, module)
            klass = getattr(importlib.import_module(module), qualname)
        except (ValueError, KeyError, ImportError, AttributeError) as exc:
            raise ModelError(f"{where(file=path)}not a valid saved model ({exc})") from None
        if not (isinstance(klass, type) and issubclass(klass, AnswerModel)):
            raise ModelError(f"{where(file=path)}{payload['class']} is not an AnswerModel")
        if klass.load.__func__ is not AnswerModel.load.__func__:  # type: ignore[attr-defined]
            return klass.load(directory)
        model, state = klass._from_saved(directory)
        model._set_state(state)
        return model

    @classmethod
    def _from_saved(cls, directory: str | Path) -> tuple[Any, dict[str, Any]]:
        """``(unfitted model built from the saved parameters, saved state)`` of
        ``directory/model.json``: the first step of every ``load``.

        Raises:
            ModelError: no saved model there, or parameters that no longer fit the
                constructor (e.g. a folder saved before ``seed`` became ``random_state``).
        """
        directory = Path(directory)
        payload = read_model_json(directory)
        try:
            model = cls(**payload["params"])
        except TypeError as exc:
            path = directory / "model.json"
            msg = f"{where(file=path)}parameters do not fit {cls.__name__} ({exc})"
            raise ModelError(msg) from None
        return model, payload["state"]


_SAVING: contextvars.ContextVar[bool] = contextvars.ContextVar("surveylm_saving", default=False)


def whole_folder(save: Any) -> Any:
    """Make a model's ``save(directory)`` replace ``directory`` whole or not at all.

    The wrapped ``save`` writes into a sibling temporary folder that is swapped in for
    ``directory`` when it returns (:func:`surveylm.io.atomic.atomic_dir`), so a crash or a
    kill leaves the old model or the new one, never new weights beside an old
    ``model.json``. A part saved inside another model's save (a blend's ``first/``)
    writes straight into its parent's temporary folder. Applied to every subclass's
    ``save`` by :class:`AnswerModel` itself.

    Raises:
        OutputError: ``directory`` is a file, or a folder of other files (no
            ``model.json``): it is never wiped.
    """
    if getattr(save, "_whole_folder", False):
        return save

    @functools.wraps(save)
    def wrapper(self: AnswerModel, directory: str | Path, *args: Any, **kwargs: Any) -> Path:
        if _SAVING.get():
            return save(self, directory, *args, **kwargs)
        from surveylm.io.atomic import atomic_dir

        directory = Path(directory)
        token = _SAVING.set(True)
        try:
            with atomic_dir(directory, marker="model.json") as tmp:
                save(self, tmp, *args, **kwargs)
        finally:
            _SAVING.reset(token)
        return directory

    wrapper._whole_folder = True  # type: ignore[attr-defined]
    return wrapper


AnswerModel.save = whole_folder(AnswerModel.save)  # type: ignore[method-assign]


def write_model_json(
    model: AnswerModel, directory: str | Path, params: dict[str, Any], state: dict[str, Any]
) -> Path:
    """Write ``directory/model.json`` (class, constructor params, fitted state), atomically.

    Models with weights write their weight files first and this file last, so a folder
    with a ``model.json`` always holds a complete model.
    """
    from surveylm.io.atomic import atomic_write_text

    payload = {
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "params": params,
        "state": state,
        # fingerprint of the training items (surveylm.fingerprint), when the fit recorded one
        "training_items": getattr(model, "training_items_", None),
    }
    path = Path(directory) / "model.json"
    atomic_write_text(path, json.dumps(payload, default=_json_default, indent=1))
    return path


def read_model_json(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/model.json`` written by :func:`write_model_json`.

    Raises:
        ModelError: no such file, or not a saved model (bad JSON, missing keys).
    """
    path = Path(directory) / "model.json"
    if not path.is_file():
        raise ModelError(f"{where(file=path)}no saved model here")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if not all(k in payload for k in ("class", "params", "state")):
            raise KeyError("class/params/state")
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{where(file=path)}not a valid saved model ({exc})") from None
    return payload


#: Modules renamed since a model folder may have been saved (``model.json``'s ``class``).
_MOVED_MODULES = {"surveylm.models.baselines": "surveylm.models.marginals"}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path | tuple):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def resolve_seed(random_state: int | None) -> int:
    """An int seed from a ``random_state``: the int itself, or fresh OS entropy for
    ``None`` (scikit-learn's meaning of ``random_state=None``: not reproducible)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(random_state)


def derive_seed(seed: int, *keys: int) -> int:
    """A seed for one step of a run (a repetition, a draw, a chain) from the run's seed:
    distinct keys give unrelated seeds, and ``derive_seed(1, 0)`` is not
    ``derive_seed(0, 1)`` (as ``seed + rep`` would be)."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def stack_by_question(
    items: ItemSet, distributions: Sequence[np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group item positions by question: ``{qid: (positions, matrix of distributions)}``."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    qids = items.frame["question_id"].to_numpy()
    for qid in items.question_ids:
        pos = np.flatnonzero(qids == qid)
        out[qid] = (pos, np.vstack([distributions[int(i)] for i in pos]))
    return out

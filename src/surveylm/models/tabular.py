"""Tabular classifiers on respondent items: the baselines LLM imputation must beat.

Holtdirk et al. (2025, "Learning from Convenience Samples") compare fine-tuned language
models for imputing vote choice with CatBoost (Prokhorenkova et al. 2018, "CatBoost:
unbiased boosting with categorical features"); a survey methodologist also expects
multinomial logistic regression and a random forest (Breiman 2001). All three are
:class:`~surveylm.models.base.AnswerModel`\\ s on *respondent* items:

* features are the items' contexts (feature → value); a feature that is a question of
  the item set, or has any non-numeric value, is categorical, any other numeric. A
  missing feature is allowed: it becomes its own category ("(missing)") or, for numeric
  features, the training mean plus a missing indicator (CatBoost handles NaN natively);
* one classifier per target question, trained with the survey weights as
  ``sample_weight``;
* ``predict_proba`` is mapped back to the question's option order. An option never seen
  in training gets probability 0 from the classifier; every distribution is then
  smoothed, ``q ← (q + ε) / (1 + K ε)`` with ``ε = epsilon`` (default 1e-6), so log loss
  stays finite and no option is ruled out entirely. A question seen with a single
  option in training predicts that option (smoothed).

Questions never seen in training fall back to uniform (counted in
``Predictions.extra["fallbacks"]``). Fitted estimators are saved as base64-encoded
pickles inside ``model.json``: load only model folders you trust.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from surveylm.distribution_checks import uniform
from surveylm.errors import DataError
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions
from surveylm.models.param_checks import Rule, check_params
from surveylm.threads import catboost_threads

MISSING = "(missing)"
#: Feature spec: ``[(name, "categorical" | "numeric"), ...]`` in first-seen order.
FeatureSpec = list[tuple[str, str]]


def require_respondent_items(items: ItemSet, model: str) -> None:
    """Refuse group items: tabular models need one respondent per item."""
    if len(items) and "group" in items.kinds:
        n = int((items.frame["kind"] == "group").sum())
        raise DataError(
            f"{model} works on respondent items (one respondent's profile each); got {n} "
            "group items — build items with build_respondent_items"
        )


def infer_features(items: ItemSet) -> FeatureSpec:
    """The features in the items' contexts and whether each is categorical or numeric."""
    values: dict[str, list[Any]] = {}
    for ctx in items.contexts:
        for key, v in ctx.items():
            values.setdefault(key, []).append(v)
    spec: FeatureSpec = []
    for key, vals in values.items():
        numeric = key not in items.questions and all(
            isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in vals
        )
        spec.append((key, "numeric" if numeric else "categorical"))
    if not spec:
        raise DataError("the items have no features: every context is empty")
    return spec


def feature_frame(items: ItemSet, spec: FeatureSpec, *, missing_label: bool = True) -> pd.DataFrame:
    """One row per item, one column per feature: categorical as strings (missing →
    ``"(missing)"`` or ``None``), numeric as float (missing → NaN)."""
    contexts = items.contexts
    cols: dict[str, Any] = {}
    for name, kind in spec:
        raw = [c.get(name) for c in contexts]
        if kind == "numeric":
            vals = []
            for v in raw:
                try:
                    vals.append(np.nan if v is None else float(v))
                except (TypeError, ValueError):
                    raise DataError(
                        f"feature '{name}' was numeric in training, got {v!r}"
                    ) from None
            cols[name] = pd.Series(vals, dtype=np.float64)
        else:
            fill = MISSING if missing_label else None
            labels = [fill if v is None else str(v) for v in raw]
            cols[name] = pd.Series(labels, dtype=object)  # not pandas' inferred str dtype
    return pd.DataFrame(cols, index=range(len(contexts)))


def target_codes(items: ItemSet) -> np.ndarray:
    """The answered option (argmax of the one-hot target) of each item."""
    targets = cast("list[np.ndarray]", items.targets)  # items to fit on: all known
    return np.array([int(np.argmax(t)) for t in targets], dtype=np.int64)


def smooth(q: np.ndarray, epsilon: float) -> np.ndarray:
    """``(q + ε) / (1 + K ε)`` row-wise: no option has probability exactly 0."""
    k = q.shape[-1]
    return (q + epsilon) / (q.sum(axis=-1, keepdims=True) + k * epsilon)


#: A probability floor: at least 0, below 1.
_EPSILON = Rule(0.0, below=1.0)


class _TabularModel(AnswerModel):
    """Shared fit/predict: one estimator per target question (see module docstring)."""

    epsilon: float

    def _make_estimator(self, spec: FeatureSpec) -> Any:
        raise NotImplementedError

    def _fit_estimator(self, est: Any, x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> Any:
        return est.fit(x, y, sample_weight=w)

    def fit(self, items: ItemSet) -> _TabularModel:
        check_params(self)
        require_respondent_items(items, self.name)
        train = items.filter(known_target=True)
        if len(train) == 0:
            raise DataError(f"{self.name}: no training items with a known target")
        self.features_ = infer_features(train)
        x = feature_frame(train, self.features_)
        y_all = target_codes(train)
        w_all = train.frame["weight"].to_numpy(dtype=np.float64)
        qids = train.frame["question_id"].to_numpy()
        self.estimators_: dict[str, Any] = {}
        self.n_options_: dict[str, int] = {}
        for qid in train.question_ids:
            pos = np.flatnonzero(qids == qid)
            y = y_all[pos]
            self.n_options_[qid] = train.questions[qid].n_options
            if len(np.unique(y)) == 1:
                self.estimators_[qid] = int(y[0])  # a constant: the only option seen
                continue
            est = self._make_estimator(self.features_)
            xq = x.iloc[pos].reset_index(drop=True)
            self.estimators_[qid] = self._fit_estimator(est, xq, y, w_all[pos])
        return self

    def predict(self, items: ItemSet) -> Predictions:
        self._check_fitted()
        require_respondent_items(items, self.name)
        dists: list[np.ndarray] = [np.empty(0)] * len(items)
        fallbacks = 0
        if len(items):
            x = feature_frame(items, self.features_)
            qids = items.frame["question_id"].to_numpy()
            for qid in items.question_ids:
                pos = np.flatnonzero(qids == qid)
                k = items.questions[qid].n_options
                est = self.estimators_.get(qid)
                if est is None or self.n_options_[qid] != k:
                    fallbacks += len(pos)
                    for i in pos:
                        dists[i] = uniform(k)
                    continue
                q = np.zeros((len(pos), k))
                if isinstance(est, int):
                    q[:, est] = 1.0
                else:
                    proba = est.predict_proba(x.iloc[pos].reset_index(drop=True))
                    q[:, np.asarray(est.classes_, dtype=np.int64)] = proba
                q = smooth(q, self.epsilon)
                for j, i in enumerate(pos):
                    dists[i] = q[j]
        return Predictions(items.item_ids, dists, self.name, extra={"fallbacks": fallbacks})

    def _get_state(self) -> dict[str, Any]:
        return {
            "features": [list(f) for f in self.features_],
            "n_options": self.n_options_,
            "estimators": {
                q: e if isinstance(e, int) else base64.b64encode(pickle.dumps(e)).decode("ascii")
                for q, e in self.estimators_.items()
            },
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.features_ = [(str(n), str(k)) for n, k in state["features"]]
        self.n_options_ = {q: int(k) for q, k in state["n_options"].items()}
        self.estimators_ = {
            q: e if isinstance(e, int) else pickle.loads(base64.b64decode(e))
            for q, e in state["estimators"].items()
        }


def _sklearn_preprocessor(spec: FeatureSpec) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat = [n for n, k in spec if k == "categorical"]
    num = [n for n, k in spec if k == "numeric"]
    parts = []
    if cat:
        parts.append(("onehot", OneHotEncoder(handle_unknown="ignore"), cat))
    if num:
        impute = SimpleImputer(strategy="mean", add_indicator=True, keep_empty_features=True)
        parts.append(("numeric", make_pipeline(impute, StandardScaler()), num))
    return ColumnTransformer(parts)


def _fit_pipeline(est: Any, x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> Any:
    est.fit(x, y, clf__sample_weight=w)
    return est


class LogisticModel(_TabularModel):
    """Multinomial logistic regression on one-hot features (scikit-learn).

    Args:
        C: Inverse L2 penalty (scikit-learn's ``C``); the penalty keeps coefficients finite
            when an option is perfectly separated by a feature.
        max_iter: Iterations of the solver.
        solver: scikit-learn solver; Newton–Cholesky is much faster than L-BFGS on
            survey-sized data and reaches the same optimum.
        epsilon: Smoothing of the predicted distributions (see module docstring).
        random_state: scikit-learn's ``random_state`` (used by the stochastic solvers
            only; Newton–Cholesky is deterministic).
        verbose: Unused (no progress bars); part of the common contract.
    """

    name = "logistic"
    param_rules: ClassVar[dict[str, Rule]] = {
        "C": Rule(0.0, strict=True), "max_iter": Rule(1, integer=True), "epsilon": _EPSILON,
    }  # fmt: skip

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 1000,
        solver: str = "newton-cholesky",
        epsilon: float = 1e-6,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.C = C
        self.max_iter = max_iter
        self.solver = solver
        self.epsilon = epsilon
        check_params(self)

    def _make_estimator(self, spec: FeatureSpec) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        clf = LogisticRegression(
            C=self.C, max_iter=self.max_iter, solver=self.solver, random_state=self.random_state
        )
        return Pipeline([("features", _sklearn_preprocessor(spec)), ("clf", clf)])

    def _fit_estimator(self, est: Any, x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> Any:
        return _fit_pipeline(est, x, y, w)


class RandomForestModel(_TabularModel):
    """Random forest (Breiman 2001) on one-hot features (scikit-learn).

    Args:
        n_estimators: Number of trees.
        min_samples_leaf: Minimum respondents per leaf; larger leaves give smoother
            (better calibrated) class probabilities than fully grown trees.
        max_features: Features tried per split (scikit-learn's ``max_features``).
        n_jobs: Parallel jobs (``None`` = 1).
        epsilon: Smoothing of the predicted distributions.
        random_state: Seed of the bootstrap samples and feature draws (scikit-learn's
            ``random_state``).
        verbose: Unused (no progress bars); part of the common contract.
    """

    name = "random-forest"
    param_rules: ClassVar[dict[str, Rule]] = {
        "n_estimators": Rule(1, integer=True), "min_samples_leaf": Rule(1, integer=True),
        "epsilon": _EPSILON,
    }  # fmt: skip

    def __init__(
        self,
        n_estimators: int = 300,
        min_samples_leaf: int = 5,
        max_features: str | float = "sqrt",
        n_jobs: int | None = None,
        epsilon: float = 1e-6,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.epsilon = epsilon
        check_params(self)

    def _make_estimator(self, spec: FeatureSpec) -> Any:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import Pipeline

        clf = RandomForestClassifier(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        return Pipeline([("features", _sklearn_preprocessor(spec)), ("clf", clf)])

    def _fit_estimator(self, est: Any, x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> Any:
        return _fit_pipeline(est, x, y, w)


class CatBoostModel(_TabularModel):
    """CatBoost gradient boosting with categorical features handled natively
    (Prokhorenkova et al. 2018) — the tabular baseline of Holtdirk et al. (2025).

    Args:
        iterations: Boosting rounds.
        depth: Tree depth.
        learning_rate: ``None`` leaves it to CatBoost — but CatBoost chooses a rate from the
            data size only when no ``l2_leaf_reg`` is given either, and this model always
            passes ``l2_leaf_reg``, so ``None`` means CatBoost's fixed default of 0.03
            (``get_all_params()`` shows it; on 400 rows × 50 iterations its automatic choice
            would be about 0.11). Pass a number to set it.
        l2_leaf_reg: L2 regularisation of leaf values (CatBoost's default, 3.0).
        thread_count: CPU threads (``-1`` = the thread policy's, :mod:`surveylm.threads`;
            never more).
        epsilon: Smoothing of the predicted distributions.
        random_state: Seed (CatBoost's ``random_seed``).
        verbose: Unused (CatBoost's per-iteration log stays off); part of the common
            contract.
    """

    name = "catboost"
    param_rules: ClassVar[dict[str, Rule]] = {
        "iterations": Rule(1, integer=True), "depth": Rule(1, integer=True),
        "learning_rate": Rule(0.0, strict=True, optional=True), "l2_leaf_reg": Rule(0.0),
        "epsilon": _EPSILON,
    }  # fmt: skip

    def __init__(
        self,
        iterations: int = 500,
        depth: int = 6,
        learning_rate: float | None = None,
        l2_leaf_reg: float = 3.0,
        thread_count: int = -1,
        epsilon: float = 1e-6,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.iterations = iterations
        self.depth = depth
        self.learning_rate = learning_rate
        self.l2_leaf_reg = l2_leaf_reg
        self.thread_count = thread_count
        self.epsilon = epsilon
        check_params(self)

    def _make_estimator(self, spec: FeatureSpec) -> Any:
        try:
            from catboost import CatBoostClassifier
        except ImportError:  # pragma: no cover - catboost is a dependency
            raise DataError("the catboost model needs the 'catboost' package") from None
        return CatBoostClassifier(
            iterations=self.iterations,
            depth=self.depth,
            learning_rate=self.learning_rate,
            l2_leaf_reg=self.l2_leaf_reg,
            thread_count=catboost_threads(self.thread_count),
            random_seed=self._seed(),
            cat_features=[n for n, k in spec if k == "categorical"],
            verbose=False,
            allow_writing_files=False,
        )

    def _fit_estimator(self, est: Any, x: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> Any:
        return est.fit(x, y, sample_weight=w)


__all__ = [
    "CatBoostModel",
    "LogisticModel",
    "RandomForestModel",
    "feature_frame",
    "infer_features",
    "require_respondent_items",
]

"""Multiple imputation by chained equations, in the spirit of R's ``mice``.

van Buuren & Groothuis-Oudshoorn (2011), "mice: Multivariate Imputation by Chained
Equations in R", *Journal of Statistical Software* 45(3). The survey methodologist's
standard for item non-response, behind the :class:`~surveylm.models.base.AnswerModel`
contract on respondent items:

* every incompletely observed variable — the target question and any feature with
  missing values — gets its own conditional model given all other variables:
  polytomous (multinomial logistic) regression for categorical variables (mice's
  ``polyreg``), predictive mean matching for numeric ones (mice's ``pmm``, Little 1988:
  the imputed value is an observed value of one of the ``donors`` respondents whose
  predicted means are closest);
* missing values start as random draws from the observed values, then the variables are
  visited in turn (features first, the target last) for ``max_iter`` iterations, each
  visit refitting that variable's model on the current completed data and redrawing its
  missing values (a Gibbs-type sampler). When only the target is incomplete one visit is
  exact and the chain stops after one iteration;
* ``m`` chains with different seeds give ``m`` imputations. Each visit fits its model on
  a bootstrap resample of the respondents who have the variable (mice's ``*.boot``
  methods), so the draws carry the model's parameter uncertainty and the imputations
  are *proper* in Rubin's (1987) sense.

``fit`` stores the training respondents (features and known answers); ``predict`` runs
the chains on the training respondents together with the items asked about, whose
targets are treated as missing (never peeked at). The predicted distribution of an item
is the average over the ``m`` chains of the target model's probabilities in the last
iteration; ``Predictions.extra["draws"]`` holds each chain's distribution (item id →
``[m, K]``) and ``extra["imputations"]`` each chain's imputed option (item id → ``m``
indices) — the completed datasets of multiple imputation
(:func:`surveylm.mi_pooling.multiple_imputation_shares` uses the draws).
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np

from surveylm.distribution_checks import uniform
from surveylm.errors import DataError
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions
from surveylm.models.tabular import (
    FeatureSpec,
    feature_frame,
    infer_features,
    require_respondent_items,
    smooth,
    target_codes,
)


class ChainedEquationsImputer(AnswerModel):
    """Chained-equations imputer (see module docstring).

    Args:
        m: Number of imputations (chains); mice's default is 5.
        max_iter: Iterations of each chain when features are incomplete too (mice's
            ``maxit``, default 5).
        C: Inverse L2 penalty of the polytomous regressions (keeps them finite under
            separation, like the weight decay of mice's ``nnet::multinom``).
        donors: Candidate donors in predictive mean matching (mice's default 5).
        bootstrap: Refit each conditional model on a bootstrap resample (proper
            imputation). ``False`` draws from the fitted model only.
        use_weights: Pass survey weights as ``sample_weight`` to the conditional models.
        epsilon: Smoothing of the predicted distributions (as the tabular models).
        random_state: Seed; chain ``d`` of question ``q`` is seeded by
            ``(random_state, d, q)`` (``None``: fresh entropy per ``predict``).
        verbose: A progress bar over the chains in ``predict``.
    """

    name = "chained-equations"

    def __init__(
        self,
        m: int = 5,
        max_iter: int = 5,
        C: float = 1.0,
        donors: int = 5,
        bootstrap: bool = True,
        use_weights: bool = True,
        epsilon: float = 1e-6,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.m = m
        self.max_iter = max_iter
        self.C = C
        self.donors = donors
        self.bootstrap = bootstrap
        self.use_weights = use_weights
        self.epsilon = epsilon

    # -- fit / predict -----------------------------------------------------------------
    def fit(self, items: ItemSet) -> ChainedEquationsImputer:
        require_respondent_items(items, self.name)
        if self.m < 1 or self.max_iter < 1:
            raise DataError(f"{self.name}: m and max_iter must be at least 1")
        train = items.filter(known_target=True)
        if len(train) == 0:
            raise DataError(f"{self.name}: no training items with a known target")
        self.features_: FeatureSpec = infer_features(train)
        x = feature_frame(train, self.features_, missing_label=False)
        y = target_codes(train)
        w = train.frame["weight"].to_numpy(dtype=np.float64)
        qids = train.frame["question_id"].to_numpy()
        self.options_: dict[str, dict[str, Any]] = {}
        for name, kind in self.features_:
            if kind == "categorical" and name in train.questions:
                self.options_[name] = {"options": list(train.questions[name].options)}
        self.train_: dict[str, dict[str, Any]] = {}
        for qid in train.question_ids:
            pos = np.flatnonzero(qids == qid)
            self.train_[qid] = {
                "n_options": train.questions[qid].n_options,
                "features": {c: x[c].to_numpy()[pos].tolist() for c in x.columns},
                "y": y[pos].tolist(),
                "w": w[pos].tolist(),
            }
        return self

    def predict(self, items: ItemSet) -> Predictions:
        from tqdm.auto import tqdm

        self._check_fitted()
        require_respondent_items(items, self.name)
        seed = self._seed()
        n = len(items)
        dists: list[np.ndarray] = [np.empty(0)] * n
        draws: dict[str, np.ndarray] = {}
        imputations: dict[str, list[int]] = {}
        fallbacks = 0
        if n:
            x = feature_frame(items, self.features_, missing_label=False)
            qids = items.frame["question_id"].to_numpy()
            ids = items.item_ids
            bar = tqdm(
                total=self.m * len(items.question_ids), desc="chained equations: chains",
                disable=None if self.verbose else True,
            )  # fmt: skip
            for qid in items.question_ids:
                pos = np.flatnonzero(qids == qid)
                k = items.questions[qid].n_options
                tr = self.train_.get(qid)
                if tr is None or tr["n_options"] != k:
                    fallbacks += len(pos)
                    bar.update(self.m)
                    for i in pos:
                        dists[i] = uniform(k)
                    continue
                wq = items.frame["weight"].to_numpy(dtype=np.float64)[pos]
                probs, picks = self._impute_question(qid, tr, x.iloc[pos], wq, k, seed, bar)
                for j, i in enumerate(pos):
                    dists[i] = probs[:, j].mean(axis=0)
                    draws[str(ids[i])] = probs[:, j]
                    imputations[str(ids[i])] = picks[:, j].tolist()
            bar.close()
        extra = {"fallbacks": fallbacks, "draws": draws, "imputations": imputations}
        return Predictions(items.item_ids, dists, self.name, extra=extra)

    # -- the chains --------------------------------------------------------------------
    def _impute_question(
        self, qid: str, tr: dict[str, Any], xq: Any, wq: np.ndarray, k: int, seed: int,
        bar: Any,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Run ``m`` chains seeded by ``(seed, chain, qid)``; return ``[m, n_query, K]``
        probabilities and ``[m, n_query]`` imputed options."""
        n_tr, n_q = len(tr["y"]), len(xq)
        variables: list[tuple[str, np.ndarray, int]] = []  # (kind, values, n_categories)
        for name, kind in self.features_:
            col = list(tr["features"][name]) + list(xq[name].to_numpy())
            if kind == "numeric":
                vals = np.array([np.nan if _missing(v) else float(v) for v in col])
                variables.append(("numeric", vals, 0))
            else:
                cats = list(self.options_.get(name, {}).get("options", []))
                seen = sorted({str(v) for v in col if not _missing(v)} - set(cats))
                lookup = {c: i for i, c in enumerate(cats + seen)}
                codes = np.array([-1 if _missing(v) else lookup[str(v)] for v in col])
                variables.append(("categorical", codes, len(lookup)))
        target = np.concatenate([np.asarray(tr["y"], dtype=np.int64), np.full(n_q, -1)])
        variables.append(("categorical", target, k))
        w = np.concatenate([np.asarray(tr["w"], dtype=np.float64), wq])
        if not self.use_weights:
            w = np.ones_like(w)
        probs = np.empty((self.m, n_q, k))
        picks = np.empty((self.m, n_q), dtype=np.int64)
        for d in range(self.m):
            rng = np.random.default_rng([seed, d, zlib.crc32(qid.encode())])
            p, y = self._chain(variables, w, rng)
            probs[d], picks[d] = smooth(p, self.epsilon), y[n_tr:]
            bar.update(1)
        return probs, picks

    def _chain(
        self, variables: list[tuple[str, np.ndarray, int]], w: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One chain; returns the target model's probabilities for its missing rows (last
        iteration) and the completed target."""
        missing = [(v < 0) if kind == "categorical" else np.isnan(v) for kind, v, _ in variables]
        current = [v.copy() for _, v, _ in variables]
        for (_, v, _), miss, cur in zip(variables, missing, current, strict=True):
            observed = v[~miss]
            if miss.any() and len(observed) == 0:
                raise DataError(f"{self.name}: a feature has no observed value to impute from")
            if miss.any():
                cur[miss] = rng.choice(observed, size=int(miss.sum()))
        blocks = [_block(kind, cur, k, miss) for (kind, _, k), cur, miss in
                  zip(variables, current, missing, strict=True)]  # fmt: skip
        incomplete = [j for j, miss in enumerate(missing) if miss.any()]
        n_iter = self.max_iter if len(incomplete) > 1 else 1
        t = len(variables) - 1
        target_probs = np.empty((0, variables[t][2]))
        for _ in range(n_iter):
            for j in incomplete:
                kind, _, k = variables[j]
                x = np.hstack([b for i, b in enumerate(blocks) if i != j])
                if kind == "categorical":
                    p = self._polyreg(x, current[j], missing[j], w, k, rng)
                    cdf = np.cumsum(p, axis=1)
                    u = rng.random(len(p))[:, None]
                    current[j][missing[j]] = np.minimum((u > cdf).sum(axis=1), k - 1)
                    if j == t:
                        target_probs = p
                else:
                    current[j][missing[j]] = self._pmm(x, current[j], missing[j], w, rng)
                blocks[j] = _block(kind, current[j], k, missing[j])
        return target_probs, current[t]

    def _resample(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(obs, size=len(obs), replace=True) if self.bootstrap else obs

    def _polyreg(
        self,
        x: np.ndarray,
        y: np.ndarray,
        miss: np.ndarray,
        w: np.ndarray,
        k: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Multinomial logistic regression on (a bootstrap resample of) the observed rows;
        the predicted distributions of the missing rows."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        b = self._resample(np.flatnonzero(~miss), rng)
        yb = y[b].astype(np.int64)
        p = np.zeros((int(miss.sum()), k))
        classes = np.unique(yb)
        if len(classes) == 1:
            p[:, classes[0]] = 1.0
            return p
        # Newton-Cholesky is far faster for small problems; its Hessian grows with
        # (columns x classes)², so L-BFGS takes over for many-option variables.
        small = x.shape[1] * len(classes) <= 300
        solver = "newton-cholesky" if small else "lbfgs"
        lr = LogisticRegression(C=self.C, max_iter=1000, solver=solver)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr.fit(x[b], yb, sample_weight=w[b])
        p[:, lr.classes_] = lr.predict_proba(x[miss])
        return p

    def _pmm(
        self,
        x: np.ndarray,
        y: np.ndarray,
        miss: np.ndarray,
        w: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Predictive mean matching (type 1): observed rows predicted with the full fit,
        missing rows with the bootstrap fit; each missing row takes the observed value of
        a random one of its ``donors`` nearest neighbours in predicted mean."""
        obs = np.flatnonzero(~miss)
        x1 = np.hstack([np.ones((len(x), 1)), x])
        beta_hat = _ridge(x1[obs], y[obs], w[obs])
        b = self._resample(obs, rng)
        beta_star = _ridge(x1[b], y[b], w[b]) if self.bootstrap else beta_hat
        yhat_obs = x1[obs] @ beta_hat
        yhat_mis = x1[miss] @ beta_star
        n_don = max(1, min(self.donors, len(obs)))
        out = np.empty(len(yhat_mis))
        for start in range(0, len(yhat_mis), 1000):
            chunk = yhat_mis[start : start + 1000]
            dist = np.abs(chunk[:, None] - yhat_obs[None, :])
            near = np.argpartition(dist, n_don - 1, axis=1)[:, :n_don]
            pick = near[np.arange(len(chunk)), rng.integers(n_don, size=len(chunk))]
            out[start : start + len(chunk)] = y[obs][pick]
        return out

    # -- persistence -------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        train = {
            q: {
                **t,
                "features": {c: [_json_value(v) for v in vs] for c, vs in t["features"].items()},
            }
            for q, t in self.train_.items()
        }
        return {"features": [list(f) for f in self.features_], "options": self.options_,
                "train": train}  # fmt: skip

    def _set_state(self, state: dict[str, Any]) -> None:
        self.features_ = [(str(n), str(k)) for n, k in state["features"]]
        self.options_ = dict(state["options"])
        self.train_ = dict(state["train"])


def _block(kind: str, values: np.ndarray, k: int, miss: np.ndarray) -> np.ndarray:
    """A variable's columns in the other variables' models: one-hot for categorical,
    standardised (by the observed values) for numeric."""
    if kind == "categorical":
        out = np.zeros((len(values), k))
        out[np.arange(len(values)), values.astype(np.int64)] = 1.0
        return out
    obs = values[~miss]
    sd = float(obs.std()) if len(obs) > 1 else 1.0
    return ((values - obs.mean()) / (sd if sd > 0 else 1.0))[:, None]


def _ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float = 1e-4) -> np.ndarray:
    """Weighted least squares with a tiny ridge (mice's ``ridge = 1e-5`` analogue)."""
    xtw = x.T * w
    return np.linalg.solve(xtw @ x + alpha * np.eye(x.shape[1]), xtw @ y)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return None
    return v.item() if isinstance(v, np.generic) else v

"""Train/test splits.

Respondent splits (hold-out and k-fold) divide the *people*: group items built from the
two halves of a survey then answer "how well does a model trained on these respondents
predict the groups' answers among other respondents?", and the sampling-noise floor of
the test half says how close any model can get.

Unseen-question, unseen-group and unseen-survey splits of item sets (SubPOP, Cao et al.)
split *items* by question id / group / source, never by row, so that no test question
leaks into training. They refuse a test question whose id or exact text (case and spacing
aside) is also in training, and warn (:class:`~surveylm.errors.LeakageWarning`) when its
wording nearly duplicates a training question's: the Jaccard similarity of the two texts'
word sets (token-set similarity, as used for near-duplicate detection since Broder 1997)
above a threshold. Items of one battery — texts that share a stem ending in "?" or ":" and
go on with different item text ("How much do you trust ...? Congress" / "...? The
presidency") — are different questions, so for them only the item texts are compared.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from surveylm.errors import ConfigError, DataError, LeakageWarning, preview, shorten
from surveylm.items import ItemSet
from surveylm.survey import Survey

#: Default word-set (Jaccard) similarity above which a test question's text counts as a
#: near-duplicate of a training question's.
NEAR_DUPLICATE_THRESHOLD = 0.8


def _shuffled_strata(
    survey: Survey, stratify: str | None, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Respondent positions of each stratum (answers to ``stratify``; unanswered = its own
    stratum; everyone when ``None``), each in a random order."""
    strata = survey.codes(stratify) if stratify else np.zeros(survey.n_respondents, int)
    for s in np.unique(strata):
        yield rng.permutation(np.flatnonzero(strata == s))


def split_respondents(
    survey: Survey,
    test_fraction: float = 0.5,
    *,
    seed: int = 0,
    stratify: str | None = None,
) -> tuple[Survey, Survey]:
    """Split respondents at random into a training and a test survey.

    Args:
        survey: The survey to split.
        test_fraction: Share of respondents in the test part, in (0, 1).
        seed: Random seed.
        stratify: Optional question id; its answer shares are kept equal in both parts
            (unanswered respondents form their own stratum).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = np.zeros(survey.n_respondents, dtype=bool)
    for members in _shuffled_strata(survey, stratify, rng):
        test[members[: round(test_fraction * len(members))]] = True
    if test.all() or not test.any():
        raise DataError(f"survey of {survey.n_respondents} respondents is too small to split")
    return survey.subset(~test), survey.subset(test)


def kfold_respondents(
    survey: Survey, k: int = 5, *, seed: int = 0, stratify: str | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_mask, test_mask)`` for k folds of respondents (stratified if asked)."""
    if k < 2 or k > survey.n_respondents:
        raise DataError(f"k must be between 2 and the number of respondents, got {k}")
    rng = np.random.default_rng(seed)
    fold = np.empty(survey.n_respondents, dtype=int)
    for members in _shuffled_strata(survey, stratify, rng):
        offset = int(rng.integers(k))
        fold[members] = (np.arange(len(members)) + offset) % k
    for f in range(k):
        test = fold == f
        yield ~test, test


def split_items_by_question(
    items: ItemSet,
    test_questions: Sequence[str],
    *,
    near_duplicate_threshold: float | None = NEAR_DUPLICATE_THRESHOLD,
) -> tuple[ItemSet, ItemSet]:
    """Unseen-question split: all items of ``test_questions`` go to the test set.

    Args:
        items: The item set to split.
        test_questions: Question ids held out for testing.
        near_duplicate_threshold: Warn (:class:`LeakageWarning`) when a test question's
            word-set similarity to a training question exceeds this; ``None`` or ``1.0``
            turns the check off.

    Raises:
        DataError: a test question id is unknown, or a test question's text is identical
            to a training question's text (a leak under another id).
    """
    test_questions = list(test_questions)
    unknown = [q for q in test_questions if q not in items.question_ids]
    if unknown:
        raise DataError(f"test questions not in the item set: {preview(unknown)}")
    is_test = items.frame["question_id"].isin(test_questions).to_numpy()
    train, test = items.subset(~is_test), items.subset(is_test)
    _check_leaks(train, test, near_duplicate_threshold)
    return train, test


def split_items_by_group(items: ItemSet, test_groups: Sequence[str]) -> tuple[ItemSet, ItemSet]:
    """Unseen-group split: all items of ``test_groups`` (group labels) go to the test set."""
    test_groups = list(test_groups)
    known = set(items.frame["group"].dropna())
    unknown = [g for g in test_groups if g not in known]
    if unknown:
        raise DataError(f"test groups not in the item set: {preview(unknown)}")
    is_test = items.frame["group"].isin(test_groups).to_numpy()
    return items.subset(~is_test), items.subset(is_test)


def split_items_by_source(
    items: ItemSet,
    test_sources: Sequence[str],
    *,
    near_duplicate_threshold: float | None = NEAR_DUPLICATE_THRESHOLD,
) -> tuple[ItemSet, ItemSet]:
    """Unseen-survey split: train on some sources (surveys), test on the others.

    Refuses when a test question's text also appears in a training survey; warns on
    near-duplicate wordings (``near_duplicate_threshold`` as in
    :func:`split_items_by_question`).
    """
    test_sources = list(test_sources)
    unknown = [s for s in test_sources if s not in set(items.frame["source"])]
    if unknown:
        raise DataError(f"test sources not in the item set: {preview(unknown)}")
    is_test = items.frame["source"].isin(test_sources).to_numpy()
    train, test = items.subset(~is_test), items.subset(is_test)
    _check_leaks(train, test, near_duplicate_threshold)
    return train, test


def crossed_split(
    items: ItemSet,
    test_questions: Sequence[str],
    test_groups: Sequence[str],
    *,
    near_duplicate_threshold: float | None = NEAR_DUPLICATE_THRESHOLD,
) -> dict[str, ItemSet]:
    """Cao et al.'s (2025) crossing of seen/unseen questions × seen/unseen groups.

    Training items are those of seen questions *and* seen groups; the four test cells are
    ``seen_q/seen_g`` (empty unless items are also split by respondents), ``seen_q/unseen_g``,
    ``unseen_q/seen_g`` and ``unseen_q/unseen_g``. Leak checks as in
    :func:`split_items_by_question`.
    """
    q_test = items.frame["question_id"].isin(list(test_questions)).to_numpy()
    g_test = items.frame["group"].isin(list(test_groups)).to_numpy()
    parts = {
        "train": items.subset(~q_test & ~g_test),
        "seen_q/unseen_g": items.subset(~q_test & g_test),
        "unseen_q/seen_g": items.subset(q_test & ~g_test),
        "unseen_q/unseen_g": items.subset(q_test & g_test),
    }
    _check_leaks(parts["train"], items.subset(q_test), near_duplicate_threshold)
    return parts


def text_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the word sets of two question texts (case-folded ``\\w+``
    tokens). Items of one battery (a shared stem ending in "?" or ":", then different item
    text) are compared on their item texts only."""
    a, b = _battery_items(a, b)
    wa, wb = set(re.findall(r"\w+", a)), set(re.findall(r"\w+", b))
    union = wa | wb
    return len(wa & wb) / len(union) if union else 1.0


def _battery_items(a: str, b: str) -> tuple[str, str]:
    """The item texts after a shared "stem? " / "stem: " prefix, else the whole texts
    (case-folded, spacing normalised)."""
    a, b = " ".join(a.casefold().split()), " ".join(b.casefold().split())
    pairs = enumerate(zip(a, b, strict=False))
    shared = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    stem_ends = [m.end() for m in re.finditer(r"[?:] ", a[:shared])]
    return (a[stem_ends[-1] :], b[stem_ends[-1] :]) if stem_ends else (a, b)


def _check_leaks(train: ItemSet, test: ItemSet, near_duplicate_threshold: float | None) -> None:
    _refuse_text_leaks(train, test)
    if near_duplicate_threshold is None:
        return
    if not 0.0 < near_duplicate_threshold <= 1.0:
        raise ConfigError(
            f"near_duplicate_threshold must be in (0, 1] or None, got {near_duplicate_threshold}"
        )
    for q in test.question_ids:
        text = test.questions[q].text
        scores = {t: text_similarity(text, train.questions[t].text) for t in train.question_ids}
        twin = max(scores, key=scores.__getitem__, default=None)
        if twin is not None and scores[twin] > near_duplicate_threshold:
            warnings.warn(
                f"test question '{q}' ({shorten(text, 60)!r}) nearly duplicates training question "
                f"'{twin}' ({shorten(train.questions[twin].text, 60)!r}): word-set similarity "
                f"{scores[twin]:.2f} > {near_duplicate_threshold}; if it is the same question "
                "reworded, it leaks into training (near_duplicate_threshold=None silences this)",
                LeakageWarning,
                stacklevel=4,
            )


def _refuse_text_leaks(train: ItemSet, test: ItemSet) -> None:
    train_texts = {train.questions[q].text.strip().lower(): q for q in train.question_ids}
    for q in test.question_ids:
        twin = train_texts.get(test.questions[q].text.strip().lower())
        if twin is not None or q in train.question_ids:
            raise DataError(
                f"test question '{q}' also appears in training (as '{twin or q}'): it would "
                "leak into training"
            )

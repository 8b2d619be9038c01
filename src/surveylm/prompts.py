"""Prompt formats: how an item (question × context) becomes text ending where the answer
letter comes.

Formats are *data*: a :class:`PromptFormat` is a named set of templates, so a new
format is a new instance, not new code. Every format renders

    [context] ... question ... lettered options ... answer cue

and ends exactly where the model's answer letter would come (``Answer:`` or ``(``), so
the answer can be read off the next-token distribution in one forward pass (see
DESIGN.md, "Reading an answer off a causal LM").

Group formats (context = a subpopulation, ``{attribute: [values]}``):

* ``qa``, ``bio``, ``portray`` — the three steering formats of OpinionQA
  (Santurkar et al. 2023) used by SubPOP (Suh et al. 2025);
* ``country`` — Cao et al. 2025's "How would someone from {country} answer ..." format.

Respondent formats (context = one respondent's features, ``{feature: value}``):

* ``profile`` — the GLES study's format (Holtdirk et al. 2025): one ``feature: value``
  line per feature, then the question;
* ``persona`` — the same features as one persona sentence;
* ``classify`` — the GLES classification set-up of Holtdirk et al. 2025: the options are
  listed by name, not lettered, and each is read off the probability of its own first
  token ("label first tokens"); for a chat model the answer is the assistant's first
  token.

Every format serves base models (plain text) and chat models alike: a chat model gets
the rendered prompt as its user turn, through its chat template with the generation
prompt (:func:`apply_chat_template`), so the answer is the assistant's first token.

Options are lettered A., B., ... in codebook order (numbers past 26). Because LMs
favour early letters ("A-bias", documented by Dominguez-Olmedo et al. 2024 and Cao et al.
2025), an option order can be permuted; :func:`option_orders` gives the orders that
permutation averaging uses at predict time.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from surveylm.errors import ConfigError, DataError, preview, where
from surveylm.survey import Question

__all__ = [
    "FORMATS",
    "PromptFormat",
    "apply_chat_template",
    "context_entry",
    "default_format",
    "get_format",
    "option_labels",
    "option_letters",
    "option_orders",
    "render_item",
    "render_prompt",
]


@dataclass(frozen=True)
class PromptFormat:
    """A named prompt format: templates only, no code.

    Attributes:
        name: Registry name (``"qa"``, ``"profile"``...).
        kind: ``"group"`` or ``"respondent"`` — the item kind it was written for (any
            format renders any context; this picks the default).
        template: The whole prompt. Placeholders: ``{context}`` (the rendered context
            entries), ``{attributes}`` (the context labels, e.g. "age and education"),
            ``{question}`` (the target question's text), ``{options}`` (the lettered
            options). It must end with the answer cue.
        context_item: One context entry. Placeholders: ``{label}`` (the feature's label),
            ``{value}`` (its value; several group values joined by " or "),
            ``{question}`` / ``{options}`` / ``{answer}`` (the feature's own question,
            its lettered options and the letter(s) of the value — for the QA format).
        context_joiner: Between context entries.
        context_last_joiner: Between the last two entries (``" and "`` in sentences).
        option_line: One option: ``{letter}`` and ``{option}``.
        option_joiner: Between options.
        labels: What the answer is read off: ``"letters"`` (the option letters, one
            token each) or ``"options"`` (the first token of each option's own text,
            as in Holtdirk et al. 2025's classification).
        citation: Where the format comes from.
    """

    name: str
    kind: Literal["group", "respondent"]
    template: str
    context_item: str = "{label}: {value}"
    context_joiner: str = "\n"
    context_last_joiner: str | None = None
    option_line: str = "{letter}. {option}"
    option_joiner: str = "\n"
    labels: Literal["letters", "options"] = "letters"
    citation: str = ""

    @property
    def answer_cue(self) -> str:
        """The text the prompt ends with (the answer letter comes right after it)."""
        return self.template[self.template.rfind("\n") + 1 :]


_QUESTION_BLOCK = "Question: {question}\n{options}\nAnswer:"

#: The built-in formats, by name.
FORMATS: dict[str, PromptFormat] = {
    f.name: f
    for f in [
        PromptFormat(
            name="qa",
            kind="group",
            template="{context}\n\nAnswer the following question keeping in mind your "
            "previous answers.\n" + _QUESTION_BLOCK,
            context_item="Question: {question}\n{options}\nAnswer: {answer}",
            context_joiner="\n\n",
            citation="OpinionQA QA steering (Santurkar et al. 2023), as used by SubPOP "
            "(Suh et al. 2025)",
        ),
        PromptFormat(
            name="bio",
            kind="group",
            template="Below you will be asked to provide a short description of your "
            "{attributes} and then answer some questions.\nDescription: {context}\n\n"
            + _QUESTION_BLOCK,
            context_item="My {label} is {value}.",
            context_joiner=" ",
            citation="OpinionQA BIO steering (Santurkar et al. 2023), as used by SubPOP "
            "(Suh et al. 2025)",
        ),
        PromptFormat(
            name="portray",
            kind="group",
            template="Answer the following question as if {context}.\n" + _QUESTION_BLOCK,
            context_item="your {label} were {value}",
            context_joiner=", ",
            context_last_joiner=" and ",
            citation="OpinionQA PORTRAY steering (Santurkar et al. 2023), as used by SubPOP "
            "(Suh et al. 2025)",
        ),
        PromptFormat(
            name="country",
            kind="group",
            template="How would someone from {context} answer the following question:\n"
            "{question}\nHere are the options:\n{options}\n"
            "If had to select one of the options, my answer would be (",
            context_item="{value}",
            context_joiner=", ",
            context_last_joiner=" and ",
            option_line="({letter}){option}",
            citation="Cao et al. 2025 (first-token probabilities, WVS/Pew countries)",
        ),
        PromptFormat(
            name="profile",
            kind="respondent",
            template="{context}\n\n" + _QUESTION_BLOCK,
            citation="GLES imputation study (Holtdirk et al. 2025): one 'feature: value' "
            "line per feature, then the question",
        ),
        PromptFormat(
            name="persona",
            kind="respondent",
            template="Imagine a survey respondent whose {context}. How would this person "
            "answer?\n" + _QUESTION_BLOCK,
            context_item="{label} is {value}",
            context_joiner=", whose ",
            context_last_joiner=" and whose ",
            citation="persona-sentence variant of the GLES profile format",
        ),
        PromptFormat(
            name="classify",
            kind="respondent",
            template="{context}\n\nQuestion: {question}\nAnswer with one of these "
            "options:\n{options}\nAnswer:",
            option_line="{option}",
            labels="options",
            citation="GLES vote-choice classification (Holtdirk et al. 2025): the profile, "
            "the options by name, each read off the probability of its first token",
        ),
    ]
}


def get_format(fmt: str | PromptFormat) -> PromptFormat:
    """Look up a format by name (a :class:`PromptFormat` is returned as is)."""
    if isinstance(fmt, PromptFormat):
        return fmt
    if fmt not in FORMATS:
        raise ConfigError(f"unknown prompt format '{fmt}': expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def default_format(kind: str) -> PromptFormat:
    """The default format for an item kind: ``qa`` for groups, ``profile`` for respondents."""
    return FORMATS["qa" if kind == "group" else "profile"]


def option_letters(k: int) -> list[str]:
    """Labels of ``k`` options: ``A``, ``B``, ... up to 26 options, ``1``, ``2``, ... beyond.

    Raises:
        DataError: fewer than 1 option.
    """
    if k < 1:
        raise DataError(f"need at least one option, got {k}")
    if k <= 26:
        return list(string.ascii_uppercase[:k])
    return [str(i + 1) for i in range(k)]


def option_orders(
    k: int, n: int = 1, *, seed: int = 0, scheme: Literal["cyclic", "random"] = "cyclic"
) -> list[np.ndarray]:
    """Option orders for permutation averaging (the first is always codebook order).

    ``order[j]`` is the option shown at position ``j`` (with letter ``j``).

    Args:
        k: Number of options.
        n: Number of orders.
        seed: Seed of the ``random`` scheme.
        scheme: ``cyclic`` — cyclic shifts, so with ``n = k`` every option appears at every
            position exactly once (a balanced design against position bias); ``random`` —
            seeded random permutations after the identity.

    Raises:
        ConfigError: ``n < 1``, or ``n > k`` with the cyclic scheme.
    """
    if n < 1:
        raise ConfigError(f"the number of option orders must be at least 1, got {n}")
    base = np.arange(k)
    if scheme == "cyclic":
        if n > k:
            raise ConfigError(f"{n} cyclic option orders requested but there are only {k} options")
        return [np.roll(base, -s) for s in range(n)]
    if scheme == "random":
        rng = np.random.default_rng(seed)
        return [base] + [rng.permutation(k) for _ in range(n - 1)]
    raise ConfigError(f"unknown permutation scheme '{scheme}': expected 'cyclic' or 'random'")


def option_labels(
    question: Question, fmt: str | PromptFormat, order: Sequence[int] | np.ndarray
) -> list[str]:
    """What the answer token is read off, for the option shown at each position: the
    letters ``A``, ``B``, ... or (``labels="options"``) the options' own texts."""
    fmt = get_format(fmt)
    if fmt.labels == "options":
        return [question.options[i] for i in order]
    return option_letters(len(order))


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " or ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _options_text(
    fmt: PromptFormat, options: Sequence[str], order: Sequence[int] | np.ndarray
) -> str:
    letters = option_letters(len(options))
    return fmt.option_joiner.join(
        fmt.option_line.format(letter=letters[j], option=options[i]) for j, i in enumerate(order)
    )


def _join(fmt: PromptFormat, parts: list[str]) -> str:
    if fmt.context_last_joiner is None or len(parts) < 2:
        return fmt.context_joiner.join(parts)
    return fmt.context_joiner.join(parts[:-1]) + fmt.context_last_joiner + parts[-1]


def context_entry(
    fmt: PromptFormat,
    key: str,
    value: Any,
    questions: Mapping[str, Question],
    labels: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``(label, text)`` of one context entry in ``fmt``: a question feature by its
    display label (and, in the QA format, its lettered answer), a covariate by its label
    in ``labels`` (the codebook's; see :attr:`surveylm.survey.Survey.covariate_labels`)
    or else its key."""
    q = questions.get(key)
    label = q.display_label if q is not None else (labels or {}).get(key, key)
    values = list(value) if isinstance(value, list | tuple) else [value]
    if q is not None:
        text, opts = q.text, _options_text(fmt, q.options, range(q.n_options))
        letters = option_letters(q.n_options)
        answer = " or ".join(
            letters[q.options.index(str(v))] if str(v) in q.options else str(v) for v in values
        )
    else:
        text, opts, answer = f"What is your {label}?", "", _value_text(value)
    entry = fmt.context_item.format(
        label=label, value=_value_text(value), question=text, options=opts, answer=answer
    )
    if not opts:  # a feature without a question has no option list to show
        entry = entry.replace("\n\n", "\n")
    return label, entry


def render_prompt(
    question: Question,
    context: Mapping[str, Any] | None,
    fmt: str | PromptFormat,
    permutation: Sequence[int] | np.ndarray | None = None,
    *,
    questions: Mapping[str, Question] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Render one item as plain text ending where the answer letter comes.

    Args:
        question: The target question.
        context: ``{feature: value}`` (respondent) or ``{attribute: [values]}`` (group);
            empty or ``None`` for no context (the ``{context}`` placeholder renders empty).
        fmt: A format name or :class:`PromptFormat`.
        permutation: Option order: ``permutation[j]`` is the option shown with letter
            ``j`` (default codebook order).
        questions: Questions of the context features, for labels and the QA format's
            lettered answers (features without a question render by their key).
        labels: Display names of covariates (features without a question), e.g.
            :func:`surveylm.items.feature_labels` of an item set.

    Raises:
        DataError: a permutation that is not a permutation of the options.
    """
    fmt = get_format(fmt)
    k = question.n_options
    order = np.arange(k) if permutation is None else np.asarray(permutation)
    if sorted(order.tolist()) != list(range(k)):
        raise DataError(
            f"{where(question=question.id)}option order {preview(order.tolist(), 8)} is not a "
            f"permutation of its {k} options"
        )
    entries = [context_entry(fmt, key, v, questions or {}, labels)
               for key, v in (context or {}).items()]  # fmt: skip
    shown = [lab for lab, _ in entries]
    text = fmt.template.format(
        context=_join(fmt, [e for _, e in entries]),
        attributes=" and ".join(shown) if shown else "background",
        question=question.text,
        options=_options_text(fmt, question.options, order),
    )
    return text.lstrip("\n")


def render_item(
    items: Any, i: int, fmt: str | PromptFormat | None = None, permutation: Any = None
) -> str:
    """Render item ``i`` of an :class:`~surveylm.items.ItemSet` (format default by kind)."""
    row = items.frame.iloc[i]
    fmt = default_format(row["kind"]) if fmt is None else fmt
    from surveylm.items import feature_labels

    return render_prompt(
        items.item_question(i), row["context"], fmt, permutation, questions=items.questions,
        labels=feature_labels(items),
    )  # fmt: skip


def apply_chat_template(tokenizer: Any, prompt: str, *, system: str | None = None) -> str:
    """Wrap a plain prompt in the tokenizer's chat template, with the generation prompt.

    The prompt becomes the user turn; the text ends where the assistant's reply begins,
    so its first token is the answer letter. Base models (no chat template) get the plain
    prompt instead — see :func:`surveylm.models.causal_lm` for the switch.
    """
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

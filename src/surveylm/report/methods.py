"""The report's methods section: what each method is, where it comes from, how it was run.

For every method of a run's configs: the registry model's one-line description and its
sources (:data:`CATALOGUE`), the prompt format a language model saw (its
``prompt_format`` parameter, else :func:`surveylm.prompts.default_format` for the item
kind), and its settings (the config's parameters, flattened), so the numbers can be
reproduced from the page alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

__all__ = ["CATALOGUE", "MULTIPLE_IMPUTATION", "ModelInfo", "method_rows", "methods_html"]


@dataclass(frozen=True)
class ModelInfo:
    """A registry model: one line on what it does and the work it comes from."""

    description: str
    source: str
    uses_prompt: bool = False


#: Registry name (:data:`surveylm.models.MODELS`) → description and sources.
CATALOGUE: dict[str, ModelInfo] = {
    "uniform": ModelInfo(
        "Every option equally likely: the no-information reference.",
        "Standard reference (e.g. Santurkar et al. 2023, OpinionQA).",
    ),
    "question-marginal": ModelInfo(
        "The question's answer distribution in the training data, the same for everyone.",
        "Marginal baseline (Santurkar et al. 2023; Suh et al. 2025, SubPOP).",
    ),
    "group-marginal": ModelInfo(
        "The group's own answer distribution in the training data, shrunk towards the "
        "question marginal (an unseen group or question gets the marginal); for "
        "respondents, the cell of their feature values (hot-deck style).",
        "Group-marginal baseline (Suh et al. 2025, SubPOP).",
    ),
    "training-data": ModelInfo(
        "The group distributions of a random fraction of the training respondents: what "
        "a smaller real survey would have said.",
        "Data-efficiency yardstick of Huang, Li & Shao (2025, DSA).",
    ),
    "logistic": ModelInfo(
        "Multinomial logistic regression on one-hot features.",
        "scikit-learn (Pedregosa et al. 2011).",
    ),
    "random-forest": ModelInfo(
        "Random forest on one-hot features; class probabilities from the trees' votes.",
        "Breiman 2001; scikit-learn (Pedregosa et al. 2011).",
    ),
    "catboost": ModelInfo(
        "Gradient-boosted trees with native categorical features.",
        "Prokhorenkova et al. 2018 (CatBoost).",
    ),
    "chained-equations": ModelInfo(
        "Multiple imputation by chained equations: each incomplete variable is imputed in "
        "turn from the others, iterated; the target's draws form the predictions.",
        "van Buuren & Groothuis-Oudshoorn 2011 (mice).",
    ),
    "encoder": ModelInfo(
        "Sentence-encoder answer model. Zero-shot: softmax over the cosine similarities of "
        "the prompt and each option text. Fitted: every context line ('Feature: value'), "
        "the question and each option are embedded once, and an option head over those "
        "embeddings, starting at the training marginal, is trained with forward KL "
        "(cross-entropy for respondents) and early-stopped on an inner validation split; "
        "the encoder stays frozen (train: head) or is fine-tuned (full / lora).",
        "Reimers & Gurevych 2019 (Sentence-BERT), all-MiniLM-L6-v2; profile lines as in "
        "Holtdirk et al. 2025 (respondents), forward KL as in Suh et al. 2025, SubPOP "
        "(groups).",
        uses_prompt=True,
    ),
    "causal-lm": ModelInfo(
        "A causal language model's next-token probabilities of the option letters, "
        "zero-shot or fine-tuned (LoRA) on the answer distributions.",
        "Suh et al. 2025 (SubPOP); Cao et al. 2025 (first-token probabilities).",
        uses_prompt=True,
    ),
    "blend": ModelInfo(
        "Linear pool of two answer models, the weight chosen on an 11-point grid by "
        "cross-entropy on an inner validation split; both parts refitted on all items.",
        "Stone 1961 (linear opinion pool); LM beside CatBoost as compared by Holtdirk et "
        "al. 2025.",
    ),
    "dsa": ModelInfo(
        "Distribution shift alignment: stage 1 fine-tunes the backend with forward KL to "
        "each group's distribution; stage 2 adds a loss on how answers shift between "
        "groups of one question (our reading: the paper's exact loss is not public).",
        "Huang, Li & Shao 2025 (DSA).",
        uses_prompt=True,
    ),
}

#: How the Rubin intervals of the target-share estimates are made.
MULTIPLE_IMPUTATION = (
    "Vote-share intervals: m completed datasets are drawn from each method's predicted "
    "distributions and pooled by Rubin's rules (Rubin 1987), with the small-sample degrees "
    "of freedom of Barnard & Rubin (1999)."
)


#: Parameters that change what is printed or saved, not the numbers: left out.
_COSMETIC = {"progress", "logging_steps", "save_every_epoch"}


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in _COSMETIC:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def settings_text(params: Mapping[str, Any]) -> str:
    """The parameters as ``key=value`` pairs (nested keys dotted; display-only ones such
    as ``progress`` left out); ``defaults`` if none."""
    flat = _flat(params or {})
    return ", ".join(f"{k}={v}" for k, v in flat.items()) if flat else "defaults"


def used_format(model: str, params: Mapping[str, Any], kind: str) -> Any:
    """The :class:`~surveylm.prompts.PromptFormat` a language model used (``None`` for
    models without a prompt, or a format name that is not built in)."""
    info = CATALOGUE.get(model)
    if info is None or not info.uses_prompt:
        return None
    from surveylm.errors import ConfigError
    from surveylm.prompts import default_format, get_format

    fmt = params.get("prompt_format")
    if model == "dsa":
        fmt = (params.get("backend_params") or {}).get("prompt_format", fmt)
    try:
        return default_format(kind) if fmt in (None, "auto") else get_format(fmt)
    except ConfigError:
        return None


def _encoder_side(model: str, params: Mapping[str, Any]) -> bool:
    return model == "encoder" or (model == "dsa" and params.get("backend", "encoder") == "encoder")


def prompt_format_name(model: str, params: Mapping[str, Any], kind: str) -> str:
    """The prompt format a language model used (``—`` without one); its template and
    source are listed once, below the methods table."""
    chosen = used_format(model, params, kind)
    if chosen is None:
        return "—"
    fmt = params.get("prompt_format") or (params.get("backend_params") or {}).get("prompt_format")
    label = (
        chosen.name if fmt not in (None, "auto") else f"{chosen.name} (default for {kind} items)"
    )
    if chosen.citation:
        label += f": {chosen.citation}"
    if _encoder_side(model, params):
        label += ("; encoder zero-shot: context and question only, options embedded as "
                  "texts; fitted: one text per context line, question and option")
    return label


def method_rows(section_config: Mapping[str, Any], kind: str) -> list[dict[str, str]]:
    """One row per configured method: name, model, description, source, prompt format,
    settings (``fit: false`` is shown as zero-shot)."""
    rows = []
    for m in section_config.get("methods") or []:
        model = str(m.get("model", ""))
        info = CATALOGUE.get(model, ModelInfo("(not in the catalogue)", "—"))
        params = dict(m.get("params") or {})
        settings = settings_text(params)
        if m.get("fit") is False:
            settings = "zero-shot (not fitted); " + settings
        rows.append({
            "method": str(m.get("name", model)),
            "model": model,
            "description": info.description,
            "source": info.source,
            "prompt": prompt_format_name(model, params, kind),
            "settings": settings,
        })  # fmt: skip
    return rows


def methods_html(section_config: Mapping[str, Any], kind: str) -> Markup:
    """The rows of :func:`method_rows` as an HTML table (``templates/methods_table.html.j2``,
    escaped)."""
    from surveylm.report.html import ENV

    table = ENV.get_template("methods_table.html.j2").module.methods_table  # type: ignore[attr-defined]
    return Markup(table(method_rows(section_config, kind)))

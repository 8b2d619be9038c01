"""A learned option head over sentence embeddings, starting at the training marginal.

For an item with context lines ``l_1..l_L`` (a respondent's ``Feature: value`` lines or
a group's attributes), question ``q`` and options ``o_1..o_K``, with ``e(·)`` the
(frozen or fine-tuned) sentence embedding::

    c        = Σ_l  W_line e(l)                                   context, additive in lines
    h        = W_lin c + W_out GELU(W_mix GELU(c))                 linear + interaction paths
    u_k      = W_opt [e(o_k); e(q); e(o_k) ⊙ e(q); position_k]     option-in-question
    score_k  = log m_q(k) + ⟨h, u_k⟩ / √H + π(u_k) + s · Σ_l T[l, (q, k)]

``T`` is a table with one entry per (training line, training question option), zero
at the start and for any line or option not seen in training: the indicator path, a
multinomial logistic regression on the codebook labels beside the text path. The text
path carries what the encoder knows across lines, but a sentence encoder puts the values
of one feature close together ("…: Very important" and "…: Somewhat important" share
most of their embedding), so a fit that is early-stopped or regularised in embedding
space barely separates them. On one 2-fold split of the masculinity survey a logistic
regression on summed line embeddings reached .542 accuracy / .961 log loss at its best
``C``, one on line indicators .559 / .941. Over 2 x 2 folds the head without ``T`` reached
.528 / .968 (one fold at the majority class), with it .571 / .933, CatBoost .586 / .929; on
ANES, where the profile lines differ more, both are .89 / .32, and ``s`` = 3, 10 or 30 give
the same within noise on both surveys
(``benchmarks/encoder_ablations.py --variants default,no-table,table-scale-3``). The
table enters the scores directly (no zero-initialised layer in front of it, so its
gradient is there from the first step), scaled by ``s`` (:data:`TABLE_SCALE`) so that
Adam at the head's learning rate moves it as fast as a logistic regression's
coefficients need.

``log m_q`` is the question's training marginal (uniform for a question not seen in
training) and ``π`` a learned prior from the option's text and position, which is what
an unseen question gets. ``W_lin``, ``W_out`` and ``π``'s last layer start at zero, so
an untrained head *is* the marginal: a fit can only move away from it where the
validation loss says it helps (DESIGN.md, "Fitting"; the residual-on-a-baseline idea of
Holtdirk et al. 2025's comparison with CatBoost, who start at the marginal as well).

The context enters through the option embeddings, so what the encoder knows — that
"Party identification: Strong Republican" goes with "Bob Dole, the Republican" — carries
to options and questions the head never saw; the lines are added, so each distinct line
acts like a learned feature (as in a logistic regression on the codebook labels), and
the ``W_mix`` path adds interactions (as a boosted tree would).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["POSITION_FEATURES", "EncoderHeadScorer", "HeadCollator", "OptionHead", "pool"]

#: ``s`` of the module docstring: Adam's step on a score is the learning rate times the
#: scale of the parameter's path, so the table moves ``s`` times the head's rate.
TABLE_SCALE = 10.0

#: Number of option position features (:func:`surveylm.models.item_texts.option_positions`).
POSITION_FEATURES = 4


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Sentence-transformers pooling (mean / cls / max over real tokens), L2-normalised."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "max":
        pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
    else:
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
    return nn.functional.normalize(pooled.float(), dim=-1)


class OptionHead(nn.Module):
    """The head of the module docstring.

    Args:
        dim: Embedding width ``D``.
        hidden: Width ``H`` of the context and option vectors.
        dropout: Dropout on the context vector while training.
        n_lines: Number of training lines of the table ``T``.
        n_options: Number of training (question, option) pairs of the table ``T``.
    """

    def __init__(
        self, dim: int, hidden: int = 128, dropout: float = 0.1, n_lines: int = 0,
        n_options: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.dim, self.hidden, self.n_lines, self.n_options = dim, hidden, n_lines, n_options
        self.line = nn.Linear(dim, hidden)
        # row / column 0: a line / option not seen in training (and padding); masked out
        self.table = nn.Parameter(torch.zeros(n_lines + 1, n_options + 1))
        self.mix = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.linear = nn.Linear(hidden, hidden, bias=False)
        self.option = nn.Linear(3 * dim + POSITION_FEATURES, hidden)
        self.prior_hidden = nn.Linear(hidden, hidden)
        self.prior = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.out, self.linear, self.prior):  # start at the marginal
            nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(
        self,
        emb: torch.Tensor,
        line_index: torch.Tensor,
        question_index: torch.Tensor,
        option_index: torch.Tensor,
        option_position: torch.Tensor,
        log_prior: torch.Tensor,
        line_vocab_index: torch.Tensor | None = None,
        option_vocab_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Option scores ``[B, K]`` (log-probabilities up to a constant per row).

        Args:
            emb: ``[U, D]`` embeddings of the batch's distinct texts (unit norm).
            line_index: ``[B, L]`` rows of ``emb`` of each item's context lines, -1 padded.
            question_index: ``[B]`` row of each item's question.
            option_index: ``[B, K]`` rows of each item's options, -1 padded.
            option_position: ``[B, K, 4]`` position features.
            log_prior: ``[B, K]`` log marginal (0 = uniform), 0 on padding.
            line_vocab_index: ``[B, L]`` table rows of the lines (0 = unknown, padding).
            option_vocab_index: ``[B, K]`` table columns of the options (0 = unknown);
                either ``None`` = no table term.
        """
        x = emb * math.sqrt(self.dim)  # unit-variance components for the default init
        lmask = (line_index >= 0).unsqueeze(-1).to(x.dtype)
        c = (self.line(x[line_index.clamp(min=0)]) * lmask).sum(dim=1)  # [B, H]
        c = self.dropout(c)
        h = self.linear(c) + self.out(nn.functional.gelu(self.mix(nn.functional.gelu(c))))
        e_q = x[question_index].unsqueeze(1)  # [B, 1, D]
        e_o = x[option_index.clamp(min=0)]  # [B, K, D]
        u = self.option(torch.cat([e_o, e_q.expand_as(e_o), e_o * e_q / math.sqrt(self.dim),
                                   option_position.to(x.dtype)], dim=-1))  # fmt: skip
        prior = self.prior(nn.functional.gelu(self.prior_hidden(u))).squeeze(-1)
        scores = log_prior + torch.einsum("bh,bkh->bk", h, u) / math.sqrt(self.hidden) + prior
        if line_vocab_index is not None and option_vocab_index is not None:
            rows, cols = line_vocab_index.unsqueeze(-1), option_vocab_index.unsqueeze(1)
            known = ((rows > 0) & (cols > 0)).to(scores.dtype)  # [B, L, K]
            scores = scores + TABLE_SCALE * (self.table[rows, cols] * known).sum(dim=1)
        return scores.masked_fill(option_index < 0, 0.0)


class HeadCollator:
    """Gathers a batch's distinct texts and maps every index to a row of them.

    With ``token_ids`` (the encoder trains) the batch carries the texts' tokens
    (``text_input_ids`` / ``text_attention_mask``, right-padded); without (frozen encoder)
    it carries their global ids (``text_ids``) into the scorer's embedding table.

    Args:
        token_ids: Token ids of every text in the table, or ``None``.
        pad_id: Padding token id.

    Prior dropout (hiding an item's prior while training) is the dataset's
    (``surveylm.models.encoder._ItemRows``), which knows what replaces the prior.
    """

    def __init__(
        self,
        token_ids: Sequence[Sequence[int]] | None,
        pad_id: int = 0,
    ) -> None:
        self.token_ids = token_ids
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        used: dict[int, int] = {}

        def local(t: int) -> int:
            pos = used.get(t)
            if pos is None:
                pos = used[t] = len(used)
            return pos

        n = len(batch)
        n_lines = max(1, max(len(b["lines"]) for b in batch))
        k_max = max(len(b["options"]) for b in batch)
        line_index = torch.full((n, n_lines), -1, dtype=torch.long)
        vocab_index = torch.zeros((n, n_lines), dtype=torch.long)
        option_vocab = torch.zeros((n, k_max), dtype=torch.long)
        option_index = torch.full((n, k_max), -1, dtype=torch.long)
        question_index = torch.zeros(n, dtype=torch.long)
        position = torch.zeros((n, k_max, 4), dtype=torch.float32)
        prior = torch.zeros((n, k_max), dtype=torch.float32)
        targets = torch.zeros((n, k_max), dtype=torch.float32)
        for i, b in enumerate(batch):
            for j, t in enumerate(b["lines"]):
                line_index[i, j] = local(t)
            if b.get("line_vocab"):
                vocab_index[i, : len(b["line_vocab"])] = torch.as_tensor(b["line_vocab"])
            question_index[i] = local(b["question"])
            k = len(b["options"])
            if b.get("option_vocab"):
                option_vocab[i, :k] = torch.as_tensor(b["option_vocab"])
            option_index[i, :k] = torch.as_tensor([local(t) for t in b["options"]])
            position[i, :k] = torch.as_tensor(b["position"], dtype=torch.float32)
            prior[i, :k] = torch.as_tensor(b["log_prior"], dtype=torch.float32)
            if b.get("target") is not None:
                targets[i, :k] = torch.as_tensor(np.asarray(b["target"], dtype=np.float32))
        out = {
            "line_index": line_index, "line_vocab_index": vocab_index,
            "option_vocab_index": option_vocab, "question_index": question_index,
            "option_index": option_index, "option_position": position, "log_prior": prior,
            "targets": targets, "option_mask": option_index >= 0,
            "item_weights": torch.tensor([b.get("weight", 1.0) for b in batch],
                                         dtype=torch.float32),
        }  # fmt: skip
        ids = list(used)
        if self.token_ids is None:
            out["text_ids"] = torch.as_tensor(ids, dtype=torch.long)
        else:
            seqs = [self.token_ids[t] for t in ids]
            width = max(len(s) for s in seqs)
            tok = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for j, s in enumerate(seqs):
                tok[j, : len(s)] = torch.as_tensor(s, dtype=torch.long)
                mask[j, : len(s)] = 1
            out["text_input_ids"], out["text_attention_mask"] = tok, mask
        return out


class EncoderHeadScorer(nn.Module):
    """Embeds a batch's texts (frozen table or trainable encoder) and applies the head.

    Args:
        head: The :class:`OptionHead` (its parameters are named ``head.*``).
        encoder: A transformers encoder, trained with the head; ``None`` = frozen, with
            the embeddings in ``table``.
        table: ``[T, D]`` precomputed embeddings of every text (frozen mode).
        pooling: Pooling of the encoder's token states.
    """

    table: torch.Tensor  # a buffer (register_buffer), declared for type checkers

    def __init__(
        self,
        head: OptionHead,
        encoder: nn.Module | None = None,
        table: torch.Tensor | None = None,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.head = head
        self.encoder = encoder
        self.pooling = pooling
        self.register_buffer("table", table if table is not None else torch.empty(0),
                             persistent=False)  # fmt: skip

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised embeddings of token sequences (needs the encoder)."""
        assert self.encoder is not None
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return pool(hidden.last_hidden_state, attention_mask, self.pooling)

    def forward(
        self,
        line_index: torch.Tensor,
        question_index: torch.Tensor,
        option_index: torch.Tensor,
        option_position: torch.Tensor,
        log_prior: torch.Tensor,
        line_vocab_index: torch.Tensor | None = None,
        option_vocab_index: torch.Tensor | None = None,
        text_ids: torch.Tensor | None = None,
        text_input_ids: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Option scores ``[B, K]`` (see :class:`OptionHead`)."""
        if text_ids is not None:
            emb = self.table[text_ids]
        else:
            assert text_input_ids is not None and text_attention_mask is not None
            emb = self.embed(text_input_ids, text_attention_mask)
        return self.head(emb, line_index, question_index, option_index, option_position, log_prior,
                         line_vocab_index, option_vocab_index)

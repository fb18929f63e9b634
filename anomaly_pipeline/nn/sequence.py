"""Next-event model over a user-day's ordered behaviour sequence: what happens next, and when.

Model
-----
Each step sees the previous event (its type, the log time gap before it, whether it changed
category) and predicts the next event in three parts, factorised by the chain rule::

    p(event_t | past) = p(type_t | h_t) · p(gap bin_t | h_t, type_t) · p(change_t | h_t, type_t)

* ``type`` — softmax over event types;
* ``gap bin`` — softmax over ``gap_bins`` equal-width bins of the log gap on
  ``[0, MAX_LOG_GAP]`` (a within-day gap never exceeds a day). A categorical rather than a
  Gaussian or Laplace density because real gaps are multi-modal (seconds between clicks, hours
  between sessions, exactly 0 before the day's first event), and because a probability mass
  keeps all three parts in the same unit (nats), so they add up and compare;
* ``change`` — Bernoulli on whether the event switches category.

The gap and change heads also see the event's own type: those marks depend on it (a login never
changes category; a purchase follows its cart within seconds).

Training minimises the mean event NLL (the sum of the three parts) over the batch's real
events. The output biases start at the log marginal frequencies of the training data
(``init_output_priors``): from the first step a rare type, gap or switch already costs more than
a common one, and the network only has to learn the context-dependent part.

Score: a typicality test, not the mean NLL
------------------------------------------
The mean NLL flags *surprising* rows (impossible orders, odd timing) but calls *too predictable*
rows normal: a click bot alternating view/click every ~3 s sits in the mode of every predicted
distribution, so its NLL is lower than a real shopper's (on simulated data it ranked click bots
below nearly every normal user-day). Both directions are anomalous, so the score asks how far a
row's surprisal is from what the model itself expects. For each part k, summed over the row's real
events t::

    z_k = Σ_t (NLL_kt − H_kt) / sqrt(Σ_t V_kt)

where H and V are the entropy and the variance of −log p under the predicted distribution at t
(closed form for a categorical). For a row drawn from the model the numerator is a sum of
martingale differences, so each z_k is about standard normal whatever the row's length; an
unusual row gives z_k ≫ 0, a machine-regular one z_k ≪ 0. The score is ``Σ_k z_k²`` (about
χ²(3) for ordinary rows): parts are squared separately so a surprising part cannot cancel an
over-predictable one (a scraper's views are very predictable, its gaps very surprising).

Inputs are right-padded with token 0 (the detector wrapper guarantees it); a start token is
prepended so the first real event is predicted too, and padding is masked out of the loss and
the score. Both encoders are causal, so padding after a sequence never influences it.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from anomaly_pipeline.nn.loss_module import LossModule

ENCODERS: Final[tuple[str, ...]] = ("gru", "transformer")
#: Upper edge of the gap bins: ``log1p`` of a day in seconds. Gaps are within one user-day, so
#: every real gap falls below it; larger values (malformed input) land in the last bin.
MAX_LOG_GAP: Final[float] = math.log1p(86_400.0)
#: Pseudo-count added to every class when estimating the marginal priors, so a class unseen in
#: the training data gets a finite (large) cost instead of an infinite one.
_PRIOR_PSEUDO_COUNT: Final[float] = 1.0
#: Floor of a row's summed surprisal variance (nats²): a row whose every prediction is near
#: certain would otherwise divide its (also near-zero) excess surprisal by ~0.
_MIN_SURPRISAL_VARIANCE: Final[float] = 1e-3


class EventSurprisal(NamedTuple):
    """Per-event, per-part (type, gap bin, category change) surprisal of a batch."""

    #: −log p of the observed value, B × L × 3.
    nll: torch.Tensor
    #: Expected −log p under the predicted distribution (its entropy), B × L × 3.
    entropy: torch.Tensor
    #: Variance of −log p under the predicted distribution, B × L × 3.
    variance: torch.Tensor
    #: True on real (unpadded) events, B × L.
    mask: torch.Tensor


class _SinusoidalPositions(nn.Module):
    """Fixed sin/cos position encoding, defined for any sequence length."""

    frequencies: torch.Tensor  # buffer, registered in __init__

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer(
            "frequencies",
            torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim)),
            persistent=False,
        )
        self.dim = dim

    def forward(self, length: int) -> torch.Tensor:
        angles = (
            torch.arange(length, device=self.frequencies.device, dtype=torch.float32)[:, None]
            * self.frequencies
        )
        table = torch.zeros(length, self.dim, device=angles.device)
        table[:, 0::2] = torch.sin(angles)
        table[:, 1::2] = torch.cos(angles)[:, : self.dim // 2]
        return table


class NextEventModule(LossModule):
    """Causal GRU or Transformer encoder with next-event type, gap-bin and category-change heads.

    Token ids: 0 = padding, 1…``n_event_types`` = event types; ``n_event_types + 1`` is the start
    token. Batches are ``(tokens long[B, L], log_gaps float[B, L], category_change float[B, L])``.
    """

    gap_edges: torch.Tensor  # buffer, registered in __init__

    def __init__(
        self,
        n_event_types: int,
        encoder: str,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        learning_rate: float,
        gap_bins: int,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if encoder == "transformer" and hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                f"({num_heads}) for the transformer encoder"
            )
        if gap_bins < 2:
            raise ValueError(f"gap_bins must be at least 2, got {gap_bins}")
        self.n_event_types = n_event_types
        self.start_token = n_event_types + 1
        self.learning_rate = learning_rate
        self.gap_bins = gap_bins
        # Interior edges only: bucketize then maps [0, w) → 0 … [MAX − w, ∞) → gap_bins − 1.
        self.register_buffer(
            "gap_edges", torch.linspace(0.0, MAX_LOG_GAP, gap_bins + 1)[1:-1], persistent=False
        )
        self.embedding = nn.Embedding(n_event_types + 2, embed_dim, padding_idx=0)
        self.input_projection = nn.Linear(embed_dim + 2, hidden_dim)
        self.encoder_kind = encoder
        if encoder == "gru":
            self.encoder: nn.Module = nn.GRU(
                hidden_dim,
                hidden_dim,
                num_layers=num_layers,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
            )
            self.positions = None
        else:
            layer = nn.TransformerEncoderLayer(
                hidden_dim,
                num_heads,
                dim_feedforward=2 * hidden_dim,
                dropout=dropout,
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(
                layer, num_layers=num_layers, enable_nested_tensor=False
            )
            self.positions = _SinusoidalPositions(hidden_dim)
        self.type_head = nn.Linear(hidden_dim, n_event_types + 1)
        # The marks (gap, change) are conditioned on the state and on the event's own type.
        self.mark_projection = nn.Linear(hidden_dim, hidden_dim)
        self.mark_type_embedding = nn.Embedding(n_event_types + 1, hidden_dim, padding_idx=0)
        self.gap_head = nn.Linear(hidden_dim, gap_bins)
        self.change_head = nn.Linear(hidden_dim, 1)

    def gap_bin(self, gaps: torch.Tensor) -> torch.Tensor:
        """The bin index (long) of each log gap."""
        return torch.bucketize(gaps, self.gap_edges)

    @torch.no_grad()
    def init_output_priors(
        self, tokens: torch.Tensor, gaps: torch.Tensor, changes: torch.Tensor
    ) -> None:
        """Set the heads' biases to the log marginal frequencies of the real events given.

        Called once on the training tensors before fitting (not on load: the saved weights
        replace them). Pseudo-counts keep unseen classes finite.
        """
        real = tokens != 0
        if not real.any():
            raise ValueError("init_output_priors needs at least one real event")
        type_counts = torch.bincount(tokens[real], minlength=self.n_event_types + 1).float()
        self.type_head.bias.copy_((type_counts + _PRIOR_PSEUDO_COUNT).log())
        gap_counts = torch.bincount(self.gap_bin(gaps[real]), minlength=self.gap_bins).float()
        self.gap_head.bias.copy_((gap_counts + _PRIOR_PSEUDO_COUNT).log())
        switched = changes[real].sum()
        self.change_head.bias.fill_(
            float(
                (
                    (switched + _PRIOR_PSEUDO_COUNT) / (real.sum() - switched + _PRIOR_PSEUDO_COUNT)
                ).log()
            )
        )

    def _shifted_inputs(
        self, tokens: torch.Tensor, gaps: torch.Tensor, changes: torch.Tensor
    ) -> torch.Tensor:
        """Step t sees event t−1 (the start token at t = 0): inputs never reveal the target."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        previous_tokens = torch.cat([start, tokens[:, :-1]], dim=1)
        context = torch.stack([gaps, changes], dim=-1)
        previous_context = torch.cat([torch.zeros_like(context[:, :1]), context[:, :-1]], dim=1)
        return self.input_projection(
            torch.cat([self.embedding(previous_tokens), previous_context], dim=-1)
        )

    def event_surprisal(
        self, tokens: torch.Tensor, gaps: torch.Tensor, changes: torch.Tensor
    ) -> EventSurprisal:
        """Per-event NLL of the type, gap-bin and category-change parts with the predictive
        distributions' entropy and surprisal variance (each B × L × 3, 0 on padding)."""
        hidden = self._shifted_inputs(tokens, gaps, changes)
        length = tokens.shape[1]
        if self.positions is None:
            encoded, _ = self.encoder(hidden)
        else:
            causal = nn.Transformer.generate_square_subsequent_mask(length, device=hidden.device)
            encoded = self.encoder(hidden + self.positions(length), mask=causal, is_causal=True)
        marks = F.gelu(self.mark_projection(encoded) + self.mark_type_embedding(tokens))
        change_logit = self.change_head(marks)
        log_probs = (
            F.log_softmax(self.type_head(encoded), dim=-1),
            F.log_softmax(self.gap_head(marks), dim=-1),
            torch.cat([F.logsigmoid(-change_logit), F.logsigmoid(change_logit)], dim=-1),
        )
        targets = (tokens, self.gap_bin(gaps), changes.long())
        mask = tokens != 0
        weight = mask[..., None].to(encoded.dtype)
        nll = torch.stack(
            [
                -lp.gather(-1, t[..., None]).squeeze(-1)
                for lp, t in zip(log_probs, targets, strict=True)
            ],
            dim=-1,
        )
        probs = [lp.exp() for lp in log_probs]
        pairs = list(zip(probs, log_probs, strict=True))
        entropy = torch.stack([-(p * lp).sum(-1) for p, lp in pairs], dim=-1)
        second = torch.stack([(p * lp.square()).sum(-1) for p, lp in pairs], dim=-1)
        variance = (second - entropy.square()).clamp_min(0.0)
        return EventSurprisal(nll * weight, entropy * weight, variance * weight, mask)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        surprisal = self.event_surprisal(*batch)
        return surprisal.nll.sum() / surprisal.mask.sum().clamp_min(1)

    @torch.inference_mode()
    def typicality_score(
        self, tokens: torch.Tensor, gaps: torch.Tensor, changes: torch.Tensor
    ) -> torch.Tensor:
        """The anomaly score of each row: ``Σ_parts z²`` (see the module docstring)."""
        surprisal = self.event_surprisal(tokens, gaps, changes)
        excess = (surprisal.nll - surprisal.entropy).sum(dim=1)
        spread = surprisal.variance.sum(dim=1).clamp_min(_MIN_SURPRISAL_VARIANCE).sqrt()
        return (excess / spread).square().sum(dim=1)

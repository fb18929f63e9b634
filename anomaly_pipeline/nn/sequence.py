"""Next-event model over a user-day's ordered behaviour sequence.

Each step sees the previous event (its type, the log time gap before it, whether it changed
category) and predicts the *type* of the next event. Trained on ordinary traffic, the model finds
funnels (view → click → cart → purchase) cheap to predict and machine-made sequences (the same
action hundreds of times, impossible orders) expensive, so the mean negative log-likelihood of a
user-day's events is its anomaly score. Timing and category switches are context, not targets.

Inputs are right-padded with token 0 (the detector wrapper guarantees it); a start token is
prepended so the first real event is predicted too, and padded targets are masked out of the
loss and the score. Both encoders are causal, so padding after a sequence never influences it.
"""

from __future__ import annotations

import math
from typing import Final

import torch
from torch import nn
from torch.nn import functional as F

from anomaly_pipeline.nn.loss_module import LossModule

ENCODERS: Final[tuple[str, ...]] = ("gru", "transformer")


class _SinusoidalPositions(nn.Module):
    """Fixed sin/cos position encoding, defined for any sequence length."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.exp(
            torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim)),
            persistent=False)
        self.dim = dim

    def forward(self, length: int) -> torch.Tensor:
        angles = torch.arange(length, device=self.frequencies.device,
                              dtype=torch.float32)[:, None] * self.frequencies
        table = torch.zeros(length, self.dim, device=angles.device)
        table[:, 0::2] = torch.sin(angles)
        table[:, 1::2] = torch.cos(angles)[:, : self.dim // 2]
        return table


class NextEventModule(LossModule):
    """Causal GRU or Transformer encoder with a next-event-type softmax head.

    Token ids: 0 = padding, 1…``n_event_types`` = event types; ``n_event_types + 1`` is the start
    token. Batches are ``(tokens long[B, L], log_gaps float[B, L], category_change float[B, L])``.
    """

    def __init__(self, n_event_types: int, encoder: str, embed_dim: int, hidden_dim: int,
                 num_layers: int, num_heads: int, dropout: float, learning_rate: float) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if encoder == "transformer" and hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads "
                             f"({num_heads}) for the transformer encoder")
        self.n_event_types = n_event_types
        self.start_token = n_event_types + 1
        self.learning_rate = learning_rate
        self.embedding = nn.Embedding(n_event_types + 2, embed_dim, padding_idx=0)
        self.input_projection = nn.Linear(embed_dim + 2, hidden_dim)
        self.encoder_kind = encoder
        if encoder == "gru":
            self.encoder: nn.Module = nn.GRU(hidden_dim, hidden_dim, num_layers=num_layers,
                                             batch_first=True,
                                             dropout=dropout if num_layers > 1 else 0.0)
            self.positions = None
        else:
            layer = nn.TransformerEncoderLayer(hidden_dim, num_heads,
                                               dim_feedforward=2 * hidden_dim, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers,
                                                 enable_nested_tensor=False)
            self.positions = _SinusoidalPositions(hidden_dim)
        self.output = nn.Linear(hidden_dim, n_event_types + 1)

    def _shifted_inputs(self, tokens: torch.Tensor, gaps: torch.Tensor,
                        changes: torch.Tensor) -> torch.Tensor:
        """Step t sees event t−1 (the start token at t = 0): inputs never reveal the target."""
        start = torch.full_like(tokens[:, :1], self.start_token)
        previous_tokens = torch.cat([start, tokens[:, :-1]], dim=1)
        context = torch.stack([gaps, changes], dim=-1)
        previous_context = torch.cat([torch.zeros_like(context[:, :1]), context[:, :-1]], dim=1)
        return self.input_projection(
            torch.cat([self.embedding(previous_tokens), previous_context], dim=-1))

    def event_nll(self, tokens: torch.Tensor, gaps: torch.Tensor,
                  changes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative log-likelihood of each event (B × L) and the mask of real events."""
        hidden = self._shifted_inputs(tokens, gaps, changes)
        length = tokens.shape[1]
        if self.positions is None:
            encoded, _ = self.encoder(hidden)
        else:
            causal = nn.Transformer.generate_square_subsequent_mask(length, device=hidden.device)
            encoded = self.encoder(hidden + self.positions(length), mask=causal, is_causal=True)
        logits = self.output(encoded)
        nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
        mask = tokens != 0
        return nll * mask, mask

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        nll, mask = self.event_nll(*batch)
        return nll.sum() / mask.sum().clamp_min(1)

    @torch.inference_mode()
    def sequence_nll(self, tokens: torch.Tensor, gaps: torch.Tensor,
                     changes: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the real events of each row (one float per row)."""
        nll, mask = self.event_nll(tokens, gaps, changes)
        return nll.sum(dim=1) / mask.sum(dim=1).clamp_min(1)

"""MLP autoencoder over scaled user-day features, with an optional semi-supervised head.

The autoencoder learns to reconstruct the bulk of user-days; rows it reconstructs badly are
unlike anything common in training. When some abnormal user-days are labelled, a one-logit
classification head on the latent code is trained jointly::

    L_total = MSE(x̂, x) + α · BCE(head(z), y; pos_weight = n_normal / n_abnormal)

so that the code also separates the *known* abnormal shapes, which plain reconstruction tends to
learn as "normal" once they are frequent enough in the training window. ``pos_weight`` keeps a few
hundred labelled rows among millions from being ignored by the loss. Rows whose label is unknown
(NaN: days without ground truth) count in the reconstruction term only.

``input_noise`` makes it a denoising autoencoder: in training the encoder sees ``x + ε``
(ε ~ N(0, input_noise²), in scaled units) and the loss is against the clean ``x``, so copying the
input through is never the answer; validation and scoring see clean rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from anomaly_pipeline.nn.loss_module import LossModule


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        if index:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class AutoencoderModule(LossModule):
    """Encoder ``n_features → hidden_dims… → latent_dim``, mirrored decoder, optional head.

    ``pos_weight`` is None for unsupervised training (no head, batches are ``(x,)``); otherwise
    batches are ``(x, y)`` with ``y`` a float tensor (0, 1, NaN = unknown) and the head is trained
    with weight ``alpha`` on the rows with a known label.
    """

    pos_weight: torch.Tensor  # buffer, registered in __init__

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        learning_rate: float,
        alpha: float = 0.0,
        pos_weight: float | None = None,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if pos_weight is not None and not alpha > 0:
            raise ValueError(f"a classification head needs alpha > 0, got alpha={alpha}")
        sizes = [n_features, *hidden_dims, latent_dim]
        self.encoder = _mlp(sizes)
        self.decoder = _mlp(sizes[::-1])
        self.head = nn.Linear(latent_dim, 1) if pos_weight is not None else None
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.input_noise = input_noise
        self.register_buffer("pos_weight", torch.tensor([pos_weight or 1.0]))

    @property
    def supervised(self) -> bool:
        return self.head is not None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction and, with a head, the abnormal-class logit per row."""
        code = self.encoder(x)
        logit = self.head(code).squeeze(-1) if self.head is not None else None
        return self.decoder(code), logit

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = batch[0]
        noisy = (
            x + self.input_noise * torch.randn_like(x) if self.training and self.input_noise else x
        )
        reconstruction, logit = self(noisy)
        loss = F.mse_loss(reconstruction, x)
        if logit is not None:
            labels = batch[1]
            known = ~torch.isnan(labels)
            # Masking instead of indexing keeps the head in every step's graph, which DDP needs.
            bce = F.binary_cross_entropy_with_logits(
                logit,
                torch.where(known, labels, torch.zeros_like(labels)),
                pos_weight=self.pos_weight,
                reduction="none",
            )
            loss = loss + self.alpha * (bce * known).sum() / known.sum().clamp_min(1)
        return loss

    @torch.inference_mode()
    def squared_errors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-feature squared reconstruction errors and, with a head, P(abnormal) per row."""
        reconstruction, logit = self(x)
        probability = torch.sigmoid(logit) if logit is not None else None
        return (reconstruction - x).square_(), probability

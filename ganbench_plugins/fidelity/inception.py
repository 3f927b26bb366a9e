"""torch-fidelity's Inception-v3 behind ganbench's extractor contract (imports torch)."""

from __future__ import annotations

import torch


class RgbInception(torch.nn.Module):
    """Inception-v3 taking grey or RGB uint8 images and returning named outputs.

    Grey images are repeated to three channels, the usual way (pytorch-fid, torch-fidelity
    on MNIST) to put them through an RGB network.
    """

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pool, logits = self.net(x)
        return {"pool": pool, "logits": logits}

"""Hand-built networks and records with known answers for the quality-measure tests."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation


class ConstantChannels(nn.Module):
    """``features`` = Conv2d (zero weights, bias ``a``) + ReLU: channel c is the constant ``a_c``.

    Then global average pooling and a linear head with weights ``v`` (K, C): logit_k = v_k . a + b_k,
    so zeroing a channel group G at the ReLU drops logit_k by exactly ``sum_{c in G} v_kc a_c``.
    """

    def __init__(self, a: np.ndarray, v: np.ndarray, b: np.ndarray | None = None, in_ch: int = 3):
        super().__init__()
        c = len(a)
        conv = nn.Conv2d(in_ch, c, 3, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.copy_(torch.as_tensor(a, dtype=torch.float32))
        self.features = nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(inplace=True)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, v.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(v, dtype=torch.float32))
            self.head.bias.copy_(
                torch.as_tensor(np.zeros(v.shape[0]) if b is None else b, dtype=torch.float32)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class SkipCat(nn.Module):
    """A layer whose later part concatenates a tensor from before it: a larger batch cannot broadcast."""

    def __init__(self, c: int = 4, k: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, c, 3, padding=1), relu=nn.ReLU()))
        self.head = nn.Linear(c + 3, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        z = torch.cat([h, x], dim=1).mean(dim=(2, 3))
        return self.head(z)


class RegionProbability(nn.Module):
    """Two classes whose softmax is exactly ``(1 - q, q)``, q = the mean of channel 0 over a region R.

    The logits are ``log(1 - q + eps), log(q + eps)`` (renormalised by softmax), so with inputs of
    1 on R a deletion curve is the share of R still present: a map ranking R first gives a known
    AUC and a random map ~0.5 (the chance level).
    """

    def __init__(self, region: np.ndarray, eps: float = 1e-9):
        super().__init__()
        self.register_buffer("region", torch.as_tensor(region, dtype=torch.float32))
        self.eps = eps
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (x[:, 0] * self.region).sum(dim=(1, 2)) / self.region.sum()
        q = q.clamp(0, 1) + 0 * self.dummy
        return torch.stack([torch.log(1 - q + self.eps), torch.log(q + self.eps)], 1)


def layer_record(
    layer: str, n_channels: int, clusters: list[tuple[list[int], float, bool]], hw: tuple[int, int] = (4, 4)
) -> LayerExplanation:
    """A record with the given clusters (channels, weight, pruned), heaviest first as given."""
    kept = np.concatenate([np.asarray(ch, dtype=np.int64) for ch, _, _ in clusters])
    labels = np.concatenate([np.full(len(ch), j) for j, (ch, _, _) in enumerate(clusters)])
    weights = np.concatenate([np.full(len(ch), w / len(ch)) for ch, w, _ in clusters])
    res = tuple(
        ClusterResult(
            j, w, np.asarray(ch, dtype=np.int64), np.ones(hw, np.float32), np.ones(hw, np.float32), p
        )
        for j, (ch, w, p) in enumerate(clusters)
    )
    return LayerExplanation(
        layer=layer,
        module=layer,
        n_channels=n_channels,
        height=hw[0],
        width=hw[1],
        threshold=None,
        total_weight=100.0,
        scale=1.0,
        n_positive=len(kept),
        channels=kept,
        weights=weights,
        embedding=np.zeros((len(kept), 2)),
        embedding_method="none",
        perplexity=0.0,
        kl=0.0,
        tsne_iter=0,
        ks=(),
        silhouettes=(),
        k=len(clusters),
        silhouette=0.0,
        labels=labels,
        clusters=res,
        status="ok",
    )


def image_record(sample_id: str, target: int, layers: dict[str, LayerExplanation]) -> ImageExplanation:
    """An image record with the given layers."""
    return ImageExplanation(sample_id, target, target, 0.0, layers)


def one_thread():
    """Generator for a fixture: torch and numba on one thread (INV's numba t-SNE resets torch's OpenMP
    thread count; two threads on a loaded 2-core machine make tiny convolutions many times slower)."""
    import numba

    saved = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(saved[0])
    numba.set_num_threads(saved[1])

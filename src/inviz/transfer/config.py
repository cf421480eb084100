"""The ``transfer`` section of ``params.yaml``: label models, evaluation, more images (docs/method.md §9).

Every number that shapes a transferred label is a field here (defaults in the docstrings); how the
extra images are extracted is the ``extract`` section itself (the same settings as the played
images), and execution settings sit in ``transfer.run`` (not a DVC dependency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from inviz.core.checks import check_at_least


@dataclass(frozen=True)
class ChannelVoteConfig:
    """``transfer.channel_vote``: labels from the channels a map is made of.

    Parameters
    ----------
    score_norm : bool
        ``true``: each labelled map spreads its label *distribution* (scores divided by their sum),
        so every labelled map votes with the same total; ``false``: its raw scores (maps played by
        more people vote more).
    """

    score_norm: bool = True


@dataclass(frozen=True)
class NearestConfig:
    """``transfer.nearest_maps``: labels of the most similar labelled maps of the layer.

    Parameters
    ----------
    k : int
        Neighbours (labelled maps of the layer with a positive similarity) that vote (5).
    similarity : str
        ``cosine`` of the channel-weight vectors, ``jaccard`` of the channel sets, or
        ``weighted_jaccard`` (sum of minima over sum of maxima of the weight vectors);
        :data:`inviz.transfer.model.SIMILARITIES`.
    score_norm : bool
        As :attr:`ChannelVoteConfig.score_norm`, for the neighbours' label scores.
    """

    k: int = 5
    similarity: str = "cosine"
    score_norm: bool = True

    def __post_init__(self) -> None:
        """Check ``k``."""
        check_at_least(self, {"k": 1})


@dataclass(frozen=True)
class EvaluationConfig:
    """``transfer.evaluation``: the leave-one-image-out evaluation (docs/method.md §9).

    Parameters
    ----------
    enabled : bool
        Run it (50 folds of cheap fits; on by default).
    variants : tuple of str
        The label models compared (every registered variant by default).
    top : int
        The "top-k" agreement besides top-1 (3: a hit when one of the transferred top-3 labels is
        among the game's best labels).
    confidence_bins : tuple of float
        Edges inside (0, 1) of the confidence bins the agreement is also reported by (calibration:
        is a confident label more often right? it guides ``global.transfer.min_confidence``).
    """

    enabled: bool = True
    variants: tuple[str, ...] = ("channel_vote", "nearest_maps")
    top: int = 3
    confidence_bins: tuple[float, ...] = (0.25, 0.5, 0.75)

    def __post_init__(self) -> None:
        """Check ``top`` and the bin edges."""
        check_at_least(self, {"top": 2})
        edges = list(self.confidence_bins)
        if edges != sorted(set(edges)) or any(not 0 < e < 1 for e in edges):
            raise ValueError(f"confidence_bins: expected increasing values in (0, 1), got {edges}")


@dataclass(frozen=True)
class MoreImagesConfig:
    """``transfer.more_images``: extra, unplayed images labelled by the label model (for ``global``).

    Parameters
    ----------
    enabled : bool
        Extract and label them (``false``: the stage writes an empty table).
    split : str
        The index split they come from (the test pool the 50 played images were drawn from).
    correct_only : bool
        Only correctly classified images (as the played ones).
    max_per_class : int or None
        At most this many per class, a seeded draw (``null``: every one; the demo caps it to stay fast).
    seed : int
        The draw above.
    """

    enabled: bool = True
    split: str = "test"
    correct_only: bool = True
    max_per_class: int | None = None
    seed: int = 432

    def __post_init__(self) -> None:
        """Check ``max_per_class``."""
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError(f"max_per_class: expected >= 1 or null, got {self.max_per_class}")


@dataclass(frozen=True)
class TransferRunConfig:
    """``transfer.run``: batch size of the prediction pass over the test pool (not a DVC dependency)."""

    batch_size: int = 32

    def __post_init__(self) -> None:
        """Check the batch size."""
        check_at_least(self, {"batch_size": 1})


@dataclass(frozen=True)
class TransferConfig:
    """``transfer`` section: labels for new images from the labelled cluster maps (docs/method.md §9).

    Parameters
    ----------
    variant : str
        The label model ``inviz explain`` and the extra images use: ``channel_vote`` or
        ``nearest_maps`` (:data:`inviz.transfer.model.VARIANTS`); both are always fitted and
        evaluated. Default chosen by the leave-one-image-out evaluation (README "Labels for new images").
    train_on : str
        Learn from the ``merged`` cluster maps (§3.8, the INV people see) or the game's single
        ``cluster`` maps.
    channel_vote, nearest_maps : the variants' settings.
    tie_tolerance : float
        Transferred labels within this of the top share are tied best labels (merging, as §3.8).
    top_n : int
        Transferred labels kept per map (3, as the INV).
    merge : bool
        Merge a new image's cluster maps whose transferred best labels overlap (§3.8), as the INV does.
    evaluation : :class:`EvaluationConfig`.
    more_images : :class:`MoreImagesConfig`.
    run : :class:`TransferRunConfig`.
    """

    variant: str = "channel_vote"
    train_on: Literal["merged", "cluster"] = "merged"
    channel_vote: ChannelVoteConfig = field(default_factory=ChannelVoteConfig)
    nearest_maps: NearestConfig = field(default_factory=NearestConfig)
    tie_tolerance: float = 1e-9
    top_n: int = 3
    merge: bool = True
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    more_images: MoreImagesConfig = field(default_factory=MoreImagesConfig)
    run: TransferRunConfig = field(default_factory=TransferRunConfig)

    def __post_init__(self) -> None:
        """Check names and ranges (``ValueError`` naming the key)."""
        from inviz.transfer.model import SIMILARITIES, VARIANTS

        for name in (self.variant, *self.evaluation.variants):
            if name not in VARIANTS:
                raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {name!r}")
        if self.nearest_maps.similarity not in SIMILARITIES:
            raise ValueError(
                f"nearest_maps.similarity: expected one of {', '.join(SIMILARITIES)}, "
                f"got {self.nearest_maps.similarity!r}"
            )
        check_at_least(self, {"top_n": 1, "tie_tolerance": 0})

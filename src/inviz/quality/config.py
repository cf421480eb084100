"""The ``evaluate`` section of ``params.yaml``: every number of the quality measures (docs/method.md §8).

One frozen dataclass per measure, nested in :class:`EvaluateConfig`. Image subsets are nested: the
selected images are put in one seeded order (:attr:`EvaluateConfig.seed`) and a measure with
``n_images: N`` uses the first ``N`` of it (``null``: every image), so a cheaper setting evaluates
a subset of the images a dearer one sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from inviz.core.checks import check_at_least
from inviz.core.config import from_dict

#: the map methods compared pixel-wise (keys of :data:`inviz.quality.maps.MAP_METHODS`)
DEFAULT_METHODS: tuple[str, ...] = ("INV", "Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "Random")


def _check_n(n: int | None, key: str) -> None:
    if n is not None and n < 1:
        raise ValueError(f"{key}: expected null (every image) or >= 1, got {n}")


@dataclass(frozen=True)
class ConceptConfig:
    """``evaluate.concept``: concept deletion at the cluster maps' layers (INV's own claim).

    Parameters
    ----------
    enabled : run it.
    n_images : images (the first of the seeded order; null: every image).
    rank_over : clusters entering the Spearman rho of weight vs drop: ``all`` (every cluster of the
        image and layer, pruned ones too: the weight is claimed for each) | ``kept`` (unpruned only).
    min_clusters : fewer clusters than this -> rho is undefined (counted, not averaged). 3: with two
        clusters rho is always +-1.
    random_draws : random channel groups of the heaviest cluster's size per image and layer (>= 20).
    random_pool : channels the random groups are drawn from: ``layer`` (every channel) | ``kept``
        (the channels that passed the map threshold: a harder baseline that tests the clustering).
    seed : the random groups.
    """

    enabled: bool = True
    n_images: int | None = None
    rank_over: Literal["all", "kept"] = "all"
    min_clusters: int = 3
    random_draws: int = 20
    random_pool: Literal["layer", "kept"] = "layer"
    seed: int = 432

    def __post_init__(self) -> None:
        """Check the counts."""
        _check_n(self.n_images, "concept.n_images")
        check_at_least(self, {"min_clusters": 2, "random_draws": 20}, "concept.")


@dataclass(frozen=True)
class PixelConfig:
    """``evaluate.pixel``: deletion and insertion curves (RISE protocol, Petsiuk et al. 2018).

    Parameters
    ----------
    enabled : run it.
    n_images : images (null: every image).
    methods : maps compared (``INV``: the kept clusters' weighted sum at the headline layer,
        ``INV (heaviest)``, ``Grad-CAM``, ``LIME``, ``SHAP (Gradient Explainer)``, ``Random``).
    inv_layers : layers whose INV map is also scored (null: every explained layer); the table by
        layer shows how faithful each layer's map is.
    steps : points of a curve after the start (RISE: ``H*W / steps`` pixels per step).
    deletion_baseline : what removed pixels become: ``mean`` (0 in the normalised input = the
        dataset's mean colour; RISE's ``zeros_like`` on the normalised tensor) | ``black`` | ``blur``.
    insertion_baseline : the image insertion starts from: ``blur`` (RISE) | ``mean`` | ``black``.
    blur_kernel, blur_sigma : Gaussian blur of the ``blur`` baseline (RISE: 11, 5).
    tie_break : order of pixels with equal relevance: ``random`` (seeded) | ``index`` (raster order).
    lime_features : superpixels in LIME's map: null = every superpixel with its signed weight (a full
        ranking), an integer = the survey's top-n positive map (the rest ties at 0).
    seed : tie-breaking and the random map.
    """

    enabled: bool = True
    n_images: int | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    inv_layers: tuple[str, ...] | None = None
    steps: int = 100
    deletion_baseline: Literal["mean", "black", "blur"] = "mean"
    insertion_baseline: Literal["mean", "black", "blur"] = "blur"
    blur_kernel: int = 11
    blur_sigma: float = 5.0
    tie_break: Literal["random", "index"] = "random"
    lime_features: int | None = None
    seed: int = 432

    def __post_init__(self) -> None:
        """Check the counts and the blur kernel."""
        _check_n(self.n_images, "pixel.n_images")
        check_at_least(self, {"steps": 2, "blur_kernel": 1, "blur_sigma": 1e-6}, "pixel.")
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"pixel.blur_kernel: expected an odd size, got {self.blur_kernel}")
        if self.lime_features is not None and self.lime_features < 1:
            raise ValueError(f"pixel.lime_features: expected null or >= 1, got {self.lime_features}")


@dataclass(frozen=True)
class RoadConfig:
    """``evaluate.road``: ROAD (Rong et al. 2022), removal with noisy linear imputation, MoRF and LeRF.

    Parameters
    ----------
    enabled : run it.
    n_images : images (null: every image); ROAD solves one sparse system per removal, the dearest measure.
    methods : maps compared (as ``pixel.methods``).
    percentages : shares of pixels removed (ROAD: 10 .. 90).
    noise : sd of the Gaussian noise added to imputed values, in normalised input units (Quantus: 0.01).
    seed : the noise.
    """

    enabled: bool = True
    n_images: int | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    percentages: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
    noise: float = 0.01
    seed: int = 432

    def __post_init__(self) -> None:
        """Check the percentages."""
        _check_n(self.n_images, "road.n_images")
        if not self.percentages or not all(0 < p < 100 for p in self.percentages):
            raise ValueError(f"road.percentages: expected values in (0, 100), got {self.percentages}")
        check_at_least(self, {"noise": 0.0}, "road.")


@dataclass(frozen=True)
class SanityConfig:
    """``evaluate.sanity``: the model-parameter randomisation test (MPRT, Adebayo et al. 2018).

    Parameters
    ----------
    enabled : run it.
    n_images : images (null: every image); INV is re-run on them once per randomisation step.
    layers : INV layers compared (null: every explained layer).
    order : ``top_down`` (cascading, Adebayo et al.) | ``independent`` (one layer at a time); the
        layers are randomised by Quantus' ``PyTorchModel.get_random_layer_generator``.
    max_steps : stop after this many randomised layers (null: all, down to the first convolution).
    min_common : the ARI needs at least this many channels kept by both explanations (fewer: NaN, counted).
    seed : Quantus' randomisation seed.
    """

    enabled: bool = True
    n_images: int | None = 10
    layers: tuple[str, ...] | None = None
    order: Literal["top_down", "independent"] = "top_down"
    max_steps: int | None = None
    min_common: int = 5
    seed: int = 432

    def __post_init__(self) -> None:
        """Check the counts."""
        _check_n(self.n_images, "sanity.n_images")
        _check_n(self.max_steps, "sanity.max_steps")
        check_at_least(self, {"min_common": 2}, "sanity.")


@dataclass(frozen=True)
class LocalizationConfig:
    """``evaluate.localization``: pointing game, relevance mass, reveal IoU (needs ground-truth part masks).

    Parameters
    ----------
    enabled : run it when the dataset has part masks (the synthetic demo); skipped, and said so, without.
    n_images : images (null: every image).
    methods : maps compared (``INV``, ``INV (heaviest)`` and the baselines).
    parts : the ground truth of an image: ``class`` (the parts defining its class) | ``all`` (every
        visible part).
    levels : reveal levels (% shown) of the per-cluster IoU; null: the game's (``masks.levels``).
    """

    enabled: bool = True
    n_images: int | None = None
    methods: tuple[str, ...] = ("INV", "INV (heaviest)", *DEFAULT_METHODS[1:])
    parts: Literal["class", "all"] = "class"
    levels: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        """Check the counts and levels."""
        _check_n(self.n_images, "localization.n_images")
        if self.levels is not None and not all(0 < q <= 100 for q in self.levels):
            raise ValueError(f"localization.levels: expected values in (0, 100], got {self.levels}")


@dataclass(frozen=True)
class RunConfig:
    """``evaluate.run``: how the measures run (not a DVC dependency).

    Parameters
    ----------
    batch_size : inputs per forward pass (masked activations, perturbed images).
    threads : CPU threads for torch and for ROAD's imputations (0: the library default, one per core).
    channels_last : run the model in the channels-last (NHWC) memory layout: oneDNN's CPU
        convolutions are ~2x faster in it (the demo VGG: 2.7 vs 5.5 ms per image on one thread);
        the numbers differ from the default layout by rounding only.
    progress : progress bars.
    """

    batch_size: int = 64
    threads: int = 0
    channels_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        """Check the batch size."""
        check_at_least(self, {"batch_size": 1, "threads": 0}, "run.")


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate`` section: which quality measures run, on how many images, with which settings.

    Parameters
    ----------
    layers : explained layers evaluated (null: every layer of the extraction); the last is the headline.
    seed : the order of the images (nested subsets, see the module docstring).
    examples : images in the examples figure (the first of the pixel measure's images).
    concept, completeness, pixel, road, sanity, localization : the measures
        (:class:`ConceptConfig`, ``completeness: true/false``, :class:`PixelConfig`,
        :class:`RoadConfig`, :class:`SanityConfig`, :class:`LocalizationConfig`).
    run : :class:`RunConfig`.
    """

    layers: tuple[str, ...] | None = None
    seed: int = 432
    examples: int = 3
    concept: ConceptConfig = field(default_factory=ConceptConfig)
    completeness: bool = True
    pixel: PixelConfig = field(default_factory=PixelConfig)
    road: RoadConfig = field(default_factory=RoadConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    localization: LocalizationConfig = field(default_factory=LocalizationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        """Accept nested sections as dicts (library use) and check the method names."""
        from inviz.quality.maps import MAP_METHODS

        for key, cls in _SECTIONS.items():
            if isinstance(getattr(self, key), dict):
                object.__setattr__(self, key, from_dict(cls, getattr(self, key), key))
        for key in ("pixel", "road", "localization"):
            unknown = [m for m in getattr(self, key).methods if m not in MAP_METHODS]
            if unknown:
                raise ValueError(f"{key}.methods: unknown {unknown}; expected some of {list(MAP_METHODS)}")

    def replace(self, **changes: Any) -> EvaluateConfig:
        """Return a copy with some fields changed; dicts update only the given fields of a section.

        Parameters
        ----------
        **changes : new values (``pixel={"steps": 10}`` changes one field of ``pixel``).

        Returns
        -------
        EvaluateConfig
        """
        for key in _SECTIONS:
            if isinstance(changes.get(key), dict):
                changes[key] = dataclasses.replace(getattr(self, key), **changes[key])
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type] = {
    "concept": ConceptConfig,
    "pixel": PixelConfig,
    "road": RoadConfig,
    "sanity": SanityConfig,
    "localization": LocalizationConfig,
    "run": RunConfig,
}

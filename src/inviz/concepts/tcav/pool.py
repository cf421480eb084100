"""captum's TCAV with activations computed once, and captum's layer gradients (docs/method.md §4).

Every use of captum's private API in inviz is in this module, each with the reason it is needed:

- ``captum._utils.av.AV`` (``exists``, ``save``): :class:`PooledTCAV` stores activations where
  ``TCAV.compute_cavs`` reads them, in captum's own format; there is no public API for it.
- ``captum.concept._utils.common.concepts_to_str``: the key of ``TCAV.cavs`` (the dict
  ``compute_cavs`` returns) for an experimental set; captum exposes the dict but not its key.
- the scratch layout ``<save_path>/av/<model_id>/<concept identifier>`` of ``AV`` (in
  :meth:`PooledTCAV.drop_activations`): a finished run's random-set activations are deleted to keep
  the scratch folder small; captum has no call to delete them.

Imports captum: import this module only where TCAV runs.
"""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum._utils.av import AV  # private: see the module docstring
from captum.attr import LayerActivation, LayerGradientXActivation
from captum.concept import CAV, TCAV, Classifier, Concept
from captum.concept._utils.common import concepts_to_str  # private: see the module docstring
from torch import nn

from inviz.concepts.tcav.cache import row_hashes, set_id
from inviz.concepts.tcav.config import TCAVConfig


class Batches:
    """Re-iterable batches ``source[indices]`` on ``device`` (a captum concept's ``data_iter``).

    Parameters
    ----------
    source : Tensor of shape (m, C, H, W)
    indices : ndarray of int of shape (n,)
        Rows of ``source`` in this set, in order.
    batch_size : int
    device : torch.device
    """

    def __init__(self, source: torch.Tensor, indices: np.ndarray, batch_size: int, device: torch.device):
        self.source, self.indices, self.batch_size, self.device = source, indices, batch_size, device

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Batches of at most ``batch_size`` images, Tensor of shape (b, C, H, W)."""
        for start in range(0, len(self.indices), self.batch_size):
            idx = torch.as_tensor(self.indices[start : start + self.batch_size], dtype=torch.long)
            yield self.source[idx].to(self.device)

    def __len__(self) -> int:
        """Count the batches."""
        return math.ceil(len(self.indices) / self.batch_size)


def example_sets(
    concepts: Mapping[str, torch.Tensor],
    tested: Mapping[str, np.ndarray],
    random_pool: torch.Tensor,
    n_random: int,
    cfg: TCAVConfig,
    device: torch.device,
) -> tuple[dict[str, Concept], list[Concept], list[Concept]]:
    """Build the captum concepts of the tested concepts and of every run's two random sets.

    Run ``i`` draws two disjoint random sets ``A_i`` and ``B_i`` of ``n_random`` rows of
    ``random_pool``, seeded by ``(cfg.seed, i)``. A concept's id derives from the content of its
    examples (:func:`inviz.concepts.tcav.cache.set_id`); identical sets share one ``Concept``.

    Parameters
    ----------
    concepts : mapping label -> Tensor of shape (n, C, H, W)
    tested : mapping label -> ndarray of int of shape (n_used,)
        The concepts tested and the rows of their examples used.
    random_pool : Tensor of shape (m, C, H, W)
    n_random : int
        Images per random set (``2 * n_random <= m``).
    cfg : TCAVConfig
        ``n_runs``, ``seed``, ``batch_size``.
    device : torch.device

    Returns
    -------
    concept_sets : dict label -> Concept
    random_a, random_b : lists of ``n_runs`` Concepts
    """
    by_id: dict[int, Concept] = {}

    def concept(role: str, source: torch.Tensor, idx: np.ndarray, hashes: Sequence[bytes]) -> Concept:
        cid = set_id(role, [hashes[i] for i in idx])
        if cid not in by_id:
            by_id[cid] = Concept(cid, role, Batches(source, idx, cfg.batch_size, device))
        return by_id[cid]

    concept_sets = {}
    for name, idx in tested.items():
        concept_sets[name] = concept("concept", concepts[name], idx, row_hashes(concepts[name]))
    pool_hashes = row_hashes(random_pool)
    random_a, random_b = [], []
    for run in range(cfg.n_runs):
        perm = np.random.default_rng([cfg.seed, 1, run]).permutation(len(random_pool))
        random_a.append(concept("random", random_pool, perm[:n_random], pool_hashes))
        random_b.append(concept("random", random_pool, perm[n_random : 2 * n_random], pool_hashes))
    return concept_sets, random_a, random_b


def cav_key(*concepts: Concept) -> str:
    """Return the key of an experimental set in ``TCAV.cavs`` (captum's ``concepts_to_str``)."""
    return concepts_to_str(list(concepts))


class PooledTCAV(TCAV):
    """captum's ``TCAV`` with activations computed once.

    ``TCAV.compute_cavs`` recomputes the layer activations of *every* concept of an experimental
    set whose CAV is missing, even when they are stored already: a random set ``A_i`` shared by
    the concepts' and the null's sets of run ``i`` was forwarded once per set, and the concepts
    once per run. Here a (concept, layer) whose activations exist is skipped, and the random sets
    (rows of the random pool) take their rows of the pool's activations, computed once per call
    with captum's ``LayerActivation`` exactly as ``TCAV.generate_activation`` does (flattened per
    example) and saved with captum's ``AV.save`` in the same batches. 50 runs of 5 concepts:
    ~105 forward passes of 30 images become ~7 plus one pass over the pool.

    Parameters
    ----------
    model : nn.Module
        The working copy (:func:`inviz.concepts.tcav.run.working_copy`).
    layers : list of str
        Module names whose outputs are tested.
    model_id : str
        captum's model id: the folder of the CAV files under ``save_path``.
    classifier : captum Classifier
    save_path : str
        captum's scratch folder.
    pool_source : Tensor of shape (m, C, H, W)
        The random pool; concepts whose ``data_iter`` is a :class:`Batches` over it take their
        activations from one pass over the pool.
    workers : int
        Threads fitting the CAV classifiers of one :meth:`compute_cavs` call (the fits release
        the GIL; each CAV's seed depends only on its concepts, so the CAVs do not depend on it).
        Needs a classifier with ``spawn``/``absorb`` (:class:`SeededLinearClassifier`); 1: captum's loop.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: list[str],
        model_id: str,
        classifier: Classifier,
        save_path: str,
        pool_source: torch.Tensor,
        workers: int = 1,
    ) -> None:
        super().__init__(model, layers, model_id=model_id, classifier=classifier, save_path=save_path)
        self.pool_source = pool_source
        self.workers = workers
        self._pool_acts: dict[str, torch.Tensor] | None = None

    @property
    def cav_dir(self) -> Path:
        """Folder of this model's CAV files in captum's scratch folder."""
        return Path(self.save_path) / self.model_id

    def cav_file(self, concepts: Sequence[Concept], layer: str) -> str:
        """Return the file name captum gives the CAV of ``concepts`` (positive first) at ``layer``."""
        return Path(CAV.assemble_save_path(self.save_path, self.model_id, list(concepts), layer)).name

    def cav(self, pos: Concept, neg: Concept, layer: str) -> CAV:
        """Return the CAV of ``pos`` against ``neg`` at ``layer`` computed by :meth:`compute_cavs`."""
        return self.cavs[cav_key(pos, neg)][layer]

    def forget_cavs(self, exp_sets: Sequence[Sequence[Concept]]) -> None:
        """Drop the CAVs of ``exp_sets`` from memory (they stay in the scratch folder)."""
        for s in exp_sets:
            self.cavs.pop(cav_key(*s), None)

    def drop_activations(self, concept: Concept) -> None:
        """Delete the stored activations of ``concept`` (captum's ``AV`` layout)."""
        shutil.rmtree(Path(self.save_path) / "av" / self.model_id / concept.identifier, ignore_errors=True)

    def _pool_activations(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        if self._pool_acts is None:
            act = LayerActivation(self.model, [self.model.get_submodule(layer) for layer in self.layers])
            chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
            for start in range(0, len(self.pool_source), batch_size):
                x = self.pool_source[start : start + batch_size].to(device)
                out = act.attribute(x, attribute_to_layer_input=self.attribute_to_layer_input)
                out = out if isinstance(out, (list, tuple)) else [out]
                for a, layer in zip(out, self.layers, strict=True):
                    chunks[layer].append(torch.reshape(a, (a.shape[0], -1)).detach())
            self._pool_acts = {layer: torch.cat(v) for layer, v in chunks.items()}
        return self._pool_acts

    def compute_cavs(
        self, experimental_sets: list[list[Concept]], force_train: bool = False, processes: int | None = None
    ) -> dict[str, dict[str, CAV]]:
        """Captum's ``TCAV.compute_cavs``, with the classifiers fitted in :attr:`workers` threads.

        As captum does: register the concepts (one instance per id), load the stored CAVs, compute
        the missing activations (here, in this thread: the model runs one batch at a time), then
        train each set's missing CAVs with captum's ``train_cav`` (which also saves them), each
        thread with its own :meth:`~SeededLinearClassifier.spawn`-ed classifier.
        """
        if self.workers <= 1 or not hasattr(self.classifier, "spawn") or processes:
            return super().compute_cavs(experimental_sets, force_train, processes)
        from concurrent.futures import ThreadPoolExecutor

        from captum.concept._core.tcav import train_cav
        from sklearn.exceptions import ConvergenceWarning

        for concepts in experimental_sets:
            self.concepts.update(concepts)
        ids = [c.id for c in self.concepts]
        if len(ids) != len(set(ids)):
            raise ValueError(f"TCAV: two concept instances share an id ({sorted(ids)}): reuse one instance")
        if force_train:
            self.generate_all_activations()
        todo: dict[str, list[str]] = {}
        for concepts in experimental_sets:
            if force_train:
                todo[concepts_to_str(concepts)] = list(self.layers)
            else:
                layers, concept_layers = self.load_cavs(concepts)
                todo[concepts_to_str(concepts)] = layers
                self.generate_activations(concept_layers)
        classifier: Any = self.classifier

        def train(concepts: list[Concept]) -> tuple[dict[str, dict[str, CAV]], Any]:
            own = classifier.spawn()
            cavs = train_cav(
                self.model_id,
                concepts,
                todo[concepts_to_str(concepts)],
                own,
                self.save_path,
                self.classifier_kwargs,
            )
            return cavs, own

        with warnings.catch_warnings():  # here, not in the threads (catch_warnings is not thread-safe)
            warnings.simplefilter("ignore", ConvergenceWarning)
            with ThreadPoolExecutor(min(self.workers, len(experimental_sets)) or 1) as pool:
                results = list(pool.map(train, experimental_sets))
        for cavs, own in results:  # in the order of the sets, as captum merges them
            classifier.absorb(own)
            for key, by_layer in cavs.items():
                self.cavs[key].update(by_layer)
        return self.cavs

    def generate_activations(self, concept_layers: dict[Any, list[str]]) -> None:
        """Store the activations of each concept at its layers, skipping those stored already."""
        for concept, layers in concept_layers.items():
            missing = [
                ly
                for ly in dict.fromkeys(layers)
                if not AV.exists(self.save_path, self.model_id, concept.identifier, ly)
            ]
            if not missing:
                continue
            it = concept.data_iter
            if isinstance(it, Batches) and it.source is self.pool_source:
                acts = self._pool_activations(it.batch_size, it.device)
                idx = torch.as_tensor(it.indices, dtype=torch.long)
                for ly in missing:
                    rows = acts[ly][idx]
                    for j, start in enumerate(range(0, len(rows), it.batch_size)):
                        batch = rows[start : start + it.batch_size]
                        AV.save(self.save_path, self.model_id, concept.identifier, ly, batch, str(j))
            else:
                self.generate_activation(missing, concept)


def sensitivities(
    model: nn.Module,
    modules: Sequence[str],
    x: torch.Tensor,
    target: int,
    batch_size: int,
    device: torch.device,
) -> list[torch.Tensor]:
    """Gradients of the target logit w.r.t. each module's output, flattened.

    captum's ``LayerGradientXActivation`` with ``multiply_by_inputs=False``: exactly the layer
    attribution ``TCAV.interpret`` uses.

    Parameters
    ----------
    model : nn.Module
        Returns logits of shape (N, K).
    modules : sequence of str
        Module names.
    x : Tensor of shape (n, C, H, W)
        The class inputs.
    target : int
        Index of the explained logit.
    batch_size : int
    device : torch.device

    Returns
    -------
    list of Tensor of shape (n, F_l), one per module (float32, on the CPU)
    """
    layer_mods = [model.get_submodule(m) for m in modules]
    layer = layer_mods if len(layer_mods) > 1 else layer_mods[0]
    attr = LayerGradientXActivation(model, layer, multiply_by_inputs=False)
    out: list[list[torch.Tensor]] = [[] for _ in modules]
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].to(device)
        grads = attr.attribute(batch, target=target, attribute_to_layer_input=False)
        grads = grads if isinstance(grads, list) else [grads]
        for store, g in zip(out, grads, strict=True):
            g = g[0] if isinstance(g, tuple) else g
            store.append(g.detach().reshape(g.shape[0], -1).float().cpu())
    return [torch.cat(store) for store in out]

"""The CAV classifier: a captum ``Classifier`` over a seeded scikit-learn model (docs/method.md §4).

The seed of each fit derives from ``TCAVConfig.seed`` and the two concept ids, so a CAV is the
same whatever was trained before it. It is fitted on centred activations (``center``) and its
weight vector is scaled to unit norm (``unit_cav``), so ``magnitude`` scores are comparable
between runs. Imports captum: import this module only where TCAV runs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from captum.concept import Classifier

from inviz.concepts.tcav.config import CAV_CLASSIFIERS, TCAVConfig, TCAVError


def derive_seed(*parts: int) -> int:
    """Derive a 32-bit seed from non-negative integers (order-sensitive)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class SeededLinearClassifier(Classifier):
    """captum ``Classifier`` over a seeded sklearn linear model (see :data:`CAV_CLASSIFIERS`).

    Parameters
    ----------
    cfg : TCAVConfig
        ``classifier`` and its settings, ``test_split``, ``center``, ``unit_cav``, ``seed``.
    quiet : bool
        Do not touch the warning filters (for threads; see :meth:`spawn`).

    Attributes
    ----------
    n_trained : int
        Fits so far.
    n_not_converged : int
        Fits that stopped at ``max_iter`` before reaching ``tol``.
    """

    def __init__(self, cfg: TCAVConfig, quiet: bool = False) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.n_trained = 0
        self.n_not_converged = 0
        self._weights: torch.Tensor | None = None
        self._classes: list[int] | None = None

    def spawn(self) -> SeededLinearClassifier:
        """Return a fresh classifier of the same settings for another thread (own weights and counts).

        It leaves the warning filters alone (``warnings.catch_warnings`` is not thread-safe): the
        caller silences ``ConvergenceWarning`` around the threads (non-convergence is counted).
        """
        return type(self)(self.cfg, quiet=True)

    def absorb(self, other: SeededLinearClassifier) -> None:
        """Add the fit counts of a :meth:`spawn`-ed classifier to this one's."""
        self.n_trained += other.n_trained
        self.n_not_converged += other.n_not_converged

    def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict[str, Any]:
        """Fit on the activations of two concepts; the CAV is the weight vector.

        Parameters
        ----------
        dataloader : iterable of (Tensor of shape (b, F), Tensor of shape (b,))
            Flattened layer activations and concept ids (captum's).

        Returns
        -------
        dict
            ``{"accs": held-out accuracy}`` (NaN when ``test_split`` is 0).
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import train_test_split

        cfg = self.cfg
        xs, ys = zip(*[(x.detach().cpu(), y.detach().cpu()) for x, y in dataloader], strict=True)
        x = torch.cat(xs).flatten(1).numpy()
        y = torch.cat(ys).numpy()
        labels = sorted(int(v) for v in np.unique(y))
        if len(labels) != 2:
            raise TCAVError(f"CAV classifier: expected examples of 2 concepts, got labels {labels}")
        seed = derive_seed(cfg.seed, *labels)
        acc = float("nan")
        if cfg.test_split > 0:
            x_tr, x_te, y_tr, y_te = train_test_split(
                x, y, test_size=cfg.test_split, stratify=y, random_state=seed
            )
        else:
            x_tr, y_tr, x_te, y_te = x, y, None, None
        # centring moves only the intercept of the separating plane (w.x + b = w.(x - mu) +
        # b + w.mu), but SGD's iterates are not translation-invariant: on raw, all-positive
        # post-ReLU activations they keep a component along the mean activation
        mu = x_tr.mean(axis=0, keepdims=True) if cfg.center else np.zeros((1, x.shape[1]), x.dtype)
        clf = CAV_CLASSIFIERS[cfg.classifier](cfg, seed)
        if self.quiet:
            clf.fit(x_tr - mu, y_tr)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(x_tr - mu, y_tr)
        # counted here (sklearn warns exactly when the iterations reach max_iter) and reported
        # once per call by run_tcav, not once per CAV
        if int(np.max(np.atleast_1d(clf.n_iter_))) >= cfg.max_iter:
            self.n_not_converged += 1
        if x_te is not None:
            acc = float(clf.score(x_te - mu, y_te))
        w = np.asarray(clf.coef_[0], dtype=np.float64)
        if cfg.unit_cav:
            norm = float(np.linalg.norm(w))
            if norm > 0:
                w = w / norm
        # row k is the direction of class k (classes_ sorted): (-w, w) as captum does
        self._weights = torch.from_numpy(np.stack([-w, w])).float()
        self._classes = [int(c) for c in clf.classes_]
        self.n_trained += 1
        return {"accs": acc}

    def weights(self) -> torch.Tensor:
        """Return the CAV rows, Tensor of shape (2, F): row k points to class ``classes()[k]``."""
        if self._weights is None:
            raise RuntimeError("train_and_eval must be called before weights()")
        return self._weights

    def classes(self) -> list[int]:
        """Return the two concept ids, a list of ints (loadable with ``torch.load(weights_only=True)``)."""
        if self._classes is None:
            raise RuntimeError("train_and_eval must be called before classes()")
        return self._classes

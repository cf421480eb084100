"""TCAV of concepts for one class: CAVs over random runs, scores, t-test, correction (docs/method.md §4).

:func:`run_tcav` follows the protocol described in :mod:`inviz.concepts.tcav`; the captum side
(CAV training with activations computed once, layer gradients) is
:mod:`inviz.concepts.tcav.pool`, the persistent CAV folder :mod:`inviz.concepts.tcav.cache`.

The score (step 4 of the protocol, one matrix product) is computed here with the formula of
captum's ``TCAV._tcav_sub_computation``, because ``TCAV.interpret`` copies every CAV into nested
Python lists (``.tolist()``) and back into one tensor per call: for VGG's block5 (131k features)
and the ~300 CAVs of 5 concepts x 50 runs that is several GB and tens of seconds per batch of
inputs, and calling it once per run instead would redo the gradient pass 50 times.
``tests/test_tcav.py`` checks that the scores agree with ``TCAV.interpret``.

The caller's model is never modified: the work is done on a structural copy that **shares** the
parameter and buffer tensors (:func:`working_copy`).
"""

from __future__ import annotations

import copy
import itertools
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.concepts.tcav.cache import cache_dir_for, prepare, restore_cavs, safe_hash, store_cavs
from inviz.concepts.tcav.config import TCAVConfig, TCAVError
from inviz.concepts.tcav.examples import check_images, select_examples
from inviz.core.stats import adjust_pvalues

log = logging.getLogger(__name__)

#: columns of :attr:`TCAVResult.table`, in order
TABLE_COLUMNS = [
    "target_class",
    "concept",
    "layer",
    "status",
    "n_available",
    "n_examples",
    "n_random",
    "n_runs",
    "score_type",
    "tcav_score",
    "tcav_std",
    "random_score_mean",
    "random_score_std",
    "cav_accuracy",
    "t_statistic",
    "p_value",
    "n_tests",
    "p_adjusted",
    "significant",
    "direction",
]

#: columns of :attr:`TCAVResult.runs`, in order
RUN_COLUMNS = ["layer", "kind", "concept", "run", "score", "cav_accuracy", "cav_file"]

#: per run: (module, concept or None for the null) -> (sign_count, magnitude, CAV accuracy, CAV file)
_RunScores = dict[tuple[str, str | None], tuple[float, float, float, str]]


@dataclass(frozen=True, eq=False)
class TCAVResult:
    """Output of :func:`run_tcav`.

    Attributes
    ----------
    table : DataFrame
        One row per (concept, layer), columns :data:`TABLE_COLUMNS`: ``status`` ``ok`` /
        ``too_few_examples`` / ``too_few_random`` (scores NaN unless ``ok``); ``n_available``
        concept images given, ``n_examples`` used, ``n_random`` per random set;
        ``tcav_score``/``tcav_std`` mean/sd over runs of the concept's score;
        ``random_score_mean``/``_std`` the same for the random-vs-random null; ``cav_accuracy``
        mean held-out accuracy of the concept's CAVs; ``t_statistic``, ``p_value`` (two-sided),
        ``n_tests`` (concepts corrected together), ``p_adjusted``, ``significant``
        (``p_adjusted < alpha``), ``direction`` (``positive``/``negative``: score above/below
        the random mean).
    runs : DataFrame
        Long table of per-run scores, columns :data:`RUN_COLUMNS`: ``layer, kind
        ("concept"|"random"), concept (None for random), run, score, cav_accuracy, cav_file``
        (for box plots of concept vs random scores; ``cav_file`` is the CAV's file name under
        ``cache_path``).
    n_trained, n_cached : int
        CAVs trained in this call / loaded from the cache.
    cache_path : Path
        The settings directory of this model under ``cache_dir``.
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    n_trained: int
    n_cached: int
    cache_path: Path


def working_copy(model: nn.Module) -> nn.Module:
    """Copy ``model``, sharing its parameters/buffers, in eval mode, with no in-place ops.

    Module objects are new (so flags and hooks can change freely), tensors are shared (no memory
    cost, nothing is written to them). Every boolean ``inplace`` attribute is set to ``False``:
    captum's layer hooks hand a cloned, gradient-requiring tensor downstream, which an in-place
    ReLU after the hooked layer would modify (``a leaf Variable that requires grad is being used
    in an in-place operation``).

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    nn.Module
        The copy, in eval mode.
    """
    memo: dict[int, Any] = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    clone = copy.deepcopy(model, memo)
    for module in clone.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return clone.eval()


def run_tcav(
    model: nn.Module,
    target_class: int,
    concepts: Mapping[str, torch.Tensor],
    random_pool: torch.Tensor,
    class_inputs: torch.Tensor,
    cfg: TCAVConfig,
    cache_dir: str | Path,
    model_hash: str,
    workers: int = 1,
) -> TCAVResult:
    """TCAV scores and significance of concepts for one class (all of ``cfg.layers``).

    See :mod:`inviz.concepts.tcav` for the protocol and :mod:`inviz.concepts.tcav.cache` for the
    cache layout.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits of shape (N, K); never modified (a shared-weight copy is used).
    target_class : int
        Index of the class whose logit is explained (``0 <= target_class < K``).
    concepts : mapping label -> Tensor of shape (n, 3, H, W)
        Normalised concept examples (e.g. from :func:`inviz.concepts.tcav.examples.reveal_region`);
        ``n`` may be 0.
    random_pool : Tensor of shape (m, 3, H, W)
        Images the random counter-sets are drawn from (other images, not the concept's).
    class_inputs : Tensor of shape (k, 3, H, W)
        Images of the target class the scores are computed on.
    cfg : TCAVConfig
    cache_dir : str or Path
        Root of the CAV cache (a persistent DVC output).
    model_hash : str
        sha256 of the model checkpoint (``LoadedModel.sha256``); keys the cache.
    workers : int
        Threads fitting the CAV classifiers (0: as many as torch uses). The results do not depend on it.

    Returns
    -------
    TCAVResult
    """
    from inviz.fmaps.gradients import resolve_layers

    model_hash = safe_hash(model_hash)
    concepts, random_pool, class_inputs, target_class = _check_inputs(
        target_class, concepts, random_pool, class_inputs
    )
    work = working_copy(model)
    device = next(itertools.chain(work.parameters(), work.buffers()), torch.zeros(0)).device
    _check_target(work, class_inputs, target_class, device)
    resolved = resolve_layers(work, list(cfg.layers))
    modules = list(dict.fromkeys(r.capture for r in resolved))  # captum layer names, deduplicated

    n_random = _random_set_size(len(random_pool), cfg)
    rows, tested = _plan(concepts, resolved, target_class, n_random, cfg)
    settings_dir = cache_dir_for(cache_dir, model_hash, cfg)
    scores: list[_RunScores] = []
    n_trained = n_cached = 0
    if tested:
        from inviz.concepts.tcav.pool import example_sets, sensitivities

        sets = example_sets(concepts, tested, random_pool, n_random, cfg, device)
        grads = sensitivities(work, modules, class_inputs, target_class, cfg.batch_size, device)
        prepare(settings_dir, model_hash, cfg)
        scores, n_trained, n_cached = _score_runs(
            work,
            modules,
            sets,
            dict(zip(modules, grads, strict=True)),
            random_pool,
            cfg,
            settings_dir,
            f"TCAV class {target_class}",
            workers or torch.get_num_threads(),
        )
    runs = pd.DataFrame(_run_rows(scores, resolved, list(tested), cfg), columns=RUN_COLUMNS)
    table = _test_table(rows, runs, resolved, cfg)
    log.info(
        "TCAV class %d: %d CAVs trained, %d from the cache (%s)",
        target_class,
        n_trained,
        n_cached,
        settings_dir,
    )
    return TCAVResult(table, runs, n_trained, n_cached, settings_dir)


def _check_target(
    work: nn.Module, class_inputs: torch.Tensor, target_class: int, device: torch.device
) -> None:
    """Check that ``target_class`` indexes the model's output (one forward pass on one image)."""
    with torch.no_grad():
        n_out = work(class_inputs[:1].to(device)).shape[-1]
    if not 0 <= target_class < n_out:
        raise TCAVError(f"target_class: expected an index in [0, {n_out}), got {target_class}")


def _check_inputs(
    target_class: Any, concepts: Mapping[str, Any], random_pool: Any, class_inputs: Any
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, int]:
    """Check the inputs of :func:`run_tcav` (shapes, finite pixels, an int class index)."""
    class_inputs = check_images("class_inputs", class_inputs, None)
    if len(class_inputs) == 0:
        raise TCAVError("class_inputs: no images of the target class to compute TCAV scores on")
    chw = tuple(class_inputs.shape[1:])
    random_pool = check_images("random_pool", random_pool, chw)
    checked = {str(k): check_images(f"concepts[{k!r}]", v, chw) for k, v in concepts.items()}
    if not isinstance(target_class, (int, np.integer)) or isinstance(target_class, bool):
        raise TCAVError(f"target_class: expected a class index (int), got {target_class!r}")
    return checked, random_pool, class_inputs, int(target_class)


def _random_set_size(pool_size: int, cfg: TCAVConfig) -> int:
    """Size the random sets: ``cfg.random_set_size``, shrunk (with a warning) to fit two in the pool."""
    n_random = cfg.random_set_size
    if pool_size < 2 * n_random:
        shrunk = pool_size // 2
        log.warning(
            "random_pool has %d images, fewer than two random sets of %d: using sets of %d",
            pool_size,
            n_random,
            shrunk,
        )
        n_random = shrunk
    return n_random


def _plan(
    concepts: Mapping[str, torch.Tensor],
    resolved: Sequence[Any],
    target_class: int,
    n_random: int,
    cfg: TCAVConfig,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Plan the table's first columns per (concept, layer) and the concepts tested with their rows."""
    rows: list[dict[str, Any]] = []
    tested: dict[str, np.ndarray] = {}
    for name, x in concepts.items():
        status = "ok"
        if len(x) < cfg.min_examples:
            status = "too_few_examples"
        elif n_random < cfg.min_examples:
            status = "too_few_random"
        idx = select_examples(name, len(x), cfg)
        if status == "ok":
            tested[name] = idx
        for r in resolved:
            rows.append(
                {
                    "target_class": target_class,
                    "concept": name,
                    "layer": r.name,
                    "status": status,
                    "n_available": len(x),
                    "n_examples": len(idx) if status != "too_few_examples" else len(x),
                    "n_random": n_random,
                    "n_runs": cfg.n_runs,
                    "score_type": cfg.score,
                }
            )
        if status != "ok":
            log.warning(
                "concept %r: %s (%d examples, %d random images per set; at least %d needed): not tested",
                name,
                status,
                len(x),
                n_random,
                cfg.min_examples,
            )
    return rows, tested


def _score_runs(
    work: nn.Module,
    modules: list[str],
    sets: tuple[dict[str, Any], list[Any], list[Any]],
    sens: dict[str, torch.Tensor],
    random_pool: torch.Tensor,
    cfg: TCAVConfig,
    settings_dir: Path,
    desc: str,
    workers: int = 1,
) -> tuple[list[_RunScores], int, int]:
    """Score every run's CAVs (from the cache or trained); also count CAVs trained and from the cache."""
    from tqdm.auto import tqdm

    from inviz.concepts.tcav.classifier import SeededLinearClassifier
    from inviz.concepts.tcav.pool import PooledTCAV

    concept_sets, random_a, random_b = sets
    classifier = SeededLinearClassifier(cfg)
    scores: list[_RunScores] = []
    n_cached = 0
    with tempfile.TemporaryDirectory(prefix="inviz-tcav-") as scratch:
        save_path = str(Path(scratch) / "captum")
        tcav = PooledTCAV(work, modules, settings_dir.name, classifier, save_path, random_pool, workers)
        for run in tqdm(range(cfg.n_runs), desc=desc, leave=False):
            a, b = random_a[run], random_b[run]
            run_scores, cached = _one_run(tcav, concept_sets, a, b, sens, settings_dir)
            scores.append(run_scores)
            n_cached += cached
    if classifier.n_not_converged:
        log.warning(
            "%d of %d CAV classifiers stopped at max_iter=%d before reaching tol=%g",
            classifier.n_not_converged,
            classifier.n_trained,
            cfg.max_iter,
            cfg.tol,
        )
    return scores, classifier.n_trained, n_cached


def _one_run(
    tcav: Any, concept_sets: dict[str, Any], a: Any, b: Any, sens: dict[str, torch.Tensor], settings_dir: Path
) -> tuple[_RunScores, int]:
    """Run once: CAVs of each concept and of ``b`` against ``a``, their scores; CAVs from the cache."""
    exp_sets = [[c, a] for c in concept_sets.values()] + [[b, a]]
    exp_sets = [list(s) for s in dict.fromkeys(tuple(s) for s in exp_sets)]
    files = {(tuple(s), m): tcav.cav_file(s, m) for s in exp_sets for m in tcav.layers}
    n_cached = restore_cavs(settings_dir, tcav, files)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # numpy.core in CAV.load
        tcav.compute_cavs(exp_sets)
    # new CAVs out (atomically), scratch activations of this run's random sets away
    store_cavs(settings_dir, tcav, files.values())
    for rs in (a, b):
        tcav.drop_activations(rs)
    scores: _RunScores = {}
    for m in tcav.layers:
        for name, pos in [*concept_sets.items(), (None, b)]:
            cav = tcav.cav(pos, a, m)
            sc, mg = _tcav_scores(sens[m], cav, pos.id)
            accs = float(cav.stats.get("accs", float("nan")))
            scores[(m, name)] = (sc, mg, accs, files[((pos, a), m)])
    tcav.forget_cavs(exp_sets)  # keep memory flat: CAVs of finished runs are not needed
    return scores, n_cached


def _tcav_scores(sens: torch.Tensor, cav: Any, concept_id: int) -> tuple[float, float]:
    """Score the concept row of a captum ``CAV``: (sign_count, magnitude), as ``_tcav_sub_computation``."""
    stats = cav.stats
    classes = [int(c) for c in stats["classes"]]
    w = stats["weights"][classes.index(concept_id)].float().reshape(-1).cpu()
    d = sens @ w
    return float((d > 0).float().mean()), float(d.mean())


def _run_rows(
    scores: Sequence[_RunScores], resolved: Sequence[Any], tested: Sequence[str], cfg: TCAVConfig
) -> list[dict[str, Any]]:
    """Build the rows of :attr:`TCAVResult.runs` (none when nothing was tested)."""
    if not scores:
        return []
    pick = 0 if cfg.score == "sign_count" else 1
    rows = []
    for r in resolved:
        for name in [*tested, None]:
            for run in range(cfg.n_runs):
                sc = scores[run][(r.capture, name)]
                rows.append(
                    {
                        "layer": r.name,
                        "kind": "random" if name is None else "concept",
                        "concept": name,
                        "run": run,
                        "score": sc[pick],
                        "cav_accuracy": sc[2],
                        "cav_file": sc[3],
                    }
                )
    return rows


def _test_table(
    rows: list[dict[str, Any]], runs: pd.DataFrame, resolved: Sequence[Any], cfg: TCAVConfig
) -> pd.DataFrame:
    """:attr:`TCAVResult.table`: per (concept, layer) the t-test of its runs against the null, corrected."""
    table = pd.DataFrame(rows)
    for col in TABLE_COLUMNS:
        if col not in table:
            table[col] = np.nan
    table["significant"] = False
    table["direction"] = None
    table["n_tests"] = 0
    for r in resolved:
        sel = (table["layer"] == r.name) & (table["status"] == "ok")
        if not sel.any():
            continue
        null = runs[(runs["layer"] == r.name) & (runs["kind"] == "random")]["score"].to_numpy()
        for i in table.index[sel]:
            cr = runs[(runs["layer"] == r.name) & (runs["concept"] == table.at[i, "concept"])]
            s = cr["score"].to_numpy()
            t, p = _ttest(s, null, cfg.equal_var)
            summary = ["tcav_score", "tcav_std", "random_score_mean", "random_score_std", "cav_accuracy"]
            table.loc[i, summary] = [
                s.mean(),
                s.std(ddof=1),
                null.mean(),
                null.std(ddof=1),
                cr["cav_accuracy"].mean(),
            ]
            table.loc[i, ["t_statistic", "p_value"]] = [t, p]
            table.at[i, "direction"] = "positive" if s.mean() > null.mean() else "negative"
        idx = table.index[sel]
        p = table.loc[idx, "p_value"].to_numpy(dtype=float)
        p_adj = adjust_pvalues(p, cfg.correction, cfg.alpha)  # NaN p-values stay NaN, out of the family
        table.loc[idx, "p_adjusted"] = p_adj
        table.loc[idx, "n_tests"] = int(np.isfinite(p).sum())
        table.loc[idx, "significant"] = np.isfinite(p_adj) & (p_adj < cfg.alpha)
    table = table[TABLE_COLUMNS].reset_index(drop=True)
    table["significant"] = table["significant"].astype(bool)
    table["n_tests"] = table["n_tests"].astype(int)
    return table


def _ttest(a: np.ndarray, b: np.ndarray, equal_var: bool) -> tuple[float, float]:
    from scipy.stats import ttest_ind

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # both samples constant: scipy returns NaN (t undefined), reported as not significant
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_ind(a, b, equal_var=equal_var)
    return float(res.statistic), float(res.pvalue)

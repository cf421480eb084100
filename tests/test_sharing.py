"""SharedLoop: loops a waiting thread joins; the extraction's records do not depend on who computed them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from inviz.core.sharing import SharedLoop
from inviz.models.vgg import ModelConfig, build_vgg16


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return build_vgg16(5, ModelConfig(weights="none", width=0.125, input_size=64)).eval()


def test_map_returns_results_in_index_order_without_helpers():
    assert SharedLoop().map(lambda i: i * i, 5) == [0, 1, 4, 9, 16]
    assert SharedLoop().map(lambda i: i, 0) == []


def _owned_and_helped(shared: SharedLoop, fn, n: int):
    """``shared.map(fn, n)`` on an "owner" thread while this thread helps; the owner's future, done."""
    owner_done = threading.Event()

    def owner() -> list:
        try:
            return shared.map(fn, n)
        finally:
            owner_done.set()
            shared.wake()

    with ThreadPoolExecutor(1, "owner") as pool:
        future = pool.submit(owner)
        shared.help(owner_done.is_set)  # this thread helps until the owner is done
        future.exception(timeout=10)
    return future


def test_a_helper_computes_items_while_the_owner_computes_others():
    """Item 0 (taken by the owner) cannot finish before another thread has computed an item."""
    shared = SharedLoop()
    helped_once = threading.Event()
    who: dict[int, str] = {}

    def fn(i: int) -> int:
        who[i] = threading.current_thread().name
        if i == 0:
            assert helped_once.wait(10), "no helper took an item while the owner was busy"
        else:
            helped_once.set()
        return 10 * i

    assert _owned_and_helped(shared, fn, 6).result() == [0, 10, 20, 30, 40, 50]
    assert who[0].startswith("owner")
    assert shared.helped == 5  # the owner was blocked in item 0: this thread computed the rest
    assert {who[i] for i in range(1, 6)} == {threading.current_thread().name}


def test_an_error_in_a_helper_is_raised_by_the_owner_lowest_index_first():
    started = threading.Event()

    def fn(i: int) -> int:
        if i == 0:
            started.wait(10)
        elif i in (2, 4):
            started.set()
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 2"):
        _owned_and_helped(SharedLoop(), fn, 5).result()


def test_help_returns_when_its_condition_holds_with_nothing_published():
    shared = SharedLoop()
    flag = threading.Event()
    timer = threading.Timer(0.1, lambda: (flag.set(), shared.wake()))
    timer.start()
    shared.help(flag.is_set)  # would block forever if the condition were not re-checked
    assert flag.is_set() and shared.helped == 0


class _OtherThreads(SharedLoop):
    """Every item on one of two fresh threads, in reverse order (as if helpers took them all)."""

    def map(self, fn, n):  # type: ignore[override]
        with ThreadPoolExecutor(2) as pool:
            futures = {i: pool.submit(fn, i) for i in reversed(range(n))}
            return [futures[i].result() for i in range(n)]


def test_finish_batch_gives_the_same_records_whichever_threads_compute_the_problems(vgg):
    """PCA, Ward and cluster maps per problem on other threads, in another order: bit-identical records."""
    from inviz.fmaps.analysis import finish_batch, prepare_batch
    from inviz.fmaps.explain import ExtractConfig
    from inviz.fmaps.gradients import LayerCapture
    from inviz.fmaps.layers import expand_layers

    torch.manual_seed(3)
    x = torch.randn(3, 3, 64, 64)
    cfg = ExtractConfig(tsne={"n_iter": 300})  # the nine layers of the paper
    with LayerCapture(vgg, expand_layers(vgg, cfg.layers, 64)) as capture:
        captured = capture.run(x, None)
    ids = ["a", "b", "c"]
    serial = finish_batch(prepare_batch(captured, cfg, ids, (64, 64)), cfg)
    shared = finish_batch(prepare_batch(captured, cfg, ids, (64, 64)), cfg, shared=_OtherThreads())
    assert len(serial) == len(shared) == 3
    for a, b in zip(serial, shared, strict=True):
        assert a.sample_id == b.sample_id
        for name, la in a.layers.items():
            lb = b.layers[name]
            assert (la.k, la.ks, la.silhouettes, la.kl, la.tsne_iter) == (
                lb.k,
                lb.ks,
                lb.silhouettes,
                lb.kl,
                lb.tsne_iter,
            )
            for f in ("channels", "weights", "embedding", "labels"):
                np.testing.assert_array_equal(getattr(la, f), getattr(lb, f))
            for ca, cb in zip(la.clusters, lb.clusters, strict=True):
                np.testing.assert_array_equal(ca.raw_map, cb.raw_map)
                np.testing.assert_array_equal(ca.map, cb.map)

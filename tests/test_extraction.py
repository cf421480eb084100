"""INV extraction end to end on tiny models (inviz.fmaps.explain, inviz.fmaps.store): identities, known groups,
edge cases, shards, resume, the params layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from inviz.core.config import ParamsError, from_dict, to_dict
from inviz.fmaps.clustering import CLUSTERINGS
from inviz.fmaps.explain import ExtractConfig, RunConfig, explain
from inviz.fmaps.gradients import NonFiniteError, capture
from inviz.fmaps.shards import consolidate, fingerprint, finished_ids, prepare_output, to_tables, write_shard
from inviz.fmaps.store import load_results
from inviz.fmaps.table1 import table1
from inviz.fmaps.threshold import keep_mask, layer_threshold
from inviz.fmaps.weighting import WEIGHTINGS
from inviz.models.vgg import ModelConfig, build_vgg16

LAYERS = ("block3_conv3", "block4_conv3", "block5_conv3")


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return build_vgg16(5, ModelConfig(weights="none", width=0.125, input_size=64)).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(3, 3, 64, 64)


class BlobNet(nn.Module):
    """A 'CNN' whose layer ``act`` outputs hand-made maps with known groups, scaled by the input.

    Channel c of ``act`` is ``s * maps[c]`` (s = mean of the input, positive); the logits are a
    linear read-out with positive weights for class 0, so class 0 is predicted and every map gets
    a positive guided weight.
    """

    def __init__(self, maps: torch.Tensor):
        super().__init__()
        self.register_buffer("maps", maps)
        self.act = nn.Identity()
        n = maps[0].numel() * maps.shape[0]
        self.head = nn.Linear(n, 2, bias=False)
        with torch.no_grad():
            self.head.weight[0] = 1.0 / n
            self.head.weight[1] = -1.0 / n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((1, 2, 3))[:, None, None, None]
        a = self.act(s * self.maps[None])
        return self.head(a.flatten(1))


def blob_channels(
    n_groups: int, per_group: int, side: int = 16, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    angles = 2 * np.pi * np.arange(n_groups) / n_groups
    centres = side / 2 + 0.32 * side * np.stack([np.sin(angles), np.cos(angles)], 1)
    maps, labels = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            cy, cx = centres[g] + rng.normal(0, 0.03 * side, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.1 * side) ** 2))
            maps.append(rng.uniform(0.5, 2) * blob + rng.uniform(0, 0.05, blob.shape))
            labels.append(g)
    order = rng.permutation(len(labels))
    return torch.tensor(np.array(maps)[order], dtype=torch.float32), np.array(labels)[order]


def test_config_defaults_are_the_authors_code_and_round_trip():
    cfg = ExtractConfig()
    assert cfg.layers[0] == "block3_conv1" and cfg.layers[-1] == "block5_conv3" and len(cfg.layers) == 9
    assert (cfg.weights, cfg.normalisation, cfg.threshold.rule, cfg.prune) == (
        "guided",
        "percent",
        "channels",
        True,
    )
    assert (cfg.pca_components, cfg.tsne.perplexity, cfg.k_min, cfg.k_max) == (50, 30.0, 3, 8)
    assert (cfg.clustering, cfg.run.batch_size, cfg.run.threads) == ("scipy", 8, 0)
    assert from_dict(ExtractConfig, to_dict(cfg)) == cfg
    with pytest.raises(ParamsError, match="weights"):
        from_dict(ExtractConfig, {"weights": "lrp"})
    with pytest.raises(ParamsError, match="k_min"):
        from_dict(ExtractConfig, {"k_min": 5, "k_max": 3})
    with pytest.raises(ParamsError, match="unknown key"):
        from_dict(ExtractConfig, {"tsne": {"perplexty": 5}})


def test_identity_cluster_maps_sum_to_the_weighted_sum_of_kept_maps(vgg, images):
    cfg = ExtractConfig(layers=LAYERS, map_scaling="code")
    expls = explain(vgg, images, cfg=cfg)
    cap = capture(vgg, images, LAYERS)
    for i, ex in enumerate(expls):
        assert ex.target == ex.pred == int(cap.targets[i])
        for name, le in ex.layers.items():
            a, g = cap.activations[name][i], cap.gradients[name][i]
            w = WEIGHTINGS["guided"](a[None], g[None])[0]
            kept = keep_mask(w, layer_threshold(name, a.shape[0], cfg.threshold))
            assert le.channels.tolist() == kept.nonzero().flatten().tolist()
            w_pct = 100 * w / w.clamp(min=0).sum()
            np.testing.assert_allclose(le.weights, w_pct[kept].double().numpy(), rtol=1e-5)
            expected = torch.einsum("c,chw->hw", w_pct[kept], a[kept]).numpy()
            got = sum(c.weight * c.raw_map.astype(np.float64) for c in le.clusters)  # pruned ones included
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_gradcam_identity_against_captum(vgg, images):
    """weights: gradcam, no threshold, no pruning: the cluster maps add up to Grad-CAM (captum)."""
    from captum.attr import LayerGradCam

    cfg = ExtractConfig(
        layers=("block5_conv3", "block4_conv1"),
        weights="gradcam",
        normalisation="none",
        threshold={"rule": "none", "keep_nonpositive": True},
        prune=False,
        map_scaling="raw",
    )
    cfg = from_dict(ExtractConfig, to_dict(cfg))
    expls = explain(vgg, images, cfg=cfg)
    for name, module in (("block5_conv3", vgg.features[29]), ("block4_conv1", vgg.features[18])):
        targets = torch.tensor([ex.target for ex in expls])
        ref = LayerGradCam(vgg, module).attribute(images, target=targets, relu_attributions=False)[:, 0]
        for i, ex in enumerate(expls):
            le = ex.layers[name]
            assert le.n_kept == le.n_channels  # every channel, negative weights included
            assert all(not c.pruned for c in le.clusters)
            ours = sum(c.weight * c.raw_map.astype(np.float64) for c in le.clusters)
            np.testing.assert_allclose(ours, ref[i].detach().numpy(), rtol=1e-4, atol=1e-6)
            # Grad-CAM proper is the rectified sum
            np.testing.assert_allclose(
                np.maximum(ours, 0), torch.relu(ref[i]).detach().numpy(), rtol=1e-4, atol=1e-6
            )


def test_gradcam_weights_equal_pytorch_grad_cam(vgg, images):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cap = capture(vgg, images, ["block5_conv3"])
    cam = GradCAM(model=vgg, target_layers=[vgg.features[29]])
    try:
        cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in cap.targets])
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        grads = cam.activations_and_grads.gradients[0].cpu().numpy()
        theirs = cam.get_cam_weights(images, None, None, acts, grads)
    finally:
        cam.activations_and_grads.release()
    ours = WEIGHTINGS["gradcam"](cap.activations["block5_conv3"], cap.gradients["block5_conv3"])
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("backend", ["numba", pytest.param("reference", marks=pytest.mark.slow)])
def test_known_groups_are_recovered_by_every_path(backend):
    maps, truth = blob_channels(5, 24)
    net = BlobNet(maps).eval()
    cfg = ExtractConfig(layers=("act",), threshold={"rule": "none"}, tsne={"backend": backend}, prune=False)
    (ex,) = explain(net, torch.full((1, 3, 8, 8), 0.8), cfg=cfg)
    le = ex.layers["act"]
    assert le.n_kept == len(truth) and le.status == "ok"
    assert le.k == 5
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth[le.channels], le.labels) == 1.0


def test_records_are_consistent(vgg, images):
    cfg = ExtractConfig(layers=LAYERS)
    expls = explain(vgg, images, cfg=cfg, sample_ids=["a", "b", "c"])
    assert [ex.sample_id for ex in expls] == ["a", "b", "c"]
    for ex in expls:
        for le in ex.layers.values():
            assert le.k == len(le.clusters)
            assert le.embedding.shape == (le.n_kept, 2) and le.labels.shape == (le.n_kept,)
            assert len(le.ks) == len(le.silhouettes)
            if le.status == "ok":
                assert le.k in le.ks and le.silhouette == max(le.silhouettes)
            weights = [c.weight for c in le.clusters]
            assert weights == sorted(weights, reverse=True)  # cluster 0 is the heaviest
            assert sum(c.n_fmaps for c in le.clusters) == le.n_kept
            for c in le.clusters:
                assert sorted(c.channels.tolist()) == sorted(le.channels[le.labels == c.cluster].tolist())
                assert c.raw_map.shape == c.map.shape == (le.height, le.width)
                assert 0 <= c.map.min() and c.map.max() <= 1  # code scaling
            assert sum(c.weight for c in le.clusters) == pytest.approx(le.weights.sum())
            assert 0 <= le.leftover_fmaps_pct <= 100 and 0 <= le.leftover_weight_pct <= 100 + 1e-9
            assert any(not c.pruned for c in le.clusters)  # the heaviest cluster always survives


def test_clustering_directly_on_pca_scores(vgg, images):
    """The ablation without t-SNE: Ward on the PCA scores; every other step (weights, maps) unchanged."""
    cfg = ExtractConfig(layers=LAYERS, embedding="pca", pca_components=8)
    base = explain(vgg, images, cfg=ExtractConfig(layers=LAYERS), sample_ids=["a", "b", "c"])
    for ex, ref in zip(explain(vgg, images, cfg=cfg, sample_ids=["a", "b", "c"]), base, strict=True):
        for name, le in ex.layers.items():
            assert le.embedding_method in ("pca", "none")
            assert le.embedding.shape[0] == le.n_kept and le.embedding.shape[1] == min(8, max(le.n_kept, 2))
            np.testing.assert_array_equal(le.channels, ref.layers[name].channels)
            assert sum(c.weight for c in le.clusters) == pytest.approx(le.weights.sum())


def test_deterministic_and_explicit_targets(vgg, images):
    cfg = ExtractConfig(layers=("block5_conv3",))
    a = explain(vgg, images, cfg=cfg)
    b = explain(vgg, images, cfg=cfg)
    for x, y in zip(a, b, strict=True):
        le_x, le_y = x.layers["block5_conv3"], y.layers["block5_conv3"]
        np.testing.assert_array_equal(le_x.embedding, le_y.embedding)
        np.testing.assert_array_equal(le_x.labels, le_y.labels)
    other = [(ex.target + 1) % 5 for ex in a]
    c = explain(vgg, images, cfg=cfg, targets=other)
    assert [ex.target for ex in c] == other
    assert [ex.pred for ex in c] == [ex.pred for ex in a]
    assert any(
        not np.array_equal(x.layers["block5_conv3"].channels, y.layers["block5_conv3"].channels)
        for x, y in zip(a, c, strict=True)
    )


def test_batch_size_changes_only_rounding(vgg, images):
    """Kept maps and weights do not depend on the batch; t-SNE may amplify float rounding (documented)."""
    one = explain(vgg, images, cfg=ExtractConfig(layers=("block4_conv3",), run={"batch_size": 1}))
    all_ = explain(vgg, images, cfg=ExtractConfig(layers=("block4_conv3",), run={"batch_size": 8}))
    for x, y in zip(one, all_, strict=True):
        np.testing.assert_array_equal(x.layers["block4_conv3"].channels, y.layers["block4_conv3"].channels)
        np.testing.assert_allclose(
            x.layers["block4_conv3"].weights, y.layers["block4_conv3"].weights, rtol=1e-4
        )


def test_no_positive_weights():
    maps, _ = blob_channels(3, 10)
    net = BlobNet(maps).eval()
    with torch.no_grad():
        net.head.weight[0] = -net.head.weight[0]  # class 0 logit decreases with every map
    (ex,) = explain(net, torch.full((1, 3, 8, 8), 0.8), cfg=ExtractConfig(layers=("act",)), targets=[0])
    le = ex.layers["act"]
    assert (le.status, le.n_kept, le.k, le.clusters, le.n_positive) == ("no_positive", 0, 0, (), 0)
    assert le.leftover_fmaps_pct == 0 and le.leftover_weight_pct == 0
    _, stats, _ = to_tables([ex])
    t = table1(stats)
    assert t.loc["act", "leftover_clusters"] == 0 and t.loc["act", "leftover_weight"] == 0


def test_fewer_kept_maps_than_k_min():
    maps, _ = blob_channels(2, 1)
    net = BlobNet(maps).eval()
    (ex,) = explain(
        net, torch.full((1, 3, 8, 8), 0.8), cfg=ExtractConfig(layers=("act",), threshold={"rule": "none"})
    )
    le = ex.layers["act"]
    assert (le.status, le.n_kept, le.k, le.embedding_method) == ("few_points", 2, 2, "pca")
    assert [c.n_fmaps for c in le.clusters] == [1, 1]
    cfg = ExtractConfig(layers=("act",), threshold={"rule": "none"}, few_points="one_cluster")
    (ex,) = explain(net, torch.full((1, 3, 8, 8), 0.8), cfg=cfg)
    assert ex.layers["act"].k == 1 and ex.layers["act"].clusters[0].n_fmaps == 2


@pytest.mark.parametrize("seed", range(6))
def test_constant_maps_form_one_cluster(seed):
    maps = torch.ones(12, 6, 6) * 0.7  # every map constant and identical
    net = BlobNet(maps).eval()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) + 0.5
    (ex,) = explain(net, x, cfg=ExtractConfig(layers=("act",), threshold={"rule": "none"}))
    le = ex.layers["act"]
    assert (le.status, le.k, le.n_kept) == ("identical", 1, 12)
    assert np.isfinite(le.embedding).all()
    assert (le.clusters[0].map == 0).all()  # the code's min-max of a constant map


def test_perplexity_above_the_point_count_is_lowered():
    maps, truth = blob_channels(3, 4)  # 12 maps: perplexity 30 -> 11/3
    net = BlobNet(maps).eval()
    (ex,) = explain(
        net, torch.full((1, 3, 8, 8), 0.8), cfg=ExtractConfig(layers=("act",), threshold={"rule": "none"})
    )
    le = ex.layers["act"]
    assert le.embedding_method == "tsne" and le.perplexity == pytest.approx(11 / 3)
    assert np.isfinite(le.embedding).all() and le.status == "ok"


def test_nan_activations_raise_a_clear_error(vgg):
    x = torch.randn(1, 3, 64, 64)
    x[0, 1, 5, 5] = float("nan")
    with pytest.raises(NonFiniteError, match="block3_conv3"):
        explain(vgg, x, cfg=ExtractConfig(layers=LAYERS))


def test_tables_shards_and_loading(tmp_path, vgg, images):
    cfg = ExtractConfig(layers=LAYERS)
    expls = explain(vgg, images, cfg=cfg, sample_ids=["s/0", "s/1", "s/2"])
    prepare_output(tmp_path, cfg, "abc")
    write_shard(tmp_path, "r000-x-00000", expls[:2])
    write_shard(tmp_path, "r000-x-00001", expls[2:])
    assert finished_ids(tmp_path) == {"s/0", "s/1", "s/2"}
    clusters, layers = consolidate(tmp_path, ["s/2", "s/0", "s/1"])
    assert layers["sample_id"].tolist()[:3] == ["s/2"] * 3
    assert len(layers) == 9 and len(clusters) == sum(
        len(le.clusters) for ex in expls for le in ex.layers.values()
    )
    assert clusters["cluster_id"].is_unique
    res = load_results(tmp_path)
    row = res.clusters.iloc[0]
    assert row["cluster_id"] == f"{row['sample_id']}|{row['layer']}|{row['cluster']}"
    back = {ex.sample_id: ex for ex in res.explanations()}
    for ex in expls:
        for name, le in ex.layers.items():
            lb = back[ex.sample_id].layers[name]
            np.testing.assert_array_equal(le.channels, lb.channels)
            np.testing.assert_allclose(le.embedding, lb.embedding)
            assert le.ks == lb.ks and le.k == lb.k and le.status == lb.status
            for ca, cb in zip(le.clusters, lb.clusters, strict=True):
                np.testing.assert_array_equal(ca.raw_map, cb.raw_map)
                np.testing.assert_array_equal(ca.map, cb.map)
                assert ca.pruned == cb.pruned and ca.weight == pytest.approx(cb.weight)
    cid = clusters["cluster_id"].iloc[-1]
    assert res.cluster_map(cid).shape == (clusters["height"].iloc[-1], clusters["width"].iloc[-1])
    t = table1(layers, LAYERS)
    assert list(t.index) == list(LAYERS) and (t["n_images"] == 3).all()


def test_prepare_output_resets_on_other_config_or_runtime(tmp_path, vgg, images):
    cfg = ExtractConfig(layers=("block5_conv3",), tsne={"backend": "auto"})
    ex = explain(vgg, images[:1], cfg=cfg)

    def fill(name: str) -> None:
        write_shard(tmp_path, f"r000-{name}-00000", ex)
        consolidate(tmp_path)

    assert prepare_output(tmp_path, cfg, "m1") == set()
    fill("a")
    (tmp_path / "shards" / "r000-b-00000.maps.npz").write_bytes(b"partial")  # an interrupted shard
    resumed = cfg.replace(
        run={"shard_size": 3, "threads": 2, "num_workers": 1, "device": "cpu", "overlap": False, "devices": 2}
    )
    assert prepare_output(tmp_path, resumed, "m1") == {"0"}  # run settings that do not change results: resume
    assert not (tmp_path / "shards" / "r000-b-00000.maps.npz").exists()
    assert prepare_output(tmp_path, cfg.replace(tsne={"backend": "numba"}), "m1") == {
        "0"
    }  # auto = numba here
    for other in (
        cfg.replace(k_max=6),  # another config
        cfg.replace(run={"batch_size": 3}),  # another batch size
        cfg.replace(tsne={"backend": "torch"}),  # another t-SNE backend
        cfg.replace(run={"device": "cuda"}),  # another device type (and with it the backend auto resolves to)
        cfg,  # ... and back, with another model below
    ):
        fill("c")
        model = "m2" if other is cfg else "m1"
        assert prepare_output(tmp_path, other, model) == set()  # afresh
        # the merged tables went with the shards: nothing of the old run can be read back
        assert (
            not (tmp_path / "clusters.parquet").exists() and not (tmp_path / "layer_stats.parquet").exists()
        )
        assert len(load_results(tmp_path).layers) == 0
        cfg = other


def test_merged_tables_of_another_run_or_merge_are_refused(tmp_path, vgg, images):
    from inviz.core.io import read_json, write_json
    from inviz.fmaps.store import StaleResultsError

    cfg = ExtractConfig(layers=("block5_conv3",))
    prepare_output(tmp_path, cfg, "m1")
    write_shard(tmp_path, "r000-a-00000", explain(vgg, images[:2], cfg=cfg))
    consolidate(tmp_path)
    assert len(load_results(tmp_path).layers) == 2
    old = (tmp_path / "layer_stats.parquet").read_bytes()
    consolidate(tmp_path)  # a second merge: a new token in both tables
    (tmp_path / "layer_stats.parquet").write_bytes(old)  # one table of the first merge, one of the second
    with pytest.raises(StaleResultsError, match="different merges"):
        load_results(tmp_path)
    consolidate(tmp_path)
    manifest = read_json(tmp_path / "manifest.json")
    write_json(tmp_path / "manifest.json", {**manifest, "fingerprint": "0123456789abcdef"})
    with pytest.raises(StaleResultsError, match="another configuration or model"):
        load_results(tmp_path)


def test_consolidate_keeps_one_consistent_copy_of_a_duplicated_image(tmp_path, vgg, images):
    """Two different analyses of one image (a re-run, two ranks): layer rows and clusters of one shard."""
    three = explain(vgg, images[:1], cfg=ExtractConfig(layers=LAYERS, k_min=3, k_max=3), sample_ids=["s"])
    five = explain(vgg, images[:1], cfg=ExtractConfig(layers=LAYERS, k_min=5, k_max=5), sample_ids=["s"])
    other = explain(vgg, images[1:2], cfg=ExtractConfig(layers=LAYERS), sample_ids=["t"])
    write_shard(tmp_path, "r001-b-00000", five + other)
    write_shard(tmp_path, "r000-a-00000", three)  # first in name order: its copy wins
    for clusters, layers in (consolidate(tmp_path, ["s", "t"]), consolidate(tmp_path)):
        assert len(layers) == 2 * len(LAYERS) and not layers.duplicated(["sample_id", "layer"]).any()
        for r in layers.itertuples():
            rows = clusters[(clusters["sample_id"] == r.sample_id) & (clusters["layer"] == r.layer)]
            assert len(rows) == r.n_clusters == r.k and rows["k"].eq(r.k).all()
            assert rows["map_file"].nunique() == 1  # every cluster from one shard
            if r.sample_id == "s":
                assert r.k == 3 and rows["map_file"].iloc[0] == "shards/r000-a-00000.maps.npz"
    for name in ("clusters.parquet", "layer_stats.parquet"):
        (tmp_path / name).unlink()
    res = load_results(tmp_path)  # read from the shards: the same one copy
    assert sorted(res.layers.groupby("sample_id")["k"].max().items()) == sorted(
        layers.groupby("sample_id")["k"].max().items()
    )
    assert len(res.clusters) == len(clusters)


def _same_records(a, b) -> None:
    """Two records of one image are bit-identical (every number, embedding and map)."""
    assert (a.sample_id, a.target, a.pred, a.logit) == (b.sample_id, b.target, b.pred, b.logit)
    for name, la in a.layers.items():
        lb = b.layers[name]
        for f in ("channels", "weights", "embedding", "labels"):
            np.testing.assert_array_equal(getattr(la, f), getattr(lb, f), err_msg=f"{name}.{f}")
        assert (la.k, la.ks, la.silhouettes, la.kl, la.tsne_iter, la.status, la.total_weight) == (
            lb.k,
            lb.ks,
            lb.silhouettes,
            lb.kl,
            lb.tsne_iter,
            lb.status,
            lb.total_weight,
        )
        for ca, cb in zip(la.clusters, lb.clusters, strict=True):
            assert (ca.weight, ca.pruned) == (cb.weight, cb.pruned)
            np.testing.assert_array_equal(ca.raw_map, cb.raw_map)
            np.testing.assert_array_equal(ca.map, cb.map)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_an_images_records_do_not_depend_on_its_batch_companions(vgg, backend):
    """For a batch size, an image gives the same records in another order, another batch, a partial
    last batch, alone, with or without the CPU overlap; per image, not up to rounding."""
    torch.manual_seed(5)
    x = torch.randn(5, 3, 64, 64)
    ids = [f"i{i}" for i in range(5)]
    cfg = ExtractConfig(layers=LAYERS, run={"batch_size": 3}, tsne={"backend": backend, "n_iter": 300})
    base = {ex.sample_id: ex for ex in explain(vgg, x, cfg=cfg, sample_ids=ids)}  # batches 3 + 2 (padded)
    order = [4, 2, 0, 3, 1]
    shuffled = explain(
        vgg, x[order], cfg=cfg.replace(run={"overlap": False}), sample_ids=[ids[i] for i in order]
    )
    alone = explain(vgg, x[3:4], cfg=cfg, sample_ids=["i3"])  # a batch of one, padded to three
    for ex in [*shuffled, *alone]:
        _same_records(base[ex.sample_id], ex)


def test_the_analysis_runs_in_full_float32_and_restores_the_callers_settings(vgg, images):
    """TF32 requested by the caller (Lightning's hint) is off inside the analysis, and back afterwards."""
    from inviz.core.compute import _PRECISION_FLAGS, _flag

    seen = []

    def record(module, inputs, output):
        flags = [_flag(*key).fp32_precision for key in _PRECISION_FLAGS]
        seen.append((flags, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark))

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True
    try:
        caller = [_flag(*key).fp32_precision for key in _PRECISION_FLAGS]
        assert "tf32" in caller
        handle = vgg.features[0].register_forward_hook(record)
        try:
            explain(vgg, images[:1], cfg=ExtractConfig(layers=("block5_conv3",)))
        finally:
            handle.remove()
        assert seen and all(flags == ["ieee"] * len(_PRECISION_FLAGS) and d and not b for flags, d, b in seen)
        assert [_flag(*key).fp32_precision for key in _PRECISION_FLAGS] == caller
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.benchmark = before[1]


def test_to_tables_columns(vgg, images):
    clusters, layers, maps = to_tables(
        explain(vgg, images[:1], cfg=ExtractConfig(layers=LAYERS)), "shards/x.maps.npz"
    )
    assert {"cluster_id", "weight", "n_fmaps", "channels", "k", "silhouette", "pruned", "map_index"} <= set(
        clusters
    )
    assert {"threshold", "ks", "silhouettes", "embedding_x", "labels", "leftover_fmaps_pct"} <= set(layers)
    for name in LAYERS:
        assert maps[f"raw__{name}"].shape[0] == (clusters["layer"] == name).sum()
        assert f"map__{name}" in maps
    assert isinstance(layers, pd.DataFrame)


def test_run_settings_are_a_nested_section_and_old_keys_still_load(caplog):
    """``threads``, ``device``, ``batch_size`` … live under ``extract.run``; an old flat section still loads."""
    old = {
        "layers": ["block5_conv3"],
        "k_max": 6,
        "device": "cpu",
        "devices": 2,
        "num_nodes": 1,
        "strategy": "ddp",
        "batch_size": 4,
        "num_workers": 3,
        "shard_size": 16,
        "threads": 2,
    }
    with caplog.at_level("WARNING"):
        cfg = from_dict(ExtractConfig, old, "extract", "params.yaml")
    assert cfg.run == RunConfig(
        device="cpu",
        devices=2,
        num_nodes=1,
        strategy="ddp",
        batch_size=4,
        num_workers=3,
        shard_size=16,
        threads=2,
    )
    assert cfg.k_max == 6 and cfg.layers == ("block5_conv3",)
    assert "extract.threads is now extract.run.threads" in caplog.text
    new = {"layers": ["block5_conv3"], "k_max": 6, "run": to_dict(cfg.run)}
    assert from_dict(ExtractConfig, new, "extract") == cfg
    assert set(ExtractConfig.MOVED_KEYS) == {f for f in to_dict(RunConfig())}
    with pytest.raises(ParamsError, match="give only the new key"):
        from_dict(ExtractConfig, {"threads": 2, "run": {"threads": 4}}, "extract")
    with pytest.raises(ParamsError, match="batch_size"):
        from_dict(ExtractConfig, {"run": {"batch_size": 0}}, "extract")


def test_fingerprint_covers_the_method_the_runtime_and_the_model(monkeypatch):
    cfg = ExtractConfig(layers=("block5_conv3",))
    same = cfg.replace(
        run={
            "threads": 4,
            "num_workers": 2,
            "shard_size": 5,
            "device": "cpu",
            "devices": 2,
            "num_nodes": 2,
            "strategy": "ddp",
            "overlap": False,
            "deterministic": "warn",
        }
    )
    assert fingerprint(same, "m") == fingerprint(cfg, "m")
    others = [
        cfg.replace(run={"batch_size": 3}),
        cfg.replace(run={"device": "cuda"}),
        cfg.replace(tsne={"backend": "torch"}),
        cfg.replace(k_max=6),
        cfg.replace(clustering="sklearn"),
        cfg.replace(tsne={"perplexity": 20.0}),
    ]
    prints = {fingerprint(c, "m") for c in others} | {fingerprint(cfg, "m"), fingerprint(cfg, "m2")}
    assert len(prints) == len(others) + 2
    from inviz.fmaps.shards import runtime

    assert runtime(cfg)["tsne_backend"] == "numba" and runtime(cfg)["device_type"] == "cpu"  # auto, resolved
    assert runtime(cfg.replace(run={"device": "cuda"}))["tsne_backend"] == "torch"
    before = fingerprint(cfg, "m")
    monkeypatch.setattr(torch, "__version__", "0.0.1")  # another torch rounds differently
    assert fingerprint(cfg, "m") != before


@pytest.mark.parametrize("name", sorted(CLUSTERINGS))
def test_every_clustering_implementation_gives_the_same_records(vgg, images, name):
    """``extract.clustering`` picks the implementation; every one gives the scipy default's clusters."""
    base = explain(vgg, images[:2], cfg=ExtractConfig(layers=LAYERS))
    other = explain(vgg, images[:2], cfg=ExtractConfig(layers=LAYERS, clustering=name))
    for a, b in zip(base, other, strict=True):
        for layer, la in a.layers.items():
            lb = b.layers[layer]
            assert (la.k, la.ks, la.status) == (lb.k, lb.ks, lb.status)
            np.testing.assert_array_equal(la.labels, lb.labels)
            np.testing.assert_allclose(la.silhouettes, lb.silhouettes, rtol=1e-10, atol=1e-12)
            for ca, cb in zip(la.clusters, lb.clusters, strict=True):
                np.testing.assert_array_equal(ca.raw_map, cb.raw_map)
    with pytest.raises(ParamsError, match="clustering"):
        from_dict(ExtractConfig, {"clustering": "hdbscan"})

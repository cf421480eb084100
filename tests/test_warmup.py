"""The install-time warm-up compiles every numba kernel the extraction uses (``make install``)."""

import os
import subprocess
import sys
import textwrap

import pytest

#: An extraction unlike the warm-up's: other input size, width, layers, batch size and images.
EXTRACT = textwrap.dedent(
    """
    import dataclasses, torch
    from inviz.fmaps.explain import ExtractConfig, explain
    from inviz.models.vgg import ModelConfig, build_vgg16
    torch.manual_seed(7)
    model = build_vgg16(3, ModelConfig(weights="none", input_size=96, width=0.125, head_hidden=8)).eval()
    cfg = ExtractConfig()
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, batch_size=3))
    layers = ["block3_conv2", "block4_conv1", "block4_conv3", "block5_conv2"]
    records = explain(model, torch.randn(5, 3, 96, 96), layers, cfg)
    print("explained", len(records))
    """
)


def _run(code: list[str], cache_dir, debug: bool) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "NUMBA_DEBUG_CACHE": "1" if debug else "0"}
    out = subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr


@pytest.mark.slow
def test_after_the_warm_up_an_extraction_compiles_nothing(tmp_path):
    """In a fresh numba cache, the warm-up compiles; an extraction afterwards only loads."""
    cache = tmp_path / "numba"
    first = _run(["-m", "inviz.fmaps.warmup"], cache, debug=True)
    assert "numba kernels of the feature-map analysis ready" in first
    assert "data saved" in first  # it compiled into the fresh cache
    second = _run(["-c", EXTRACT], cache, debug=True)
    assert "explained 5" in second
    assert "data loaded" in second
    saved = [line for line in second.splitlines() if "data saved" in line]
    assert saved == [], f"compiled after the warm-up: {saved[:5]}"

"""The "what if" panel: mask encoding and estimation, the model's answers on edited images, the
stored edits and their export."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from game_world import WHATIF_GRID, Clock, build_whatif_world, whatif_paths
from PIL import Image

from inviz.game.reveal import game_image
from inviz.game.web.app import create_app
from inviz.game.web.export import export_tables
from inviz.game.web.settings import Settings, open_game
from inviz.game.web.whatif import apply_mask, cell_mask, decode_mask, encode_mask
from inviz.models.checkpoint import load_checkpoint


def test_masks_encode_estimate_and_apply():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    assert np.array_equal(decode_mask(encode_mask(mask), 8), mask)
    with pytest.raises(ValueError, match="expected 64 bytes"):
        decode_mask(encode_mask(mask[:4]), 8)
    with pytest.raises(ValueError, match="not base64"):
        decode_mask("not base64!", 8)
    full = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    cells = (rng.random((8, 8)) > 0.5).astype(np.uint8) * 255
    masked = (full * np.kron(cells, np.ones((4, 4), np.uint8))[..., None].astype(bool)).astype(np.uint8)
    assert np.array_equal(cell_mask(masked, full, 8), cells)  # exact where the mask is constant per cell
    assert np.array_equal(apply_mask(full, np.full((8, 8), 255, np.uint8)), full)
    assert not apply_mask(full, np.zeros((8, 8), np.uint8)).any()
    with pytest.raises(ValueError, match="must divide"):
        cell_mask(masked, full, 7)


class WhatIfGame:
    def __init__(self, root):
        self.w = build_whatif_world(root)
        self.state = open_game(Settings.from_params(self.w["params"], whatif_paths(self.w)), clock=Clock())
        self.app = create_app(self.state)

    def client(self, name):
        c = TestClient(self.app)
        assert (
            c.post(
                "/api/players", json={"nickname": name, "ai_background": True, "language": "en"}
            ).status_code
            == 201
        )
        return c

    def finished_round(self, c, hints=2):
        rnd = c.post("/api/rounds").json()["round"]
        tok = rnd["token"]
        for _ in range(hints):
            c.post(f"/api/rounds/{tok}/hint")
        c.post(f"/api/rounds/{tok}/guess", json={"choice": rnd["choices"][0]["id"]})
        return tok, c.post(f"/api/rounds/{tok}/features", json={"texts": ["x"]}).json()


@pytest.fixture
def wig(tmp_path):
    g = WhatIfGame(tmp_path / "w")
    yield g
    g.state.close()


def model_probs(w, image):
    """The checkpoint's probabilities on a game image, computed here independently."""
    m = load_checkpoint(w["model"])
    x = np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.BILINEAR), np.float32) / 255
    x = (torch.from_numpy(x).permute(2, 0, 1) - torch.tensor(m.config.mean)[:, None, None]) / torch.tensor(
        m.config.std
    )[:, None, None]
    with torch.inference_mode():
        return torch.softmax(m.model(x[None])[0].double(), 0).numpy()


def test_the_panel_starts_from_what_the_game_showed_and_predicts_on_edits(wig):
    c = wig.client("Ann")
    rnd = c.post("/api/rounds").json()["round"]
    assert c.get(f"/api/rounds/{rnd['token']}/whatif").status_code == 409  # not finished
    tok = rnd["token"]
    for _ in range(2):
        c.post(f"/api/rounds/{tok}/hint")
    c.post(f"/api/rounds/{tok}/guess", json={"choice": rnd["choices"][0]["id"]})
    c.post(f"/api/rounds/{tok}/features", json={"texts": ["x"]})
    with wig.state.db.read() as s:
        from sqlalchemy import select

        from inviz.game.web.db import Round

        r = s.scalar(select(Round))
    panel = c.get(f"/api/rounds/{tok}/whatif").json()
    assert panel["grid"] == WHATIF_GRID and panel["edits_left"] == 20
    seen = wig.w["masks_of"][r.cluster_id][2]  # the level after two hints
    assert np.array_equal(decode_mask(panel["mask"], WHATIF_GRID), seen)
    img = c.get(panel["image"])
    full = np.asarray(Image.open(io.BytesIO(img.content)).convert("RGB"))
    sample = wig.state.content.map_row(r.cluster_id)["image"]
    path = dict(zip(*np.loadtxt(wig.w["selected"], dtype=str, delimiter=",", skiprows=1).T, strict=True))[
        sample
    ]
    expected_full = game_image(
        np.asarray(Image.open(wig.w["images"] / path).convert("RGB")), 32, 64, "bilinear"
    )
    assert np.array_equal(full, expected_full)
    names = {k.label: k.name for k in wig.state.content.classes}
    truth = int(wig.state.content.map_row(r.cluster_id)["label"])
    p0 = model_probs(wig.w, apply_mask(full, seen))
    assert panel["prediction"]["label"] == names[int(np.argmax(p0))]
    assert panel["prediction"]["true_prob"] == pytest.approx(p0[truth], abs=1e-4)
    # show everything: the prediction is the model's on the whole image
    everything = encode_mask(np.full((WHATIF_GRID, WHATIF_GRID), 255, np.uint8))
    out = c.post(f"/api/rounds/{tok}/whatif", json={"mask": everything}).json()
    p1 = model_probs(wig.w, full)
    assert out["prediction"]["true_prob"] == pytest.approx(p1[truth], abs=1e-4) and out["edits_left"] == 19
    assert sum(t["p"] for t in out["prediction"]["top"]) <= 1.0 + 1e-6
    ex = export_tables(wig.state.db, wig.state.content).what_if
    assert len(ex) == 1 and ex["shown_share"].iloc[0] == 1.0 and ex["guess_id"].iloc[0] == f"r{r.id}"
    assert ex["true_prob_after"].iloc[0] == pytest.approx(p1[truth]) and ex["mask"].iloc[0] == everything
    assert ex["true_prob_before"].iloc[0] == pytest.approx(p0[truth])


def test_bad_edits_are_refused(wig):
    c, other = wig.client("Ann"), wig.client("Bob")
    tok, _ = wig.finished_round(c)
    r = c.post(f"/api/rounds/{tok}/whatif", json={"mask": "abc"})
    assert r.status_code == 422 and "mask" in r.json()["detail"]
    assert other.get(f"/api/rounds/{tok}/whatif").status_code == 404
    ok = encode_mask(np.zeros((WHATIF_GRID, WHATIF_GRID), np.uint8))
    assert other.post(f"/api/rounds/{tok}/whatif", json={"mask": ok}).status_code == 404
    for _ in range(20):
        assert c.post(f"/api/rounds/{tok}/whatif", json={"mask": ok}).status_code == 200
    r = c.post(f"/api/rounds/{tok}/whatif", json={"mask": ok})
    assert r.status_code == 429 and "at most 20" in r.json()["detail"]


def test_the_panel_is_off_unless_asked(tmp_path):
    from game_world import build_game_world, paths

    w = build_game_world(tmp_path / "w")
    state = open_game(Settings.from_params(w["params"], paths(w)), clock=Clock())
    try:
        c = TestClient(create_app(state))
        c.post("/api/players", json={"nickname": "Ann", "ai_background": True, "language": "en"})
        assert c.get("/api/config").json()["what_if"] is False
        assert c.get("/api/rounds/x/whatif").status_code in (404, 405)
    finally:
        state.close()

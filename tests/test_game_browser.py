"""Deep Reveal in a real headless Chromium (Playwright) against a real uvicorn server.

Desktop: sign up, play a round with a hint, guess, type features (one of them a script: it must
show as text and never run), see the result and the leaderboard, answer the questionnaire, open
the admin page. Phone viewport: sign up and play a round by tapping, nothing wider than the
screen. Screenshots go to build/artifacts/ (INVIZ_ARTIFACTS overrides).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from game_world import Clock, ThreadedServer, build_game_world, paths
from sqlalchemy import select
from test_inv_stages import chromium

from inviz.game.web.app import create_app
from inviz.game.web.db import Questionnaire, Round
from inviz.game.web.settings import Settings, open_game

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
XSS = ("<img src=x onerror=window.__xss=1>", "<script>window.__xss=2</script>")  # within max_text_length

#: A function, not an expression: Playwright evaluates an expression with eval(), which the page's
#: Content-Security-Policy (script-src 'self') refuses once the predicate has to poll.
IMAGE_SHOWN = "() => document.querySelector('[data-testid=round-image]').naturalWidth > 0"


@pytest.fixture
def served(tmp_path):
    w = build_game_world(tmp_path / "w")
    settings = Settings.from_params(w["params"], paths(w), env={"INVIZ_GAME_ADMIN_TOKEN": "admin-secret"})
    state = open_game(settings, clock=Clock())
    with ThreadedServer(create_app(state)) as server:
        yield server, state
    state.close()


def artifacts() -> Path:
    out = Path(os.environ.get("INVIZ_ARTIFACTS", ROOT / "build" / "artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def true_choice(state, page) -> str:
    """The name of the true class of the round on screen (read from the database)."""
    with state.db.read() as s:
        r = s.scalar(select(Round).order_by(Round.id.desc()).limit(1))
    gid = int(state.content.map_row(r.cluster_id)["game_id"])
    return state.content.game_class(gid).name


def sign_up(page, nickname):
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_attribute("body", "data-view") == "signup"
    page.fill("[data-testid=nickname]", nickname)
    page.check("[data-testid=ai-yes]")
    page.select_option("[data-testid=language]", "it")
    page.click("[data-testid=signup]")
    page.wait_for_selector("body[data-view='round']")


def play_round(page, state, texts=("wheel",)):
    page.click(f"[data-testid=choice]:has-text('{true_choice(state, page)}')")
    page.wait_for_selector("body[data-view='features']")
    for i, t in enumerate(texts):
        page.locator("[data-testid=feature]").nth(i).fill(t)
    page.click("[data-testid=send-features]")
    page.wait_for_selector("body[data-view='result']")


def test_the_game_in_a_desktop_browser(served):
    from playwright.sync_api import sync_playwright

    server, state = served
    exe = chromium()
    assert exe, (
        "no headless Chromium: `make install` puts one at .venv/bin/inviz-chromium (.ci/install-browser)"
    )
    out = artifacts()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/")
        sign_up(page, "Ada")
        assert page.text_content("[data-testid=who]") == "Ada"
        assert page.text_content("[data-testid=revealed]") == "2% revealed"
        assert page.locator("[data-testid=choice]").count() == 3
        assert page.is_disabled("[data-testid=resign]")
        page.wait_for_function(IMAGE_SHOWN)
        page.screenshot(path=str(out / "game_round.png"))
        # a hint reveals the next level
        page.click("[data-testid=hint]")
        page.wait_for_selector("text=4.5% revealed")
        assert page.get_attribute("[data-testid=round-image]", "src").endswith("/image/1")
        assert page.text_content("[data-testid=hint]") == "Hint (4 left)"
        # guess, then the features: free text, no suggestion list
        page.click(f"[data-testid=choice]:has-text('{true_choice(state, page)}')")
        page.wait_for_selector("body[data-view='features']")
        assert (
            page.locator("datalist, select, [list]").count() == 1
        )  # only the hidden sign-up language select
        assert page.get_attribute("[data-testid=feature] >> nth=0", "autocomplete") == "off"
        page.locator("[data-testid=feature]").nth(0).fill("spoked wheel")
        page.locator("[data-testid=feature]").nth(1).fill(XSS[0])
        page.locator("[data-testid=feature]").nth(2).fill(XSS[1])
        page.click("[data-testid=send-features]")
        page.wait_for_selector("body[data-view='result']")
        assert page.text_content("[data-testid=verdict]") == "Right!"
        assert page.text_content("[data-testid=true-class]") == true_choice(state, page)
        assert "+85 points" in page.text_content("[data-testid=points]")
        items = page.locator("[data-testid=your-features] li")
        assert items.all_text_contents() == ["spoked wheel", *XSS]  # shown as text ...
        assert (
            page.locator("[data-testid=your-features] img, [data-testid=your-features] script").count() == 0
        )
        assert page.evaluate("window.__xss") is None  # ... and never run
        page.screenshot(path=str(out / "game_result.png"), full_page=True)
        # the leaderboard
        page.click("[data-testid=result-leaderboard]")
        page.wait_for_selector("body[data-view='board']")
        assert "Ada" in page.text_content("[data-testid=leaderboard]")
        assert "rank 1 of 1 with 85 points" in page.text_content("[data-testid=my-rank]")
        page.screenshot(path=str(out / "game_leaderboard.png"))
        page.click("[data-testid=board-back]")
        page.wait_for_selector("body[data-view='round']")
        # two more rounds, then the questionnaire (game.questionnaire_after: 3)
        play_round(page, state)
        page.click("[data-testid=next]")
        page.wait_for_selector("body[data-view='round']")
        play_round(page, state)
        page.click("[data-testid=next]")
        page.wait_for_selector("body[data-view='questionnaire']")
        assert page.locator("[data-testid=sus-item]").count() == 10
        assert page.locator("[data-testid=tlx-item]").count() == 6
        for i, v in enumerate([4, 2, 4, 2, 4, 2, 4, 2, 4, 2]):
            page.check(f"input[name=sus{i}][value='{v}']")
        for key, value in (("mental", 30), ("frustration", 10)):
            page.fill(f"input[name=tlx-{key}]", str(value))
        page.screenshot(path=str(out / "game_questionnaire.png"), full_page=True)
        page.click("[data-testid=send-questionnaire]")
        page.wait_for_selector("body[data-view='round']")
        with state.db.read() as s:
            q = s.scalar(select(Questionnaire))
        assert q.sus_score == 75.0 and q.tlx_raw == pytest.approx((30 + 50 + 50 + 50 + 50 + 10) / 6)
        # the admin page: token from the environment, progress, no script from the typed text
        admin = browser.new_page(viewport={"width": 1200, "height": 900})
        admin.goto(server.url + "/admin")
        admin.wait_for_selector("body[data-ready='1']")
        admin.fill("[data-testid=admin-token]", "wrong")
        admin.click("[data-testid=admin-login] button")
        admin.wait_for_selector("[data-testid=error]:not([hidden])")
        admin.fill("[data-testid=admin-token]", "admin-secret")
        admin.click("[data-testid=admin-login] button")
        admin.wait_for_selector("body[data-view='progress']")
        assert "Ada" in admin.text_content("[data-testid=players]")
        assert "3 / 0 / 0" in admin.text_content("[data-testid=cards]")
        admin.screenshot(path=str(out / "game_admin.png"), full_page=True)
        browser.close()
    assert errors == []


def test_the_game_on_a_phone(served):
    from playwright.sync_api import sync_playwright

    server, state = served
    exe = chromium()
    assert exe, (
        "no headless Chromium: `make install` puts one at .venv/bin/inviz-chromium (.ci/install-browser)"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        ctx = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        sign_up(page, "Bea")
        page.wait_for_function(IMAGE_SHOWN)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px screen"
        box = page.locator("[data-testid=round-image]").bounding_box()
        assert box["width"] <= 390 and box["width"] >= 300  # the image fills the screen's width
        for b in page.locator("[data-testid=choice]").all():
            bb = b.bounding_box()
            assert bb["x"] >= 0 and bb["x"] + bb["width"] <= 390 and bb["height"] >= 44  # thumb-sized
        page.screenshot(path=str(artifacts() / "game_phone_round.png"), full_page=True)
        page.tap("[data-testid=hint]")
        page.wait_for_selector("text=4.5% revealed")
        page.tap(f"[data-testid=choice]:has-text('{true_choice(state, page)}')")
        page.wait_for_selector("body[data-view='features']")
        page.locator("[data-testid=feature]").nth(0).fill("stripes")
        page.tap("[data-testid=send-features]")
        page.wait_for_selector("body[data-view='result']")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts() / "game_phone_result.png"), full_page=True)
        browser.close()
    assert errors == []


def test_the_what_if_panel_in_a_browser(tmp_path):
    """After a round: the panel shows the image through the game's mask; painting over it sends an
    edit and the model's new prediction appears; the edit is stored."""
    from game_world import build_whatif_world, whatif_paths
    from playwright.sync_api import sync_playwright

    from inviz.game.web.db import WhatIfEdit

    w = build_whatif_world(tmp_path / "w")
    state = open_game(Settings.from_params(w["params"], whatif_paths(w)), clock=Clock())
    exe = chromium()
    assert exe, (
        "no headless Chromium: `make install` puts one at .venv/bin/inviz-chromium (.ci/install-browser)"
    )
    try:
        with ThreadedServer(create_app(state)) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            sign_up(page, "Cy")
            play_round(page, state)
            page.wait_for_selector("[data-testid=whatif][data-ready='1']")
            first = page.text_content("[data-testid=whatif-pred]")
            assert first.startswith("The network says") and "20 tries left" in first
            box = page.locator("[data-testid=whatif-canvas]").bounding_box()
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.down()
            for k in range(1, 10):
                page.mouse.move(box["x"] + k * box["width"] / 10, box["y"] + k * box["height"] / 10)
            page.mouse.up()
            page.locator("[data-testid=whatif-pred]", has_text="19 tries left").wait_for()
            page.screenshot(path=str(artifacts() / "game_whatif.png"), full_page=True)
            browser.close()
        with state.db.read() as s:
            edit = s.scalar(select(WhatIfEdit))
        assert edit is not None and edit.shown_share > 0.1  # the painted diagonal is shown
        assert errors == []
    finally:
        state.close()

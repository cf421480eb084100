"""The README's screenshots of Deep Reveal, taken on the demo's masked images in headless Chromium.

Needs the demo up to `labels_simulate` (`cd demo && dvc repro labels_simulate`: masks and class
list), or `--content` with other masks, and the browser of `make install`.
Plays a few rounds on a throw-away database and writes docs/img/game_{round,result,phone,admin}.png.

    python experiments/game_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve(app):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", type=Path, default=ROOT / "demo" / "params.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument(
        "--content",
        type=Path,
        default=None,
        help="a folder with masks.csv, masks/ and classes.json instead of the params file's "
        "(e.g. the generated maps of experiments/bench_game.py --workdir W: W/content, with --params W/params.yaml)",
    )
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from inviz.game.web.app import create_app
    from inviz.game.web.settings import Settings, open_game

    exe = os.environ.get("INVIZ_CHROMIUM") or str(ROOT / ".venv" / "bin" / "inviz-chromium")
    work = Path(tempfile.mkdtemp(prefix="game-shots-"))
    paths = None
    if args.content is not None:
        paths = {k: args.content / v for k, v in (("manifest", "masks.csv"), ("masks_dir", "masks"))}
        paths["classes"] = args.content / "classes.json"
    settings = Settings.from_params(
        args.params,
        paths,
        db_url=f"sqlite:///{work / 'game.db'}",
        env={"INVIZ_GAME_ADMIN_TOKEN": "screenshots"},
    )
    # no questionnaire, no screening round (it starts at the last level: no hint to show)
    game = dataclasses.replace(
        settings.game,
        questionnaire_after=0,
        screening=dataclasses.replace(settings.game.screening, enabled=False),
    )
    settings = settings.model_copy(update={"game": game})
    state = open_game(settings)
    server, url = serve(create_app(state))
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 760, "height": 1000})
        page.goto(url + "/")
        page.wait_for_selector("body[data-view='signup']")
        page.fill("[data-testid=nickname]", "Ada")
        page.check("[data-testid=ai-yes]")
        page.click("[data-testid=signup]")
        for k in range(3):
            page.wait_for_selector("body[data-view='round']")
            if k < 2:
                page.locator("[data-testid=choice]").first.click()
                page.wait_for_selector("body[data-view='features']")
                page.locator("[data-testid=feature]").first.fill("stripes")
                page.click("[data-testid=send-features]")
                page.wait_for_selector("body[data-view='result']")
                page.click("[data-testid=next]")
        page.click("[data-testid=hint]")
        page.click("[data-testid=hint]")
        page.wait_for_selector("text=8% revealed")
        page.wait_for_function("() => document.querySelector('[data-testid=round-image]').naturalWidth > 0")
        page.screenshot(path=str(args.out / "game_round.png"))
        page.locator("[data-testid=choice]").nth(1).click()
        page.wait_for_selector("body[data-view='features']")
        page.locator("[data-testid=feature]").nth(0).fill("striped triangle")
        page.locator("[data-testid=feature]").nth(1).fill("white tower")
        page.click("[data-testid=send-features]")
        page.wait_for_selector("body[data-view='result']")
        if state.what_if is not None:
            page.wait_for_selector("[data-testid=whatif][data-ready='1']")
            page.click("#whatif-all")
            page.wait_for_timeout(800)
        page.screenshot(path=str(args.out / "game_result.png"), full_page=True)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        ).new_page()
        phone.goto(url + "/")
        phone.fill("[data-testid=nickname]", "Bea")
        phone.check("[data-testid=ai-no]")
        phone.tap("[data-testid=signup]")
        phone.wait_for_selector("body[data-view='round']")
        phone.wait_for_function("() => document.querySelector('[data-testid=round-image]').naturalWidth > 0")
        phone.screenshot(path=str(args.out / "game_phone.png"))
        admin = browser.new_page(viewport={"width": 1100, "height": 900})
        admin.goto(url + "/admin")
        admin.fill("[data-testid=admin-token]", "screenshots")
        admin.click("[data-testid=admin-login] button")
        admin.wait_for_selector("body[data-view='progress']")
        admin.screenshot(path=str(args.out / "game_admin.png"))
        browser.close()
    server.should_exit = True
    state.close()
    for name in ("round", "result", "phone", "admin"):
        print(args.out / f"game_{name}.png")


if __name__ == "__main__":
    main()

"""Screenshot a report written by ``fasbench report`` (the README's picture), in headless Chromium.

    python tools/report_screenshot.py SITE/index.html docs/report.png [--width 1280] [--height 820]

Needs Chromium (Debian: ``apt-get install chromium``) and playwright (``pip install -e '.[dev]'``). Writes a
PNG of the top of the page (the leaderboard), and refuses a page that logs a console error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="the report's index.html")
    parser.add_argument("png", type=Path, help="the screenshot to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=820)
    parser.add_argument("--selector", help="screenshot this element only (e.g. '#protocol-ICM_O')")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(args.index.resolve().as_uri(), wait_until="load")
        args.png.parent.mkdir(parents=True, exist_ok=True)
        target = page.locator(args.selector) if args.selector else page
        target.screenshot(path=str(args.png))
        browser.close()
    if errors:
        sys.exit(f"the page logged errors: {errors}")
    print(f"wrote {args.png} ({args.png.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

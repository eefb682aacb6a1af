"""The page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright uploads a query
and sees k result tiles with distances. Skips, saying why, when Chromium or Playwright is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def search_in_browser(url: str, query: Path, k: int, screenshot: Path, user_data_dir: Path, token: str = "") -> list[str]:
    """Open the page at `url`, search for `query` with `k`, wait for the tiles, save a screenshot; returns the
    text of each result tile. (Also what made the README's screenshot.)"""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # a fresh profile folder per run (Playwright takes it as user_data_dir, not as a flag)
        browser = p.chromium.launch_persistent_context(str(user_data_dir), executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 560})
        try:
            page = browser.new_page()
            page.goto(url, wait_until="load")
            if token:
                page.locator("#token-box summary").click()
                page.fill("#token", token)
            page.wait_for_function("document.querySelector('#model-line').textContent.includes('runtime')")
            page.set_input_files("#query-file", str(query))
            page.fill("#k", str(k))
            page.click("#search-button")
            page.wait_for_function(f"document.querySelectorAll('.tile.result').length === {k}")
            page.wait_for_function("[...document.querySelectorAll('.tile.result img')].every(i => i.complete && "
                                   "i.naturalWidth > 0)")
            page.screenshot(path=str(screenshot), full_page=True)
            return page.locator(".tile.result").all_inner_texts()
        finally:
            browser.close()


@pytest.mark.slow
def test_the_page_uploads_a_query_and_shows_k_tiles_with_distances(live_server, query_image, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright", reason="the browser test drives Chromium with Playwright: pip install playwright")
    k = 6
    screenshot = tmp_path / "page.png"
    tiles = search_in_browser(live_server.url, query_image, k, screenshot, tmp_path / "chromium-profile")
    assert len(tiles) == k
    distances = [float(next(line for line in t.splitlines() if line.startswith("distance")).split()[1]) for t in tiles]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    assert all("camera" in t for t in tiles)
    assert screenshot.stat().st_size > 10_000


if __name__ == "__main__":  # the README's screenshot: python tests/serve/test_serve_browser.py URL QUERY.jpg OUT.png [K]
    import sys
    import tempfile

    url, query, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with tempfile.TemporaryDirectory() as profile:
        print("\n".join(search_in_browser(url, query, int(sys.argv[4]) if len(sys.argv) > 4 else 8, out, Path(profile))))

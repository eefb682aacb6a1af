"""The page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright uploads a query
and sees k result tiles with distances; a page of another site (another loopback port) tries to add to the
gallery with fetch() and adds nothing. Skips, saying why, when Chromium or Playwright is missing."""

from __future__ import annotations

import base64
import http.server
import shutil
import threading
from pathlib import Path

import httpx
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


def _need_a_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright", reason="the browser test drives Chromium with Playwright: pip install playwright")


@pytest.mark.slow
def test_the_page_uploads_a_query_and_shows_k_tiles_with_distances(live_server, query_image, tmp_path):
    _need_a_browser()
    k = 6
    screenshot = tmp_path / "page.png"
    tiles = search_in_browser(live_server.url, query_image, k, screenshot, tmp_path / "chromium-profile")
    assert len(tiles) == k
    distances = [float(next(line for line in t.splitlines() if line.startswith("distance")).split()[1]) for t in tiles]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    assert all("camera" in t for t in tiles)
    assert screenshot.stat().st_size > 10_000


# another site's page: it posts a crop to the service with fetch(), as a page may without asking (a multipart
# POST needs no CORS preflight), once opaque (no-cors) and once in CORS mode, and reports what happened
ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>another site</title><script>
async function attack(service, crop) {
  const bytes = Uint8Array.from(atob(crop), (c) => c.charCodeAt(0));
  const outcomes = [];
  for (const mode of ["no-cors", "cors"]) {
    const form = new FormData();
    form.append("images", new Blob([bytes], {type: "image/jpeg"}), "from-another-site.jpg");
    try {
      const response = await fetch(service + "/v1/gallery", {method: "POST", body: form, mode});
      outcomes.push(mode + " " + response.type + " " + response.status);
    } catch (e) {
      outcomes.push(mode + " " + e.name);
    }
  }
  return outcomes;
}
</script>"""


@pytest.mark.slow
def test_a_page_of_another_site_cannot_add_to_the_gallery(live_server, tiny_market, tmp_path):
    _need_a_browser()
    from playwright.sync_api import sync_playwright

    crop = sorted((tiny_market / "bounding_box_train").glob("*.jpg"))[0].read_bytes()
    before = _sources(live_server.url)
    with _serve_page(ATTACK_PAGE) as site, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(site, wait_until="load")
            outcomes = page.evaluate("([service, crop]) => attack(service, crop)",
                                     [live_server.url, base64.b64encode(crop).decode()])
        finally:
            browser.close()
    assert len(outcomes) == 2, outcomes  # both requests were made (no-cors: sent, its answer hidden from the page)
    after = _sources(live_server.url)
    assert after == before and "from-another-site.jpg" not in after


def _sources(url: str) -> list[str]:
    """The source name of every gallery item (the tiny gallery fits one page)."""
    return sorted(item["source"] for item in httpx.get(url + "/v1/gallery", params={"limit": 1000},
                                                       timeout=30).json()["items"])


class _serve_page:
    """`html` at http://127.0.0.1:PORT/ from a thread, for the `with` block: another origin than the service's."""

    def __init__(self, html: str):
        body = html.encode()

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # the README's screenshot: python tests/serve/test_serve_browser.py URL QUERY.jpg OUT.png [K]
    import sys
    import tempfile

    url, query, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with tempfile.TemporaryDirectory() as profile:
        print("\n".join(search_in_browser(url, query, int(sys.argv[4]) if len(sys.argv) > 4 else 8, out, Path(profile))))

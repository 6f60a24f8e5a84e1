"""Start the app in a subprocess on a free loopback port and drive it with Playwright + Debian's
chromium (Playwright's own browser download does not work on these machines)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_app(port: int | None = None, script: str = "app/main.py", env: dict | None = None):
    """`streamlit run <script>` (the app, or a component's demo page) on a free loopback port;
    `env`: settings for the server only (the test process's environment is not changed)."""
    port = port or free_port()
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / script), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--global.developmentMode", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode())
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def app_and_browser(env: dict | None = None):
    """The app's server (with `env` for it) and a headless chromium: (url, browser)."""
    from playwright.sync_api import sync_playwright
    with streamlit_app(env=env) as url, sync_playwright() as p:
        b = launch(p)
        try:
            yield url, b
        finally:
            b.close()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)


def step_counter(page) -> int:
    text = page.locator("#step-counter").first.inner_text(timeout=30_000)
    return int(text.replace(",", ""))


def url_of(page) -> str:
    """The address bar now (page.url is only refreshed while Playwright handles events)."""
    return page.evaluate("location.href")


def wait_for(condition, timeout: float = 30.0, every: float = 0.3) -> None:
    """Poll until condition() is true; AssertionError after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception:  # the page is between reruns
            pass
        time.sleep(every)
    assert condition(), "condition not met in time"


def settle(page, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until the page's script has not been running for `quiet` seconds (Streamlit shows
    its status widget, with a Stop button, while a rerun is under way): a field typed into
    during a rerun can be redrawn with its old value, as it can for a person typing then."""
    deadline, calm_since = time.time() + timeout, None
    while time.time() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count():
            calm_since = None
        elif calm_since is None:
            calm_since = time.time()
        elif time.time() - calm_since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError(f"the page was still rerunning after {timeout:.0f} s")


def go_to(page, link: str, ready: str, tries: int = 3) -> None:
    """Follow the sidebar's page link `link` until the selector `ready` (only on that page) shows;
    a click that lands while the page's script is being rerun and its sidebar redrawn can be
    lost, so it is clicked again."""
    for _ in range(tries):
        settle(page)
        page.get_by_role("link", name=link).click()
        try:
            page.wait_for_selector(ready, timeout=30_000)
            return
        except Exception:
            continue
    raise AssertionError(f"the {link!r} page did not open")


def choose(page, label: str, option: str, tries: int = 3) -> None:
    """Pick an option of a Streamlit selectbox by its label (again if a rerun closed the list
    before the click landed)."""
    for _ in range(tries):
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
        box.click()
        try:
            page.locator('[role="option"]').filter(has_text=option).first.click(timeout=5_000)
        except Exception:
            page.keyboard.press("Escape")
            continue
        return
    raise AssertionError(f"could not choose {option!r} in {label!r}")


def canvas_pixel(page, selector: str) -> list[int]:
    """RGBA of the top-left pixel (the background) of the first canvas matching `selector`
    inside a component's shadow DOM."""
    return page.evaluate("""(sel) => {
      const c = [...document.querySelectorAll('*')].map(e => e.shadowRoot).filter(Boolean)
        .map(r => r.querySelector(sel)).find(Boolean);
      return Array.from(c.getContext('2d').getImageData(1, 1, 1, 1).data);
    }""", selector)

"""Browser frames per second of the dashboard while it trains, per preset.

Starts `streamlit run app/main.py`, drives it in headless chromium (Playwright), presses Play
and for --seconds reports: frames/s (how often the visible step counter changes), training
steps/s while live as a fraction of headless steps/s (same preset, same process kind), and the
server-side time to build one frame (as the page reports it).

    python benchmarks/app_fps.py [--presets digits-demo,spiral-demo] [--seconds 15]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browser import launch, streamlit_app  # noqa: E402

from deepr_engine.session import TrainingSession  # noqa: E402


def headless_rate(preset: str, seconds: float = 5.0) -> float:
    s = TrainingSession(preset)
    s.step(50)
    t0, n0 = time.perf_counter(), s.step_count
    while time.perf_counter() - t0 < seconds:
        s.step(50)
    return (s.step_count - n0) / (time.perf_counter() - t0)


def measure(url: str, preset: str, seconds: float, playwright) -> dict:
    b = launch(playwright)
    page = b.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/?preset={preset}")
    page.wait_for_selector("#step-counter", timeout=120_000)
    page.get_by_role("button", name="Play").click()
    time.sleep(2)  # warm-up
    read = ("() => { const e = document.getElementById('step-counter'); const m = document.body.innerText"
            ".match(/frame built in (\\d+) ms/); return [e ? e.textContent : null, m ? m[1] : null]; }")
    changes, builds, last = [], [], None
    t0 = time.time()
    first_step = None
    while time.time() - t0 < seconds:
        counter, build = page.evaluate(read)
        if counter is not None and counter != last:
            changes.append(time.time())
            if build:
                builds.append(float(build))
            step = int(counter.replace(",", ""))
            first_step = step if first_step is None else first_step
            last_step = step
            last = counter
        time.sleep(0.02)
    elapsed = time.time() - t0
    page.get_by_role("button", name="Pause").click()  # stop this tab's worker before the next
    time.sleep(1)
    b.close()
    return {"fps": len(changes) / elapsed, "live_steps_per_s": (last_step - first_step) / elapsed,
            "build_ms": statistics.median(builds) if builds else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="digits-demo,spiral-demo")
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    presets = args.presets.split(",")
    headless = {preset: headless_rate(preset) for preset in presets}  # before any app runs
    rows = []
    with streamlit_app() as url, sync_playwright() as p:
        for preset in presets:
            rows.append((preset, measure(url, preset, args.seconds, p), headless[preset]))
    print(f"{'preset':14s} {'frames/s':>9s} {'live steps/s':>13s} {'headless':>9s} {'ratio':>6s} {'build ms':>9s}")
    for preset, live, head in rows:
        print(f"{preset:14s} {live['fps']:9.2f} {live['live_steps_per_s']:13.0f} {head:9.0f} "
              f"{live['live_steps_per_s'] / head:6.2f} {live['build_ms']:9.0f}")


if __name__ == "__main__":
    main()

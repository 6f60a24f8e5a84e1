"""Frames per second the dashboard's live views apply in the browser while it trains.

Starts `streamlit run app/main.py`, drives it in headless chromium (Playwright), presses Play
and for --seconds reports, counted in the page: frames/s applied by the live graph and by the
live curves (their own counters, `window.__deeprGraph` / `window.__deeprCurves`), data bytes per
frame (the graph's messages, sampled; the curves' bytes over frames), and the training steps/s
while live (from the step the graph shows) as a fraction of headless steps/s (same preset, one thread,
as in the training process, over the same steps: a step's cost changes along a run).

    python benchmarks/app_fps.py [--presets digits-demo,paper-mnist] [--seconds 15] [--repeats 3]

Medians over --repeats runs. paper-mnist needs the MNIST IDX files under $DEEPR_DATA/mnist;
without them it runs on a random stand-in of the same shape (60k/10k 28x28 images), which
draws exactly the same network (accuracy is meaningless there, frames/s and steps/s are not).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browser import launch, streamlit_app  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepr_engine.run.data import IDX_FILES, write_idx  # noqa: E402
from deepr_engine.run.session import TrainingSession  # noqa: E402


def mnist_stand_in() -> str | None:
    """Point DEEPR_DATA at random MNIST-shaped IDX files when the real ones are absent."""
    try:
        TrainingSession("paper-mnist")
        return None
    except FileNotFoundError:
        pass
    root = Path(tempfile.mkdtemp(prefix="deepr-mnist-stand-in-"))
    (root / "mnist").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = IDX_FILES[split]
        write_idx(root / "mnist" / images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / "mnist" / labels, rng.integers(0, 10, n, dtype=np.uint8))
    os.environ["DEEPR_DATA"] = str(root)
    return str(root)


def headless_rate(preset: str, first: int, last: int, chunk: int = 10) -> float:
    """Steps/s of the same preset without the app, over the same steps as the live window
    (the cost of a step changes along a run: the stand-in's churn grows), in the training
    process's chunks and with its one thread."""
    torch.set_num_threads(1)
    s = TrainingSession(preset)
    while s.step_count < first:
        s.step(min(500, first - s.step_count))
    t0 = time.perf_counter()
    while s.step_count < last:
        s.step(min(chunk, last - s.step_count))
    return (last - first) / (time.perf_counter() - t0)


def _counters(page) -> dict:
    return page.evaluate("""() => {
        const g = (window.__deeprGraph || {}).graph, c = (window.__deeprCurves || {}).curves;
        // the step the graph shows (ten times a second; the status line only every second)
        return {g: g ? g.framesApplied : 0, gb: g ? g.lastBytes : 0, c: c ? c.framesApplied : 0,
                cb: c ? c.bytesApplied : 0, step: g ? g.step : 0, t: performance.now()};
    }""")


def measure(url: str, preset: str, seconds: float, playwright, query: str = "") -> dict:
    b = launch(playwright)
    page = b.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/?preset={preset}{query}")
    page.wait_for_selector("canvas.dg-base", timeout=120_000)
    page.get_by_role("button", name="Play").click()
    time.sleep(3)  # warm-up: the first full messages
    first = _counters(page)
    graph_bytes = []
    while len(graph_bytes) < seconds * 2:
        time.sleep(0.5)
        graph_bytes.append(_counters(page)["gb"])
    last = _counters(page)
    page.get_by_role("button", name="Pause").click()  # stop this tab's run before the next
    time.sleep(1)
    b.close()
    dt = (last["t"] - first["t"]) / 1e3
    curve_frames = max(last["c"] - first["c"], 1)
    return {"graph_fps": (last["g"] - first["g"]) / dt, "curves_fps": (last["c"] - first["c"]) / dt,
            "graph_bytes": statistics.median(graph_bytes),
            "curves_bytes": (last["cb"] - first["cb"]) / curve_frames,
            "live_steps_per_s": (last["step"] - first["step"]) / dt, "steps": (first["step"], last["step"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="digits-demo,paper-mnist")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--query", default="", help="more URL parameters, e.g. '&speed=100' (a "
                                                "training speed limit, steps/s)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    presets = args.presets.split(",")
    stand_in = "paper-mnist" in presets and mnist_stand_in()
    if stand_in:
        print("paper-mnist: MNIST files not found, using a random stand-in of the same shape")
    runs = {preset: [] for preset in presets}
    try:
        with streamlit_app() as url, sync_playwright() as p:
            for _ in range(args.repeats):  # interleaved: slow spells of the machine hit all presets
                for preset in presets:
                    runs[preset].append(measure(url, preset, args.seconds, p, args.query))
        for preset, rs in runs.items():  # after the app: the same steps, nothing else running
            for r in rs:
                r["headless"] = headless_rate(preset, *r["steps"])
                r["ratio"] = r["live_steps_per_s"] / r["headless"]
    finally:
        if stand_in:
            shutil.rmtree(stand_in, ignore_errors=True)
    med = lambda rs, key: statistics.median(r[key] for r in rs)  # noqa: E731
    print(f"medians of {args.repeats} runs of {args.seconds:.0f} s each")
    print(f"{'preset':14s} {'graph f/s':>9s} {'curves f/s':>10s} {'graph B/f':>9s} {'curves B/f':>10s} "
          f"{'live steps/s':>12s} {'headless':>9s} {'ratio':>6s}")
    for preset, rs in runs.items():
        print(f"{preset:14s} {med(rs, 'graph_fps'):9.2f} {med(rs, 'curves_fps'):10.2f} "
              f"{med(rs, 'graph_bytes'):9.0f} {med(rs, 'curves_bytes'):10.0f} "
              f"{med(rs, 'live_steps_per_s'):12.0f} {med(rs, 'headless'):9.0f} {med(rs, 'ratio'):6.2f}")


if __name__ == "__main__":
    main()

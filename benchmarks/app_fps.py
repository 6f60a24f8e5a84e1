"""Browser frames per second of the dashboard while it trains, per preset.

Starts `streamlit run app/main.py`, drives it in headless chromium (Playwright), presses Play
and for --seconds reports: frames/s (how often the visible step counter changes), training
steps/s while live as a fraction of headless steps/s (same preset, same process kind), and the
server-side time to build one frame (as the page reports it).

    python benchmarks/app_fps.py [--presets digits-demo,spiral-demo,paper-mnist] [--seconds 15]
                                 [--repeats 3]

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


def headless_rate(preset: str, seconds: float = 5.0) -> float:
    torch.set_num_threads(1)  # as in the training process the app starts (also the faster here)
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
    # The page records each new counter value itself (a MutationObserver), so measuring does
    # not add work to the renderer; the records are read once at the end.
    page.evaluate("""() => {
        window.__frames = [];
        const note = () => {
            const e = document.getElementById('step-counter');
            const m = document.getElementById('frame-ms');
            const last = window.__frames[window.__frames.length - 1];
            if (e && (!last || last[1] !== e.textContent))
                window.__frames.push([performance.now(), e.textContent, m ? +m.textContent : null]);
        };
        new MutationObserver(note).observe(document.body, {subtree: true, childList: true,
                                                             characterData: true});
    }""")
    t0 = time.time()
    time.sleep(seconds)
    frames = page.evaluate("() => window.__frames")
    elapsed = time.time() - t0
    page.get_by_role("button", name="Pause").click()  # stop this tab's run before the next
    time.sleep(1)
    b.close()
    steps = [int(f[1].replace(",", "")) for f in frames]
    span = (frames[-1][0] - frames[0][0]) / 1e3 if len(frames) > 1 else float("nan")
    builds = [f[2] for f in frames if f[2] is not None]
    return {"fps": len(frames) / elapsed, "live_steps_per_s": (steps[-1] - steps[0]) / span,
            "build_ms": statistics.median(builds) if builds else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="digits-demo,spiral-demo,paper-mnist")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    presets = args.presets.split(",")
    stand_in = "paper-mnist" in presets and mnist_stand_in()
    if stand_in:
        print("paper-mnist: MNIST files not found, using a random stand-in of the same shape")
    headless = {preset: headless_rate(preset) for preset in presets}  # before any app runs
    runs = {preset: [] for preset in presets}
    try:
        with streamlit_app() as url, sync_playwright() as p:
            for _ in range(args.repeats):  # interleaved: slow spells of the machine hit all presets
                for preset in presets:
                    runs[preset].append(measure(url, preset, args.seconds, p))
    finally:
        if stand_in:
            shutil.rmtree(stand_in, ignore_errors=True)
    med = lambda rs, key: statistics.median(r[key] for r in rs)  # noqa: E731
    print(f"medians of {args.repeats} runs of {args.seconds:.0f} s each")
    print(f"{'preset':14s} {'frames/s':>9s} {'live steps/s':>13s} {'headless':>9s} {'ratio':>6s} {'build ms':>9s}")
    for preset, rs in runs.items():
        live = med(rs, "live_steps_per_s")
        print(f"{preset:14s} {med(rs, 'fps'):9.2f} {live:13.0f} {headless[preset]:9.0f} "
              f"{live / headless[preset]:6.2f} {med(rs, 'build_ms'):9.0f}")


if __name__ == "__main__":
    main()

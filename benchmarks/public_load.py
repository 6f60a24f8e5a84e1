"""Load test of a public demo: simulated visitors open the dashboard, press Play, move a slider
and leave; how many can play at once at >= 5 frames/s each, memory per visitor, memory after
they left and processes left behind.

    python benchmarks/public_load.py [--max-visitors 8] [--seconds 30] [--quick]

Starts `streamlit run app/main.py` with DEEPR_PUBLIC=1 (parking in a temporary DEEPR_PARK_DIR,
removed at the end; DEEPR_MAX_LIVE_RUNS raised to the largest ramp step unless
--max-live-runs is given, so that the server's cap does not hide the machine's). For each step of
the ramp (1, 2, 4, 6, 8, ... up to --max-visitors) N visitors arrive one after the other, each
in its own headless chromium browser context (its own cookies: its own visitor to the server),
press Play and move the Temperature slider with the keyboard; all play together for --seconds,
then they leave (their contexts close) and the benchmark waits for their run processes to end
(a run parks after 30 s without a request) before the next step.

Visitors are real browser pages (Playwright + /usr/bin/chromium), not a lighter client: the
page's own request loop (components/common.js) decides when it asks for the next frame, and a
client that spoke Streamlit's websocket and the feed by hand would measure its own pacing
instead. The price: the pages run on the same cores as the server, so the figures are a lower
bound for a server whose visitors' browsers run on their own machines; the table shows the
CPU share the browsers took.

Measured, per step: frames/s each page received from the feed (its `fetch` of the feed route
answered 200, counted in the page by a wrapper installed before the app loads; the slowest and
the median page), training steps/s each page saw, memory from /proc (RSS of the server process
and of its run processes; PSS too, which splits the pages the run processes share with the
forkserver they were forked from), CPU of the server side and of the browsers, and after the
visitors left: the server's RSS and the run processes still alive after --linger seconds.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from browser import free_port, launch  # noqa: E402

from app import public  # noqa: E402

FPS_TARGET = 5.0
MB = 1e6
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# counts the feed's answers in the page (every frame is one GET of /api/deepr/feed/<token>)
COUNT_FEED = """(() => {
  const real = window.fetch.bind(window);
  window.__loadFeed = {frames: 0, failed: 0};
  window.fetch = async (...args) => {
    const r = await real(...args);
    const url = String(args[0] && args[0].url || args[0]);
    if (url.includes('/api/deepr/feed/')) {
      if (r.status === 200) window.__loadFeed.frames++; else window.__loadFeed.failed++;
    }
    return r;
  };
})();"""
READ = """() => {
  const f = window.__loadFeed || {frames: 0, failed: 0}, g = (window.__deeprGraph || {}).graph;
  return {frames: f.frames, failed: f.failed, step: g ? g.step : 0, applied: g ? g.framesApplied : 0,
          t: performance.now()};
}"""


# -- processes, from /proc -----------------------------------------------------------------------
def proc_table() -> dict[int, dict]:
    """pid -> ppid, cpu seconds, rss bytes, cmdline, for every process readable now."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(d)] = {"ppid": int(rest[1]), "cpu": (int(rest[11]) + int(rest[12])) / TICK,
                       "rss": int(rest[21]) * PAGE, "cmd": cmd}
    return out


def descendants(table: dict, root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid, p in table.items():
        kids.setdefault(p["ppid"], []).append(pid)
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_pids(table: dict, server: int) -> list[int]:
    """The server's training processes: children of its forkserver (forked from it: the same
    command line) or, where there is no forkserver, spawned children."""
    tree = descendants(table, server)
    forkservers = {p for p in tree if "multiprocessing.forkserver" in table[p]["cmd"]}
    return [p for p in tree if table[p]["ppid"] in forkservers
            or ("multiprocessing.spawn" in table[p]["cmd"] and "resource_tracker" not in table[p]["cmd"])]


def snapshot(server: int, client_root: int) -> dict:
    """Memory of the server and its runs; CPU seconds of the server side and of the browsers."""
    t = proc_table()
    runs = run_pids(t, server)
    server_side = [server] + descendants(t, server)
    browsers = [p for p in descendants(t, client_root) if p not in server_side and p != server]
    return {"server_rss": t[server]["rss"] if server in t else 0, "runs": len(runs),
            "cpu_web": t[server]["cpu"] if server in t else 0.0, "cpu_runs": sum(t[p]["cpu"] for p in runs),
            "runs_rss": sum(t[p]["rss"] for p in runs), "runs_pss": sum(pss(p) for p in runs),
            "server_pss": pss(server), "cpu_server": sum(t[p]["cpu"] for p in server_side if p in t),
            "cpu_browser": sum(t[p]["cpu"] for p in browsers), "t": time.monotonic()}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# -- the server ----------------------------------------------------------------------------------
def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app/main.py` on a free loopback port, its output to `log` (a pipe nobody
    reads would fill up and stop the server during a long test)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app/main.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--global.developmentMode", "false"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server ended: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not start within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


# -- visitors ------------------------------------------------------------------------------------
class Visitor:
    """One browser context (its own cookies, so its own identity to the server) with one page."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(COUNT_FEED)
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.url, self.queued, self.load_s, self.slider_moved, self.stalled = url, False, 0.0, False, False

    def open(self) -> None:
        """Ask for the dashboard without waiting for it (the visitors of a step arrive together)."""
        self.t0 = time.monotonic()
        self.page.goto(self.url + "/", wait_until="commit", timeout=180_000)

    def play(self) -> None:
        """Once the page is drawn, press Play (a visitor the server queues waits in line)."""
        self.page.wait_for_selector("#step-counter, :text('in the queue')", timeout=240_000)
        self.load_s = time.monotonic() - self.t0
        if self.page.locator("#step-counter").count() == 0:
            self.queued = True
            return
        try:   # a page that has not taken Play within a minute stays in, counted as stalled
            self.page.get_by_role("button", name="Play").click(timeout=60_000)
            self.page.get_by_role("button", name="Pause").wait_for(timeout=60_000)
        except Exception:
            self.stalled = True

    def move_slider(self, presses: int = 2) -> None:
        """Temperature one or two notches up with the arrow key (a live change, no new run);
        `slider_moved`: the value shown changed."""
        if self.queued:
            return
        box = self.page.locator('[data-testid="stSlider"]').filter(has_text="Temperature").first
        thumb = box.locator('input[type="range"]').first
        try:
            before = thumb.get_attribute("aria-valuetext", timeout=30_000)
            thumb.focus()
            for _ in range(presses):
                self.page.keyboard.press("ArrowRight")
            self.page.wait_for_function(
                """(b) => { const t = [...document.querySelectorAll('[data-testid="stSlider"]')]
                    .find(e => e.innerText.includes('Temperature'));
                    const s = t && t.querySelector('input[type="range"]');
                    return s && s.getAttribute('aria-valuetext') !== b; }""", arg=before, timeout=30_000)
            self.slider_moved = True
        except Exception:   # counted in the report (slider moved in k of n pages)
            self.slider_moved = False

    def read(self) -> dict:
        return self.page.evaluate(READ)

    def leave(self) -> None:
        self.context.close()


def wait_runs_gone(server: int, client_root: int, limit: float) -> tuple[float, dict]:
    """Seconds until no run process is left (or `limit`), and the snapshot then."""
    t0 = time.monotonic()
    while True:
        snap = snapshot(server, client_root)
        if snap["runs"] == 0 or time.monotonic() - t0 > limit:
            return time.monotonic() - t0, snap
        time.sleep(2)


def level(browser, url: str, n: int, seconds: float, server: int, linger: float) -> dict:
    """N visitors: arrive, play, move the slider, play together for `seconds`, leave."""
    me = os.getpid()
    idle = snapshot(server, me)
    visitors = [Visitor(browser, url) for _ in range(n)]
    for v in visitors:
        v.open()
    for v in visitors:
        v.play()
    for v in visitors:
        v.move_slider()
    time.sleep(3)   # the reruns after the slider, the first full frames
    s0, r0 = snapshot(server, me), [v.read() for v in visitors]
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(2.0, max(0.0, end - time.monotonic())))
        samples.append(snapshot(server, me))
    r1, s1 = [v.read() for v in visitors], snapshot(server, me)
    playing = [i for i, v in enumerate(visitors) if not v.queued]
    rate = lambda key: [(r1[i][key] - r0[i][key]) / ((r1[i]["t"] - r0[i]["t"]) / 1e3)  # noqa: E731
                        for i in playing]
    fps, sps, applied = rate("frames"), rate("step"), rate("applied")
    med = lambda xs: statistics.median(xs) if xs else 0.0  # noqa: E731
    wall = s1["t"] - s0["t"]
    peak = max(samples, key=lambda s: s["server_rss"] + s["runs_rss"])
    per = max(len(playing), 1)
    for v in visitors:
        v.leave()
    gone_s, after = wait_runs_gone(server, me, linger)
    return {
        "n": n, "playing": len(playing), "queued": n - len(playing), "stalled": sum(v.stalled for v in visitors),
        "fps_min": min(fps, default=0.0), "fps_med": med(fps), "applied_med": med(applied),
        "sps_med": med(sps), "failed": sum(r1[i]["failed"] - r0[i]["failed"] for i in playing),
        "slider": sum(v.slider_moved for v in visitors), "load_s": max(v.load_s for v in visitors),
        "server_idle": idle["server_rss"], "server_peak": peak["server_rss"],
        "runs_rss": peak["runs_rss"], "runs_pss": peak["runs_pss"], "runs": peak["runs"],
        "per_visitor": (peak["server_rss"] - idle["server_rss"] + peak["runs_rss"]) / per,
        "per_visitor_pss": (peak["server_pss"] - idle["server_pss"] + peak["runs_pss"]) / per,
        **{f"cpu_{k}": (s1[f"cpu_{k}"] - s0[f"cpu_{k}"]) / wall for k in ("web", "runs", "browser")},
        "left_s": gone_s, "left_runs": after["runs"], "server_after": after["server_rss"],
        "load": loadavg(),
    }


def warm_up(browser, url: str, server: int, linger: float) -> None:
    """One visitor plays a few seconds and leaves: the server's one-time imports (torch, the
    engine, the components) are not counted as a visitor's memory."""
    v = Visitor(browser, url)
    v.open()
    v.play()
    time.sleep(3)
    v.leave()
    wait_runs_gone(server, os.getpid(), linger)


def ramp(max_visitors: int, quick: bool) -> list[int]:
    steps = [1, 2] if quick else [1, 2, 4, 6, 8, 10, 12, 16]
    out = [n for n in steps if n <= max_visitors]
    return out if out and out[-1] == max_visitors else out + [max_visitors]



HEADER = ("| visitors | playing (queued) | frames/s slowest / median | steps/s median | "
          "page ready s (slowest) | web server RSS idle → peak MB | runs RSS MB (PSS) | "
          "MB per visitor RSS (PSS) | CPU cores web server / runs / browsers | "
          "runs left after leaving | web server RSS after MB | load avg |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def row(r: dict) -> str:
    return (f"| {r['n']} | {r['playing']} ({r['queued']}) | {r['fps_min']:.1f} / {r['fps_med']:.1f} | "
            f"{r['sps_med']:.0f} | {r['load_s']:.0f} | {r['server_idle'] / MB:.0f} → "
            f"{r['server_peak'] / MB:.0f} | {r['runs_rss'] / MB:.0f} ({r['runs_pss'] / MB:.0f}) | "
            f"{r['per_visitor'] / MB:.0f} ({r['per_visitor_pss'] / MB:.0f}) | "
            f"{r['cpu_web']:.2f} / {r['cpu_runs']:.2f} / {r['cpu_browser']:.2f} | "
            f"{r['left_runs']} ({r['left_s']:.0f} s) | {r['server_after'] / MB:.0f} | {r['load']} |")


def report(rows: list[dict], rss: dict, settings: dict) -> str:
    ok = [r["playing"] for r in rows if r["queued"] == 0 and r["fps_min"] >= FPS_TARGET]
    lines = [HEADER] + [row(r) for r in rows] + [
        "", f"most concurrent playing visitors at >= {FPS_TARGET:g} frames/s each: "
        f"{max(ok) if ok else 0} (steps tried: {', '.join(str(r['n']) for r in rows)})",
        f"web server RSS: {rss['cold'] / MB:.0f} MB started, {rss['warm'] / MB:.0f} MB after one "
        f"warm-up visitor left, {rss['end'] / MB:.0f} MB after the last step's visitors left "
        f"({(rss['end'] - rss['warm']) / MB:+.0f} MB against the warm server)"
        + (f"; {rss['ttl'] / MB:.0f} MB ({(rss['ttl'] - rss['warm']) / MB:+.0f} MB) once Streamlit "
           f"dropped the closed tabs' sessions (server.disconnectedSessionTTL + 30 s later)"
           if "ttl" in rss else ""),
        "frames/s the graph applied (median page): " + ", ".join(f"{r['applied_med']:.1f}" for r in rows),
        "feed requests that failed during the windows: " + ", ".join(str(r["failed"]) for r in rows),
        "pages whose Play did not take within 60 s (measured anyway): " + ", ".join(str(r["stalled"]) for r in rows),
        "slider moved (Temperature, keyboard) in: " + ", ".join(f"{r['slider']}/{r['n']}" for r in rows),
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-visitors", type=int, default=8, help="the last step of the ramp (1, 2, 4, 6, 8, ...)")
    ap.add_argument("--seconds", type=float, default=30.0, help="the measuring window of each step")
    ap.add_argument("--quick", action="store_true", help="a dry run: 1 and 2 visitors, 8 s windows")
    ap.add_argument("--max-live-runs", type=int, default=0,
                    help="DEEPR_MAX_LIVE_RUNS for the server (default: the largest step, at least the "
                         "app's default); lower it to see the queue")
    ap.add_argument("--linger", type=float, default=90.0,
                    help="after the visitors leave, wait up to this long for their run processes to end")
    ap.add_argument("--session-ttl", type=float, default=0.0,
                    help="Streamlit's server.disconnectedSessionTTL (120 s by default): with it, the "
                         "server's RSS is read again that long (+30 s) after the last visitors left")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the ramp this many times on one server (memory after each round)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.max_visitors < 1 or args.seconds <= 0 or args.linger <= 0:
        ap.error("--max-visitors must be >= 1, --seconds and --linger > 0")
    if args.quick:
        args.max_visitors, args.seconds = min(args.max_visitors, 2), min(args.seconds, 8.0)
    steps = ramp(args.max_visitors, args.quick)
    live = args.max_live_runs or max(steps[-1], int(public.LIMITS["max_live_runs"].default))
    tmp = Path(tempfile.mkdtemp(prefix="deepr-load-"))
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", DEEPR_PUBLIC="1",
               DEEPR_PARK_DIR=str(tmp / "park"), DEEPR_MAX_LIVE_RUNS=str(live))
    settings = {"ramp": "/".join(map(str, steps)), "window_s": args.seconds, "DEEPR_MAX_LIVE_RUNS": live,
                "other limits": "defaults (app/public.py)", "preset": "digits-demo (the default page)",
                "cores": os.cpu_count(), "load avg at start": loadavg()}
    print(f"load average at start: {loadavg()}; ramp {steps}; window {args.seconds:g} s", flush=True)
    from playwright.sync_api import sync_playwright
    server, url = start_server(env, tmp / "server.log")
    rows, rss = [], {}
    try:
        time.sleep(3)
        rss["cold"] = snapshot(server.pid, os.getpid())["server_rss"]
        with sync_playwright() as p:
            browser = launch(p)
            warm_up(browser, url, server.pid, args.linger)
            rss["warm"] = snapshot(server.pid, os.getpid())["server_rss"]
            print(f"warm-up visitor done; load {loadavg()}\n{HEADER}", flush=True)
            rounds = []
            for _ in range(args.repeat):   # the same ramp again: does the server keep growing?
                for n in steps:
                    try:
                        rows.append(level(browser, url, n, args.seconds, server.pid, args.linger))
                    except Exception as exc:   # the steps done so far are still reported
                        print(f"step {n} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
                        break
                    print(row(rows[-1]), flush=True)
                rounds.append(snapshot(server.pid, os.getpid())["server_rss"])
            if args.repeat > 1:
                print("web server RSS after each round of the ramp: "
                      + ", ".join(f"{r / MB:.0f} MB" for r in rounds), flush=True)
            browser.close()
        rss["end"] = snapshot(server.pid, os.getpid())["server_rss"]
        if args.session_ttl:   # a closed tab's session (its state, frames) is kept this long
            print(f"waiting {args.session_ttl + 30:.0f} s for the closed tabs' sessions to go", flush=True)
            time.sleep(args.session_ttl + 30)
            rss["ttl"] = snapshot(server.pid, os.getpid())["server_rss"]
        park = sum(f.stat().st_size for f in (tmp / "park").rglob("*") if f.is_file()) if (tmp / "park").exists() else 0
        settings["load avg at end"] = loadavg()
        settings["parked on disk at end MB"] = f"{park / MB:.1f}"
        print()
        print(report(rows, rss, settings) if rows else "no step completed")
    finally:
        stop_server(server)
        if os.environ.get("DEEPR_LOAD_KEEP"):
            print(f"kept {tmp} (server.log)")
        else:
            time.sleep(2)   # a run process may still be writing its park as the server ends
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

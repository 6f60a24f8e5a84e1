// Shared by the live graph and the live curves (each component's script is this file plus its
// own): the binary message format (app/components/live_graph.py pack()), theme luminance, and
// the report that, in pull pace, asks the server for the next frame.
function decode(u8) {
  // copy into a fresh buffer: the typed views below need 4-byte aligned offsets
  const buf = u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
  const n = new DataView(buf).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const start = (4 + n + 3) & ~3;
  const arrays = {};
  for (const [name, [dtype, off, count]] of Object.entries(header.arrays || {})) {
    if (dtype === "f2") arrays[name] = halfToFloat(new Uint16Array(buf, start + off, count));
    else arrays[name] = new (dtype === "i4" ? Int32Array : Float32Array)(buf, start + off, count);
  }
  return { header, arrays, bytes: u8.byteLength };
}

function halfToFloat(h) {
  // IEEE float16 -> float32 (weights travel as float16)
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i], s = x & 0x8000 ? -1 : 1, e = (x >> 10) & 31, m = x & 1023;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

function luminance(color) {
  const m = /^#([0-9a-f]{6})$/i.exec((color || "").trim());
  if (m) {
    const v = parseInt(m[1], 16);
    return (0.299 * (v >> 16) + 0.587 * ((v >> 8) & 255) + 0.114 * (v & 255)) / 255;
  }
  const r = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/.exec(color || "");
  return r ? (0.299 * +r[1] + 0.587 * +r[2] + 0.114 * +r[3]) / 255 : 1;
}

function report(S, extra) {
  if (!S.setStateValue) return;
  clearTimeout(S.reportTimer);
  S.reportTimer = 0;
  S.lastReport = performance.now();
  S.reportedSeq = S.seq;
  S.setStateValue("report", { seq: S.seq, applied: S.framesApplied, ms: Math.round(S.lastReport),
                              apply_ms: +S.applyMs.toFixed(2), resyncs: S.resyncs, ...extra });
}

function scheduleReport(S, playing, fresh) {
  // pull: ask for the next frame as soon as one arrives (never sooner than minInterval after
  // the last ask), so frames cannot pile up; timer: just tell Python how we keep up; follow:
  // another view on the page asks. A repeated frame asks again only if the last ask seems lost.
  if (S.reportTimer || !playing || S.pace === "follow") return;
  const since = performance.now() - S.lastReport;
  if (!fresh && S.reportedSeq === S.seq && since < 1500) return;
  const wait = Math.max(0, (S.pace === "pull" ? S.minInterval : S.reportEvery || 1000) - since);
  if (wait === 0) report(S, {});  // now, not after the page's own rendering
  else S.reportTimer = setTimeout(() => report(S, {}), wait);
}

// -- the feed (app/components/feed.py): frames over plain HTTP, outside Streamlit's reruns.
// One loop per feed URL on the page, shared by the views subscribed to it (one channel each):
// a GET returns the next message of every channel from one frame. One request is in flight at a
// time, sent at most max_fps times a second while the last frame is being painted; its answer is
// applied once that paint is done, so nothing piles up in the page or the server. F.costs keeps
// what recent frames cost this page (ms applying, ms rendering after the animation frame).
// Playing, the loop runs until the run stops; paused, it fetches once per new step the page
// names (a Step button's rerun). A channel whose page holds the wrong sequence number gets a
// full message (the server compares), so a lost response costs one full frame, not a stall.
function feedOf(url) {
  const all = (window.__deeprFeeds = window.__deeprFeeds || {});
  if (!all[url]) all[url] = { url, subs: new Map(), running: false, playing: false, wantStep: null,
                              frames: 0, errors: 0, gone: false, maxFps: 12, lastMs: 0, stepShown: -1 };
  return all[url];
}

function feedSubscribe(h, S, apply) {
  // h: the subscription message (kind "feed"); apply(S, header, arrays, bytes) draws a message
  for (const [url, other] of Object.entries(window.__deeprFeeds || {}))
    if (url !== h.feed) other.subs.delete(h.channel + "@" + S.key);  // a new run, a new feed
  const F = feedOf(h.feed);
  F.subs.set(h.channel + "@" + S.key, { channel: h.channel, S, apply });
  F.playing = !!h.playing;
  F.maxFps = h.max_fps || 12;
  if (h.step !== F.stepShown && h.step !== F.stepAsked) F.wantStep = h.step;  // once per new step
  S.feed = F;
  feedRun(F);
}

function feedSplit(buf) {
  const n = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + n)));
  const start = (4 + n + 3) & ~3, parts = {};
  for (const [name, [off, len]] of Object.entries(head.parts)) parts[name] = buf.subarray(start + off, start + off + len);
  return { head, parts };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// resolves after the next paint with the main thread's time for it (style, layout, paint and the
// canvases' raster run between the animation frame and the next task)
const painted = () => new Promise((r) => requestAnimationFrame(() => {
  const t = performance.now();
  setTimeout(() => r(performance.now() - t), 0);
}));

async function feedRun(F) {
  if (F.running || F.gone) return;
  F.running = true;
  let onScreen = Promise.resolve();  // resolves once the last frame applied has been painted
  try {
    while (F.playing || F.wantStep !== null) {
      for (const [id, s] of F.subs) if (!s.S.root.isConnected) F.subs.delete(id);
      if (!F.subs.size) break;
      F.stepAsked = F.wantStep;
      F.wantStep = null;
      const t0 = performance.now();
      const subs = Array.from(F.subs.values());
      const q = subs.map((s) => `${encodeURIComponent(s.channel)}=${s.S.seq}`).join("&");
      let r = null;
      try { r = await fetch(`${F.url}?${q}`, { cache: "no-store" }); } catch (e) { r = null; }
      if (!r || !r.ok) {
        F.errors++;
        if (r && (r.status === 404 || r.status === 410)) { F.gone = true; break; }  // the page reruns
        await sleep(1000);
        continue;
      }
      const { head, parts } = feedSplit(new Uint8Array(await r.arrayBuffer()));
      F.fetchMs = performance.now() - t0;  // request, server, transfer
      // the request went out while the last frame was being painted; this one waits for it
      // (frames never pile up in the page: one in flight, one on screen)
      const tw = performance.now();
      await onScreen;
      F.paintWaitMs = performance.now() - tw;
      for (const s of subs) {
        const part = parts[s.channel];
        if (!part || !s.S.root.isConnected) continue;
        const { header, arrays, bytes } = decode(part);
        if (header.kind !== "same") s.apply(s.S, header, arrays, bytes);
      }
      const applyMs = performance.now() - tw - F.paintWaitMs;
      onScreen = painted().then((ms) => {
        F.costs = F.costs || []; F.costs.push([applyMs, ms]); if (F.costs.length > 100) F.costs.shift();
      });
      F.frames++;
      F.stepShown = head.step;
      F.stepAsked = null;
      if (!head.playing) F.playing = false;  // the run stopped (paused elsewhere, diverged)
      F.lastMs = performance.now() - t0;
      F.serverMs = head.ms;  // the server's time for this frame: taking it, encoding it
      // a steady max_fps: the next request is due one interval after the last one was due
      // (a late frame does not delay the ones after it)
      const interval = 1000 / F.maxFps, now = performance.now();
      F.due = Math.max(now, (F.due || t0) + interval);
      if (F.due - now > 1) await sleep(F.due - now);
    }
  } finally {
    F.running = false;
  }
}

// Shared by the live graph and the live curves (each component's script is this file plus its
// own): the binary framing (app/components/wire.py), the sync protocol (sync.py), the theme,
// the report that asks Streamlit for the next frame, and the feed's request loop (feed.py).

function split(u8) {
  // a 4-byte header length, the JSON header, padding to 4 bytes: (header, offset of the body)
  const n = new DataView(u8.buffer, u8.byteOffset, 4).getUint32(0, true);
  return [JSON.parse(new TextDecoder().decode(u8.subarray(4, 4 + n))), (4 + n + 3) & ~3];
}

function decode(u8) {
  // one message (wire.pack): its header and typed arrays; copied into a fresh buffer, as the
  // typed views need 4-byte aligned offsets
  const buf = new Uint8Array(u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength));
  const [header, start] = split(buf);
  const arrays = {};
  for (const [name, [dtype, off, count]] of Object.entries(header.arrays || {})) {
    if (dtype === "f2") arrays[name] = halfToFloat(new Uint16Array(buf.buffer, start + off, count));
    else arrays[name] = new (dtype === "i4" ? Int32Array : Float32Array)(buf.buffer, start + off, count);
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

function mount(component, states, create, teardown) {
  // A Streamlit message for one of our canvases: decoded, with the canvas state of its element
  // (created on first use) and the cleanup to return (Streamlit also calls a superseded call's
  // cleanup when frames arrive quickly, so only a canvas that has really left the page is torn
  // down). null for an empty message.
  const { data, parentElement, setStateValue } = component;
  if (!data || !data.byteLength) return null;
  const t0 = performance.now();
  const { header: h, arrays: a, bytes } = decode(data);
  let S = states.get(parentElement);
  if (!S) { S = create(parentElement, h.key); states.set(parentElement, S); }
  S.setStateValue = setStateValue;
  const cleanup = () => setTimeout(() => {
    if (S.root.isConnected) return;
    teardown(S);
    if (states.get(parentElement) === S) states.delete(parentElement);
  }, 0);
  return { h, a, bytes, S, t0, cleanup };
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

function readPalette(S) {
  // S.theme and S.pal from the theme setting and Python's palettes (S.palettes, per theme:
  // app/charts/palette.py): "auto" follows Streamlit (its background's luminance, and its exact
  // background and text colours where it gives them). Returns the element's computed style for
  // what else the caller reads.
  const palettes = S.palettes || { light: {}, dark: {} };
  let mode = S.themeSetting;
  const cs = getComputedStyle(S.root);
  const bg = cs.getPropertyValue("--st-background-color").trim();
  if (mode !== "light" && mode !== "dark") mode = bg && luminance(bg) < 0.5 ? "dark" : "light";
  S.theme = mode;
  S.pal = { ...palettes[mode] };
  if (S.themeSetting === "auto") {
    if (bg) S.pal.bg = bg;
    const text = cs.getPropertyValue("--st-text-color").trim();
    if (text) S.pal.text = text;
  }
  S.root.dataset.theme = mode;
  return cs;
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

// -- the sync protocol (sync.py): a delta names the message it applies to (base); a message
// repeats the recent deltas, the view applies those it lacks. After a gap the view asks for the
// whole state again: on the feed by naming no sequence number it was sent (S.seq = -1), under
// Streamlit reruns by a report with resync (once per 2 s at most).
function deltasToApply(S, h, t0) {
  // the deltas of message h this view lacks, oldest first; null when there is nothing to apply
  // (none is newer, or one went missing: the whole state is asked for)
  const todo = h.deltas.filter((d) => d.seq > S.seq);
  if (!todo.length) return null;
  if (todo[0].base === S.seq) return todo;
  if (S.feed) { S.seq = -1; S.resyncs++; return null; }
  if (S.resyncAsked < 0 || t0 - S.resyncAt > 2000) {
    S.resyncAsked = h.seq; S.resyncAt = t0; S.resyncs++; report(S, { resync: h.seq });
  }
  return null;
}

function resync(S, h) {
  // the view's state does not match the deltas (never expected): ask for the whole state
  S.inconsistent = false; S.resyncs++;
  if (S.feed) S.seq = -1; else report(S, { resync: h.seq });
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
// applied once that paint is done, so nothing piles up in the page or the server.
// Playing, the loop runs until the run stops; paused, it fetches once per new step the page
// names (a Step button's rerun). A channel whose page holds the wrong sequence number gets a
// full message (the server compares), so a lost response costs one full frame, not a stall.
function feedOf(url) {
  const all = (window.__deeprFeeds = window.__deeprFeeds || {});
  if (!all[url]) all[url] = { url, subs: new Map(), running: false, playing: false, want: false, gen: 0,
                              frames: 0, errors: 0, lastError: "", gone: false, maxFps: 12,
                              stepShown: -1, stepAsked: null };
  return all[url];
}

function feedSubscribe(h, S, apply) {
  // h: the subscription message (kind "feed"); apply(S, header, arrays, bytes) draws a message
  const id = h.channel + "@" + S.key;
  const all = window.__deeprFeeds || {};
  for (const [url, other] of Object.entries(all)) {
    if (url === h.feed) continue;
    other.subs.delete(id);  // a new run, a new feed: the old one draws here no more
    if (!other.subs.size && !other.running) delete all[url];
  }
  const F = feedOf(h.feed);
  const sub = F.subs.get(id), isNew = sub?.S !== S;
  // the same view again (every rerun subscribes it again): the same subscription, so the
  // answer to a request in flight is still applied to it (a new record here made feedFrame
  // drop it, and a paused page asked no more: the view stayed at the step before)
  if (isNew) F.subs.set(id, { id, channel: h.channel, S, apply });
  else Object.assign(sub, { channel: h.channel, apply });
  F.gen++;  // answers to requests sent before this subscription cannot stop the loop
  F.playing = !!h.playing;
  F.maxFps = h.max_fps || 12;
  F.gone = false;  // the server says again whether it knows this feed
  // paused: ask for a frame when a view holds nothing yet or the page names a new step (once)
  if (isNew || S.seq < 0 || (h.step !== F.stepShown && h.step !== F.stepAsked)) {
    F.want = true;
    F.stepAsked = h.step;
  }
  S.feed = F;
  feedRun(F);
}

function feedSplit(buf) {
  // a feed frame (wire.pack_parts): its header and one message per channel
  const [head, start] = split(buf), parts = {};
  for (const [name, [off, len]] of Object.entries(head.parts)) parts[name] = buf.subarray(start + off, start + off + len);
  return { head, parts };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// resolves after the next paint (style, layout, paint and the canvases' raster run between the
// animation frame and the next task)
const painted = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));

async function feedRun(F) {
  if (F.running || F.gone) return;
  F.running = true;
  let onScreen = Promise.resolve();  // resolves once the last frame applied has been painted
  try {
    while (F.playing || F.want) {
      for (const [id, s] of F.subs) if (!s.S.root.isConnected) F.subs.delete(id);
      if (!F.subs.size) break;
      F.want = false;
      const t0 = performance.now(), gen = F.gen;
      try {
        onScreen = (await feedFrame(F, gen, onScreen)) || onScreen;
      } catch (e) {  // a bad answer or a bug: count it, wait, go on (the next request may resync)
        F.errors++; F.lastError = String(e);
        await sleep(1000);
        continue;
      }
      if (F.gone) break;
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

async function feedFrame(F, gen, onScreen) {
  // one request and its answer; returns the promise of its paint (null when nothing was drawn)
  const subs = Array.from(F.subs.values());
  const q = subs.map((s) => `${encodeURIComponent(s.channel)}=${s.S.seq}`).join("&");
  let r = null;
  try { r = await fetch(`${F.url}?${q}`, { cache: "no-store" }); } catch (e) { r = null; }
  if (!r || !r.ok) {
    if (r && (r.status === 404 || r.status === 410)) {
      // the feed ended (its run changed or stopped, the server restarted): the views ask the
      // page to run again, which subscribes them to the run's new feed
      F.gone = true;
      for (const s of subs) if (s.S.setStateValue) s.S.setStateValue("report", { feed_gone: F.url, ms: Date.now() });
      return null;
    }
    throw new Error(r ? `feed answered ${r.status}` : "feed unreachable");
  }
  const { head, parts } = feedSplit(new Uint8Array(await r.arrayBuffer()));
  // the request went out while the last frame was being painted; this one waits for it
  // (frames never pile up in the page: one in flight, one on screen)
  await onScreen;
  let again = false;
  for (const s of subs) {
    const part = parts[s.channel];
    // only views still subscribed to this feed (a new run's views belong to another feed)
    if (!part || F.subs.get(s.id)?.S !== s.S || !s.S.root.isConnected) continue;
    const { header, arrays, bytes } = decode(part);
    if (header.kind !== "same") s.apply(s.S, header, arrays, bytes);
    // a view that could not apply its part (a delta it lacks the base of) holds seq -1 now:
    // the next request gets it the whole state, paused too
    if (s.S.seq < 0) again = true;
  }
  F.frames++;
  F.stepShown = head.step;
  F.stepAsked = null;
  if (again) F.want = true;
  // the run stopped (paused elsewhere, diverged); an answer to a request sent before the page
  // last subscribed (a Play in between) says nothing about now
  if (!head.playing && gen === F.gen) F.playing = false;
  return painted();
}

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

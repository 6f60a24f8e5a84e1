// The live connectivity graph: a <canvas> that holds the network and applies per-frame deltas.
//
// Python (app/components/live_graph.py, graph_diff.py) sends one binary message per frame: a
// "full" message (layout + every drawn edge) when the run or layout changes, otherwise a
// "delta" (edges pruned and revived since the previous frame, weights that moved, dead units).
// Steady edges are drawn on a base canvas only when data arrives; fades run on an overlay canvas
// with requestAnimationFrame and stop when nothing is fading, so an idle graph costs nothing.

const STATES = new WeakMap();           // parentElement -> state; the module is called per frame
const FADE_MS = { added: 1000, death: 1200, probe: 700 };
const RATE_STEPS = 100;                 // counters: per 100 steps, over the last >= 100 steps
const RATE_EVENTS = 400;                // frames kept for them (paused: the last rates stay)
const MAX_ANIMS = 3000;                 // a burst beyond this fades without drawing every edge
const FADE_FPS = 10;                    // fade steps per second (ten opacity bands per fade)
const NB = 6;                           // |w| bands per sign (one stroke per band)
// Colours (per theme), the probe threshold and the fade budget come from Python with the data
// (app/charts/palette.py, live_graph.py): S.palettes, S.probeSteps, S.fadeBudget.


function createState(parent, key) {
  for (const old of parent.querySelectorAll(".dg-root")) old.remove();
  const root = document.createElement("div");
  root.className = "dg-root";
  root.innerHTML =
    '<div class="dg-top"><span class="dg-step"></span><span class="dg-counters"></span></div>' +
    '<div class="dg-stage"><canvas class="dg-base"></canvas><canvas class="dg-anim"></canvas>' +
    '<div class="dg-tip" hidden></div></div>' +
    '<div class="dg-legend"><span class="sw pos"></span>+ weight <span class="sw neg"></span>− weight ' +
    '(opacity, width: |w|) <span class="sw added"></span>revived <span class="sw death"></span>' +
    'pruned (established) <span class="sw probe"></span>pruned probe (brief, near 0) ' +
    '<span class="ring"></span>dead unit</div>';
  parent.appendChild(root);
  const S = {
    key, root,
    stage: root.querySelector(".dg-stage"),
    base: root.querySelector(".dg-base"),
    anim: root.querySelector(".dg-anim"),
    tip: root.querySelector(".dg-tip"),
    countersEl: root.querySelector(".dg-counters"),
    stepEl: root.querySelector(".dg-step"),
    seq: -1, framesApplied: 0, lastBytes: 0, lastKind: "", resyncs: 0, resyncAsked: -1, resyncAt: 0, reportedSeq: -1,
    layout: null, layers: [], edges: [], scale: [], dead: new Set(), xy: null, colOf: null,
    anims: [], rafId: 0, lastAnim: 0, hover: null, mouse: null, events: [], step: 0, sample: null,
    theme: "light", themeSetting: "auto", pal: null, palettes: null, height: 420,
    probeSteps: 20, fadeBudget: { death: 16, added: 16, probe: 12 },
    pace: "timer", minInterval: 100, reportEvery: 1000, lastReport: 0, reportTimer: 0,
    applyMs: 0, setStateValue: null,
  };
  S.api = {
    get framesApplied() { return S.framesApplied; },
    get lastBytes() { return S.lastBytes; },
    get lastKind() { return S.lastKind; },
    get edgeCount() { return S.edges.reduce((a, m) => a + m.size, 0); },
    get seq() { return S.seq; },
    get step() { return S.step; },
    get theme() { return S.theme; },
    get resyncs() { return S.resyncs; },
    get fading() { return S.anims.length; },
    get applyMs() { return S.applyMs; },
    hasEdge: (layer, pos) => !!(S.edges[layer] && S.edges[layer].has(pos)),
    weight: (layer, pos) => (S.edges[layer] ? S.edges[layer].get(pos) : undefined),
    edges: () => S.edges.map((m) => Array.from(m.keys()).sort((a, b) => a - b)),
    dead: () => Array.from(S.dead).sort((a, b) => a - b),
    rates: () => rates(S, performance.now()),
    edgeAt: (x, y) => { const h = nearestEdge(S, x, y); return h && describe(S, h); },
    // units (graph columns: 0 = inputs, 1 = the first hidden layer, ...): where one is drawn,
    // which one is outlined (hovered here or in the unit maps) and its fan-in / fan-out edges
    unitXY: (col, i) => (S.xy ? [S.xy[2 * (S.offsets[col] + i)], S.xy[2 * (S.offsets[col] + i) + 1]] : null),
    highlighted: () => { const u = S.hoverUnit || S.extUnit; return u && { ...u, ...fanEdges(S, u) }; },
    hoverUnit: (col, i) => { S.extUnit = col >= 0 ? { col, unit: i } : null; kick(S); },
  };
  window.__deeprGraph = window.__deeprGraph || {};
  window.__deeprGraph[key] = S.api;

  new ResizeObserver(() => { if (resize(S)) { drawBase(S); drawAnim(S, performance.now()); } })
    .observe(S.stage);
  S.stage.addEventListener("mousemove", (e) => {
    const r = S.base.getBoundingClientRect();
    S.mouse = [e.clientX - r.left, e.clientY - r.top];
    kick(S);
  });
  S.stage.addEventListener("mouseleave", () => {
    S.mouse = null; S.hover = null; S.tip.hidden = true; setUnit(S, null); kick(S);
  });
  S.onUnit = (e) => {  // a unit map hovered (unit_maps.js): outline that unit's edges
    const d = e.detail || {};
    if (d.source === "graph") return;
    S.extUnit = d.col >= 0 ? { col: d.col, unit: d.unit } : null;
    kick(S);
  };
  window.addEventListener("deepr:unit", S.onUnit);
  S.ratesTimer = setInterval(() => renderCounters(S), 500);
  return S;
}

function readTheme(S) {
  readPalette(S);
  for (const k of ["pos", "neg", "added", "death", "probe", "ring", "text", "bg"])
    S.root.style.setProperty("--dg-" + k, S.pal[k]);
}

function resize(S) {
  const w = Math.max(50, Math.floor(S.stage.clientWidth));
  const h = S.height;
  const dpr = window.devicePixelRatio || 1;
  if (S.w === w && S.h === h && S.dpr === dpr && S.xy) return false;
  S.w = w; S.h = h; S.dpr = dpr;
  S.stage.style.height = h + "px";
  for (const c of [S.base, S.anim]) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    c.style.width = w + "px"; c.style.height = h + "px";
  }
  placeNodes(S);
  return true;
}

// Node pixel positions: an image input as its pixel grid (square cells), the other layers as
// columns at the x fractions Python chose (the first layer gets the widest gap).
function placeNodes(S) {
  const L = S.layout;
  if (!L) return;
  const pad = 12, top = 12, bottom = S.sample ? 26 : 12;
  const W = S.w, H = S.h, ih = H - top - bottom;
  const n = L.sizes.reduce((a, b) => a + b, 0);
  const xy = new Float32Array(2 * n);
  S.offsets = [];
  let off = 0, x0 = pad, span = W - 2 * pad;
  S.radius = [];
  for (let c = 0; c < L.sizes.length; c++) {
    S.offsets.push(off);
    const size = L.sizes[c];
    if (c === 0 && L.grid) {
      const [gh, gw] = L.grid;
      const cell = Math.min(ih / gh, (W * 0.3) / gw);
      for (let i = 0; i < size; i++) {
        const r = Math.floor(i / gw), q = i % gw;
        xy[2 * (off + i)] = pad + (q + 0.5) * cell;
        xy[2 * (off + i) + 1] = top + (ih - cell * gh) / 2 + (r + 0.5) * cell;
      }
      x0 = pad + cell * gw;
      span = W - pad - x0;
      S.radius.push(Math.max(1, Math.min(4, cell * 0.3)));
    } else {
      const x = x0 + L.x[c] * span;
      const step = size > 1 ? ih / (size - 1) : 0;
      for (let i = 0; i < size; i++) {
        xy[2 * (off + i)] = x;
        xy[2 * (off + i) + 1] = size === 1 ? top + ih / 2 : top + i * step;
      }
      S.radius.push(Math.max(1, Math.min(4, step * 0.35 || 4)));
    }
    off += size;
  }
  S.offsets.push(off);
  S.xy = xy;
}

function endpoints(S, layer, pos) {
  const nin = S.layers[layer].shape[1];
  const row = Math.floor(pos / nin), col = pos - row * nin;
  const a = 2 * (S.offsets[layer] + col), b = 2 * (S.offsets[layer + 1] + row);
  return [S.xy[a], S.xy[a + 1], S.xy[b], S.xy[b + 1]];
}

function layerScale(map) {
  // 98th percentile of |w|: one huge weight should not make the whole layer faint
  const v = new Float32Array(map.size);
  let i = 0;
  for (const w of map.values()) v[i++] = Math.abs(w);
  if (!v.length) return 1;
  v.sort();
  return Math.max(v[Math.min(v.length - 1, Math.floor(0.98 * v.length))], 1e-12);
}

function drawBase(S) {
  const ctx = S.base.getContext("2d", { alpha: false });  // opaque: no blending behind it
  ctx.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
  ctx.fillStyle = S.pal.bg;
  ctx.fillRect(0, 0, S.w, S.h);
  if (!S.xy) return;
  const paths = [];
  for (let b = 0; b < 2 * NB; b++) paths.push(new Path2D());
  for (let l = 0; l < S.edges.length; l++) {
    const sc = S.scale[l];
    for (const [pos, w] of S.edges[l]) {
      const band = Math.min(NB - 1, Math.floor((Math.abs(w) / sc) * NB));
      const p = paths[(w < 0 ? NB : 0) + band];
      const [x1, y1, x2, y2] = endpoints(S, l, pos);
      p.moveTo(x1, y1); p.lineTo(x2, y2);
    }
  }
  // thousands of edges at full opacity are one blot: fade all of them with density
  const density = Math.min(1, Math.max(0.25, Math.sqrt(1500 / Math.max(1, S.api.edgeCount))));
  for (let b = 0; b < 2 * NB; b++) {
    const f = ((b % NB) + 0.5) / NB;
    ctx.globalAlpha = (0.12 + 0.83 * f) * density;
    // hairlines but for the strongest two bands (wide strokes cost most without a GPU)
    ctx.lineWidth = f > 0.6 ? 0.5 + 1.6 * f : 1;
    ctx.strokeStyle = b < NB ? S.pal.pos : S.pal.neg;
    ctx.stroke(paths[b]);
  }
  ctx.globalAlpha = 1;
  // units: filled, dead ones hollow
  const live = new Path2D(), dead = new Path2D();
  for (let c = 0; c < S.layout.sizes.length; c++) {
    const r = S.radius[c], o = S.offsets[c];
    for (let i = 0; i < S.layout.sizes[c]; i++) {
      const id = o + i, x = S.xy[2 * id], y = S.xy[2 * id + 1];
      const p = S.dead.has(id) ? dead : live;
      p.moveTo(x + r, y); p.arc(x, y, r, 0, 2 * Math.PI);
    }
  }
  ctx.fillStyle = S.pal.node; ctx.fill(live);
  ctx.fillStyle = S.pal.bg; ctx.fill(dead);
  ctx.lineWidth = 1; ctx.strokeStyle = S.pal.ring; ctx.stroke(dead);
  if (S.sample) {
    ctx.fillStyle = S.pal.text;
    ctx.font = "12px sans-serif";
    ctx.fillText(`showing a fixed sample: ${S.sample.shown.toLocaleString()} of ` +
      `${S.sample.total.toLocaleString()} edges (${S.sample.rule}); counters count all`, 8, S.h - 8);
  }
  const c = S.base.dataset;
  c.framesApplied = S.framesApplied; c.lastBytes = S.lastBytes; c.edges = S.api.edgeCount;
  c.theme = S.theme; c.seq = S.seq; c.step = S.step; c.lastKind = S.lastKind;
}

function kick(S) {
  // fades step at FADE_FPS at most, and with the data frames when those come: each redraw of
  // the overlay is a whole-canvas upload to the compositor, best shared with the frame's own
  if (S.rafId) return;
  S.rafId = requestAnimationFrame((t) => {
    S.rafId = 0;
    if (t - S.lastAnim < 1000 / FADE_FPS - 2 && !S.mouse) { kick(S); return; }
    S.lastAnim = t;
    drawAnim(S, t);
  });
}

function drawAnim(S, now) {
  const ctx = S.anim.getContext("2d");
  ctx.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
  ctx.clearRect(0, 0, S.w, S.h);
  if (!S.xy) return;
  S.anims = S.anims.filter((a) => now - a.t0 < FADE_MS[a.kind]);
  // one stroke per (kind, opacity band): a burst of fades stays a handful of draw calls
  const groups = new Map();
  for (const a of S.anims) {
    if (a.layer >= S.layers.length) continue;
    const band = Math.min(9, Math.floor((Math.max(0, now - a.t0) / FADE_MS[a.kind]) * 10));
    const k = a.kind + band;
    let g = groups.get(k);
    if (!g) { g = { kind: a.kind, band, path: new Path2D() }; groups.set(k, g); }
    const [x1, y1, x2, y2] = endpoints(S, a.layer, a.pos);
    g.path.moveTo(x1, y1); g.path.lineTo(x2, y2);
  }
  for (const g of groups.values()) {
    ctx.globalAlpha = 1 - (g.band + 0.5) / 10;
    ctx.strokeStyle = S.pal[g.kind];
    // deaths of established connections stand out; revivals (most die as probes) less so
    // deaths of established connections stand out; revivals and probes are hairlines (a
    // software-rasterised canvas draws those an order of magnitude faster than wide strokes)
    ctx.lineWidth = g.kind === "death" ? 2 : 1;
    ctx.setLineDash(g.kind === "probe" ? [2, 3] : []);
    ctx.stroke(g.path);
  }
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
  if (S.mouse) {
    const u = nearestUnit(S, S.mouse[0], S.mouse[1]);
    setUnit(S, u);
    S.hover = u ? null : nearestEdge(S, S.mouse[0], S.mouse[1]);
    if (u) unitTip(S, u); else showTip(S);
  }
  drawUnitEdges(S, ctx);
  if (S.hover) {
    const [x1, y1, x2, y2] = endpoints(S, S.hover.layer, S.hover.pos);
    ctx.lineWidth = 3; ctx.strokeStyle = S.pal.hover;
    ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
  }
  if (S.anims.length) kick(S);
}

function nearestUnit(S, mx, my) {
  // the unit drawn nearest the mouse, within its radius plus 3 px (null: none)
  if (!S.layout) return null;
  let best = null, bestD = Infinity;
  for (let c = 0; c < S.layout.sizes.length; c++) {
    const r = S.radius[c] + 3, o = S.offsets[c];
    for (let i = 0; i < S.layout.sizes[c]; i++) {
      const dx = S.xy[2 * (o + i)] - mx, dy = S.xy[2 * (o + i) + 1] - my, d = dx * dx + dy * dy;
      if (d <= r * r && d < bestD) { bestD = d; best = { col: c, unit: i }; }
    }
  }
  return best;
}

function setUnit(S, u) {
  // the unit hovered in the graph; the unit maps hear of every change
  const same = (a, b) => (a && b ? a.col === b.col && a.unit === b.unit : a === b);
  if (same(S.hoverUnit, u)) return;
  S.hoverUnit = u;
  S.root.dataset.unit = u ? `${u.col}:${u.unit}` : "";
  window.dispatchEvent(new CustomEvent("deepr:unit", {
    detail: { source: "graph", key: S.key, col: u ? u.col : -1, unit: u ? u.unit : -1 } }));
}

function fanEdges(S, u) {
  // positions of the unit's incoming edges (layer col-1, its row) and outgoing ones (layer col,
  // its column) that the graph holds
  const fanIn = [], fanOut = [];
  const li = u.col - 1, lo = u.col;
  if (li >= 0 && S.edges[li]) {
    const nin = S.layers[li].shape[1], a = u.unit * nin, b = a + nin;
    for (const pos of S.edges[li].keys()) if (pos >= a && pos < b) fanIn.push(pos);
  }
  if (lo < S.edges.length && S.edges[lo]) {
    const nin = S.layers[lo].shape[1];
    for (const pos of S.edges[lo].keys()) if (pos % nin === u.unit) fanOut.push(pos);
  }
  fanIn.sort((x, y) => x - y); fanOut.sort((x, y) => x - y);
  return { fanIn, fanOut };
}

function drawUnitEdges(S, ctx) {
  const u = S.hoverUnit || S.extUnit;
  if (!u || !S.xy || u.col >= S.layout.sizes.length) return;
  const { fanIn, fanOut } = fanEdges(S, u);
  ctx.lineWidth = 2.5; ctx.strokeStyle = S.pal.unit;  // the unit maps outline the same unit in this colour
  const p = new Path2D();
  for (const pos of fanIn) { const [x1, y1, x2, y2] = endpoints(S, u.col - 1, pos); p.moveTo(x1, y1); p.lineTo(x2, y2); }
  for (const pos of fanOut) { const [x1, y1, x2, y2] = endpoints(S, u.col, pos); p.moveTo(x1, y1); p.lineTo(x2, y2); }
  ctx.stroke(p);
  const [x, y] = [S.xy[2 * (S.offsets[u.col] + u.unit)], S.xy[2 * (S.offsets[u.col] + u.unit) + 1]];
  ctx.beginPath(); ctx.arc(x, y, S.radius[u.col] + 3, 0, 2 * Math.PI); ctx.stroke();
}

function unitTip(S, u) {
  const { fanIn, fanOut } = fanEdges(S, u);
  const name = u.col === 0 ? "input" : u.col === S.layout.sizes.length - 1 ? "output" : `hidden L${u.col}`;
  S.tip.textContent = `${name} unit ${u.unit} · fan-in ${fanIn.length} · fan-out ${fanOut.length}`;
  S.tip.hidden = false;
  const [mx, my] = S.mouse;
  S.tip.style.left = Math.min(mx + 12, S.w - 260) + "px";
  S.tip.style.top = (my > S.h - 40 ? my - 30 : my + 14) + "px";
}

function nearestEdge(S, mx, my) {
  let best = null, bestD = 36;  // within 6 px
  for (let l = 0; l < S.edges.length; l++) {
    for (const pos of S.edges[l].keys()) {
      const [x1, y1, x2, y2] = endpoints(S, l, pos);
      const dx = x2 - x1, dy = y2 - y1;
      const t = Math.max(0, Math.min(1, ((mx - x1) * dx + (my - y1) * dy) / (dx * dx + dy * dy || 1)));
      const ex = x1 + t * dx - mx, ey = y1 + t * dy - my, d = ex * ex + ey * ey;
      if (d < bestD) { bestD = d; best = { layer: l, pos }; }
    }
  }
  return best;
}

function describe(S, h) {
  const nin = S.layers[h.layer].shape[1];
  const w = S.edges[h.layer].get(h.pos);
  return { layer: h.layer, row: Math.floor(h.pos / nin), col: h.pos % nin, theta: Math.abs(w), weight: w };
}

function fmt(v) {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(2);
}

function showTip(S) {
  if (!S.hover || !S.edges[S.hover.layer] || !S.edges[S.hover.layer].has(S.hover.pos)) {
    S.hover = null; S.tip.hidden = true; return;
  }
  const d = describe(S, S.hover);
  S.tip.textContent = `L${d.layer} · row ${d.row} (out), col ${d.col} (in) · θ ${fmt(d.theta)} · w ${fmt(d.weight)}`;
  S.tip.hidden = false;
  const [mx, my] = S.mouse;
  S.tip.style.left = Math.min(mx + 12, S.w - 260) + "px";
  S.tip.style.top = (my > S.h - 40 ? my - 30 : my + 14) + "px";
}

function rates(S, now) {
  // per 100 steps (not per second: comparable whatever the machine's load), from the newest
  // frames back until they cover RATE_STEPS steps; probes: pruned within the probe window of
  // their revival, deaths: the other prunes (established connections)
  if (S.events.length > RATE_EVENTS) S.events.splice(0, S.events.length - RATE_EVENTS);
  const out = S.layers.map(() => [0, 0, 0]);
  let steps = 0;
  for (let i = S.events.length - 1; i >= 0 && steps < RATE_STEPS; i--) {
    const e = S.events[i];
    steps += e.steps;
    e.counts.forEach(([p, r, q], l) => { if (out[l]) { out[l][0] += p; out[l][1] += r; out[l][2] += q || 0; } });
  }
  const k = steps > 0 ? 100 / steps : NaN;
  return out.map(([p, r, q]) => ({ pruned: p * k, revived: r * k, probes: q * k, deaths: (p - q) * k, steps }));
}

function rate(v) {
  // 0.4, 12.5, 1,234, 45,481: one decimal only where it says something
  return Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: v < 100 ? 1 : 0 }) : "—";
}

function renderCounters(S) {
  const r = rates(S, performance.now());
  S.countersEl.replaceChildren(...r.map((x, l) => {
    const span = document.createElement("span");
    span.textContent = `L${l}: ${rate(x.deaths)} deaths · ${rate(x.probes)} probes · ${rate(x.revived)} revived`;
    return span;
  }));
  S.stepEl.textContent = `step ${S.step.toLocaleString()} · per 100 steps:`;
}

function fade(S, l, pos, kind, now, keep) {
  if (S.anims.length < MAX_ANIMS && Math.random() < keep[kind]) S.anims.push({ layer: l, pos, kind, t0: now });
}

const isProbe = (S, life) => life >= 0 && life < S.probeSteps;  // palette.is_probe

function fadeShares(S, d, a) {
  // per kind: the share of this frame's events that get a fade (the budget over the count)
  const n = { death: 0, added: 0, probe: 0 };
  for (let l = 0; l < S.layers.length; l++) {
    const life = a[d.p + "life" + l], add = a[d.p + "add" + l], probe = a[d.p + "probe" + l];
    if (life) for (let i = 0; i < life.length; i++) n[isProbe(S, life[i]) ? "probe" : "death"]++;
    if (add) n.added += add.length;
    if (probe) n.probe += probe.length;
  }
  const keep = {};
  const budget = S.fadeBudget;
  for (const k in n) keep[k] = n[k] <= budget[k] ? 1 : budget[k] / n[k];
  return keep;
}

function applyFull(S, h, a, now) {
  S.layout = h.layout;
  S.layers = h.layers;
  S.sample = h.sample;
  S.edges = h.layers.map((_, l) => {
    const m = new Map(), p = a["pos" + l], w = a["w" + l];
    for (let i = 0; i < p.length; i++) m.set(p[i], w[i]);
    return m;
  });
  S.dead = new Set(a.dead || []);
  S.anims = [];
  S.xy = null;  // new layout: place the nodes again
  resize(S);
}

function applyDelta(S, d, a, now) {
  const A = (name) => a[d.p + name];
  const keep = fadeShares(S, d, a);
  for (let l = 0; l < S.layers.length; l++) {
    const m = S.edges[l];
    const rm = A("rm" + l), life = A("life" + l);
    if (rm) for (let i = 0; i < rm.length; i++)
      if (m.delete(rm[i])) fade(S, l, rm[i], isProbe(S, life[i]) ? "probe" : "death", now, keep);
    const add = A("add" + l), addw = A("addw" + l);
    if (add) for (let i = 0; i < add.length; i++) {
      m.set(add[i], addw[i]);
      fade(S, l, add[i], "added", now, keep);
    }
    const mv = A("mv" + l), mvw = A("mvw" + l);
    if (mv) for (let i = 0; i < mv.length; i++) if (m.has(mv[i])) m.set(mv[i], mvw[i]);
    const wall = A("wall" + l);  // every weight, in position order
    if (wall) {
      const keys = Float64Array.from(m.keys()).sort();
      if (keys.length === wall.length) for (let i = 0; i < keys.length; i++) m.set(keys[i], wall[i]);
      else S.inconsistent = true;  // never expected: the caller asks for the whole graph
    }
    const probe = A("probe" + l);  // revived and pruned again between two frames
    if (probe) for (let i = 0; i < probe.length; i++) fade(S, l, probe[i], "probe", now, keep);
  }
  if (d.dead) S.dead = new Set(A("dead"));
  S.events.push({ t: now, counts: d.counts, steps: 0 });  // its steps: applyMessage
  S.seq = d.seq;
}



export default function (component) {
  const m = mount(component, STATES, createState, (S) => {
    clearInterval(S.ratesTimer); clearTimeout(S.reportTimer); cancelAnimationFrame(S.rafId);
    window.removeEventListener("deepr:unit", S.onUnit);
  });
  if (!m) return;
  const { h, a, bytes, S, t0, cleanup } = m;
  S.themeSetting = h.theme || "auto";
  S.pace = h.pace || "timer";
  S.minInterval = h.min_interval_ms || 100;
  if (h.fade_budget) S.fadeBudget = h.fade_budget;
  if (h.probe_steps) S.probeSteps = h.probe_steps;
  if (h.palette) S.palettes = h.palette;
  const themeBefore = S.theme, heightBefore = S.height;
  readTheme(S);
  S.height = h.height || 420;
  const looksChanged = themeBefore !== S.theme || heightBefore !== S.height || !S.xy;
  if (h.kind === "feed") {  // frames come from the feed (common.js), not from Streamlit
    if (looksChanged) { resize(S); drawBase(S); }
    feedSubscribe(h, S, (S, h, a, bytes) => applyMessage(S, h, a, bytes, performance.now()));
    return cleanup;
  }
  if (h.seq === S.seq) {  // the same message again (a rerun with nothing new, a theme change)
    if (looksChanged) { resize(S); drawBase(S); }
    scheduleReport(S, h.playing, false);
    return cleanup;  // every call returns it: Streamlit keeps only the last one for unmount
  }
  applyMessage(S, h, a, bytes, t0);
  return cleanup;
}

function applyMessage(S, h, a, bytes, t0) {
  // one message (full or delta), from Streamlit or from the feed
  const now = performance.now();
  if (h.kind === "full") {
    applyFull(S, h, a, now);
    S.seq = h.seq;
    S.resyncAsked = -1;
  } else {
    const todo = deltasToApply(S, h, t0);  // common.js: the sync protocol
    if (!todo) return;
    for (const d of todo) applyDelta(S, d, a, now);
    if (S.events.length) S.events[S.events.length - 1].steps = Math.max(0, h.step - S.step);
    if (S.inconsistent) resync(S, h);
  }
  S.step = h.step;
  S.framesApplied++;
  S.lastBytes = bytes;
  S.lastKind = h.kind;
  S.layers.forEach((_, l) => { S.scale[l] = layerScale(S.edges[l]); });
  resize(S);
  drawBase(S);
  drawAnim(S, now);  // the new fades, in the same paint as the frame
  S.lastAnim = now;
  renderCounters(S);
  S.applyMs = performance.now() - t0;
  if (!S.feed) scheduleReport(S, h.playing, true);
}

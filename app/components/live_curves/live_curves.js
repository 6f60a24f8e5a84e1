// The live curves: accuracy and loss, theta walks, transitions, on canvases that hold the run's
// history and apply per-frame deltas.
//
// Python (app/components/live_curves.py) sends one binary message per frame (wire.py's
// framing): a "full" message with every series, or a "delta" whose ops say, per series, from
// which point on to replace (from = what the page holds: an append; less: the engine's
// down-sampling rewrote the series). The charts are redrawn when data arrives; hover draws on
// an overlay canvas, so the base canvas is the figure a PNG download saves.

const STATES = new WeakMap();           // parentElement -> state; the module is called per frame
const TITLES = { accuracy: "Accuracy and loss", walks: "θ walks of the tracked connections",
                 transitions: "Transitions per step" };
const MARK_ROWS = 3, ROW_H = 14;        // change labels: rows above the plot
// Colours per theme come from Python with the data (app/charts/palette.py): S.palettes.


function createState(parent, key) {
  for (const old of parent.querySelectorAll(".lc-root")) old.remove();
  const root = document.createElement("div");
  root.className = "lc-root";
  parent.appendChild(root);
  const S = {
    key, root, charts: {}, chartNames: [], series: {}, changes: [], meta: { n_layers: 0, tracked_layer: [], theta_min: null },
    metrics: {}, step: 0, seq: -1, framesApplied: 0, lastBytes: 0, lastKind: "", resyncs: 0, resyncAsked: -1,
    resyncAt: 0, bytesApplied: 0, lastOps: {}, appends: {}, rewrites: {}, theme: "light", themeSetting: "auto",
    pal: null, palettes: null, height: 240, columns: 1, scale: "sqrt", scaleSetting: null, pace: "pull",
    minInterval: 100, lastReport: 0, reportTimer: 0, reportedSeq: -1, setStateValue: null, applyMs: 0,
    drawMs: 0, font: "sans-serif",
  };
  S.api = {
    get framesApplied() { return S.framesApplied; },
    get seq() { return S.seq; },
    get step() { return S.step; },
    get lastBytes() { return S.lastBytes; },
    get bytesApplied() { return S.bytesApplied; },
    get lastKind() { return S.lastKind; },
    get lastOps() { return JSON.parse(JSON.stringify(S.lastOps)); },
    get theme() { return S.theme; },
    get resyncs() { return S.resyncs; },
    get scale() { return S.scale; },
    get applyMs() { return S.applyMs; },
    get drawMs() { return S.drawMs; },
    get counts() { return { appends: { ...S.appends }, rewrites: { ...S.rewrites } }; },
    // a series as the page holds it: steps and rows of values (NaN as null)
    series: (name) => {
      const s = S.series[name];
      if (!s) return null;
      const rows = [];
      for (let i = 0; i < s.steps.length; i++) rows.push(s.values.slice(i * s.dims, (i + 1) * s.dims)
        .map((v) => (Number.isFinite(v) ? v : null)));
      return { steps: s.steps.slice(), values: rows, dims: s.dims };
    },
    markers: () => S.changes.map(([step, field, label]) => ({ step, field, label })),
    // per chart what the last drawing placed: markers (label row or null: on hover), axes
    drawn: (chart) => S.charts[chart] && JSON.parse(JSON.stringify(S.charts[chart].drawn || null)),
    setScale: (s) => { S.scale = s; drawAll(S); },
    png: (chart) => S.charts[chart].base.toDataURL("image/png"),
    hoverAt: (chart, x, y) => { const C = S.charts[chart]; return C ? hoverText(S, C, x, y) : null; },
  };
  window.__deeprCurves = window.__deeprCurves || {};
  window.__deeprCurves[key] = S.api;
  return S;
}

function buildCharts(S, names) {
  S.root.replaceChildren();
  S.charts = {};
  S.chartNames = names.slice();
  for (const name of names) {
    const el = document.createElement("div");
    el.className = "lc-chart";
    el.dataset.chart = name;
    el.innerHTML =
      `<div class="lc-head"><span class="lc-title"></span><span class="lc-readout"></span>` +
      `<span class="lc-legend"></span><span class="lc-tools"></span></div>` +
      `<div class="lc-stage"><canvas class="lc-base"></canvas><canvas class="lc-over"></canvas>` +
      `<div class="lc-tip" hidden></div></div>`;
    S.root.appendChild(el);
    const C = { name, el, stage: el.querySelector(".lc-stage"), base: el.querySelector(".lc-base"),
                over: el.querySelector(".lc-over"), tip: el.querySelector(".lc-tip"),
                readout: el.querySelector(".lc-readout"), legend: el.querySelector(".lc-legend"),
                tools: el.querySelector(".lc-tools"), w: 0, h: 0, dpr: 1, mouse: null, drawn: null };
    el.querySelector(".lc-title").textContent = TITLES[name];
    if (name === "transitions") {
      for (const [s, text, title] of [["linear", "linear", "linear scale"], ["sqrt", "√", "square-root scale"],
                                       ["log", "log", "log10(1 + n) scale: SET/RigL spikes and Deep R's steady rate both visible"]]) {
        const b = document.createElement("button");
        b.textContent = text; b.title = title; b.dataset.scale = s;
        b.addEventListener("click", () => { S.scale = s; drawAll(S); });
        C.tools.appendChild(b);
      }
    }
    const png = document.createElement("button");
    png.textContent = "PNG";
    png.title = "download this chart as PNG";
    png.className = "lc-png";
    png.addEventListener("click", () => {
      const a = document.createElement("a");
      a.href = C.base.toDataURL("image/png");  // the base canvas: the figure without hover marks
      a.download = `deepr-${name}-step${S.step}.png`;
      a.style.display = "none";
      S.root.appendChild(a);
      a.click();
      a.remove();
    });
    C.tools.appendChild(png);
    C.stage.addEventListener("mousemove", (e) => {
      const r = C.base.getBoundingClientRect();
      C.mouse = [e.clientX - r.left, e.clientY - r.top];
      drawHover(S, C);
    });
    C.stage.addEventListener("mouseleave", () => { C.mouse = null; drawHover(S, C); });
    new ResizeObserver(() => { if (resize(S, C)) drawChart(S, C); }).observe(C.stage);
    S.charts[name] = C;
  }
}

function readTheme(S) {
  const cs = readPalette(S);
  S.font = cs.fontFamily || "sans-serif";
  for (const k of ["bg", "text", "muted", "grid"]) S.root.style.setProperty("--lc-" + k, S.pal[k]);
}

function resize(S, C) {
  const w = Math.max(120, Math.floor(C.stage.clientWidth)), h = S.height, dpr = window.devicePixelRatio || 1;
  if (C.w === w && C.h === h && C.dpr === dpr) return false;
  C.w = w; C.h = h; C.dpr = dpr;
  C.stage.style.height = h + "px";
  for (const c of [C.base, C.over]) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    c.style.width = w + "px"; c.style.height = h + "px";
  }
  return true;
}

// -- applying messages ------------------------------------------------------------------------
function applyEntry(S, e, a, prefix, ops) {
  for (const [name, [from, n, dims]] of Object.entries(e.ops || {})) {
    let s = S.series[name];
    const held = s ? s.steps.length : 0;
    if (from > held || (s && from > 0 && s.dims !== dims)) { S.inconsistent = true; continue; }
    if (!s || from === 0) s = S.series[name] = { steps: [], values: [], dims };
    s.steps.length = from;
    s.values.length = from * dims;
    const st = a[prefix + "s_" + name], v = a[prefix + "v_" + name];
    for (let i = 0; i < n; i++) s.steps.push(st[i]);
    for (let i = 0; i < n * dims; i++) s.values.push(v[i]);
    ops[name] = { from, n, held };
    if (from === held) S.appends[name] = (S.appends[name] || 0) + 1;
    else S.rewrites[name] = (S.rewrites[name] || 0) + 1;
  }
  if (e.changes) {
    S.changes.length = Math.min(S.changes.length, e.changes.from);
    for (const c of e.changes.items) S.changes.push(c);
  }
  if (e.meta) S.meta = e.meta;
  if (e.metrics) S.metrics = e.metrics;
  S.step = e.step;
}

export default function (component) {
  const m = mount(component, STATES, createState, (S) => clearTimeout(S.reportTimer));
  if (!m) return;
  const { h, a, bytes, S, t0, cleanup } = m;
  S.themeSetting = h.theme || "auto";
  S.pace = h.pace || "pull";
  S.minInterval = h.min_interval_ms || 100;
  if (h.palette) S.palettes = h.palette;
  if (S.scaleSetting !== h.scale) { S.scaleSetting = h.scale; S.scale = h.scale; }  // the page's buttons win until Python changes it
  const looks = [S.theme, S.height, S.columns].join();
  readTheme(S);
  S.height = h.height || 240;
  S.columns = h.columns || 1;
  S.root.style.gridTemplateColumns = `repeat(${S.columns}, minmax(0, 1fr))`;
  if (S.chartNames.join() !== (h.charts || []).join()) buildCharts(S, h.charts || []);
  if (h.kind === "feed") {  // frames come from the feed (common.js), not from Streamlit
    if (looks !== [S.theme, S.height, S.columns].join()) drawAll(S);
    feedSubscribe(h, S, (S, h, a, bytes) => applyMessage(S, h, a, bytes, performance.now()));
    return cleanup;
  }
  if (h.seq === S.seq) {  // the same message again (a rerun with nothing new, a theme change)
    if (looks !== [S.theme, S.height, S.columns].join()) drawAll(S);
    scheduleReport(S, h.playing, false);
    return cleanup;
  }
  applyMessage(S, h, a, bytes, t0);
  return cleanup;
}

function applyMessage(S, h, a, bytes, t0) {
  // one message (full or delta), from Streamlit or from the feed
  const ops = {};
  if (h.kind === "full") {
    S.series = {}; S.changes = [];
    applyEntry(S, h, a, "", ops);
    S.seq = h.seq;
    S.resyncAsked = -1;
  } else {
    const todo = deltasToApply(S, h, t0);  // common.js: the sync protocol
    if (!todo) return;
    for (const d of todo) { applyEntry(S, d, a, d.p, ops); S.seq = d.seq; }
    if (S.inconsistent) resync(S, h);
  }
  S.lastOps = ops;
  S.framesApplied++;
  S.lastBytes = bytes;
  S.bytesApplied += bytes;
  S.lastKind = h.kind;
  drawAll(S);
  S.applyMs = performance.now() - t0;
  if (!S.feed) scheduleReport(S, h.playing, true);
}

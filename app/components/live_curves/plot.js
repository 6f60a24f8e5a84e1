// The live curves' drawing: numbers and ticks, axes, the three charts, change markers and
// hover (live_curves.js holds the state and applies messages; both are one module on the page,
// after common.js).

// -- numbers ------------------------------------------------------------------------------------
function niceCeil(v) {
  // the x axis ends at a round step a bit past the run, so it rescales now and then, not per frame
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v - 1e-12 * e) return m * e;
  return 10 * e;
}

function niceStep(range, n) {
  const raw = range / Math.max(1, n), e = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= raw) return m * e;
  return 10 * e;
}

function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return { values: [lo], step: 1 };
  const step = niceStep(hi - lo, n), out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { values: out, step };
}

function tickLabel(v, step) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 && step >= 1e5) return +(v / 1e6).toFixed(step >= 1e6 ? 0 : 1) + "M";
  if (a >= 1e4 && step >= 1e3) return +(v / 1e3).toFixed(step >= 1e3 ? 0 : 1) + "k";
  if (step >= 1) return Math.round(v).toLocaleString("en-US");
  const d = Math.min(8, Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (String(step).includes("25") ? 1 : 0)));
  return v.toFixed(d);
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return v.toExponential(2).replace(/e\+?/, "e");
  return (+v.toPrecision(digits)).toString();
}

const STEP_FMT = (s) => Math.round(s).toLocaleString("en-US");

// -- state ----------------------------------------------------------------------------------------
// -- drawing ------------------------------------------------------------------------------------
function plotRect(S, C) {
  // the label band above the plot grows with the changes (up to MARK_ROWS rows)
  const right = C.name === "accuracy" ? 48 : 14, rows = Math.min(MARK_ROWS, S.changes.length);
  return { l: 52, r: C.w - right, t: rows * ROW_H + 10, b: C.h - 30 };
}

function xMax(S) {
  let last = S.step;
  for (const s of Object.values(S.series)) if (s.steps.length) last = Math.max(last, s.steps[s.steps.length - 1]);
  return niceCeil(Math.max(10, last));
}

function drawAll(S) {
  const t0 = performance.now();
  for (const C of Object.values(S.charts)) { resize(S, C); drawChart(S, C); }
  for (const b of S.root.querySelectorAll("button[data-scale]")) b.setAttribute("aria-pressed", String(b.dataset.scale === S.scale));
  S.drawMs = performance.now() - t0;
  const d = S.root.dataset;
  d.framesApplied = S.framesApplied; d.seq = S.seq; d.step = S.step; d.lastKind = S.lastKind;
  d.lastBytes = S.lastBytes; d.markers = S.changes.length; d.scale = S.scale;
}

function drawChart(S, C) {
  if (!C.w) return;
  const ctx = C.base.getContext("2d", { alpha: false });  // opaque: no blending behind it
  ctx.setTransform(C.dpr, 0, 0, C.dpr, 0, 0);
  ctx.fillStyle = S.pal.bg;
  ctx.fillRect(0, 0, C.w, C.h);
  ctx.font = `11px ${S.font}`;
  const R = plotRect(S, C), xm = xMax(S);
  const X = (s) => R.l + (s / xm) * (R.r - R.l);
  C.geom = { R, xm, X };
  C.drawn = { xmax: xm, markers: [] };
  if (C.name === "accuracy") drawAccuracy(S, C, ctx);
  else if (C.name === "walks") drawWalks(S, C, ctx);
  else drawTransitions(S, C, ctx);
  xAxis(S, C, ctx);
  drawMarkers(S, C, ctx);
  drawHover(S, C);
}

function yAxis(S, C, ctx, tk, Y, side, title) {
  const { R } = C.geom;
  ctx.fillStyle = S.pal.muted;
  ctx.textBaseline = "middle";
  ctx.textAlign = side === "left" ? "right" : "left";
  for (let i = 0; i < tk.values.length; i++) {
    const v = tk.values[i], y = Y(v);
    if (side === "left") {
      ctx.strokeStyle = S.pal.grid; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(R.l, Math.round(y) + 0.5); ctx.lineTo(R.r, Math.round(y) + 0.5); ctx.stroke();
    }
    ctx.fillText(tk.labels ? tk.labels[i] : tickLabel(v, tk.step), side === "left" ? R.l - 5 : R.r + 5, y);
  }
  ctx.save();
  ctx.translate(side === "left" ? 11 : C.w - 9, (R.t + R.b) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillStyle = S.pal.text;
  ctx.fillText(title, 0, 0);
  ctx.restore();
}

function xAxis(S, C, ctx) {
  const { R, xm, X } = C.geom;
  const tk = ticks(0, xm, Math.max(2, Math.floor((R.r - R.l) / 80)));
  ctx.fillStyle = S.pal.muted;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.strokeStyle = S.pal.grid;
  for (const v of tk.values) {
    ctx.beginPath(); ctx.moveTo(Math.round(X(v)) + 0.5, R.b); ctx.lineTo(Math.round(X(v)) + 0.5, R.b + 4); ctx.stroke();
    ctx.fillText(tickLabel(v, tk.step), X(v), R.b + 6);
  }
  ctx.textAlign = "right";
  ctx.fillText("step", R.r, R.b + 17);
  ctx.strokeStyle = S.pal.zero;
  ctx.beginPath(); ctx.moveTo(R.l, R.b + 0.5); ctx.lineTo(R.r, R.b + 0.5); ctx.moveTo(R.l + 0.5, R.t); ctx.lineTo(R.l + 0.5, R.b); ctx.stroke();
}

function line(ctx, s, col, X, Y, color, width, dash) {
  // one polyline of a series column; NaN leaves a gap
  if (!s || !s.steps.length) return;
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < s.steps.length; i++) {
    const v = s.values[i * s.dims + col];
    if (!Number.isFinite(v)) { pen = false; continue; }
    const x = X(s.steps[i]), y = Y(v);
    if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
  }
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []);
  ctx.stroke();
  ctx.setLineDash([]);
}

function seriesMax(s) {
  let m = 0;
  if (s) for (const v of s.values) if (Number.isFinite(v) && v > m) m = v;
  return m;
}

const ACC_LINES = [["train_acc", "train", "train acc", null], ["test_acc", "test", "test acc", null],
                   ["loss", "train", "loss", [5, 3]], ["test_loss", "test", "test loss", [5, 3]]];

function drawAccuracy(S, C, ctx) {
  const { R, X } = C.geom;
  const lossMax = niceCeil(Math.max(seriesMax(S.series.loss), seriesMax(S.series.test_loss), 1e-6) * 1.02);
  const Ya = (v) => R.b - v * (R.b - R.t), Yl = (v) => R.b - (v / lossMax) * (R.b - R.t);
  yAxis(S, C, ctx, ticks(0, 1, 5), Ya, "left", "accuracy");
  yAxis(S, C, ctx, ticks(0, lossMax, 4), Yl, "right", "loss");
  ctx.save(); ctx.beginPath(); ctx.rect(R.l, R.t - 2, R.r - R.l, R.b - R.t + 4); ctx.clip();
  for (const [name, col, , dash] of ACC_LINES)
    line(ctx, S.series[name], 0, X, name.endsWith("acc") ? Ya : Yl, S.pal[col], name === "train_acc" || name === "loss" ? 1.2 : 1.8, dash);
  ctx.restore();
  C.scaleY = { acc: Ya, loss: Yl, lossMax };
  C.drawn.loss_max = lossMax;
  const m = S.metrics;
  C.readout.textContent = `step ${STEP_FMT(S.step)} · train acc ${fmt(m.train_acc)} · test acc ${fmt(m.test_acc)} · ` +
    `loss ${fmt(m.loss)} · test loss ${fmt(m.test_loss)}`;
  C.legend.innerHTML = ACC_LINES.map(([, col, label, dash]) =>
    `<span class="sw${dash ? " dash" : ""}" style="border-color:${S.pal[col]}"></span>${label}`).join("");
}

function walkRange(S) {
  const s = S.series.theta;
  let lo = 0, hi = 0;
  if (s) for (const v of s.values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  for (const t of S.meta.theta_min || []) if (t < lo) lo = t;
  if (hi - lo < 1e-6) hi = lo + 0.01;
  const pad = 0.06 * (hi - lo);
  return [lo < 0 ? lo - pad : 0, hi + pad];
}

function drawWalks(S, C, ctx) {
  const { R, X } = C.geom;
  const [lo, hi] = walkRange(S);
  const Y = (v) => R.b - ((v - lo) / (hi - lo)) * (R.b - R.t);
  const tk = ticks(lo, hi, 5);
  yAxis(S, C, ctx, tk, Y, "left", "θ");
  C.scaleY = { Y, lo, hi };
  C.drawn.y = [lo, hi];
  const s = S.series.theta, layers = S.meta.tracked_layer || [], L = S.pal.layers;
  ctx.save(); ctx.beginPath(); ctx.rect(R.l, R.t, R.r - R.l, R.b - R.t); ctx.clip();
  // theta = 0: active above, dormant below
  ctx.strokeStyle = S.pal.zero; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(R.l, Math.round(Y(0)) + 0.5); ctx.lineTo(R.r, Math.round(Y(0)) + 0.5); ctx.stroke();
  const tms = [...new Set(S.meta.theta_min || [])];
  ctx.setLineDash([6, 4]);
  for (const t of tms) { ctx.beginPath(); ctx.moveTo(R.l, Y(t)); ctx.lineTo(R.r, Y(t)); ctx.stroke(); }
  ctx.setLineDash([]);
  let active = 0, n = 0;
  if (s && s.steps.length) {
    // one path per colour: a segment takes the state (theta >= 0: active) of its end point
    const paths = new Map(), get = (k) => { if (!paths.has(k)) paths.set(k, new Path2D()); return paths.get(k); };
    n = s.dims;
    for (let c = 0; c < s.dims; c++) {
      const layer = layers[c] ?? 0;
      let px = null, py = null;
      for (let i = 0; i < s.steps.length; i++) {
        const v = s.values[i * s.dims + c];
        if (!Number.isFinite(v)) { px = null; continue; }
        const x = X(s.steps[i]), y = Y(v);
        if (px !== null) { const p = get(v >= 0 ? layer : -1); p.moveTo(px, py); p.lineTo(x, y); }
        px = x; py = y;
      }
      const last = s.values[(s.steps.length - 1) * s.dims + c];
      if (last >= 0) active++;
    }
    ctx.lineWidth = 1;
    if (paths.has(-1)) { ctx.strokeStyle = S.pal.dormant; ctx.stroke(paths.get(-1)); }
    ctx.lineWidth = 1.5;
    for (const [k, p] of paths) if (k >= 0) { ctx.strokeStyle = L[k % L.length]; ctx.stroke(p); }
  }
  ctx.restore();
  ctx.fillStyle = S.pal.muted; ctx.textAlign = "right"; ctx.textBaseline = "bottom";
  for (const t of tms) ctx.fillText(`θ_min ${fmt(t)}`, R.r - 2, Y(t) - 1);
  const nl = S.meta.n_layers || 0, used = [...new Set(layers)].sort((a, b) => a - b);
  C.readout.textContent = `${n} tracked · ${active} active now`;
  C.legend.innerHTML = used.map((l) => `<span class="sw" style="border-color:${L[l % L.length]}"></span>L${l} active`).join("") +
    `<span class="sw" style="border-color:${S.pal.dormant}"></span>dormant (θ < 0)` +
    (tms.length ? `<span class="sw dash" style="border-color:${S.pal.zero}"></span>θ_min` : "") +
    (nl && used.length < nl ? ` (layers without tracked connections: ${nl - used.length})` : "");
}

const SCALES = {
  linear: { f: (v) => v, inv: (v) => v, label: "" },
  sqrt: { f: (v) => Math.sqrt(Math.max(0, v)), inv: (v) => v * v, label: " (√ scale)" },
  log: { f: (v) => Math.log10(1 + Math.max(0, v)), inv: (v) => 10 ** v - 1, label: " (log scale)" },
};

function transitionTicks(scale, max, px) {
  // sqrt and log: readable counts (1, 2, 5 per decade) kept where they are at least 16 px apart
  if (scale === "linear") return ticks(0, max, 4).values;
  const ladder = [];
  for (let e = 0.01; e <= max * 1.0001; e *= 10) for (const m of [1, 2, 5]) if (m * e <= max * 1.0001) ladder.push(+(m * e).toPrecision(2));
  const f = SCALES[scale].f, y = (v) => (f(v) / f(max)) * px, out = [];
  let lastY = Infinity;
  for (const v of ladder.reverse()) if (lastY - y(v) >= 16 && y(v) >= 16) { out.push(v); lastY = y(v); }
  return [0, ...out.reverse()];
}

function drawTransitions(S, C, ctx) {
  const { R, X } = C.geom;
  const sc = SCALES[S.scale] || SCALES.linear;
  const P = S.series.pruned, A = S.series.activated;
  const max = niceCeil(Math.max(seriesMax(P), seriesMax(A), 1));
  const top = sc.f(max), Y = (v) => R.b - (sc.f(v) / top) * (R.b - R.t);
  const values = transitionTicks(S.scale, max, R.b - R.t);
  const step = values.length > 1 ? Math.min(...values.slice(1).map((v, i) => v - values[i])) : 1;
  const labels = values.map((v) => (S.scale === "linear" ? tickLabel(v, step) : v >= 1 ? v.toLocaleString("en-US") : String(v)));
  yAxis(S, C, ctx, { values, step, labels }, Y, "left",
        "per step" + sc.label);
  C.scaleY = { Y, max };
  C.drawn.y = [0, max];
  C.drawn.scale = S.scale;
  const L = S.pal.layers, n = S.meta.n_layers || Math.max(P ? P.dims : 0, A ? A.dims : 0);
  ctx.save(); ctx.beginPath(); ctx.rect(R.l, R.t - 2, R.r - R.l, R.b - R.t + 4); ctx.clip();
  for (let l = 0; l < n; l++) {
    if (P && l < P.dims) line(ctx, P, l, X, Y, L[l % L.length], 1.5, null);
    if (A && l < A.dims) line(ctx, A, l, X, Y, L[l % L.length], 1.2, [2, 2]);
  }
  ctx.restore();
  const last = (s, l) => (s && s.steps.length && l < s.dims ? s.values[(s.steps.length - 1) * s.dims + l] : null);
  const parts = [];
  for (let l = 0; l < n; l++) parts.push(`L${l} ${fmt(last(P, l), 2)} / ${fmt(last(A, l), 2)}`);
  C.readout.textContent = n ? `pruned / activated, last point: ${parts.join(" · ")}` : "—";
  C.legend.innerHTML = [...Array(n).keys()].map((l) => `<span class="sw" style="border-color:${L[l % L.length]}"></span>L${l}`).join("") +
    `<span class="sw" style="border-color:${S.pal.muted}"></span>pruned <span class="sw dot" style="border-color:${S.pal.muted}"></span>activated`;
}

function drawMarkers(S, C, ctx) {
  // every change of the run: a dashed line; its label in the first of MARK_ROWS rows above the
  // plot where it does not overlap another, else a small triangle (the label shows on hover).
  // Lines first, labels over them, so no line crosses a label.
  const { R, X, xm } = C.geom, rows = Math.min(MARK_ROWS, S.changes.length);
  const ends = new Array(rows).fill(-Infinity);
  const order = S.changes.map((c, i) => i).sort((a, b) => S.changes[a][0] - S.changes[b][0]);
  ctx.font = `11px ${S.font}`;
  ctx.strokeStyle = S.pal.marker; ctx.lineWidth = 1; ctx.setLineDash([4, 3]);
  for (const i of order) {
    const [step, field, label] = S.changes[i];
    if (step > xm) continue;
    const x = Math.round(X(step)) + 0.5, w = ctx.measureText(label).width + 6;
    ctx.beginPath(); ctx.moveTo(x, 2); ctx.lineTo(x, R.b); ctx.stroke();
    const x0 = x + w > C.w - 1 ? x - w : x;  // near the right edge the label ends at its line
    let row = null;
    for (let r = 0; r < rows; r++) if (x0 >= ends[r]) { row = r; ends[r] = x0 + w + 4; break; }
    const m = { step, field, label, row, x };
    if (row !== null) m.box = [x0, 2 + row * ROW_H, w, ROW_H];
    C.drawn.markers.push(m);
  }
  ctx.setLineDash([]);
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  for (const m of C.drawn.markers) {
    ctx.fillStyle = S.pal.marker;
    if (m.box) {
      const [x0, y0, w, h] = m.box;
      ctx.fillStyle = S.pal.bg; ctx.fillRect(x0, y0 + 1, w, h - 2);
      ctx.fillStyle = S.pal.marker; ctx.fillText(m.label, x0 + 3, y0 + h / 2);
    } else {
      ctx.beginPath(); ctx.moveTo(m.x - 4, R.t - 8); ctx.lineTo(m.x + 4, R.t - 8); ctx.lineTo(m.x, R.t - 2); ctx.fill();
    }
  }
}

function nearestIndex(steps, s) {
  let lo = 0, hi = steps.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (steps[mid] <= s) lo = mid; else hi = mid; }
  return Math.abs(steps[lo] - s) <= Math.abs(steps[hi] - s) ? lo : hi;
}

function hoverText(S, C, mx, my) {
  if (!C.geom) return null;
  const { R, xm } = C.geom;
  const lines = [];
  const near = (C.drawn.markers || []).filter((m) => Math.abs(m.x - mx) <= 5 ||
    (m.box && mx >= m.box[0] && mx <= m.box[0] + m.box[2] && my >= m.box[1] && my <= m.box[1] + m.box[3]));
  if (mx >= R.l && mx <= R.r) {
    const step = ((mx - R.l) / (R.r - R.l)) * xm;
    if (C.name === "accuracy") {
      const parts = [];
      let at = null;
      for (const [name, , label] of ACC_LINES) {
        const s = S.series[name], i = s ? nearestIndex(s.steps, step) : -1;
        if (i >= 0 && at === null && name === "train_acc") at = s.steps[i];
        parts.push(`${label} ${i >= 0 ? fmt(s.values[i]) : "—"}` + (i >= 0 && name.startsWith("test") ? ` (step ${STEP_FMT(s.steps[i])})` : ""));
      }
      lines.push(`step ${STEP_FMT(at ?? step)}`, parts.slice(0, 2).join(" · "), parts.slice(2).join(" · "));
    } else if (C.name === "walks") {
      const s = S.series.theta, i = s ? nearestIndex(s.steps, step) : -1;
      if (i >= 0) {
        let best = -1, bd = 1e9;
        for (let c = 0; c < s.dims; c++) {
          const v = s.values[i * s.dims + c];
          if (Number.isFinite(v) && Math.abs(C.scaleY.Y(v) - my) < bd) { bd = Math.abs(C.scaleY.Y(v) - my); best = c; }
        }
        lines.push(`step ${STEP_FMT(s.steps[i])}`);
        if (best >= 0) {
          const v = s.values[i * s.dims + best], l = (S.meta.tracked_layer || [])[best], p = (S.meta.tracked_pos || [])[best];
          lines.push(`L${l ?? "?"} position ${p ?? "?"}: θ ${fmt(v)} (${v >= 0 ? "active" : "dormant"})`);
          C.hoverWalk = { c: best, i };
        }
      }
    } else {
      const P = S.series.pruned, A = S.series.activated, i = P ? nearestIndex(P.steps, step) : -1;
      if (i >= 0) {
        lines.push(`step ${STEP_FMT(P.steps[i])} · pruned / activated per step`);
        for (let l = 0; l < P.dims; l++)
          lines.push(`L${l}: ${fmt(P.values[i * P.dims + l], 3)} / ${A && A.steps[i] === P.steps[i] ? fmt(A.values[i * A.dims + l], 3) : "—"}`);
      }
    }
  }
  for (const m of near) lines.push(`change at step ${STEP_FMT(m.step)}: ${m.label}`);
  return lines.length ? lines.join("\n") : null;
}

function drawHover(S, C) {
  const ctx = C.over.getContext("2d");
  ctx.setTransform(C.dpr, 0, 0, C.dpr, 0, 0);
  ctx.clearRect(0, 0, C.w, C.h);
  C.hoverWalk = null;
  if (!C.mouse || !C.geom) { C.tip.hidden = true; return; }
  const [mx, my] = C.mouse, { R } = C.geom;
  const text = hoverText(S, C, mx, my);
  if (!text) { C.tip.hidden = true; return; }
  if (mx >= R.l && mx <= R.r) {
    ctx.strokeStyle = S.pal.cross; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(Math.round(mx) + 0.5, R.t); ctx.lineTo(Math.round(mx) + 0.5, R.b); ctx.stroke();
  }
  if (C.hoverWalk) {  // the walk under the mouse, highlighted
    const s = S.series.theta, c = C.hoverWalk.c, { X } = C.geom, Y = C.scaleY.Y;
    line(ctx, s, c, X, Y, S.pal.text, 2.2, null);
  }
  C.tip.textContent = text;
  C.tip.hidden = false;
  const tw = C.tip.offsetWidth, th = C.tip.offsetHeight;
  C.tip.style.left = Math.max(0, mx + 14 + tw > C.w ? mx - 14 - tw : mx + 14) + "px";
  C.tip.style.top = Math.max(0, Math.min(C.h - th, my + 12)) + "px";
}

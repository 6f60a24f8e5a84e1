// Unit maps: small multiples of what each unit computes (app/components/unit_maps.py).
// 2-D data: each unit's activation over the input plane; image data: each first-layer unit's
// incoming weights as an image. Blue +, red − (the graph's colours), white (the background) at
// 0, per layer scaled to its largest |value|. Every message is whole; frames come from the feed
// (common.js) or from Streamlit. Hovering a map sends `deepr:unit` (the graph outlines the
// unit's fan-in and fan-out edges); the graph's hover of a unit outlines its map here.

const UNIT_STATES = new WeakMap();

function unitsCreate(parent, key) {
  for (const old of parent.querySelectorAll(".um-root")) old.remove();
  const root = document.createElement("div");
  root.className = "um-root";
  root.innerHTML = '<div class="um-top"><span class="um-step"></span> <span class="um-note"></span></div>' +
    '<div class="um-layers"></div><div class="um-tip" hidden></div>';
  parent.appendChild(root);
  const S = {
    key, root, layersEl: root.querySelector(".um-layers"), stepEl: root.querySelector(".um-step"),
    noteEl: root.querySelector(".um-note"), tip: root.querySelector(".um-tip"),
    seq: -1, step: 0, framesApplied: 0, head: null, data: [], cells: [], hl: null, theme: "light",
    themeSetting: "auto", palettes: null, pal: null, setStateValue: null,
  };
  S.api = {
    get seq() { return S.seq; },
    get step() { return S.step; },
    get framesApplied() { return S.framesApplied; },
    get mode() { return S.head && S.head.mode; },
    layers: () => (S.head ? S.head.layers.map((l) => ({ col: l.col, units: l.units, title: l.title })) : []),
    // the value the page holds for unit j of layer l at grid row iy (ys ascending), column ix
    value: (l, j, iy, ix) => S.data[l][(j * S.head.ny + iy) * S.head.nx + ix],
    map: (l, j) => Array.from(S.data[l].subarray(j * S.head.nx * S.head.ny, (j + 1) * S.head.nx * S.head.ny)),
    highlighted: () => (S.hl ? [S.hl.col, S.hl.unit] : null),
    hover: (col, unit) => hoverMap(S, col, unit, true),
  };
  window.__deeprUnits = window.__deeprUnits || {};
  window.__deeprUnits[key] = S.api;
  S.onUnit = (e) => {
    const d = e.detail || {};
    if (d.source === "units" && d.key === S.key) return;
    outline(S, d.col >= 0 ? { col: d.col, unit: d.unit } : null);
  };
  window.addEventListener("deepr:unit", S.onUnit);
  return S;
}

function hoverMap(S, col, unit, send) {
  outline(S, col >= 0 ? { col, unit } : null);
  if (send) window.dispatchEvent(new CustomEvent("deepr:unit", { detail: { source: "units", key: S.key, col, unit } }));
}

function outline(S, hl) {
  S.hl = hl;
  for (const c of S.cells) c.el.classList.toggle("hl", !!hl && c.col === hl.col && c.unit === hl.unit);
  S.root.dataset.hl = hl ? `${hl.col}:${hl.unit}` : "";
}

function hexRgb(hex) {
  const m = /^#([0-9a-f]{6})$/i.exec((hex || "").trim());
  if (m) { const v = parseInt(m[1], 16); return [v >> 16, (v >> 8) & 255, v & 255]; }
  const r = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/.exec(hex || "");
  return r ? [+r[1], +r[2], +r[3]] : [255, 255, 255];
}

function build(S) {
  // the small multiples' cells: rebuilt when the layers change, else only repainted
  const h = S.head;
  const sig = h.mode + "|" + h.nx + "x" + h.ny + "|" + h.layers.map((l) => l.col + ":" + l.units).join(",");
  if (S.sig === sig) return;
  S.sig = sig;
  S.layersEl.replaceChildren();
  S.cells = [];
  const big = h.mode === "fields" ? 3 : 1;  // an 8x8 field drawn at 8 px a pixel
  const px = h.mode === "fields" ? Math.max(40, Math.min(72, h.nx * 3 * big)) : 64;
  for (let l = 0; l < h.layers.length; l++) {
    const L = h.layers[l];
    const box = document.createElement("div");
    box.className = "um-layer";
    const title = document.createElement("div");
    title.className = "um-title";
    title.textContent = L.title;
    const grid = document.createElement("div");
    grid.className = "um-grid";
    box.append(title, grid);
    for (let j = 0; j < L.units; j++) {
      const c = document.createElement("canvas");
      c.width = h.nx; c.height = h.ny;
      c.style.width = px + "px"; c.style.height = Math.round(px * h.ny / h.nx) + "px";
      c.className = "um-cell";
      c.dataset.col = L.col; c.dataset.unit = j;
      c.addEventListener("mouseenter", () => { hoverMap(S, L.col, j, true); showTip(S, l, j, c); });
      c.addEventListener("mouseleave", () => { hoverMap(S, -1, -1, true); S.tip.hidden = true; });
      grid.appendChild(c);
      S.cells.push({ el: c, col: L.col, unit: j, l });
    }
    S.layersEl.appendChild(box);
  }
  if (S.hl) outline(S, S.hl);
}

function showTip(S, l, j, el) {
  const L = S.head.layers[l];
  const name = L.col === S.head.layers.length && S.head.mode === "maps" ? "output" : "hidden";
  S.tip.textContent = `${name} unit ${j} (graph column ${L.col}) · ${L.what}; colour scale ±${L.scale.toPrecision(3)}`;
  S.tip.hidden = false;
  const r = el.getBoundingClientRect(), base = S.root.getBoundingClientRect();
  S.tip.style.left = Math.max(0, r.left - base.left) + "px";
  S.tip.style.top = (r.bottom - base.top + 2) + "px";
}

function paint(S) {
  const h = S.head, bg = hexRgb(S.pal.bg), pos = hexRgb(S.pal.pos), neg = hexRgb(S.pal.neg);
  const n = h.nx * h.ny;
  for (const cell of S.cells) {
    const L = h.layers[cell.l], d = S.data[cell.l], sc = 1 / L.scale;
    const ctx = cell.el.getContext("2d");
    const img = ctx.createImageData(h.nx, h.ny);
    const o = cell.unit * n;
    for (let iy = 0; iy < h.ny; iy++) {
      // maps: row 0 is the lowest y (drawn at the bottom); fields: image rows top to bottom
      const ry = h.mode === "maps" ? h.ny - 1 - iy : iy;
      for (let ix = 0; ix < h.nx; ix++) {
        const v = Math.max(-1, Math.min(1, d[o + iy * h.nx + ix] * sc));
        const c = v >= 0 ? pos : neg, t = Math.abs(v), k = 4 * (ry * h.nx + ix);
        img.data[k] = bg[0] + (c[0] - bg[0]) * t;
        img.data[k + 1] = bg[1] + (c[1] - bg[1]) * t;
        img.data[k + 2] = bg[2] + (c[2] - bg[2]) * t;
        img.data[k + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
}

function unitsApply(S, h, a) {
  if (h.kind !== "full") return;
  S.head = h;
  S.data = h.layers.map((_, l) => a["m" + l]);
  S.seq = h.seq;
  S.step = h.step;
  S.framesApplied++;
  build(S);
  paint(S);
  S.stepEl.textContent = `step ${h.step.toLocaleString()}`;
  S.noteEl.textContent = h.mode === "maps"
    ? `each unit over the input plane [${h.extent[0]}, ${h.extent[1]}]²: hidden units after their nonlinearity, outputs as logits`
    : "each hidden unit's incoming weights (dormant: 0)";
  S.root.dataset.step = h.step; S.root.dataset.seq = h.seq;
}

export default function (component) {
  const m = mount(component, UNIT_STATES, unitsCreate, (S) => window.removeEventListener("deepr:unit", S.onUnit));
  if (!m) return;
  const { h, a, S, cleanup } = m;
  S.themeSetting = h.theme || "auto";
  if (h.palette) S.palettes = h.palette;
  const before = S.theme;
  readPalette(S);
  if (before !== S.theme && S.head) paint(S);
  if (h.kind === "feed") {
    feedSubscribe(h, S, (S, hh, aa) => unitsApply(S, hh, aa));
    return cleanup;
  }
  if (h.seq !== S.seq) unitsApply(S, h, a);
  return cleanup;
}

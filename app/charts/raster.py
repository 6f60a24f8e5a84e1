"""Small server-side images of the live charts: a browser shows an image far faster than it
re-renders plotly traces (software WebGL in headless chromium: ~0.6 frames/s for 10k points).
Axes start at 0 with round ticks; every hyperparameter change is a marker with its label;
colours follow the theme (palette.py); text uses a font that has theta."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from . import changes as ch
from .palette import LIGHT, RUN_COLOR_NAMES, Palette, font, theta


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.6g}"


def _range(ys: list[np.ndarray], from_zero: bool, extra=()) -> tuple[float, float]:
    vals = [y[np.isfinite(y)] for y in ys]
    vals = [v for v in vals if len(v)]
    if not vals:
        return (0.0, 1.0)
    lo = min(min(v.min() for v in vals), *extra) if extra else min(v.min() for v in vals)
    hi = max(max(v.max() for v in vals), *extra) if extra else max(v.max() for v in vals)
    if from_zero and lo >= 0:
        lo = 0.0
    pad = (hi - lo) * 0.05 or 1e-3
    return (lo if from_zero and lo == 0 else lo - pad, hi + pad)


def line_chart(curves, size=(700, 300), y_range=None, title: str = "", pal: Palette = LIGHT,
               hlines: tuple[float, ...] = (), changes=(), right=None, y_from_zero: bool = True,
               x_max: float | None = None) -> Image.Image:
    """curves: (x, y, rgb, width); NaN in y breaks a line. right: (curves, y_range or None,
    axis label) drawn against a second axis on the right. changes: the run's change log
    (step, field, old, new): a dashed marker at each, labelled where there is room."""
    W, H = size
    f, small = font(12), font(11)
    left, rgt, top, bottom = 52, 52 if right else 12, 22, 34
    img = Image.new("RGB", size, pal.bg)
    d = ImageDraw.Draw(img)
    d.text((left, 4), title, fill=pal.rgb(pal.text), font=f)
    all_curves = list(curves) + (list(right[0]) if right else [])
    xs = [c[0] for c in all_curves if len(c[0])]
    if not xs or not any(np.isfinite(c[1]).any() for c in all_curves if len(c[1])):
        d.text((left, H // 2), "no data yet", fill=pal.rgb(pal.muted), font=f)
        return img
    x0, x1 = 0.0, max(float(max(x.max() for x in xs)), x_max or 0.0, 1.0)
    y0, y1 = y_range or _range([c[1] for c in curves], y_from_zero, hlines)
    pw, ph = W - left - rgt, H - top - bottom
    # label rows for the change markers take the top of the plot area
    labels = [(float(c[0]), ch.label(c)) for c in changes if x0 <= c[0] <= x1]
    rows = ch.place([left + (x - x0) / (x1 - x0) * pw + 3 for x, _ in labels],
                    [d.textlength(t, font=small) for _, t in labels]) if labels else []
    n_rows = (max((r for r in rows if r is not None), default=-1) + 1)
    plot_top = top + 14 * n_rows

    def sx(x):
        return left + (np.asarray(x, dtype=float) - x0) / (x1 - x0) * pw

    def sy(y, lo=y0, hi=y1):
        return plot_top + (1 - (np.asarray(y, dtype=float) - lo) / (hi - lo)) * (H - plot_top - bottom)

    grid, muted = pal.rgb(pal.grid), pal.rgb(pal.muted)
    for t in nice_ticks(y0, y1):
        yy = float(sy(t))
        d.line([(left, yy), (W - rgt, yy)], fill=grid)
        d.text((left - 6, yy), _tick(t), fill=muted, font=small, anchor="rm")
    for t in nice_ticks(x0, x1, 6):
        xx = float(sx(t))
        d.line([(xx, plot_top), (xx, H - bottom)], fill=grid)
        d.text((xx, H - bottom + 4), _tick(t), fill=muted, font=small, anchor="mt")
    d.text((W - rgt, H - 4), "step", fill=muted, font=small, anchor="rb")
    d.rectangle([left, plot_top, W - rgt, H - bottom], outline=grid)
    for h in hlines:
        if y0 <= h <= y1:
            d.line([(left, float(sy(h))), (W - rgt, float(sy(h)))], fill=pal.rgb(pal.text), width=1)
    marker = pal.rgb(pal.marker)
    for (x, text), row in zip(labels, rows):
        xx = float(sx(x))
        for yy in range(int(plot_top), int(H - bottom), 6):  # dashed
            d.line([(xx, yy), (xx, min(yy + 3, H - bottom))], fill=marker)
        if row is not None:
            d.text((xx + 3, top + 14 * row), text, fill=marker, font=small)
    _draw_curves(d, curves, sx, lambda y: sy(np.clip(y, y0, y1)))
    if right:
        r_curves, r_range, r_label = right
        lo, hi = r_range or _range([c[1] for c in r_curves], True)
        for t in nice_ticks(lo, hi):
            d.text((W - rgt + 6, float(sy(t, lo, hi))), _tick(t), fill=muted, font=small, anchor="lm")
        d.text((W - 2, plot_top - 2), r_label, fill=muted, font=small, anchor="rb")
        _draw_curves(d, r_curves, sx, lambda y: sy(np.clip(y, lo, hi), lo, hi))
    return img


def _draw_curves(d, curves, sx, sy) -> None:
    for x, y, color, width in curves:
        ok = np.isfinite(y)
        if not ok.any():
            continue
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
        for seg in np.split(np.arange(len(y)), breaks):
            if ok[seg[0]]:
                pts = np.column_stack([sx(x[seg]), sy(y[seg])])
                if len(seg) == 1:
                    px, py = pts[0]
                    d.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=color)
                else:
                    d.line(pts.ravel().tolist(), fill=color, width=width)


def accuracy_png(tel, pal: Palette = LIGHT, size=(700, 300)) -> Image.Image:
    """Accuracy (left axis, 0-1) and loss (right axis, from 0), with the change markers."""
    acc = [(*tel.series[n].arrays(), pal.rgb(c), w)
           for n, c, w in (("train_acc", "#1f77b4", 1), ("test_acc", "#ff7f0e", 3))]
    loss = [(*tel.series[n].arrays(), pal.rgb(c), 1)
            for n, c in (("loss", "#7fb2dc"), ("test_loss", "#ffbf7f"))]
    return line_chart(acc, size, (0, 1), "accuracy: train blue, test orange · loss: light",
                      pal, changes=tel.changes, right=(loss, None, "loss"))


def walks_png(tel, colors: list[str], pal: Palette = LIGHT, size=(700, 300), theta_min=None) -> Image.Image:
    steps, walks = tel.tracked_theta.arrays()
    curves = []
    if walks.size:
        grey = pal.rgb(pal.muted)
        curves += [(steps, walks[:, c], grey, 1) for c in range(walks.shape[1])]
        for c in range(walks.shape[1]):
            th = walks[:, c]
            col = pal.rgb(colors[int(tel.tracked_layer[c]) % len(colors)])
            curves.append((steps, np.where(th >= 0, th, np.nan), col, 2))
    hl = (0.0,) + tuple(sorted(set(theta_min or [])))
    return line_chart(curves, size, None, f"{theta()} random walks of the tracked connections "
                      "(colour: active, by layer; grey: dormant)", pal, hlines=hl,
                      changes=tel.changes, y_from_zero=False)


def _layer_curves(series, colors: list[str], width: int, pal: Palette) -> list:
    steps, vals = series.arrays()
    return [(steps, vals[:, i], pal.rgb(colors[i % len(colors)]), width)
            for i in range(vals.shape[1] if vals.ndim == 2 else 0)]


def transitions_png(tel, colors: list[str], pal: Palette = LIGHT, size=(560, 280)) -> Image.Image:
    curves = _layer_curves(tel.pruned, colors, 2, pal) + _layer_curves(tel.activated, colors, 1, pal)
    return line_chart(curves, size, None, "pruned (thick) / activated (thin) per step, per layer",
                      pal, changes=tel.changes)


def ever_active_png(tel, colors: list[str], pal: Palette = LIGHT, size=(560, 280)) -> Image.Image:
    return line_chart(_layer_curves(tel.ever_active_frac, colors, 2, pal), size, (0, 1.02),
                      "fraction of positions ever active, per layer", pal)


def tracked_raster_png(tel, pal: Palette = LIGHT, size=(560, 280)) -> Image.Image:
    """Rows: tracked connections; columns: time; dark = active."""
    _, walks = tel.tracked_theta.arrays()
    if walks.size == 0:
        return line_chart([], size, pal=pal)
    on, off = (230, 30) if pal.dark else (40, 235)
    shade = np.where(walks.T >= 0, on, off).astype(np.uint8)
    img = Image.fromarray(shade, "L").resize((size[0] - 20, size[1] - 30), Image.NEAREST).convert("RGB")
    out = Image.new("RGB", size, pal.bg)
    out.paste(img, (10, 24))
    ImageDraw.Draw(out).text((14, 4), "tracked set over time (bright: active)" if pal.dark else
                             "tracked set over time (dark: active)", fill=pal.rgb(pal.text), font=font(12))
    return out


def lifetime_png(tel, colors: list[str], pal: Palette = LIGHT, size=(560, 280)) -> Image.Image:
    """Grouped bars, log10(1 + count), of how long connections stayed active (log2 bins)."""
    W, H = size
    counts = np.log10(1 + np.asarray(tel.lifetimes, dtype=float))
    img = Image.new("RGB", size, pal.bg)
    d = ImageDraw.Draw(img)
    d.text((10, 4), "lifetimes: log10(1 + count) per log2 bin of steps active", fill=pal.rgb(pal.text),
           font=font(12))
    used = np.flatnonzero(counts.sum(0))
    if used.size == 0:
        d.text((10, H // 2), "no connection pruned yet", fill=pal.rgb(pal.muted), font=font(12))
        return img
    n_bins, n_layers = used[-1] + 1, counts.shape[0]
    top, bottom, left = 24, H - 20, 10
    slot = (W - 2 * left) / n_bins
    peak = counts.max()
    for b in range(n_bins):
        for i in range(n_layers):
            x = left + b * slot + i * slot * 0.8 / n_layers
            h = (bottom - top) * counts[i, b] / peak
            d.rectangle([x, bottom - h, x + slot * 0.8 / n_layers - 1, bottom],
                        fill=pal.rgb(colors[i % len(colors)]))
        d.text((left + b * slot, bottom + 4), "0" if b == 0 else f"{2 ** (b - 1)}",
               fill=pal.rgb(pal.muted), font=font(10))
    return img


def overlay_png(curves: list[tuple[str, np.ndarray, np.ndarray]], colors: list[str], title: str,
                pal: Palette = LIGHT, size=(620, 260), y_range=None, log: bool = False) -> Image.Image:
    """One line per run (label, x, y), coloured in order; the colour names go into the title.
    log: values drawn as log10(1 + y)."""
    legend = ", ".join(f"{RUN_COLOR_NAMES[i % 4]}: {label}" for i, (label, _, _) in enumerate(curves))
    data = [(x, np.log10(1 + np.maximum(y, 0)) if log else y, pal.rgb(colors[i % len(colors)]), 2)
            for i, (_, x, y) in enumerate(curves)]
    return line_chart(data, size, y_range, f"{title}{' (log10(1 + y))' if log else ''} · {legend}", pal)

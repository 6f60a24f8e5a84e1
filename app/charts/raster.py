"""Small server-side PNG charts for the live loop: a browser shows an image far faster than it
re-renders plotly traces (software WebGL in headless chromium: ~0.6 frames/s for 10k points)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def line_chart(curves: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int], int]],
               size=(700, 300), y_range: tuple[float, float] | None = None, title: str = "",
               hlines: tuple[float, ...] = (), vlines: list[tuple[float, str]] = ()) -> Image.Image:
    """curves: (x, y, rgb, width); NaN in y breaks a line. Returns an RGB image."""
    W, H = size
    left, right, top, bottom = 48, 10, 22, 24
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    xs = [c[0] for c in curves if len(c[0])]
    ys = [c[1][np.isfinite(c[1])] for c in curves if len(c[1])]
    ys = [y for y in ys if len(y)]
    if not xs or not ys:
        d.text((left, H // 2), "no data yet", fill=(120, 120, 120))
        return img
    x0, x1 = min(x.min() for x in xs), max(x.max() for x in xs)
    if x1 == x0:
        x1 = x0 + 1
    if y_range is None:
        lo = min(min(y.min() for y in ys), *hlines) if hlines else min(y.min() for y in ys)
        hi = max(max(y.max() for y in ys), *hlines) if hlines else max(y.max() for y in ys)
        pad = (hi - lo) * 0.05 or 1e-3
        y_range = (lo - pad, hi + pad)
    y0, y1 = y_range

    def px(x, y):  # works on scalars and on numpy arrays
        return (left + (x - x0) / (x1 - x0) * (W - left - right),
                top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom))

    d.rectangle([left, top, W - right, H - bottom], outline=(200, 200, 200))
    for frac in (0, 0.5, 1):
        yv = y0 + frac * (y1 - y0)
        _, yy = px(x0, yv)
        d.text((2, yy - 6), f"{yv:.3g}", fill=(90, 90, 90))
    d.text((left, H - bottom + 6), f"{x0:.0f}", fill=(90, 90, 90))
    d.text((W - right - 60, H - bottom + 6), f"step {x1:.0f}", fill=(90, 90, 90))
    d.text((left + 4, 4), title, fill=(30, 30, 30))
    for h in hlines:
        if y0 <= h <= y1:
            d.line([px(x0, h), px(x1, h)], fill=(0, 0, 0), width=1)
    for x, label in vlines:
        if x0 <= x <= x1:
            a, b = px(x, y0), px(x, y1)
            d.line([a, b], fill=(150, 150, 150), width=1)
            d.text((b[0] + 2, b[1] + 2), label, fill=(110, 110, 110))
    for x, y, color, width in curves:
        ok = np.isfinite(y)
        if not ok.any():
            continue
        # split into runs of finite values, one polyline each
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
        for seg in np.split(np.arange(len(y)), breaks):
            if ok[seg[0]] and len(seg) > 1:
                qx, qy = px(x[seg].astype(float), np.clip(y[seg], y0, y1))
                d.line(np.column_stack([qx, qy]).ravel().tolist(), fill=color, width=width)
    return img


def _hex(c: str) -> tuple[int, int, int]:
    return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))


def accuracy_png(tel, size=(700, 300)) -> Image.Image:
    curves = []
    for name, color, width in (("train_acc", "#1f77b4", 1), ("test_acc", "#ff7f0e", 3)):
        x, y = tel.series[name].arrays()
        curves.append((x, y, _hex(color), width))
    vlines = [(step, f"{name}") for step, name, _, _ in list(tel.changes)[-10:]]
    return line_chart(curves, size, (0, 1), "accuracy (blue: train, orange: test)", vlines=vlines)


def walks_png(tel, colors: list[str], size=(700, 300), theta_min=None) -> Image.Image:
    steps, walks = tel.tracked_theta.arrays()
    curves = []
    if walks.size:
        for c in range(walks.shape[1]):
            th = walks[:, c]
            curves.append((steps, th, (190, 190, 190), 1))
        for c in range(walks.shape[1]):
            th = walks[:, c]
            col = _hex(colors[int(tel.tracked_layer[c]) % len(colors)])
            curves.append((steps, np.where(th >= 0, th, np.nan), col, 2))
    hl = (0.0,) + tuple(sorted(set(theta_min or [])))
    return line_chart(curves, size, None, "θ random walks (grey: dormant)", hlines=hl)


def _layer_curves(series, colors: list[str], width: int) -> list:
    steps, vals = series.arrays()
    return [(steps, vals[:, i], _hex(colors[i % len(colors)]), width)
            for i in range(vals.shape[1] if vals.ndim == 2 else 0)]


def transitions_png(tel, colors: list[str], size=(560, 280)) -> Image.Image:
    curves = _layer_curves(tel.pruned, colors, 2) + _layer_curves(tel.activated, colors, 1)
    return line_chart(curves, size, None, "pruned (thick) / activated (thin) per step, per layer")


def ever_active_png(tel, colors: list[str], size=(560, 280)) -> Image.Image:
    return line_chart(_layer_curves(tel.ever_active_frac, colors, 2), size, (0, 1.02),
                      "fraction of positions ever active, per layer")


def tracked_raster_png(tel, size=(560, 280)) -> Image.Image:
    """Rows: tracked connections; columns: time; dark = active."""
    _, walks = tel.tracked_theta.arrays()
    if walks.size == 0:
        return line_chart([], size)
    shade = np.where(walks.T >= 0, 40, 235).astype(np.uint8)
    img = Image.fromarray(shade, "L").resize((size[0] - 20, size[1] - 30), Image.NEAREST).convert("RGB")
    out = Image.new("RGB", size, "white")
    out.paste(img, (10, 24))
    ImageDraw.Draw(out).text((14, 4), "tracked set over time (dark: active)", fill=(30, 30, 30))
    return out


def lifetime_png(tel, colors: list[str], size=(560, 280)) -> Image.Image:
    """Grouped bars, log10(1 + count), of how long connections stayed active (log2 bins)."""
    W, H = size
    counts = np.log10(1 + np.asarray(tel.lifetimes, dtype=float))
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.text((10, 4), "lifetimes: log10(1 + count) per log2 bin of steps active", fill=(30, 30, 30))
    used = np.flatnonzero(counts.sum(0))
    if used.size == 0:
        d.text((10, H // 2), "no connection pruned yet", fill=(120, 120, 120))
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
                        fill=_hex(colors[i % len(colors)]))
        d.text((left + b * slot, bottom + 4), "0" if b == 0 else f"{2 ** (b - 1)}", fill=(90, 90, 90))
    return img


def overlay_png(curves: list[tuple[str, np.ndarray, np.ndarray]], colors: list[str], title: str,
                size=(620, 260), y_range=None) -> Image.Image:
    """One line per run (label, x, y), coloured in order; the labels go into the title."""
    names = ("blue", "red", "green", "purple")
    legend = ", ".join(f"{names[i % 4]}: {label}" for i, (label, _, _) in enumerate(curves))
    return line_chart([(x, y, _hex(colors[i % len(colors)]), 2) for i, (_, x, y) in enumerate(curves)],
                      size, y_range, f"{title} ({legend})")

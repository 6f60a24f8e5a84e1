"""The connectivity graph as a file: a layered layout and a Pillow drawing for the PNG download
(the live graph on the page is the canvas component, app/components/live_graph.py).

Rewiring events come from the run's views (`LayerView.pruned / pruned_age / activated`: every
event since the previous view). `EventTrail` keeps them for `FADE_S` seconds so an edge pruned
or revived anywhere in a frame's ten-odd steps stays visible while it fades, and counts them
per second per layer. A pruned connection that had been active fewer than `PROBE_STEPS` steps
is a brief probe (revived, then pruned again at weight ~0), drawn apart from the death of an
established connection; threshold and colours are palette.py's, as on the live graph.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .palette import PROBE_STEPS, Palette, is_probe  # noqa: F401  (PROBE_STEPS: graph's threshold)

FADE_S = 1.0         # seconds a pruned / revived edge stays drawn, fading
RATE_WINDOW_S = 2.0  # seconds of events behind the per-second counters
KINDS = ("revived", "died", "probe")


@dataclass(frozen=True)
class Layout:
    sizes: tuple[int, ...]
    xy: np.ndarray              # (n_nodes, 2) in [0, 1]^2
    offsets: tuple[int, ...]    # first node id of each layer


@lru_cache(maxsize=16)
def layered_layout(sizes: tuple[int, ...], image_shape: tuple[int, int] | None = None,
                   edges_per_layer: tuple[int, ...] = ()) -> Layout:
    """Columns left to right, each spread over the full height; image inputs as their pixel
    grid. The gap before a column grows with the square root of the edges it receives (at
    least 45% of the widest), so the dense first layer gets room instead of a thin strip."""
    n = len(sizes)
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    e = np.asarray(edges_per_layer if len(edges_per_layer) == n - 1 else np.ones(n - 1), dtype=float)
    gaps = np.clip(np.sqrt(e / max(e.max(), 1.0)), 0.45, 1.0)
    grid = image_shape is not None and sizes[0] == image_shape[0] * image_shape[1]
    start = 0.17 if grid else 0.0
    x_cols = start + np.concatenate([[0.0], np.cumsum(gaps)]) / gaps.sum() * (1 - start)
    xy = np.zeros((sum(sizes), 2))
    for layer, size in enumerate(sizes):
        sl = slice(offsets[layer], offsets[layer] + size)
        xy[sl, 0] = x_cols[layer]
        xy[sl, 1] = 0.5 if size == 1 else np.linspace(0.0, 1.0, size)[::-1]
    if grid:
        h, w = image_shape
        r, c = np.divmod(np.arange(sizes[0]), w)
        xy[:sizes[0], 0] = c / max(w - 1, 1) * (start - 0.04)
        xy[:sizes[0], 1] = 1 - r / max(h - 1, 1)
    return Layout(tuple(sizes), xy, offsets)


def layout_for(layers, n_features: int, image_shape) -> Layout:
    """The layout of a run's fully connected layers (conv kernels are not drawn)."""
    lin = [l for l in layers if len(l.shape) == 2]
    sizes = (lin[0].shape[1], *[l.shape[0] for l in lin]) if lin else (n_features,)
    if image_shape is not None and sizes[0] != image_shape[0] * image_shape[1]:
        image_shape = None
    return layered_layout(tuple(int(s) for s in sizes), tuple(image_shape) if image_shape else None,
                          tuple(l.n_positions for l in lin))


# -- events since previous frames, fading --------------------------------------------------------
@dataclass
class EventTrail:
    """Rewiring events of the last seconds, per kind, with their arrival time."""
    events: deque = field(default_factory=deque)   # (time, layer, kind, positions)

    def add(self, layers, now: float | None = None) -> None:
        """Take a view's events (LayerView.pruned / pruned_age / activated)."""
        now = time.monotonic() if now is None else now
        for layer in layers:
            if layer.pruned is None:
                continue
            probe = is_probe(layer.pruned_age)
            for kind, pos in (("revived", layer.activated), ("died", layer.pruned[~probe]),
                              ("probe", layer.pruned[probe])):
                if len(pos):
                    self.events.append((now, layer.index, kind, np.asarray(pos, dtype=np.int64)))
        self._drop(now)

    def _drop(self, now: float) -> None:
        keep = max(FADE_S, RATE_WINDOW_S)
        while self.events and now - self.events[0][0] > keep:
            self.events.popleft()

    def fading(self, now: float | None = None) -> list[tuple[int, str, np.ndarray, float]]:
        """(layer, kind, positions, strength in (0, 1]) of the events still drawn."""
        now = time.monotonic() if now is None else now
        return [(layer, kind, pos, 1.0 - (now - t) / FADE_S)
                for t, layer, kind, pos in self.events if now - t < FADE_S]

    def rates(self, n_layers: int, now: float | None = None) -> dict[str, np.ndarray]:
        """Events per second over the last RATE_WINDOW_S, per kind and layer."""
        now = time.monotonic() if now is None else now
        out = {k: np.zeros(n_layers) for k in KINDS}
        for t, layer, kind, pos in self.events:
            if now - t <= RATE_WINDOW_S and layer < n_layers:
                out[kind][layer] += len(pos) / RATE_WINDOW_S
        return out

    def clear(self) -> None:
        self.events.clear()


# -- edges ---------------------------------------------------------------------------------------
def edges(layers, layout: Layout):
    """Arrays for every active edge of the fully connected layers: source node, target node,
    weight."""
    src, dst, w = [], [], []
    lin = [l for l in layers if len(l.shape) == 2]
    for i, layer in enumerate(lin):
        rows, cols = np.divmod(np.asarray(layer.active_pos, dtype=np.int64), layer.shape[1])
        src.append(layout.offsets[i] + cols)
        dst.append(layout.offsets[i + 1] + rows)
        w.append(np.asarray(layer.active_weight, dtype=np.float64))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
    return cat(src), cat(dst), cat(w)


def event_edges(layers, layout: Layout, fading):
    """(source, target, kind, strength) per fading event of a drawn (fully connected) layer."""
    lin = {l.index: i for i, l in enumerate(l for l in layers if len(l.shape) == 2)}
    shapes = {l.index: l.shape for l in layers}
    out = []
    for layer, kind, pos, strength in fading:
        if layer not in lin:
            continue
        i = lin[layer]
        rows, cols = np.divmod(pos, shapes[layer][1])
        out.append((layout.offsets[i] + cols, layout.offsets[i + 1] + rows, kind, strength))
    return out


def dead_nodes(layers, layout: Layout) -> np.ndarray:
    """Hidden nodes with no incoming or no outgoing active edge."""
    dead = []
    lin = [l for l in layers if len(l.shape) == 2]
    for i, (a, b) in enumerate(zip(lin[:-1], lin[1:])):
        n = a.shape[0]
        has_in = np.bincount(np.asarray(a.active_pos) // a.shape[1], minlength=n)[:n] > 0
        has_out = np.bincount(np.asarray(b.active_pos) % b.shape[1], minlength=b.shape[1])[:n] > 0
        if b.shape[1] == n:
            dead.append(layout.offsets[i + 1] + np.flatnonzero(~has_in | ~has_out))
    return np.concatenate(dead) if dead else np.zeros(0, dtype=np.int64)


def raster_graph(layers, layout: Layout, pal: Palette, fading=(), size=(1000, 520)) -> Image.Image:
    """The same picture as an image: per-edge alpha by |w|; revived edges green, established
    deaths dark (light on a dark theme) and thick, brief probes thin violet (the live legend's
    colours, palette.py); events fade over FADE_S."""
    W, H = size
    img = Image.new("RGBA", size, pal.rgb(pal.bg) + (255,))
    over = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(over)
    px = np.column_stack([10 + layout.xy[:, 0] * (W - 20), 10 + (1 - layout.xy[:, 1]) * (H - 20)])
    src, dst, w = edges(layers, layout)
    top = np.quantile(np.abs(w), 0.98) if len(w) else 1.0
    alpha = (50 + 205 * np.minimum(np.abs(w) / max(top, 1e-12), 1.0)).astype(int)
    pos_c, neg_c = pal.rgb(pal.pos), pal.rgb(pal.neg)
    for s, d, wi, a in zip(src, dst, w, alpha):
        draw.line([tuple(px[s]), tuple(px[d])], fill=(pos_c if wi >= 0 else neg_c) + (int(a),), width=1)
    img = Image.alpha_composite(img, over)
    over = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(over)
    # established deaths stand out; revivals and brief probes (most events) stay faint
    weight = {"died": (1.0, 3), "revived": (0.55, 1), "probe": (0.3, 1)}
    order = {"probe": 0, "revived": 1, "died": 2}
    for s_arr, d_arr, kind, strength in sorted(event_edges(layers, layout, fading),
                                               key=lambda e: (order[e[2]], e[3])):
        scale, width = weight[kind]
        c = pal.rgb(pal.event(kind)) + (int((60 + 195 * strength) * scale),)
        for s, d in zip(s_arr, d_arr):
            draw.line([tuple(px[s]), tuple(px[d])], fill=c, width=width)
    img = Image.alpha_composite(img, over)
    draw = ImageDraw.Draw(img)
    dead = set(dead_nodes(layers, layout).tolist())
    r = 2 if len(px) > 300 else 4
    node, hollow, edge = pal.rgb(pal.node), pal.rgb(pal.dead), pal.rgb(pal.node_edge)
    for i, (x, y) in enumerate(px):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=hollow if i in dead else node, outline=edge)
    return img.convert("RGB")

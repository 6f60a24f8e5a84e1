"""The connectivity graph: a layered layout computed once per architecture, restyled per frame.

Small graphs are drawn as interactive plotly WebGL traces; big ones (paper-mnist: 3,552 edges,
1,194 nodes) as a PNG drawn server-side with Pillow, which a browser shows far faster than
thousands of WebGL segments re-sent every frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import networkx as nx
import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

POS, NEG, NEW, GONE, DEAD = "#2166ac", "#d6604d", "#1a9850", "#999999", "#000000"
PLOTLY_EDGE_LIMIT = 1500


@dataclass(frozen=True)
class Layout:
    sizes: tuple[int, ...]
    xy: np.ndarray              # (n_nodes, 2) in [0, 1]^2
    offsets: tuple[int, ...]    # first node id of each layer


@lru_cache(maxsize=16)
def layered_layout(sizes: tuple[int, ...], image_shape: tuple[int, int] | None = None) -> Layout:
    """networkx's multipartite layout, rescaled to [0, 1]; image inputs as their pixel grid."""
    g = nx.Graph()
    offsets, start = [], 0
    for layer, n in enumerate(sizes):
        offsets.append(start)
        g.add_nodes_from(range(start, start + n), layer=layer)
        start += n
    pos = nx.multipartite_layout(g, subset_key="layer")
    xy = np.array([pos[i] for i in range(start)], dtype=np.float64)
    xy -= xy.min(0)
    xy /= np.maximum(xy.max(0), 1e-9)
    for layer, n in enumerate(sizes):  # spread each column over the full height
        sl = slice(offsets[layer], offsets[layer] + n)
        xy[sl, 1] = 0.5 if n == 1 else np.linspace(0.0, 1.0, n)[::-1]
    if image_shape is not None and sizes[0] == image_shape[0] * image_shape[1]:
        h, w = image_shape
        r, c = np.divmod(np.arange(sizes[0]), w)
        width = 0.18
        xy[:sizes[0], 0] = c / max(w - 1, 1) * width
        xy[:sizes[0], 1] = 1 - r / max(h - 1, 1)
        xy[sizes[0]:, 0] = width + 0.05 + (xy[sizes[0]:, 0] - xy[sizes[0]:, 0].min()) / \
            max(np.ptp(xy[sizes[0]:, 0]), 1e-9) * (0.95 - width)
    return Layout(tuple(sizes), xy, tuple(offsets))


def edges(snapshot_layers: list[dict], layout: Layout):
    """Arrays for every active edge: source node, target node, weight; plus the edges
    activated and pruned in the last step (as node pairs)."""
    src, dst, w = [], [], []
    new_src, new_dst, gone_src, gone_dst = [], [], [], []
    for i, layer in enumerate(snapshot_layers):
        if len(layer["shape"]) != 2:
            continue
        n_out, n_in = layer["shape"]
        pos = np.flatnonzero(layer["active"])
        rows, cols = np.divmod(pos, n_in)
        src.append(layout.offsets[i] + cols)
        dst.append(layout.offsets[i + 1] + rows)
        w.append(layer["weight"].reshape(-1)[pos])
        for arr, s_list, d_list in ((layer["activated"], new_src, new_dst),
                                    (layer["pruned"], gone_src, gone_dst)):
            r, c = np.divmod(np.asarray(arr, dtype=np.int64), n_in)
            s_list.append(layout.offsets[i] + c)
            d_list.append(layout.offsets[i + 1] + r)
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)  # noqa: E731
    return cat(src), cat(dst), cat(w), (cat(new_src), cat(new_dst)), (cat(gone_src), cat(gone_dst))


def dead_nodes(snapshot_layers: list[dict], layout: Layout) -> np.ndarray:
    """Hidden nodes with no incoming or no outgoing active edge."""
    dead = []
    lin = [l for l in snapshot_layers if len(l["shape"]) == 2]
    for i, (a, b) in enumerate(zip(lin[:-1], lin[1:])):
        no_in = ~a["active"].reshape(a["shape"]).any(1)
        no_out = ~b["active"].reshape(b["shape"]).any(0)
        if no_in.shape == no_out.shape:
            dead.append(layout.offsets[i + 1] + np.flatnonzero(no_in | no_out))
    return np.concatenate(dead) if dead else np.zeros(0, dtype=np.int64)


def _segments(xy, s, d):
    """x and y arrays of line segments separated by None gaps (one plotly trace)."""
    n = len(s)
    xs = np.full(3 * n, np.nan)
    ys = np.full(3 * n, np.nan)
    xs[0::3], xs[1::3] = xy[s, 0], xy[d, 0]
    ys[0::3], ys[1::3] = xy[s, 1], xy[d, 1]
    return xs, ys


def plotly_graph(snapshot_layers: list[dict], layout: Layout, height: int = 420) -> go.Figure:
    src, dst, w, new, gone = edges(snapshot_layers, layout)
    fig = go.Figure()
    mag = np.abs(w)
    top = mag.max() if len(mag) else 1.0
    # opacity and width by |w|: three magnitude bands per sign
    for sign, color, name in ((1, POS, "positive"), (-1, NEG, "negative")):
        for lo, hi, alpha, width in ((0, 0.2, 0.25, 0.6), (0.2, 0.6, 0.55, 1.2), (0.6, 1.01, 0.95, 2.2)):
            sel = (np.sign(w) == sign) & (mag >= lo * top) & (mag < hi * top)
            if sign == 1:
                sel |= (w == 0) & (lo == 0)  # just-revived edges have weight 0
            xs, ys = _segments(layout.xy, src[sel], dst[sel])
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", opacity=alpha, hoverinfo="skip",
                                       line=dict(color=color, width=width), name=name,
                                       legendgroup=name, showlegend=lo == 0))
    for (s, d), color, name, dash in ((new, NEW, "activated (last step)", "solid"),
                                      (gone, GONE, "pruned (last step)", "dot")):
        xs, ys = _segments(layout.xy, s, d)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", name=name,
                                 line=dict(color=color, width=3, dash=dash)))
    dead = dead_nodes(snapshot_layers, layout)
    colors = np.full(len(layout.xy), "#555555", dtype=object)
    colors[dead] = "#ffffff"
    fig.add_trace(go.Scattergl(x=layout.xy[:, 0], y=layout.xy[:, 1], mode="markers", name="units (white: dead)",
                               marker=dict(size=6 if len(layout.xy) < 300 else 3, color=colors,
                                           line=dict(color=DEAD, width=0.8)), hoverinfo="skip"))
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=5, b=5), xaxis=dict(visible=False),
                      yaxis=dict(visible=False), legend=dict(orientation="h", y=-0.02),
                      plot_bgcolor="white", uirevision="graph")
    return fig


def raster_graph(snapshot_layers: list[dict], layout: Layout, size=(1000, 520)) -> Image.Image:
    """The same picture as a PNG: per-edge alpha by |w|, new edges green, pruned grey."""
    W, H = size
    img = Image.new("RGBA", size, (255, 255, 255, 255))
    over = Image.new("RGBA", size, (255, 255, 255, 0))
    draw = ImageDraw.Draw(over)
    px = np.column_stack([10 + layout.xy[:, 0] * (W - 20), 10 + (1 - layout.xy[:, 1]) * (H - 20)])
    src, dst, w, new, gone = edges(snapshot_layers, layout)
    top = np.abs(w).max() if len(w) else 1.0
    alpha = (40 + 215 * np.abs(w) / max(top, 1e-12)).astype(int)
    for s, d, wi, a in zip(src, dst, w, alpha):
        c = (33, 102, 172, a) if wi >= 0 else (214, 96, 77, a)
        draw.line([tuple(px[s]), tuple(px[d])], fill=c, width=1)
    for (s_arr, d_arr), c in ((gone, (150, 150, 150, 255)), (new, (26, 152, 80, 255))):
        for s, d in zip(s_arr, d_arr):
            draw.line([tuple(px[s]), tuple(px[d])], fill=c, width=3)
    img = Image.alpha_composite(img, over)
    draw = ImageDraw.Draw(img)
    dead = set(dead_nodes(snapshot_layers, layout).tolist())
    r = 2 if len(px) > 300 else 4
    for i, (x, y) in enumerate(px):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255) if i in dead else (70, 70, 70),
                     outline=(0, 0, 0))
    return img.convert("RGB")


def n_edges(snapshot_layers: list[dict]) -> int:
    return sum(l["k"] for l in snapshot_layers if len(l["shape"]) == 2)

"""Colours, the image font and the event thresholds, one place for every chart: sign is blue (+)
and red (-) in the graph and in every weight heatmap; light and dark variants follow the app's
theme. The live canvases (app/components) get their colours and thresholds from here with
their data (`graph_js`, `curves_js`), so the PNG export and the live legend agree."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from deepr_engine.run import classify

LAYER_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
RUN_COLOR_NAMES = ["blue", "red", "green", "purple"]
# heatmaps: negative red, zero neutral, positive blue (plotly's RdBu runs red -> blue)
SIGN_SCALE = "RdBu"
# the probe rule lives in the engine (every event classified once there); its names here are
# the engine's: a pruned connection active fewer than PROBE_STEPS steps was a brief probe
PROBE_STEPS, is_probe = classify.PROBE_STEPS, classify.is_probe


FONT_FILES = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/TTF/DejaVuSans.ttf",
              "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"]


@dataclass(frozen=True)
class Palette:
    dark: bool
    bg: str
    text: str
    muted: str
    grid: str
    pos: str
    neg: str
    node: str
    node_edge: str
    dead: str
    revived: str
    died: str
    probe: str
    marker: str
    ring: str          # dead units' outline on the live graph
    hover: str         # the hovered edge
    unit: str = "#f39c12"   # a hovered unit: its edges on the graph, its outline on the unit maps

    def event(self, kind: str) -> str:
        return {"revived": self.revived, "died": self.died, "probe": self.probe}[kind]

    @staticmethod
    def rgb(color: str) -> tuple[int, int, int]:
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))

    @property
    def plotly_template(self) -> str:
        return "plotly_dark" if self.dark else "plotly_white"


# events: revived green, an established connection pruned dark (light on dark), a brief probe
# pruned violet
LIGHT = Palette(False, bg="#ffffff", text="#31333f", muted="#6b6f7b", grid="#e6e6ea", pos="#2166ac",
                neg="#d6604d", node="#6b6b6b", node_edge="#333333", dead="#ffffff", revived="#1a9850",
                died="#111111", probe="#9970ab", marker="#8e44ad", ring="#333333", hover="#000000")
DARK = Palette(True, bg="#0e1117", text="#fafafa", muted="#a3a8b8", grid="#2b2f3a", pos="#6baed6",
               neg="#f4796b", node="#9a9a9a", node_edge="#dddddd", dead="#0e1117", revived="#4fd47f",
               died="#f5f5f5", probe="#c9a6e0", marker="#d2a8ff", ring="#dddddd", hover="#ffffff")
# the curves' own colours (live_curves.js)
CURVES = {
    "light": {"grid": "rgba(49,51,63,0.12)", "zero": "#8a8d96", "train": "#1f77b4", "test": "#e8710a",
              "dormant": "#b9bbc2", "cross": "rgba(49,51,63,0.5)", "layers": LAYER_COLORS},
    "dark": {"grid": "rgba(250,250,250,0.13)", "zero": "#9a9ea8", "train": "#5aa9e6", "test": "#ffa24c",
             "dormant": "#5c606b", "cross": "rgba(250,250,250,0.5)",
             "layers": ["#3fd0a4", "#ff8c3a", "#a9a4f5", "#ff6eb4", "#8fd14f", "#ffd23f", "#d9a35a", "#b0b0b0"]},
}


def palette(theme: str | None) -> Palette:
    return DARK if theme == "dark" else LIGHT


def graph_js() -> dict:
    """The live graph's colours per theme (live_graph.js)."""
    return {("dark" if p.dark else "light"): {
        "bg": p.bg, "text": p.text, "pos": p.pos, "neg": p.neg, "added": p.revived, "death": p.died,
        "probe": p.probe, "node": p.node, "ring": p.ring, "hover": p.hover, "unit": p.unit}
        for p in (LIGHT, DARK)}


def curves_js() -> dict:
    """The live curves' colours per theme (live_curves.js)."""
    return {("dark" if p.dark else "light"): {"bg": p.bg, "text": p.text, "muted": p.muted,
                                              "marker": p.marker, **CURVES["dark" if p.dark else "light"]}
            for p in (LIGHT, DARK)}


@lru_cache(maxsize=8)
def font(size: int = 12):
    """A TrueType font that has theta and the arrows (DejaVu Sans where present); Pillow's
    bundled font otherwise, in which case labels spell "theta" (see `theta`)."""
    for path in FONT_FILES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def has_theta() -> bool:
    return any(Path(p).exists() for p in FONT_FILES)


def theta() -> str:
    return "θ" if has_theta() else "theta"

"""Colours and the image font, one place for every chart: sign is blue (+) and red (-) in the
graph and in every weight heatmap; light and dark variants follow the app's theme."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

LAYER_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
RUN_COLOR_NAMES = ["blue", "red", "green", "purple"]
# heatmaps: negative red, zero neutral, positive blue (plotly's RdBu runs red -> blue)
SIGN_SCALE = "RdBu"
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

    def event(self, kind: str) -> str:
        return {"revived": self.revived, "died": self.died, "probe": self.probe}[kind]

    @staticmethod
    def rgb(color: str) -> tuple[int, int, int]:
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))

    @property
    def plotly_template(self) -> str:
        return "plotly_dark" if self.dark else "plotly_white"


LIGHT = Palette(False, bg="#ffffff", text="#262730", muted="#6b6b78", grid="#e6e6ea", pos="#2166ac",
                neg="#d6604d", node="#505050", node_edge="#000000", dead="#ffffff", revived="#1a9850",
                died="#7a7a7a", probe="#f39c12", marker="#8e44ad")
DARK = Palette(True, bg="#0e1117", text="#fafafa", muted="#a3a8b8", grid="#2b2f3a", pos="#4393c3",
               neg="#f4765f", node="#c8c8c8", node_edge="#ffffff", dead="#0e1117", revived="#4ed98a",
               died="#e0e0e0", probe="#f5b041", marker="#c39bd3")


def palette(theme: str | None) -> Palette:
    return DARK if theme == "dark" else LIGHT


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

"""The accuracy-against-connectivity figure of a study (reproduce.py, benchmarks/accuracy.py):
one line per method (test accuracy, mean and sd over seeds, at the connectivity reached), the
dense network as a dashed line; a PNG (matplotlib, when installed) and an interactive plotly HTML.
"""
from __future__ import annotations

from pathlib import Path

from . import registry


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return {m: sorted(rs, key=lambda r: float(r["connectivity_reached"])) for m, rs in out.items()}


def write_png(rows: list[dict], title: str, path: str | Path) -> bool:
    """False (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for method, rs in _series(rows).items():
        ys = [float(r["test_acc_mean"]) for r in rs]
        if method == "dense":
            ax.axhline(ys[0], color="k", ls="--", lw=1, label="dense (100%)")
            continue
        ax.errorbar([float(r["connectivity_reached"]) for r in rs], ys,
                    yerr=[float(r["test_acc_sd"]) for r in rs], marker="o", ms=4, capsize=2,
                    label=registry.label(method))
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    xs = [float(r["connectivity_reached"]) for r in rows if r["method"] != "dense"]
    if xs:   # 1-2-5 ticks over the data's range
        ax.set_xticks([t for t in (a * 10.0 ** e for e in range(-4, 1) for a in (1, 2, 5))
                       if min(xs) / 1.5 <= t <= max(xs) * 1.5])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), min(1.02, ax.get_ylim()[1]))
    ax.set_xlabel("connectivity reached (share of all weights active)")
    ax.set_ylabel("test accuracy (mean ± sd over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_html(rows: list[dict], title: str, path: str | Path) -> None:
    """A self-contained interactive plotly page (plotly.js embedded: opens offline); hovering a
    point shows the chosen settings."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for method, rs in _series(rows).items():
        xs = [float(r["connectivity_reached"]) for r in rs]
        ys = [float(r["test_acc_mean"]) for r in rs]
        text = [f"{r.get('chosen', '')}<br>val {float(r.get('val_acc', 'nan')):.4f}" for r in rs]
        if method == "dense":
            fig.add_hline(y=ys[0], line_dash="dash", annotation_text="dense (100%)")
            continue
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=registry.label(method),
                                 error_y={"type": "data",
                                          "array": [float(r["test_acc_sd"]) for r in rs]},
                                 text=text, hovertemplate="%{x:.4f}: %{y:.4f}<br>%{text}"))
    fig.update_layout(title=title, xaxis={"type": "log", "title": "connectivity reached"},
                      yaxis={"title": "test accuracy (mean ± sd over seeds)"},
                      template="plotly_white")
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)

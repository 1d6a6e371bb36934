"""Small SVG line charts for the pages (no JavaScript, no plotting library in the web process).

`line_chart` turns a few series of numbers into scaled coordinates that a
template draws as `<polyline>`s; the worker renders the big plots (PNG) into
the model artifact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PALETTE = ("#c2410c", "#2563eb", "#15803d", "#7c3aed", "#b54708", "#0e7490")


@dataclass
class Series:
    name: str
    values: list[float | None]
    color: str = ""
    points: str = ""
    dots: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass
class Chart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str, str]]
    left: int
    bottom: int

    @property
    def empty(self) -> bool:
        return not any(s.dots for s in self.series)


def _finite(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def line_chart(
    series: dict[str, list[float | None]],
    labels: list[str],
    *,
    width: int = 760,
    height: int = 220,
    y_range: tuple[float, float] | None = None,
) -> Chart:
    """Scale the series into a width x height box with room for axes (values may be None)."""
    left, right, top, bottom = 40, 16, 10, 26
    values = [v for vs in series.values() for v in map(_finite, vs) if v is not None]
    if y_range is not None:
        lo, hi = y_range
    elif values:
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = 0.0, 1.0
    n = max((len(v) for v in series.values()), default=0)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    out: list[Series] = []
    for k, (name, vs) in enumerate(series.items()):
        s = Series(name=name, values=list(vs), color=PALETTE[k % len(PALETTE)])
        pts = []
        for i, v in enumerate(vs):
            f = _finite(v)
            if f is None:
                continue
            pts.append((round(x(i), 1), round(y(f), 1)))
            s.dots.append((pts[-1][0], pts[-1][1], f"{name}: {f:.3g}"))
        s.points = " ".join(f"{a},{b}" for a, b in pts)
        out.append(s)
    levels = [lo + (hi - lo) * t / 4 for t in range(5)]
    ticks = [(round(y(v), 1), f"{v:.2g}") for v in levels]
    step = max(1, math.ceil(n / 8))
    shown = list(range(0, min(n, len(labels)), step))
    if n > 1 and shown[-1] != n - 1 and n - 1 < len(labels):
        shown.append(n - 1)

    def anchor(i: int) -> str:
        return "middle" if n == 1 else "start" if i == 0 else "end" if i == n - 1 else "middle"

    xl = [(round(x(i), 1), labels[i], anchor(i)) for i in shown]
    return Chart(width, height, out, ticks, xl, left, height - bottom)

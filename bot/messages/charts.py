"""The report charts as PNG images: one rate unit by unit, the office's trend of that rate, and the shares of the
categories, drawn for a chat on a phone (about 1100 pixels wide, growing taller with the bars).

Pure rendering: numbers and Chinese labels in, PNG bytes out. Drawn with matplotlib's object API (a ``Figure`` on
an Agg canvas, never pyplot and its global state), so a worker thread can draw while the event loop runs;
matplotlib is imported only when a chart is drawn, so the bot's start does not pay for it.

Chinese needs a CJK font: Debian's WenQuanYi Micro Hei (``fonts-wqy-microhei``, installed by ``make fonts``), Noto
Sans CJK where it is installed instead, or the file named by ``REPORT_FONT``. Without one, :class:`ChartFontMissing`.
Every text is checked against the font before the chart is drawn: a character the font lacks raises ``ValueError``
rather than being drawn as an empty box.

The panels sit at fixed margins in inches (:func:`_stack`), the left one as wide as the widest label measured in the
font, rather than under matplotlib's constrained layout, which measured every text of the figure twice more: a
third of the chart's time.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_BARS = 40  # units shown one by one; with more, the lowest
MAX_PERIODS = 12  # periods in a trend; with more, the latest
MAX_SHARES = 8  # categories shown by name; the rest together as 其他
OTHER = "其他"
NO_DATA = "无数据"

FONT_ENV = "REPORT_FONT"
FONT_PACKAGE = "fonts-wqy-microhei"
FONT_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian, Ubuntu: fonts-wqy-microhei
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",  # Fedora, Arch
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian, Ubuntu: fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
)

WIDTH = 11.0  # inches; at DPI, 1100 pixels
DPI = 100
BAR_ROW = 0.42  # inches a unit's bar takes
SHARE_ROW = 0.5
TREND_HEIGHT = 5.5
PANEL_HEAD = 1.0  # a panel's title and axis
TEXT = 16  # points
SMALL = 14
BELOW = "#d9534f"  # a rate under the target
MEETS = "#3b7dd8"  # a rate at or over the target, or with no target
GREY = "#888888"
ROTATION = 30  # degrees: a trend's period labels when there are more than 6
_SIN, _COS = math.sin(math.radians(ROTATION)), math.cos(math.radians(ROTATION))
# fixed margins, in inches (_stack)
SUPTITLE = 0.7  # the figure's title
TITLE_ROOM = 0.55  # above a panel's axes: its title
TICKS_BELOW = 0.45  # under a panel's axes: its x labels
NO_TICKS_BELOW = 0.15
LABEL_GAP = 0.25  # between the y labels and the axes, and the image's edge
RIGHT = 0.3
BOTTOM = 0.1


class ChartFontMissing(RuntimeError):
    """No CJK font to draw the charts' Chinese text with."""


@dataclass(frozen=True, slots=True)
class Point:
    """One bar or one period: a unit's name or a period's label, its rate in 0..1 (None: no denominator, drawn
    as 无数据), and an optional small text beside it (``"45/50"``)."""

    label: str
    value: float | None
    note: str = ""


_lock = threading.Lock()
_fonts: dict[str, frozenset[int]] = {}  # a registered font's path -> the code points it has glyphs for


def report_chart(
    *,
    title: str,
    rate_name: str,
    bars: Sequence[Point],
    target: float | None,
    trend: Sequence[Point],
    shares_title: str,
    shares: Sequence[tuple[str, int]],
) -> bytes:
    """One PNG with three panels: the units' bars of one rate (lowest first, the target as a line), the office's
    trend of that rate over the latest 12 periods (with the target), and the categories' shares (the largest 8
    and 其他)."""
    rows = _lowest(bars)
    shown = _shares(shares)
    periods = list(trend)[-MAX_PERIODS:]
    fig, (bars_ax, trend_ax, shares_ax) = _stack(
        [_bars_panel(rows), _trend_panel(periods), _shares_panel(shown)], title=title
    )
    if len(bars) > MAX_BARS:
        bars_title = f"{rate_name}最低的{MAX_BARS}个单位（共{len(bars)}个）"
    else:
        bars_title = f"各单位{rate_name}"
    _draw_bars(bars_ax, bars_title, rows, target)
    _draw_trend(trend_ax, f"{rate_name}趋势", periods, target)
    _draw_shares(shares_ax, shares_title, shown)
    return _png(fig)


def unit_bars(title: str, bars: Sequence[Point], *, target: float | None) -> bytes:
    """The units' bars of one rate, lowest first (units with no data last), the target as a line; with more than
    40 units the 40 lowest, and the title says so."""
    rows = _lowest(bars)
    fig, (ax,) = _stack([_bars_panel(rows)])
    if len(bars) > MAX_BARS:
        title = f"{title}（最低的{MAX_BARS}个单位，共{len(bars)}个）"
    _draw_bars(ax, title, rows, target)
    return _png(fig)


def trend_chart(title: str, points: Sequence[Point], *, target: float | None) -> bytes:
    """The office's rate period by period (the latest 12), with the target; a period with no data is a gap."""
    points = list(points)[-MAX_PERIODS:]
    fig, (ax,) = _stack([_trend_panel(points)])
    _draw_trend(ax, title, points, target)
    return _png(fig)


def shares_chart(title: str, items: Sequence[tuple[str, int]]) -> bytes:
    """The categories' counts and shares, the largest first: the largest 8 by name, the rest together as 其他."""
    shown = _shares(items)
    fig, (ax,) = _stack([_shares_panel(shown)])
    _draw_shares(ax, title, shown)
    return _png(fig)


def _lowest(bars: Sequence[Point]) -> list[Point]:
    """The bars to show, top to bottom: the lowest rates first, units with no data after them, at most 40."""
    ordered = sorted(bars, key=lambda p: (p.value is None, p.value or 0.0, p.label))
    return ordered[:MAX_BARS]


def _shares(items: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The largest 8 categories with a count, then the rest (and any category already called 其他) as 其他."""
    counted = sorted(((name, n) for name, n in items if n > 0 and name != OTHER), key=lambda i: (-i[1], i[0]))
    rest = sum(n for _, n in counted[MAX_SHARES:]) + sum(n for name, n in items if n > 0 and name == OTHER)
    return counted[:MAX_SHARES] + ([(OTHER, rest)] if rest else [])


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _draw_bars(ax: Axes, title: str, rows: Sequence[Point], target: float | None) -> None:
    ax.set_title(title, fontsize=TEXT + 1, loc="left")
    ys = range(len(rows))
    values = [p.value or 0.0 for p in rows]
    colours = [BELOW if target is not None and v < target else MEETS for v in values]
    ax.barh(list(ys), values, color=colours, height=0.7)
    for y, p in zip(ys, rows, strict=True):
        text = NO_DATA if p.value is None else _percent(p.value)
        if p.note:
            text += f"  {p.note}"
        ax.text(
            (p.value or 0.0) + 0.01, y, text, va="center", fontsize=SMALL, color=GREY if p.value is None else "black"
        )
    ax.set_yticks(list(ys), [p.label for p in rows], fontsize=SMALL)
    ax.set_ylim(len(rows) - 0.5 if rows else 0.5, -0.6)  # the lowest at the top
    ax.set_xlim(0, 1.18)
    ticks = [i / 5 for i in range(6)]
    ax.set_xticks(ticks, [f"{t:.0%}" for t in ticks], fontsize=SMALL)
    if target is not None:
        _target(ax, target, vertical=True)
    if not rows:
        _no_data(ax)
    _plain(ax, grid="x")


def _draw_trend(ax: Axes, title: str, points: Sequence[Point], target: float | None) -> None:
    ax.set_title(title, fontsize=TEXT + 1, loc="left")
    xs = list(range(len(points)))
    values = [p.value for p in points]
    known = [v for v in values if v is not None] + ([target] if target is not None else [])
    low = max(0.0, (int(min(known) * 10) - 1) / 10) if known else 0.0  # zoomed to the rates, in steps of 10%
    top = 1.0 + (1.0 - low) * 0.12  # room for the labels over 100%
    ax.plot(xs, [float("nan") if v is None else v for v in values], color=MEETS, marker="o", linewidth=2)
    for x, p in zip(xs, points, strict=True):
        if p.value is None:
            ax.text(x, low + (1.0 - low) * 0.05, NO_DATA, ha="center", fontsize=SMALL, color=GREY)
            continue
        text = _percent(p.value) + (f"\n{p.note}" if p.note else "")
        ax.annotate(text, (x, p.value), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=SMALL)
    ax.set_xticks(
        xs,
        [p.label for p in points],
        fontsize=SMALL,
        rotation=ROTATION if _slanted(points) else 0,
        ha="right" if _slanted(points) else "center",
    )
    ax.set_xlim(-0.6, max(len(points), 1) - 0.4)
    ax.set_ylim(low, top)
    step = 0.1 if 1.0 - low <= 0.5 else 0.2
    ticks = [round(1.0 - i * step, 2) for i in range(int((1.0 - low) / step + 1e-9) + 1)]
    ax.set_yticks(ticks, [f"{t:.0%}" for t in ticks], fontsize=SMALL)
    if target is not None:
        _target(ax, target, vertical=False)
    if not points:
        _no_data(ax)
    _plain(ax, grid="y")


def _draw_shares(ax: Axes, title: str, shown: Sequence[tuple[str, int]]) -> None:
    ax.set_title(title, fontsize=TEXT + 1, loc="left")
    total = sum(n for _, n in shown)
    ys = list(range(len(shown)))
    ax.barh(ys, [n for _, n in shown], color=MEETS, height=0.7)
    biggest = max((n for _, n in shown), default=1)
    for y, (_, n) in zip(ys, shown, strict=True):
        ax.text(n + biggest * 0.01, y, f"{n}件（{_percent(n / total)}）", va="center", fontsize=SMALL)
    ax.set_yticks(ys, [name for name, _ in shown], fontsize=SMALL)
    ax.set_ylim(len(shown) - 0.5 if shown else 0.5, -0.6)
    ax.set_xlim(0, biggest * 1.3)
    ax.set_xticks([])
    if not shown:
        _no_data(ax)
    _plain(ax, grid=None)


def _target(ax: Axes, target: float, *, vertical: bool) -> None:
    label = f"目标 {_percent(target)}"
    if vertical:
        ax.axvline(target, color=BELOW, linestyle="--", linewidth=1.2)
        ax.text(target, -0.6, label, ha="center", va="bottom", fontsize=SMALL, color=BELOW)
    else:
        ax.axhline(target, color=BELOW, linestyle="--", linewidth=1.2)
        ax.text(
            1.0, target, label, transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=SMALL, color=BELOW
        )


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize=TEXT + 2, color=GREY)


def _plain(ax: Axes, *, grid: Literal["x", "y"] | None) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if grid is not None:
        ax.grid(axis=grid, color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)


@dataclass(frozen=True)
class _Panel:
    """One panel's room, in inches: all of it (its title and tick labels included), what it needs left of its axes
    for its y labels, and under them for its x labels."""

    height: float
    left: float
    below: float


def _bars_panel(rows: Sequence[Point]) -> _Panel:
    return _Panel(PANEL_HEAD + BAR_ROW * max(len(rows), 3), _widest(p.label for p in rows), TICKS_BELOW)


def _trend_panel(points: Sequence[Point]) -> _Panel:
    """The trend's x labels are slanted when there are many: the first reaches left of the axes, all of them down."""
    left = _widest(["100%"])
    below = TICKS_BELOW
    if _slanted(points):
        widest = _widest(p.label for p in points)
        left = max(left, widest * _COS - 0.3)  # the first label ends at its tick, half a step in from the axes
        below = widest * _SIN + 0.45
    return _Panel(TREND_HEIGHT, left, below)


def _shares_panel(shown: Sequence[tuple[str, int]]) -> _Panel:
    return _Panel(PANEL_HEAD + SHARE_ROW * max(len(shown), 3), _widest(name for name, _ in shown), NO_TICKS_BELOW)


def _slanted(points: Sequence[Point]) -> bool:
    return len(points) > 6


def _widest(labels: Iterable[str]) -> float:
    """The widest of ``labels`` at the tick labels' size in the chart font, in inches (0 for none)."""
    from matplotlib.font_manager import get_font

    path = font_path()
    font = get_font(path)
    font.set_size(SMALL, DPI)
    widest = 0.0
    for label in labels:
        # a character the font lacks is measured as "口" here: the chart refuses it before it is drawn (_png)
        font.set_text(drawable(label.split("\n")[0], "口"), 0.0)
        widest = max(widest, font.get_width_height()[0] / 64 / DPI)  # 26.6 fixed point, pixels
    return widest


def _stack(panels: Sequence[_Panel], *, title: str | None = None) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` one above the other, WIDTH wide, on an Agg canvas (no pyplot), each panel's axes at
    fixed margins: one left margin for all (the widest labels'), room above each for its title and under each for
    its x labels; with ``title``, the figure's title above them. Fails early without a CJK font."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _register(font_path())
    top = SUPTITLE if title else 0.0
    height = top + sum(p.height for p in panels) + BOTTOM
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=TEXT + 4, fontweight="bold", y=1 - 0.15 / height, va="top")
    left = max(p.left for p in panels) + LABEL_GAP
    axes = []
    y = height - top  # the top of the next panel
    for panel in panels:
        bottom = y - panel.height + panel.below
        rect = (left / WIDTH, bottom / height, (WIDTH - left - RIGHT) / WIDTH, (y - TITLE_ROOM - bottom) / height)
        axes.append(fig.add_axes(rect))
        y -= panel.height
    return fig, axes


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes: every text in the CJK font (at the size it was given), once every character is
    known to have a glyph in it."""
    from matplotlib.text import Text

    path = font_path()
    texts: list[str] = []
    for artist in fig.findobj(Text):
        assert isinstance(artist, Text)
        artist.set_parse_math(False)  # a "$" in a unit's name is text, not a formula
        font = artist.get_fontproperties().copy()
        font.set_file(path)
        artist.set_fontproperties(font)
        texts.append(artist.get_text())
    check_glyphs(texts)
    out = io.BytesIO()
    # zlib's level 3 rather than matplotlib's 6: half the encoding time, and for charts' flat colours no larger
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return out.getvalue()


def font_path() -> str:
    """The CJK font's file: ``REPORT_FONT`` when set, else the first of the known paths that exists."""
    configured = os.environ.get(FONT_ENV)
    if configured:
        if not Path(configured).is_file():
            raise ChartFontMissing(f"{FONT_ENV}={configured} is not a font file (a .ttf, .ttc or .otf)")
        return configured
    for path in FONT_PATHS:
        if Path(path).is_file():
            return path
    raise ChartFontMissing(
        f"no CJK font for the report charts: install Debian's {FONT_PACKAGE} (make fonts, or apt-get install "
        f"{FONT_PACKAGE}), or set {FONT_ENV} to a .ttf, .ttc or .otf file with Chinese glyphs"
    )


def _register(path: str) -> frozenset[int]:
    """Registers the font with matplotlib's font manager (once per path) and returns the characters it covers."""
    with _lock:
        covered = _fonts.get(path)
        if covered is None:
            from matplotlib import font_manager
            from matplotlib.ft2font import FT2Font

            font_manager.fontManager.addfont(path)
            # get_charmap lists what get_char_index finds (index 0 is "missing"); of a .ttc, the first face
            charmap: dict[Any, Any] = FT2Font(path).get_charmap()
            covered = _fonts[path] = frozenset(code for code, index in charmap.items() if index)
    return covered


def check_glyphs(texts: Iterable[str]) -> None:
    """Raises ValueError naming every character of ``texts`` the chart font has no glyph for (drawn, each would
    be an empty box)."""
    path = font_path()
    covered = _register(path)
    missing = sorted({c for text in texts for c in text if c != "\n" and ord(c) not in covered})
    if missing:
        named = "、".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
        raise ValueError(f"the chart font {Path(path).name} has no glyph for {named}")


def drawable(text: str, stand_in: str = "?") -> str:
    """``text`` with each character the chart font lacks replaced by ``stand_in`` (a unit's or a category's name from
    the platform may hold a rare character: the chart names it as well as it can rather than not being drawn)."""
    covered = _register(font_path())
    return "".join(c if c == "\n" or ord(c) in covered else stand_in for c in text)

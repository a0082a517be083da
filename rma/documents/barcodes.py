"""Code128 barcodes for RMA numbers and serials (R-R2, D-8).

python-barcode is the one encoder: it turns a text into the '1'/'0' module pattern, and
everything here draws that same pattern, as inline SVG for HTML pages and as vector
rectangles on a reportlab canvas for PDFs, so a page and a label always encode the same
string. Drawing vector bars instead of embedding python-barcode's PNG keeps a label
at about 1 ms instead of about 16 ms (``bench/label.py``) and prints sharp at any dpi.

Print rules: the narrowest bar (one module) is at least ``MIN_MODULE_MM`` (0.33 mm; at
0.2 mm a 200 dpi scan already fails), and a quiet zone of ``QUIET_ZONE_MODULES`` blank
modules is part of the pattern on each side. A code too long for the width it is given
is never squeezed below the minimum: ``fit_module_width`` raises
``BarcodeTooWideError`` instead.

The ``ValueError`` messages here are for developers and logs: callers check RMA numbers
and serials (D-8) before a barcode is drawn, so a user never sees them.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from html import escape

from barcode.codex import Code128
from reportlab.lib.units import mm

QUIET_ZONE_MODULES = 10
MIN_MODULE_MM = 0.33
DEFAULT_MODULE_MM = 0.4
MIN_MODULE = MIN_MODULE_MM * mm  # in PDF points
DEFAULT_MODULE = DEFAULT_MODULE_MM * mm
_TOLERANCE = 1e-9
_DARK_RUN = re.compile("1+")
# SVG: human-readable text under the bars, in mm.
_SVG_FONT_MM = 2.8
_SVG_TEXT_GAP_MM = 0.8


class BarcodeTooWideError(ValueError):
    """A code does not fit the width it is given, even at the narrowest printable module."""


def code128_modules(text: str) -> str:
    """The Code128 module pattern of ``text``, '1' dark and '0' light: a quiet zone of
    ``QUIET_ZONE_MODULES`` light modules, python-barcode's start code, data, checksum and
    stop pattern, and the closing quiet zone.

    Only printable ASCII (space to '~') is accepted. Code128 has no code for other
    characters (Chinese, for one), and python-barcode would read a few Latin-1 letters
    ('ñ', 'ó', 'ò', 'ô') as function codes FNC1-FNC4, which a scanner does not type.

    Raises ``ValueError`` naming the text and the characters that cannot be encoded.
    """
    if not isinstance(text, str):
        raise ValueError(f"A Code128 barcode encodes a string, not {type(text).__name__}.")
    if not text:
        raise ValueError("A Code128 barcode needs at least one character; the text is empty.")
    bad = sorted({char for char in text if not " " <= char <= "~"})
    if bad:
        shown = ", ".join(repr(char) for char in bad)
        raise ValueError(
            f"Code128 cannot encode {text!r}: {shown} "
            f"{'is' if len(bad) == 1 else 'are'} not printable ASCII "
            "(only A-Z, a-z, 0-9, space and ASCII punctuation can be encoded)."
        )
    return _encode(text)


@lru_cache(maxsize=1024)
def _encode(text: str) -> str:
    """python-barcode's pattern between two quiet zones; cached, as a label asks for the
    same code up to three times (measure, fit, draw) and an A4 sheet repeats its RMA
    number on every page."""
    quiet = "0" * QUIET_ZONE_MODULES
    # A Code128 object keeps charset state while building: a new one per text.
    return quiet + Code128(text).build()[0] + quiet


def bar_runs(modules: str) -> list[tuple[int, int]]:
    """Each dark bar as ``(first module, width in modules)``: adjacent dark modules are
    merged into one bar, so a wide bar is one rectangle, not several touching ones."""
    return [(run.start(), run.end() - run.start()) for run in _DARK_RUN.finditer(modules)]


def _check_module(module: float, minimum: float, unit: str) -> None:
    if not module >= minimum - _TOLERANCE:  # also refuses NaN
        raise ValueError(
            f"A Code128 module of {module:g} {unit} is too narrow to print and scan: "
            f"the minimum is {MIN_MODULE_MM} mm ({minimum:g} {unit})."
        )


def fit_module_width(text: str, available: float, preferred: float = DEFAULT_MODULE) -> float:
    """The module width (points) to draw ``text`` in ``available`` points, quiet zones
    included: ``preferred`` when it fits, narrower when not, but never under 0.33 mm.

    Raises ``BarcodeTooWideError`` when even 0.33 mm modules need more than ``available``,
    and ``ValueError`` for text Code128 cannot encode or a ``preferred`` under 0.33 mm."""
    _check_module(preferred, MIN_MODULE, "pt")
    count = len(code128_modules(text))
    module = min(preferred, available / count)
    if module < MIN_MODULE - _TOLERANCE:
        raise BarcodeTooWideError(
            f"The Code128 barcode of {text!r} is {count} modules wide: "
            f"{count * MIN_MODULE_MM:.1f} mm at the narrowest printable module "
            f"({MIN_MODULE_MM} mm), but only {available / mm:.1f} mm are free."
        )
    return max(module, MIN_MODULE)


def draw_code128(canvas, x: float, y: float, text: str, module_width: float,
                 height: float) -> float:
    """Draw the bars of ``text`` in black on a reportlab ``canvas`` as filled vector
    rectangles, one per bar (adjacent dark modules merged), in a single path. ``(x, y)``
    is the bottom left of the leading quiet zone; nothing is drawn in the quiet zones,
    which the caller keeps free. Returns the total width in points, quiet zones included.

    The path is written in module units under one transformation (``cm``), so every bar
    edge is an exact integer and the module width appears once, rounded up, never below
    what was asked. reportlab's path objects format every coordinate in Python; on a
    40-item A4 sheet that was about half the time (17 ms, now 8). The graphics state is
    saved and restored around it, so the canvas's colours are left as they were.

    Raises ``ValueError`` for a module under 0.33 mm, a height that is not positive or
    text Code128 cannot encode."""
    _check_module(module_width, MIN_MODULE, "pt")
    if not height > 0:
        raise ValueError(f"A barcode needs a positive height, not {height!r}.")
    modules = code128_modules(text)
    bars = " ".join(f"{start} 0 {width} 1 re" for start, width in bar_runs(modules))
    scale = math.ceil(module_width * 1e6) / 1e6
    canvas.addLiteral(f"q 0 g {scale:.6f} 0 0 {height:.4f} {x:.4f} {y:.4f} cm {bars} f Q")
    return len(modules) * module_width


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def code128_svg(text: str, module_mm: float = DEFAULT_MODULE_MM, height_mm: float = 12,
                with_text: bool = True) -> str:
    """``text`` as an inline SVG element for an HTML page: no XML declaration, no style
    attributes (the CSP forbids them; presentation attributes such as ``fill`` are used),
    and the human-readable text escaped, so ``{{ code128_svg(rma.number)|safe }}`` is
    safe. The user coordinate unit is one module; ``width``/``height`` give the printed
    size in mm and the ``viewBox`` lets CSS scale it (``max-width: 100%; height: auto``).

    A white background ``<rect>`` covers the whole code (the quiet zones must be light on
    a dark page too); then one ``<rect>`` per bar inside ``<g fill="#000">``.

    Raises ``ValueError`` for text Code128 cannot encode, a module under 0.33 mm or a
    height that is not positive."""
    _check_module(module_mm, MIN_MODULE_MM, "mm")
    if not height_mm > 0:
        raise ValueError(f"A barcode needs a positive height, not {height_mm!r} mm.")
    modules = code128_modules(text)
    count = len(modules)
    bar_height = height_mm / module_mm  # in modules
    total_mm = height_mm + (_SVG_TEXT_GAP_MM + _SVG_FONT_MM * 1.15 if with_text else 0)
    total = total_mm / module_mm
    label = escape(text, quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="barcode" '
        f'width="{_num(count * module_mm)}mm" height="{_num(total_mm)}mm" '
        f'viewBox="0 0 {count} {_num(total)}" role="img" aria-label="{label}" '
        'shape-rendering="crispEdges">',
        f'<rect width="{count}" height="{_num(total)}" fill="#fff"/>',
        '<g fill="#000">',
        *(f'<rect x="{start}" width="{width}" height="{_num(bar_height)}"/>'
          for start, width in bar_runs(modules)),
        "</g>",
    ]
    if with_text:
        baseline = (height_mm + _SVG_TEXT_GAP_MM + _SVG_FONT_MM) / module_mm
        parts.append(
            f'<text x="{_num(count / 2)}" y="{_num(baseline)}" text-anchor="middle" '
            f'font-family="monospace" font-size="{_num(_SVG_FONT_MM / module_mm)}" '
            f'fill="#000">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""Product pictures and banners, drawn as SVG: the demo downloads no images and ships no binaries.

Each category has its own simple illustration (a jacket, a sweater, a boot, a
bag, a lamp, a mug), drawn in the variant's colour on a tinted background; the
product's position in its category varies the details, so neighbours differ.
Banners are wide cards in the category's colour with its name and tagline.
Every function is pure: the same arguments give the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final
from xml.sax.saxutils import escape

__all__ = ["banner_svg", "product_svg", "static_banner_svg"]


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def mix(colour: str, other: str, amount: float) -> str:
    """``colour`` moved ``amount`` (0..1) of the way towards ``other``."""
    first, second = _rgb(colour), _rgb(other)
    channels = (round(a + (b - a) * amount) for a, b in zip(first, second, strict=True))
    return "#" + "".join(f"{channel:02x}" for channel in channels)


def _luminance(colour: str) -> float:
    red, green, blue = _rgb(colour)
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


# Each drawing takes (fill, dark, light, variation) and returns SVG elements in a 400x400 box.
Drawing = Callable[[str, str, str, int], str]


def _jacket(fill: str, dark: str, light: str, variation: int) -> str:
    hem = 300 + (variation % 3) * 18  # parkas and coats are longer than jackets
    pockets = "".join(
        f'<rect x="{x}" y="{hem - 70}" width="46" height="34" rx="5" fill="none" stroke="{dark}"'
        ' stroke-width="4"/>'
        for x in (130, 224)
    )
    return (
        f'<path d="M150 100 L200 122 L250 100 L302 126 L342 252 L310 264 L286 188 L286 {hem} L114 {hem}'
        f' L114 188 L90 264 L58 252 L98 126 Z" fill="{fill}" stroke="{dark}" stroke-width="5"'
        ' stroke-linejoin="round"/>'
        f'<path d="M150 100 Q200 {62 + (variation % 2) * 20} 250 100 L232 138 Q200 122 168 138 Z"'
        f' fill="{dark}"/>'
        f'<line x1="200" y1="126" x2="200" y2="{hem}" stroke="{light}" stroke-width="5"'
        ' stroke-dasharray="3 6"/>' + pockets
    )


def _sweater(fill: str, dark: str, light: str, variation: int) -> str:
    stripes = ""
    if variation % 3 == 1:  # a Breton stripe for some
        stripes = "".join(
            f'<rect x="117" y="{y}" width="166" height="9" fill="{light}" opacity="0.9"/>'
            for y in range(170, 286, 26)
        )
    ribs = "".join(
        f'<line x1="{x}" y1="284" x2="{x}" y2="300" stroke="{dark}" stroke-width="3"/>'
        for x in range(128, 280, 12)
    )
    return (
        f'<path d="M145 105 Q200 140 255 105 L306 126 L346 252 L315 264 L284 188 L284 300 L116 300 L116 188'
        f' L85 264 L54 252 L94 126 Z" fill="{fill}" stroke="{dark}" stroke-width="5"'
        ' stroke-linejoin="round"/>'
        f'{stripes}<path d="M145 105 Q200 140 255 105" fill="none" stroke="{dark}" stroke-width="10"/>'
        f'<rect x="116" y="282" width="168" height="20" fill="{mix(fill, "#000000", 0.15)}"/>{ribs}'
    )


def _boot(fill: str, dark: str, light: str, variation: int) -> str:
    shaft = 90 + (variation % 3) * 40  # boots, then shoes, then sneakers
    laces = "".join(
        f'<line x1="{182 + i * 8}" y1="{shaft + 40 + i * 26}" x2="{222 + i * 8}" y2="{shaft + 34 + i * 26}"'
        f' stroke="{light}" stroke-width="5" stroke-linecap="round"/>'
        for i in range(3)
        if shaft + 40 + i * 26 < 250
    )
    return (
        f'<path d="M140 {shaft} L218 {shaft} L222 228 Q302 232 332 270 L336 304 L120 304 L124 250 Z"'
        f' fill="{fill}" stroke="{dark}" stroke-width="5" stroke-linejoin="round"/>'
        f'<rect x="112" y="302" width="232" height="20" rx="6" fill="{dark}"/>'
        f'<rect x="150" y="{shaft - 14}" width="18" height="22" rx="4" fill="{dark}"/>' + laces
    )


def _bag(fill: str, dark: str, light: str, variation: int) -> str:
    width = 200 + (variation % 3) * 30
    left = 200 - width // 2
    return (
        f'<path d="M{left + 50} 170 Q{left + 50} 92 200 92 Q{left + width - 50} 92 {left + width - 50} 170"'
        f' fill="none" stroke="{dark}" stroke-width="13" stroke-linecap="round"/>'
        f'<rect x="{left}" y="160" width="{width}" height="160" rx="20" fill="{fill}" stroke="{dark}"'
        ' stroke-width="5"/>'
        f'<path d="M{left} 185 Q200 250 {left + width} 185 L{left + width} 180 Q{left + width} 160'
        f' {left + width - 20} 160 L{left + 20} 160 Q{left} 160 {left} 180 Z"'
        f' fill="{mix(fill, "#000000", 0.18)}"/>'
        f'<rect x="186" y="212" width="28" height="22" rx="4" fill="{light}" stroke="{dark}"'
        ' stroke-width="3"/>'
    )


def _lamp(fill: str, dark: str, light: str, variation: int) -> str:
    shade_top = 120 - (variation % 3) * 12
    return (
        f'<circle cx="200" cy="230" r="120" fill="{light}" opacity="0.35"/>'
        f'<path d="M145 {shade_top} L255 {shade_top} L296 205 L104 205 Z" fill="{fill}" stroke="{dark}"'
        ' stroke-width="5" stroke-linejoin="round"/>'
        f'<rect x="193" y="205" width="14" height="88" fill="{dark}"/>'
        f'<ellipse cx="200" cy="300" rx="64" ry="15" fill="{mix(fill, "#000000", 0.25)}"/>'
    )


def _mug(fill: str, dark: str, light: str, variation: int) -> str:
    top = 150 + (variation % 2) * 20
    steam = "".join(
        f'<path d="M{x} {top - 20} q-12 -20 0 -40 q12 -20 0 -40" fill="none" stroke="{dark}" stroke-width="5"'
        ' stroke-linecap="round" opacity="0.45"/>'
        for x in (165, 200, 235)
    )
    return (
        steam + f'<path d="M258 {top + 30} Q322 {top + 30} 320 {top + 85} Q318 {top + 135} 252 {top + 130}"'
        f' fill="none" stroke="{dark}" stroke-width="16"/>'
        f'<path d="M118 {top} L262 {top} L256 300 Q252 322 230 322 L150 322 Q128 322 124 300 Z"'
        f' fill="{fill}" stroke="{dark}" stroke-width="5" stroke-linejoin="round"/>'
        f'<rect x="118" y="{top}" width="144" height="14" fill="{light}" opacity="0.7"/>'
    )


DRAWINGS: Final[dict[str, Drawing]] = {
    "outerwear": _jacket,
    "knitwear": _sweater,
    "footwear": _boot,
    "bags": _bag,
    "home": _lamp,
    "kitchen": _mug,
}


@functools.lru_cache(maxsize=512)
def product_svg(category_id: str, variation: int, colour: str, label: str) -> str:
    """A 400x400 picture of a product of ``category_id`` in ``colour``; ``label`` is its alt text."""
    drawing = DRAWINGS.get(category_id, _bag)
    dark = mix(colour, "#000000", 0.45)
    light = mix(colour, "#ffffff", 0.6 if _luminance(colour) < 0.6 else 0.2)
    background = mix(colour, "#ffffff", 0.86)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400" role="img">'
        f"<title>{escape(label)}</title>"
        f'<rect width="400" height="400" fill="{background}"/>'
        f'<ellipse cx="200" cy="338" rx="130" ry="14" fill="{dark}" opacity="0.12"/>'
        f"{drawing(colour, dark, light, variation)}</svg>"
    )


_FONT = "font-family=\"'Avenir Next', 'Segoe UI', system-ui, sans-serif\""


@functools.lru_cache(maxsize=64)
def banner_svg(category_id: str, title: str, tagline: str, colour: str, *, sub: bool = False) -> str:
    """A banner for ``category_id``: 1200x600 (main) or 600x300 (sub)."""
    width, height = (600, 300) if sub else (1200, 600)
    deep = mix(colour, "#000000", 0.35)
    glow = mix(colour, "#ffffff", 0.25)
    drawing = DRAWINGS.get(category_id, _bag)
    scale = 0.42 if sub else 1.2
    icon_x = width - 400 * scale - (14 if sub else 60)
    icon_y = (height - 400 * scale) / 2
    title_size, tagline_size = (32, 17) if sub else (80, 30)
    left = 36 if sub else 80
    baseline = height / 2 - (10 if sub else 20)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img"><title>{escape(title)}</title>'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{colour}"/>'
        f'<stop offset="1" stop-color="{deep}"/></linearGradient></defs>'
        f'<rect width="{width}" height="{height}" fill="url(#g)"/>'
        f'<circle cx="{width * 0.78:.0f}" cy="{height * 0.5:.0f}" r="{height * 0.62:.0f}" fill="{glow}"'
        ' opacity="0.35"/>'
        f'<circle cx="{width * 0.05:.0f}" cy="{height:.0f}" r="{height * 0.45:.0f}" fill="#ffffff"'
        ' opacity="0.06"/>'
        f'<g transform="translate({icon_x:.0f} {icon_y:.0f}) scale({scale})">'
        f"{drawing(mix(colour, '#ffffff', 0.55), deep, '#ffffff', 0)}</g>"
        f'<text x="{left}" y="{baseline:.0f}" fill="#ffffff" font-size="{title_size}" font-weight="700"'
        f" {_FONT}>{escape(title)}</text>"
        f'<text x="{left}" y="{baseline + tagline_size * 1.7:.0f}" fill="#ffffff" opacity="0.9"'
        f' font-size="{tagline_size}" {_FONT}>{escape(tagline)}</text>'
        f'<rect x="{left}" y="{baseline + tagline_size * 2.7:.0f}" width="{160 if sub else 190}"'
        f' height="{40 if sub else 50}" rx="{20 if sub else 25}" fill="#ffffff"/>'
        f'<text x="{left + (80 if sub else 95)}"'
        f' y="{baseline + tagline_size * 2.7 + (26 if sub else 32):.0f}"'
        f' fill="{deep}" font-size="{16 if sub else 20}" font-weight="700" text-anchor="middle"'
        f" {_FONT}>Shop now \u2192</text></svg>"
    )


@functools.lru_cache(maxsize=4)
def static_banner_svg(title: str, tagline: str) -> str:
    """The shop's own, non-personalised banner: a 600x300 card."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 300" width="600" height="300" role="img">'
        f"<title>{escape(title)}</title>"
        '<rect width="600" height="300" fill="#f3ede2"/>'
        '<path d="M0 230 Q150 180 300 230 T600 230 V300 H0 Z" fill="#e2d6c1"/>'
        '<circle cx="510" cy="80" r="40" fill="#d1a13a" opacity="0.8"/>'
        f'<text x="36" y="120" fill="#2b2b2b" font-size="36" font-weight="700" {_FONT}>{escape(title)}</text>'
        f'<text x="36" y="160" fill="#4a4a4a" font-size="18" {_FONT}>{escape(tagline)}</text>'
        "</svg>"
    )

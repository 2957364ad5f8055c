"""Product pictures and banners, drawn as SVG: the demo downloads no images and ships no binaries.

Each product is drawn as what it is: its kind (``Product.kind``, from the seed
data: "parka", "sneaker", "saucepan"...) names one of :data:`DRAWINGS`, a
simple illustration in the variant's colour on a tinted background. Banners are
wide cards in the category's colour with its name, its tagline and a drawing of
the category's best-known kind. Every function is pure: the same arguments give
the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final
from xml.sax.saxutils import escape

__all__ = ["CATEGORY_KINDS", "DRAWINGS", "banner_svg", "product_svg", "static_banner_svg"]


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


# Each drawing takes (fill, dark, light) and returns SVG elements in a 400x400 box, standing on
# the floor shadow at y=338.
Drawing = Callable[[str, str, str], str]

#: Colours that are a material's own, whatever the product's colour.
WOOD: Final = "#b8875a"
FLAME: Final = "#f2b33d"
STEEL: Final = "#9aa3ab"
GLASS: Final = "#dfeef5"


def _stroke(colour: str, width: float = 5) -> str:
    return f'stroke="{colour}" stroke-width="{width}" stroke-linejoin="round" stroke-linecap="round"'


def _buttons(x: float, ys: tuple[int, ...], colour: str, radius: int = 6) -> str:
    return "".join(f'<circle cx="{x}" cy="{y}" r="{radius}" fill="{colour}"/>' for y in ys)


def _pocket(x: int, y: int, width: int, height: int, dark: str, flap: bool = False) -> str:
    shape = f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="5" fill="none" {_stroke(dark, 4)}/>'
    if flap:
        shape += f'<path d="M{x} {y} h{width} v10 l-{width // 2} 8 l-{width // 2} -8 Z" fill="{dark}"/>'
    return shape


# -- coats ------------------------------------------------------------------------------------


def _coat(fill: str, dark: str, hem: int, *, sleeves: bool = True) -> str:
    """A coat's body from the front: shoulders at y=100, its hem at ``hem``."""
    if sleeves:
        outline = (
            f"M150 100 L200 122 L250 100 L302 126 L342 252 L310 264 L286 188 L286 {hem} L114 {hem}"
            " L114 188 L90 264 L58 252 L98 126 Z"
        )
    else:
        outline = (
            f"M150 100 L200 122 L250 100 L292 116 Q300 160 286 196 L286 {hem} L114 {hem} L114 196"
            " Q100 160 108 116 Z"
        )
    return f'<path d="{outline}" fill="{fill}" {_stroke(dark)}/>'


def _hood(colour: str, dark: str, trim: str | None = None) -> str:
    hood = (
        '<path d="M142 106 Q138 40 200 36 Q262 40 258 106 Q230 84 200 84 Q170 84 142 106 Z"'
        f' fill="{colour}" {_stroke(dark)}/>'
    )
    if trim is not None:  # a fur trim round the face
        hood += (
            f'<path d="M150 100 Q150 52 200 50 Q250 52 250 100" fill="none" stroke="{trim}"'
            ' stroke-width="12" stroke-dasharray="2 5" stroke-linecap="round"/>'
        )
    return hood


def _zip(top: int, hem: int, light: str) -> str:
    return (
        f'<line x1="200" y1="{top}" x2="200" y2="{hem}" stroke="{light}" stroke-width="5"'
        ' stroke-dasharray="3 6"/>'
    )


def _quilting(top: int, hem: int, light: str, left: int = 118, right: int = 282) -> str:
    return "".join(
        f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="{light}" stroke-width="3"'
        f' stroke-dasharray="7 5"/>'
        for y in range(top, hem - 10, 28)
    )


def _parka(fill: str, dark: str, light: str) -> str:
    return (
        _hood(mix(fill, "#000000", 0.2), dark, trim=light)
        + _coat(fill, dark, 330)
        + _zip(124, 330, light)
        + f'<path d="M114 232 Q200 246 286 232" fill="none" {_stroke(dark, 3)}/>'
        + _buttons(186, (244,), light, 5)
        + _buttons(214, (244,), light, 5)
        + _pocket(130, 262, 50, 44, dark, flap=True)
        + _pocket(220, 262, 50, 44, dark, flap=True)
    )


def _raincoat(fill: str, dark: str, light: str) -> str:
    return (
        _hood(fill, dark)
        + _coat(fill, dark, 346)
        + f'<path d="M168 128 L200 170 L232 128" fill="none" {_stroke(dark, 4)}/>'
        + _buttons(180, (190, 226, 262, 298), dark)
        + _buttons(220, (190, 226, 262, 298), dark)
        + f'<rect x="114" y="236" width="172" height="16" fill="{mix(fill, "#000000", 0.25)}"/>'
        + f'<rect x="190" y="232" width="20" height="24" rx="3" fill="none" {_stroke(light, 3)}/>'
    )


def _quilted_jacket(fill: str, dark: str, light: str) -> str:
    return (
        _coat(fill, dark, 282)
        + _quilting(146, 282, light)
        + f'<path d="M160 106 Q200 130 240 106" fill="none" {_stroke(dark, 9)}/>'
        + _buttons(200, (150, 186, 222, 258), dark, 5)
    )


def _overcoat(fill: str, dark: str, light: str) -> str:
    lapels = (
        '<path d="M150 100 L200 214 L178 132 L196 124 Z M250 100 L200 214 L222 132 L204 124 Z"'
        f' fill="{mix(fill, "#000000", 0.22)}" {_stroke(dark, 3)}/>'
    )
    return (
        _coat(fill, dark, 350)
        + lapels
        + _buttons(214, (240, 280), dark, 7)
        + f'<line x1="238" y1="150" x2="268" y2="146" {_stroke(dark, 4)}/>'
        + f'<line x1="126" y1="290" x2="168" y2="290" {_stroke(dark, 4)}/>'
        + f'<line x1="232" y1="290" x2="274" y2="290" {_stroke(dark, 4)}/>'
    )


def _field_jacket(fill: str, dark: str, light: str) -> str:
    return (
        _coat(fill, dark, 296)
        + f'<path d="M150 100 L176 142 L200 122 L224 142 L250 100" fill="{mix(fill, "#000000", 0.2)}"'
        f" {_stroke(dark, 4)}/>"
        + _buttons(200, (158, 194, 230, 266), dark, 5)
        + _pocket(128, 150, 48, 40, dark, flap=True)
        + _pocket(224, 150, 48, 40, dark, flap=True)
        + _pocket(124, 226, 56, 50, dark, flap=True)
        + _pocket(220, 226, 56, 50, dark, flap=True)
    )


def _shell_jacket(fill: str, dark: str, light: str) -> str:
    return (
        _hood(fill, dark)
        + _coat(fill, dark, 288)
        + f'<path d="M104 140 L150 100 L200 122 L250 100 L296 140 L286 170 L114 170 Z" fill="{light}"'
        f' opacity="0.55"/>'
        + _zip(124, 288, dark)
        + f'<line x1="222" y1="196" x2="262" y2="180" {_stroke(dark, 4)}/>'
    )


def _gilet(fill: str, dark: str, light: str) -> str:
    return (
        _coat(fill, dark, 284, sleeves=False)
        + _quilting(140, 284, light, left=116, right=284)
        + f'<rect x="168" y="86" width="64" height="26" rx="8" fill="{mix(fill, "#000000", 0.2)}"'
        f" {_stroke(dark, 4)}/>" + _zip(112, 284, dark)
    )


def _chore_coat(fill: str, dark: str, light: str) -> str:
    return (
        _coat(fill, dark, 306)
        + f'<path d="M150 100 L170 150 L200 124 L230 150 L250 100" fill="{fill}" {_stroke(dark, 4)}/>'
        + _buttons(200, (162, 198, 234, 270), light, 6)
        + _pocket(130, 160, 44, 44, dark)
        + _pocket(124, 232, 56, 52, dark)
        + _pocket(220, 232, 56, 52, dark)
    )


# -- knitwear ---------------------------------------------------------------------------------


def _knit(fill: str, dark: str, *, neck: str = "crew") -> str:
    """A sweater's body, ribbed hem and cuffs; ``neck``: crew, v or none (the caller draws it)."""
    body = (
        "M145 105 Q200 140 255 105 L306 126 L346 252 L315 264 L284 188 L284 300 L116 300 L116 188"
        " L85 264 L54 252 L94 126 Z"
    )
    ribs = "".join(
        f'<line x1="{x}" y1="284" x2="{x}" y2="300" stroke="{dark}" stroke-width="3"/>'
        for x in range(128, 280, 12)
    )
    shade = mix(fill, "#000000", 0.15)
    drawn = (
        f'<path d="{body}" fill="{fill}" {_stroke(dark)}/>'
        f'<rect x="116" y="282" width="168" height="20" fill="{shade}"/>{ribs}'
        f'<path d="M315 264 L346 252 L340 236 L309 248 Z M85 264 L54 252 L60 236 L91 248 Z" fill="{shade}"/>'
    )
    if neck == "crew":
        drawn += f'<path d="M145 105 Q200 140 255 105" fill="none" stroke="{dark}" stroke-width="10"/>'
    elif neck == "v":
        drawn += (
            f'<path d="M150 104 L200 172 L250 104" fill="none" stroke="{dark}" stroke-width="10"'
            ' stroke-linejoin="miter"/>'
        )
    return drawn


def _crew_sweater(fill: str, dark: str, light: str) -> str:
    return _knit(fill, dark) + "".join(
        f'<path d="M{x} 150 v120" stroke="{light}" stroke-width="3" opacity="0.6"/>' for x in (160, 200, 240)
    )


def _cardigan(fill: str, dark: str, light: str) -> str:
    return (
        _knit(fill, dark, neck="v")
        + f'<line x1="200" y1="170" x2="200" y2="300" {_stroke(dark, 5)}/>'
        + _buttons(212, (188, 216, 244, 272), light, 6)
        + "".join(
            f'<path d="M{x} 160 l10 10 l-10 10 l10 10 l-10 10" fill="none" {_stroke(light, 3)}/>'
            for x in (150, 240)
        )
    )


def _roll_neck(fill: str, dark: str, light: str) -> str:
    collar = (
        f'<rect x="156" y="58" width="88" height="58" rx="14" fill="{mix(fill, "#000000", 0.12)}"'
        f" {_stroke(dark)}/>"
        + "".join(
            f'<line x1="{x}" y1="64" x2="{x}" y2="110" stroke="{dark}" stroke-width="3"/>'
            for x in range(170, 236, 12)
        )
    )
    return _knit(fill, dark, neck="none") + collar


def _v_neck(fill: str, dark: str, light: str) -> str:
    return (
        _knit(fill, dark, neck="v")
        + f'<path d="M160 112 L200 164 L240 112" fill="none" stroke="{light}" stroke-width="3"/>'
    )


def _hoodie(fill: str, dark: str, light: str) -> str:
    return (
        _hood(mix(fill, "#000000", 0.15), dark)
        + _knit(fill, dark, neck="crew")
        + f'<path d="M146 226 L254 226 L270 282 L130 282 Z" fill="none" {_stroke(dark, 4)}/>'
        + f'<line x1="186" y1="124" x2="182" y2="170" {_stroke(light, 4)}/>'
        + f'<line x1="214" y1="124" x2="218" y2="170" {_stroke(light, 4)}/>'
    )


def _mock_neck(fill: str, dark: str, light: str) -> str:
    return (
        _knit(fill, dark, neck="none")
        + f'<rect x="160" y="86" width="80" height="32" rx="10" fill="{mix(fill, "#000000", 0.12)}"'
        f" {_stroke(dark)}/>"
        + "".join(
            f'<line x1="{x}" y1="150" x2="{x}" y2="280" stroke="{dark}" stroke-width="2" opacity="0.5"/>'
            for x in range(132, 280, 16)
        )
    )


def _breton_sweater(fill: str, dark: str, light: str) -> str:
    stripes = "".join(
        f'<rect x="117" y="{y}" width="166" height="10" fill="{light}" opacity="0.95"/>'
        for y in range(158, 280, 24)
    )
    sleeves = "".join(
        f'<path d="M{x1} {y} L{x2} {y - 8}" stroke="{light}" stroke-width="8"/>'
        for y in (180, 210)
        for x1, x2 in (
            (300 + (y - 180) // 3, 320 + (y - 180) // 3),
            (100 - (y - 180) // 3, 80 - (y - 180) // 3),
        )
    )
    return _knit(fill, dark) + stripes + sleeves


def _fair_isle(fill: str, dark: str, light: str) -> str:
    band = f'<path d="M112 150 L288 150 L290 196 L110 196 Z" fill="{light}" opacity="0.9"/>'
    diamonds = "".join(
        f'<path d="M{x} 156 l10 17 l-10 17 l-10 -17 Z" fill="{dark}"/>' for x in range(128, 280, 24)
    )
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="3" fill="{light}"/>' for x in range(136, 270, 24) for y in (222, 250)
    )
    return _knit(fill, dark) + band + diamonds + dots


# -- footwear (side views, the toe to the right) ------------------------------------------------


def _sole(dark: str, *, top: int = 300, height: int = 22, colour: str | None = None) -> str:
    return f'<rect x="110" y="{top}" width="236" height="{height}" rx="7" fill="{colour or dark}"/>'


def _boot(fill: str, dark: str, shaft: int) -> str:
    return (
        f'<path d="M136 {shaft} L222 {shaft} L226 226 Q302 230 334 270 L338 302 L116 302 L122 250 Z"'
        f' fill="{fill}" {_stroke(dark)}/>'
    )


def _shoe(fill: str, dark: str, top: int = 214) -> str:
    return (
        f'<path d="M124 {top} Q170 {top - 14} 214 {top - 4} Q300 {top + 20} 336 268 L340 302 L116 302 L118'
        f' {top + 30} Z"'
        f' fill="{fill}" {_stroke(dark)}/>'
    )


def _laces(light: str, x: int, y: int, count: int, step: int = 22) -> str:
    return "".join(
        f'<line x1="{x + i * 10}" y1="{y + i * step}" x2="{x + 34 + i * 10}" y2="{y - 6 + i * step}"'
        f" {_stroke(light, 5)}/>"
        for i in range(count)
    )


def _chelsea_boot(fill: str, dark: str, light: str) -> str:
    return (
        _boot(fill, dark, 104) + f'<path d="M150 120 Q180 170 210 120 L214 214 Q180 236 148 214 Z"'
        f' fill="{mix(fill, "#000000", 0.35)}"/>'
        + "".join(
            f'<line x1="{x}" y1="136" x2="{x}" y2="214" stroke="{light}" stroke-width="2" opacity="0.5"/>'
            for x in range(158, 206, 8)
        )
        + f'<rect x="128" y="84" width="18" height="30" rx="5" fill="{dark}"/>'
        + _sole(dark, height=18)
        + f'<rect x="116" y="296" width="50" height="26" rx="4" fill="{dark}"/>'
    )


def _running_shoe(fill: str, dark: str, light: str) -> str:
    return (
        _shoe(fill, dark, 206)
        + f'<path d="M112 286 Q180 300 240 290 Q300 282 346 292 L346 318 Q230 330 112 318 Z" fill="{light}"'
        f" {_stroke(dark, 3)}/>"
        + f'<path d="M140 264 Q210 236 300 262" fill="none" stroke="{light}" stroke-width="9"'
        f' stroke-linecap="round"/>'
        + _laces(light, 196, 210, 3, 14)
        + f'<path d="M118 214 Q110 196 126 190" fill="none" {_stroke(dark, 6)}/>'
    )


def _sneaker(fill: str, dark: str, light: str) -> str:
    return (
        _shoe(fill, dark, 214)
        + f'<path d="M276 250 Q320 258 336 276 L338 300 L276 300 Z" fill="{light}" {_stroke(dark, 3)}/>'
        + f'<rect x="110" y="294" width="236" height="24" rx="6" fill="#f4f1ea" {_stroke(dark, 3)}/>'
        + f'<line x1="116" y1="306" x2="340" y2="306" stroke="{dark}" stroke-width="3"/>'
        + _laces(light, 190, 214, 4, 14)
    )


def _desert_boot(fill: str, dark: str, light: str) -> str:
    return (
        _boot(fill, dark, 150)
        + f'<path d="M224 226 Q250 214 232 170" fill="none" {_stroke(dark, 4)}/>'
        + _buttons(214, (178, 204), dark, 5)
        + _laces(light, 204, 178, 2, 26)
        + _sole(dark, top=298, height=24, colour="#d9b98c")
    )


def _hiking_boot(fill: str, dark: str, light: str) -> str:
    teeth = "".join(f'<path d="M{x} 320 l8 10 l8 -10 Z" fill="{dark}"/>' for x in range(114, 338, 18))
    return (
        _boot(fill, dark, 118) + f'<path d="M130 118 Q178 96 228 118 L226 140 Q180 124 132 140 Z"'
        f' fill="{mix(fill, "#000000", 0.3)}"/>'
        + f'<path d="M262 240 Q320 244 338 278 L338 300 L262 300 Z" fill="{mix(fill, "#000000", 0.3)}"/>'
        + _laces(light, 182, 150, 5, 20)
        + _buttons(218, (150, 170, 190, 210, 230), dark, 4)
        + _sole(dark, height=22)
        + teeth
    )


def _slipper(fill: str, dark: str, light: str) -> str:
    trim = "".join(
        f'<circle cx="{x}" cy="{218 + abs(x - 170) // 6}" r="11" fill="{light}"/>'
        for x in range(128, 236, 14)
    )
    return (
        f'<path d="M120 232 Q170 210 230 222 Q310 240 338 282 L336 306 L116 306 Z" fill="{fill}"'
        f" {_stroke(dark)}/>" + trim + f'<rect x="112" y="300" width="232" height="12" rx="6" fill="{dark}"/>'
    )


def _loafer(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M122 236 Q160 222 196 226 Q290 236 334 272 L338 302 L116 302 Z" fill="{fill}"'
        f" {_stroke(dark)}/>" + f'<path d="M198 228 Q254 226 300 252 L292 268 Q250 246 206 248 Z"'
        f' fill="{mix(fill, "#000000", 0.3)}"/>'
        + f'<rect x="236" y="242" width="28" height="8" rx="4" fill="{light}"/>'
        + _sole(dark, height=16)
        + f'<rect x="118" y="300" width="44" height="24" rx="3" fill="{dark}"/>'
    )


def _rain_boot(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M140 50 L226 50 L228 226 Q300 230 334 270 L338 302 L116 302 L124 250 Z" fill="{fill}"'
        f" {_stroke(dark)}/>"
        + f'<rect x="134" y="44" width="98" height="22" rx="6" fill="{mix(fill, "#000000", 0.25)}"'
        f" {_stroke(dark, 4)}/>"
        + f'<path d="M156 80 L156 230" stroke="{light}" stroke-width="9" stroke-linecap="round"'
        f' opacity="0.7"/>' + _sole(dark, height=22)
    )


# -- bags -------------------------------------------------------------------------------------


def _backpack(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M120 132 Q120 96 200 94 Q280 96 280 132 L288 322 Q200 334 112 322 Z" fill="{fill}"'
        f" {_stroke(dark)}/>"
        + f'<path d="M184 94 Q184 66 200 66 Q216 66 216 94" fill="none" {_stroke(dark, 8)}/>'
        + f'<path d="M124 136 Q200 110 276 136 L274 200 Q200 214 126 200 Z"'
        f' fill="{mix(fill, "#000000", 0.2)}" {_stroke(dark, 4)}/>'
        + f'<rect x="190" y="194" width="20" height="36" rx="4" fill="{light}" {_stroke(dark, 3)}/>'
        + f'<rect x="142" y="242" width="116" height="68" rx="14" fill="none" {_stroke(dark, 4)}/>'
        + f'<path d="M112 150 Q92 220 112 300 M288 150 Q308 220 288 300" fill="none" {_stroke(dark, 10)}/>'
    )


def _tote(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M140 178 Q140 70 200 70 Q260 70 260 178" fill="none" {_stroke(dark, 10)}/>'
        + f'<path d="M158 178 Q160 96 200 96 Q240 96 242 178" fill="none"'
        f" {_stroke(mix(fill, '#000000', 0.2), 8)}/>"
        + f'<path d="M112 170 L288 170 L300 326 L100 326 Z" fill="{fill}" {_stroke(dark)}/>'
        + f'<line x1="112" y1="190" x2="288" y2="190" {_stroke(light, 3)}/>'
    )


def _duffel(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M70 200 Q200 40 330 200" fill="none" {_stroke(dark, 6)}/>'
        + f'<rect x="70" y="178" width="260" height="136" rx="66" fill="{fill}" {_stroke(dark)}/>'
        + f'<ellipse cx="96" cy="246" rx="22" ry="60" fill="{mix(fill, "#000000", 0.2)}" {_stroke(dark, 4)}/>'
        + f'<ellipse cx="304" cy="246" rx="22" ry="60" fill="{mix(fill, "#000000", 0.2)}"'
        f" {_stroke(dark, 4)}/>"
        + f'<line x1="120" y1="190" x2="280" y2="190" stroke="{light}" stroke-width="4"'
        ' stroke-dasharray="4 4"/>' + f'<path d="M160 182 Q200 140 240 182" fill="none" {_stroke(dark, 10)}/>'
    )


def _messenger(fill: str, dark: str, light: str) -> str:
    roll = "".join(f'<line x1="118" y1="{y}" x2="282" y2="{y}" {_stroke(dark, 3)}/>' for y in (118, 132))
    straps = "".join(
        f'<rect x="{x}" y="110" width="18" height="150" fill="{mix(fill, "#000000", 0.3)}"/>'
        f'<rect x="{x - 4}" y="246" width="26" height="22" rx="3" fill="none" {_stroke(light, 4)}/>'
        for x in (150, 232)
    )
    return (
        f'<path d="M110 150 L60 90" {_stroke(dark, 10)}/><path d="M290 150 L340 90" {_stroke(dark, 10)}/>'
        + f'<rect x="110" y="140" width="180" height="184" rx="12" fill="{fill}" {_stroke(dark)}/>'
        + f'<rect x="112" y="102" width="176" height="44" rx="20" fill="{mix(fill, "#000000", 0.15)}"'
        f" {_stroke(dark)}/>" + roll + straps
    )


def _pouch(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M150 214 L200 60 L250 214" fill="none" {_stroke(dark, 5)}/>'
        + f'<rect x="126" y="206" width="148" height="108" rx="22" fill="{fill}" {_stroke(dark)}/>'
        + f'<line x1="142" y1="228" x2="258" y2="228" stroke="{light}" stroke-width="4"'
        ' stroke-dasharray="4 3"/>' + f'<circle cx="256" cy="228" r="7" fill="{light}" {_stroke(dark, 3)}/>'
    )


def _laptop_sleeve(fill: str, dark: str, light: str) -> str:
    return (
        f'<rect x="70" y="144" width="260" height="172" rx="18" fill="{fill}" {_stroke(dark)}/>'
        + f'<rect x="84" y="158" width="232" height="144" rx="12" fill="none" stroke="{light}"'
        f' stroke-width="3"/>'
        + f'<path d="M200 144 L312 144 Q330 144 330 162 L330 240" fill="none" stroke="{dark}"'
        f' stroke-width="6" stroke-dasharray="5 3"/>'
        + f'<rect x="322" y="236" width="16" height="26" rx="4" fill="{light}" {_stroke(dark, 3)}/>'
    )


def _basket(fill: str, dark: str, light: str) -> str:
    weave = "".join(
        f'<line x1="{104 + (y - 180) * 30 // 140}" y1="{y}" x2="{296 - (y - 180) * 30 // 140}" y2="{y}"'
        f" {_stroke(dark, 3)}/>"
        for y in range(200, 320, 20)
    )
    staves = "".join(
        f'<line x1="{x}" y1="180" x2="{x + (200 - x) * 30 // 100}" y2="320" {_stroke(light, 4)}/>'
        for x in range(120, 290, 24)
    )
    return (
        f'<path d="M110 184 Q200 30 290 184" fill="none" {_stroke(WOOD, 12)}/>'
        + f'<path d="M100 180 L300 180 L270 322 L130 322 Z" fill="{fill}" {_stroke(dark)}/>'
        + staves
        + weave
        + f'<rect x="96" y="172" width="208" height="16" rx="8" fill="{mix(fill, "#000000", 0.25)}"/>'
    )


def _hip_pack(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M40 236 L360 236" {_stroke(dark, 14)}/>'
        + f'<rect x="330" y="226" width="26" height="22" rx="4" fill="{light}" {_stroke(dark, 3)}/>'
        + f'<path d="M110 240 Q112 176 200 172 Q288 176 290 240 Q286 300 200 304 Q114 300 110 240 Z"'
        f' fill="{fill}" {_stroke(dark)}/>'
        + f'<path d="M126 212 Q200 190 274 212" fill="none" stroke="{light}" stroke-width="4"'
        ' stroke-dasharray="4 3"/>' + f'<path d="M150 262 Q200 276 250 262" fill="none" {_stroke(dark, 4)}/>'
    )


# -- home -------------------------------------------------------------------------------------


def _lamp(fill: str, dark: str, light: str) -> str:
    return (
        f'<circle cx="200" cy="230" r="120" fill="{light}" opacity="0.35"/>'
        f'<path d="M145 110 L255 110 L296 205 L104 205 Z" fill="{fill}" {_stroke(dark)}/>'
        f'<path d="M176 300 Q150 260 182 226 L182 205 L218 205 L218 226 Q250 260 224 300 Z"'
        f' fill="{mix(fill, "#000000", 0.25)}"/>'
        f'<ellipse cx="200" cy="304" rx="60" ry="14" fill="{dark}"/>'
    )


def _cushion(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M100 100 Q200 124 300 100 Q276 200 300 300 Q200 276 100 300 Q124 200 100 100 Z"'
        f' fill="{fill}" {_stroke(dark)}/>'
        + f'<path d="M112 112 Q200 134 288 112 Q266 200 288 288 Q200 266 112 288 Q134 200 112 112 Z"'
        f' fill="none" stroke="{light}" stroke-width="3" stroke-dasharray="6 5"/>'
        + f'<circle cx="200" cy="200" r="9" fill="{dark}"/>'
        + f'<path d="M170 172 Q200 200 230 172 M170 228 Q200 200 230 228" fill="none" stroke="{dark}"'
        f' stroke-width="2" opacity="0.5"/>'
    )


def _throw(fill: str, dark: str, light: str) -> str:
    fringe = "".join(
        f'<line x1="{x}" y1="300" x2="{x}" y2="322" {_stroke(dark, 3)}/>' for x in range(104, 300, 10)
    )
    return (
        f'<rect x="96" y="236" width="208" height="66" rx="14" fill="{mix(fill, "#000000", 0.12)}"'
        f" {_stroke(dark)}/>"
        + f'<rect x="84" y="170" width="232" height="70" rx="14" fill="{fill}" {_stroke(dark)}/>'
        + f'<rect x="96" y="120" width="208" height="54" rx="14" fill="{fill}" {_stroke(dark)}/>'
        + "".join(
            f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + h}" stroke="{light}" stroke-width="6"/>'
            for x in (150, 250)
            for y, h in ((124, 46), (174, 62), (240, 58))
        )
        + fringe
    )


def _candle(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M200 100 Q222 132 208 152 Q200 160 192 152 Q178 132 200 100 Z" fill="{FLAME}"/>'
        + f'<line x1="200" y1="150" x2="200" y2="176" {_stroke(dark, 4)}/>'
        + f'<rect x="136" y="170" width="128" height="152" rx="16" fill="{GLASS}" opacity="0.9"'
        f" {_stroke(dark, 4)}/>"
        + f'<rect x="142" y="190" width="116" height="126" rx="12" fill="{fill}"/>'
        + f'<rect x="150" y="236" width="100" height="44" rx="4" fill="{light}" {_stroke(dark, 2)}/>'
    )


def _frame(fill: str, dark: str, light: str) -> str:
    return (
        f'<line x1="200" y1="60" x2="150" y2="96" {_stroke(dark, 3)}/><line x1="200" y1="60" x2="250"'
        f' y2="96" {_stroke(dark, 3)}/>'
        + f'<rect x="100" y="92" width="200" height="236" rx="4" fill="{fill}" {_stroke(dark)}/>'
        + '<rect x="126" y="118" width="148" height="184" fill="#faf7f0"/>'
        + f'<rect x="142" y="134" width="116" height="152" fill="{light}"/>'
        + f'<path d="M142 286 L186 214 L212 250 L232 226 L258 286 Z" fill="{dark}"/>'
        + f'<circle cx="232" cy="170" r="12" fill="{FLAME}"/>'
    )


def _doormat(fill: str, dark: str, light: str) -> str:
    hatching = "".join(
        f'<line x1="{x}" y1="238" x2="{x - 14}" y2="310" stroke="{dark}" stroke-width="2" opacity="0.35"/>'
        for x in range(100, 320, 9)
    )
    return (
        f'<path d="M96 228 L304 228 L348 318 L52 318 Z" fill="{fill}" {_stroke(dark)}/>'
        + hatching
        + f'<path d="M112 238 L288 238 L322 308 L78 308 Z" fill="none" stroke="{light}" stroke-width="6"/>'
    )


def _vase(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M196 150 Q170 90 140 70 M204 150 Q214 80 250 58 M200 150 Q196 90 196 60" fill="none"'
        f" {_stroke('#4f6b3a', 5)}/>"
        + '<ellipse cx="140" cy="68" rx="14" ry="8" fill="#6f8f4e"/><ellipse cx="252" cy="56" rx="14"'
        ' ry="8" fill="#6f8f4e"/>'
        + f'<path d="M176 140 L224 140 L220 176 Q282 214 270 276 Q258 326 200 326 Q142 326 130 276 Q118 214'
        f' 180 176 Z" fill="{fill}" {_stroke(dark)}/>'
        + f'<path d="M150 240 Q200 256 250 240" fill="none" stroke="{light}" stroke-width="5"/>'
        + f'<rect x="172" y="132" width="56" height="12" rx="5" fill="{mix(fill, "#000000", 0.2)}"/>'
    )


def _towel(fill: str, dark: str, light: str) -> str:
    band = "".join(
        f'<rect x="{x}" y="{y}" width="14" height="{h}" fill="{light}"/>'
        for x, y, h in ((260, 244, 62), (260, 184, 56))
    )
    return (
        f'<rect x="100" y="240" width="200" height="70" rx="16" fill="{fill}" {_stroke(dark)}/>'
        + f'<rect x="112" y="180" width="176" height="64" rx="16" fill="{mix(fill, "#ffffff", 0.2)}"'
        f" {_stroke(dark)}/>"
        + band
        + "".join(
            f'<line x1="{x}" y1="{y}" x2="{x}" y2="{y + 6}" stroke="{dark}" stroke-width="2" opacity="0.4"/>'
            for x in range(120, 250, 10)
            for y in (200, 262, 286)
        )
    )


# -- kitchen ----------------------------------------------------------------------------------


def _coffee_pot(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M130 180 Q92 200 110 260 Q122 292 140 296" fill="none" {_stroke(dark, 12)}/>'
        + f'<path d="M262 186 L316 142 L322 150 L274 222 Z" fill="{fill}" {_stroke(dark, 4)}/>'
        + f'<path d="M160 140 L240 140 L272 320 L128 320 Z" fill="{fill}" {_stroke(dark)}/>'
        + f'<path d="M156 140 Q200 96 244 140 Z" fill="{mix(fill, "#000000", 0.2)}" {_stroke(dark, 4)}/>'
        + f'<circle cx="200" cy="108" r="11" fill="{light}" {_stroke(dark, 3)}/>'
        + f'<rect x="130" y="300" width="140" height="20" fill="{light}" opacity="0.8"/>'
    )


def _mug(fill: str, dark: str, light: str, x: int, top: int, scale: float) -> str:
    width, height = 144 * scale, (322 - top)
    right = x + width
    return (
        f'<path d="M{right - 4} {top + 30} Q{right + 60 * scale} {top + 30} {right + 58 * scale}'
        f" {top + 80 * scale}"
        f' Q{right + 56 * scale} {top + 124 * scale} {right - 8} {top + 118 * scale}" fill="none"'
        f' stroke="{dark}"'
        f' stroke-width="{14 * scale:.0f}"/>'
        f'<path d="M{x} {top} L{right} {top} L{right - 6} {top + height - 22} Q{right - 10} 322'
        f" {right - 30} 322"
        f' L{x + 30} 322 Q{x + 10} 322 {x + 6} {top + height - 22} Z" fill="{fill}" {_stroke(dark)}/>'
        f'<rect x="{x}" y="{top}" width="{width:.0f}" height="12" fill="{light}" opacity="0.7"/>'
    )


def _mug_set(fill: str, dark: str, light: str) -> str:
    return _mug(mix(fill, "#ffffff", 0.35), dark, light, 70, 180, 0.8) + _mug(
        fill, dark, light, 180, 150, 1.0
    )


def _skillet(fill: str, dark: str, light: str) -> str:
    iron = "#2f3134"
    return (
        f'<path d="M280 238 L382 214 Q392 226 384 236 L286 262 Z" fill="{iron}"/>'
        + f'<circle cx="368" cy="226" r="5" fill="{light}"/>'
        + f'<ellipse cx="176" cy="250" rx="130" ry="62" fill="{iron}"/>'
        + '<ellipse cx="176" cy="244" rx="110" ry="46" fill="#4a4d52"/>'
        + f'<path d="M64 262 Q176 342 288 262 L288 276 Q176 356 64 276 Z" fill="{fill}" opacity="0.85"/>'
        + f'<path d="M120 226 Q150 214 180 218" fill="none" stroke="{light}" stroke-width="5"'
        f' stroke-linecap="round" opacity="0.6"/>'
    )


def _board(fill: str, dark: str, light: str) -> str:
    grain = "".join(
        f'<path d="M110 {y} Q170 {y - 14} 230 {y} T330 {y}" fill="none" stroke="#7a5634" stroke-width="2"'
        f' opacity="0.45"/>'
        for y in range(170, 300, 22)
    )
    return (
        f'<path d="M300 190 L352 190 Q372 190 372 212 L372 238 Q372 260 352 260 L300 260 Z" fill="{WOOD}"'
        f" {_stroke('#7a5634')}/>"
        + f'<circle cx="348" cy="225" r="10" fill="{mix(fill, "#ffffff", 0.86)}"/>'
        + f'<rect x="70" y="140" width="240" height="180" rx="34" fill="{WOOD}" {_stroke("#7a5634")}/>'
        + grain
        + f'<path d="M110 150 L170 150" stroke="{fill}" stroke-width="8" stroke-linecap="round"/>'
    )


def _tea_towels(fill: str, dark: str, light: str) -> str:
    def towel(x: int, colour: str) -> str:
        checks = "".join(
            f'<line x1="{x}" y1="{y}" x2="{x + 96}" y2="{y}" stroke="{light}" stroke-width="5"/>'
            for y in range(140, 320, 26)
        )
        checks += "".join(
            f'<line x1="{cx}" y1="110" x2="{cx}" y2="318" stroke="{light}" stroke-width="5"/>'
            for cx in range(x + 16, x + 96, 26)
        )
        return (
            f'<rect x="{x}" y="100" width="96" height="222" rx="6" fill="{colour}" {_stroke(dark)}/>{checks}'
        )

    return (
        f'<line x1="70" y1="100" x2="330" y2="100" {_stroke(STEEL, 10)}/>'
        + towel(96, mix(fill, "#ffffff", 0.3))
        + towel(208, fill)
    )


def _french_press(fill: str, dark: str, light: str) -> str:
    return (
        f'<line x1="200" y1="64" x2="200" y2="124" {_stroke(STEEL, 6)}/>'
        + f'<circle cx="200" cy="60" r="12" fill="{fill}" {_stroke(dark, 3)}/>'
        + f'<path d="M256 150 Q300 150 300 200 Q300 262 256 262" fill="none" {_stroke(fill, 14)}/>'
        + f'<rect x="144" y="124" width="112" height="190" rx="8" fill="{GLASS}" {_stroke(STEEL, 5)}/>'
        + '<rect x="148" y="210" width="104" height="100" rx="4" fill="#5b3b22"/>'
        + f'<rect x="140" y="116" width="120" height="18" rx="6" fill="{fill}" {_stroke(dark, 3)}/>'
        + f'<rect x="136" y="308" width="128" height="16" rx="4" fill="{fill}" {_stroke(dark, 3)}/>'
    )


def _pour_over(fill: str, dark: str, light: str) -> str:
    ridges = "".join(
        f'<line x1="{x}" y1="112" x2="{200 + (x - 200) * 6 // 10}" y2="176" stroke="{dark}"'
        f' stroke-width="2" opacity="0.5"/>'
        for x in range(150, 260, 20)
    )
    return (
        f'<path d="M150 186 Q128 250 150 300 Q160 324 200 324 Q240 324 250 300 Q272 250 250 186 Z"'
        f' fill="{GLASS}" {_stroke(dark, 4)}/>'
        + '<path d="M140 270 Q140 318 200 318 Q260 318 260 270 Z" fill="#5b3b22" opacity="0.85"/>'
        + f'<rect x="160" y="186" width="80" height="22" rx="4" fill="{WOOD}"/>'
        + f'<path d="M120 104 L280 104 L236 180 L164 180 Z" fill="{fill}" {_stroke(dark)}/>'
        + ridges
        + f'<path d="M278 116 Q312 122 300 150 L262 154" fill="none" {_stroke(dark, 6)}/>'
    )


def _saucepan(fill: str, dark: str, light: str) -> str:
    return (
        f'<path d="M284 204 L382 192 Q392 200 384 210 L286 226 Z" fill="{dark}"/>'
        + f'<rect x="100" y="196" width="188" height="118" rx="16" fill="{fill}" {_stroke(dark)}/>'
        + f'<rect x="94" y="188" width="200" height="18" rx="8" fill="{mix(fill, "#000000", 0.2)}"'
        f" {_stroke(dark, 4)}/>"
        + f'<path d="M110 188 Q194 140 278 188 Z" fill="{STEEL}" {_stroke(dark, 4)}/>'
        + f'<rect x="180" y="150" width="28" height="14" rx="6" fill="{dark}"/>'
        + f'<path d="M120 228 L120 290" stroke="{light}" stroke-width="8" stroke-linecap="round"'
        f' opacity="0.6"/>'
    )


#: Every kind of product the shop sells, by the name its seed data gives it.
DRAWINGS: Final[dict[str, Drawing]] = {
    "parka": _parka,
    "raincoat": _raincoat,
    "quilted-jacket": _quilted_jacket,
    "overcoat": _overcoat,
    "field-jacket": _field_jacket,
    "shell-jacket": _shell_jacket,
    "gilet": _gilet,
    "chore-coat": _chore_coat,
    "crew-sweater": _crew_sweater,
    "cardigan": _cardigan,
    "roll-neck": _roll_neck,
    "v-neck": _v_neck,
    "hoodie": _hoodie,
    "mock-neck": _mock_neck,
    "breton-sweater": _breton_sweater,
    "fair-isle": _fair_isle,
    "chelsea-boot": _chelsea_boot,
    "running-shoe": _running_shoe,
    "sneaker": _sneaker,
    "desert-boot": _desert_boot,
    "hiking-boot": _hiking_boot,
    "slipper": _slipper,
    "loafer": _loafer,
    "rain-boot": _rain_boot,
    "backpack": _backpack,
    "tote": _tote,
    "duffel": _duffel,
    "messenger": _messenger,
    "pouch": _pouch,
    "laptop-sleeve": _laptop_sleeve,
    "basket": _basket,
    "hip-pack": _hip_pack,
    "lamp": _lamp,
    "cushion": _cushion,
    "throw": _throw,
    "candle": _candle,
    "frame": _frame,
    "doormat": _doormat,
    "vase": _vase,
    "towel": _towel,
    "coffee-pot": _coffee_pot,
    "mug-set": _mug_set,
    "skillet": _skillet,
    "board": _board,
    "tea-towels": _tea_towels,
    "french-press": _french_press,
    "pour-over": _pour_over,
    "saucepan": _saucepan,
}

#: Each category's banner shows its best-known kind; a product of no known kind is drawn as it.
CATEGORY_KINDS: Final = {
    "outerwear": "parka",
    "knitwear": "crew-sweater",
    "footwear": "chelsea-boot",
    "bags": "backpack",
    "home": "lamp",
    "kitchen": "coffee-pot",
}
#: The drawing of last resort.
FALLBACK_KIND: Final = "tote"


def drawing_of(kind: str | None, category_id: str) -> tuple[str, Drawing]:
    """The kind drawn, and its drawing: ``kind``'s, else its category's best-known one."""
    for candidate in (kind, CATEGORY_KINDS.get(category_id), FALLBACK_KIND):
        if candidate in DRAWINGS:
            return candidate, DRAWINGS[candidate]
    raise AssertionError("unreachable: FALLBACK_KIND is drawn")


@functools.lru_cache(maxsize=512)
def product_svg(kind: str | None, category_id: str, colour: str, label: str) -> str:
    """A 400x400 picture of a product of ``kind`` (of ``category_id``) in ``colour``; ``label`` is its
    alt text. The root element names the kind drawn (``data-kind``)."""
    drawn, drawing = drawing_of(kind, category_id)
    dark = mix(colour, "#000000", 0.45)
    light = mix(colour, "#ffffff", 0.6 if _luminance(colour) < 0.6 else 0.2)
    background = mix(colour, "#ffffff", 0.86)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400" role="img"'
        f' data-kind="{drawn}"><title>{escape(label)}</title>'
        f'<rect width="400" height="400" fill="{background}"/>'
        f'<ellipse cx="200" cy="338" rx="130" ry="14" fill="{dark}" opacity="0.12"/>'
        f"{drawing(colour, dark, light)}</svg>"
    )


_FONT = "font-family=\"'Avenir Next', 'Segoe UI', system-ui, sans-serif\""


@functools.lru_cache(maxsize=64)
def banner_svg(category_id: str, title: str, tagline: str, colour: str, *, sub: bool = False) -> str:
    """A banner for ``category_id``: 1200x600 (main) or 600x300 (sub)."""
    width, height = (600, 300) if sub else (1200, 600)
    deep = mix(colour, "#000000", 0.35)
    glow = mix(colour, "#ffffff", 0.25)
    _, drawing = drawing_of(None, category_id)
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
        f"{drawing(mix(colour, '#ffffff', 0.55), deep, '#ffffff')}</g>"
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

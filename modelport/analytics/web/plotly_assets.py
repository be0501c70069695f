"""plotly.js from the installed ``plotly`` package, and the CSS it would otherwise inject.

plotly.js adds its style rules by creating ``<style>`` elements, which a CSP without
``'unsafe-inline'`` styles blocks. It skips that when the page already holds an element
with the id it would use (``plotly.js-style-global`` marked ``no-inline-styles``, and the
hashed id of its map styles), so the page carries those ids and the rules come from a
stylesheet instead: the same rules, read from the installed plotly.min.js, so that they
follow the package when it is upgraded.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.util import find_spec
from pathlib import Path

# Found, not imported: the page needs the package's JavaScript, not its Python (about 10 MB
# in every process that imports it).
PLOTLY_JS = Path(find_spec("plotly").origin).parent / "package_data" / "plotly.min.js"
GLOBAL_STYLE_ID = "plotly.js-style-global"
# plotly's build/plotcss.js, {"selector": "declarations", ...}: X and Y in a selector stand
# for the two prefixes below.
_RULES = re.compile(r'=\{("X,X div":.*?)\}[;,]')
_PAIR = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*:\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)
_INJECTED = re.compile(
    r'getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.createElement\("style"\);'
    r"\w+\.id=\"\1\",\w+\.textContent='((?:[^'\\]|\\.)*)'"
)


def _unquote(literal: str) -> str:
    return literal[1:-1].replace("\\'", "'").replace('\\"', '"')


@cache
def injected_styles() -> tuple[tuple[str, ...], str]:
    """The ids plotly.js checks before injecting styles, and the CSS it would inject."""
    source = PLOTLY_JS.read_text(encoding="utf-8")
    rules = []
    if match := _RULES.search(source):
        for selector, declarations in _PAIR.findall(match[1]):
            name = _unquote(selector).replace(",", ", ")
            name = name.replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
            rules.append(f"{name} {{{_unquote(declarations)}}}")
    # The map styles (maplibre) are left out: no chart here draws a map.
    ids = tuple(style_id for style_id, _text in _INJECTED.findall(source))
    return ids, "\n".join(rules) + "\n"

"""The review page as one static HTML file: inline CSS and script (nothing from the network, a
Content-Security-Policy that allows only those two by hash), the rows as one JSON blob the script
renders with ``textContent`` only. Nothing from a file name or a message is ever parsed as HTML."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from typing import Any

MARKER = "<!-- lucidflux-cli review page: written by lucidflux; `lucidflux review` rewrites it -->"

# In a <script type="application/json"> block only "</script" (and "<!--") could end or change
# the block; with < > & and the JavaScript line separators escaped, no file name can.
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def asset(name: str) -> str:
    return resources.files("lucidflux_cli.review").joinpath("static", name).read_text(encoding="utf-8")


def embedded_json(data: Any) -> str:
    """JSON text safe inside ``<script type="application/json">`` (non-finite numbers refused)."""
    # ASCII: a file name that is not UTF-8 (lone surrogates from the file system) stays representable
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render(data: dict[str, Any]) -> str:
    """The page for ``data`` (see :func:`lucidflux_cli.review.writer.page_data`)."""
    style, script = asset("review.css"), asset("review.js")
    policy = (
        f"default-src 'none'; img-src 'self' file: data:; style-src {_sha256(style)}; "
        f"script-src {_sha256(script)}; base-uri 'none'; form-action 'none'; connect-src 'none'"
    )
    title = html.escape(str(data.get("title", "Review")))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            MARKER,
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">',
            '<meta name="generator" content="lucidflux-cli review">',
            '<meta name="referrer" content="no-referrer">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title>",
            f"<style>{style}</style>",
            "</head><body>",
            "<noscript>This page draws its rows with JavaScript; "
            "the run report has the same data.</noscript>",
            f'<script id="review-data" type="application/json">{embedded_json(data)}</script>',
            f"<script>{script}</script>",
            "</body></html>",
            "",
        ]
    )

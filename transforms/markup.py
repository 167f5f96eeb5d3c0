"""HTML built with escaping by default: the one way the report writes markup.

``h(template, ...)`` is ``str.format`` where every argument is HTML-escaped unless it is already
``Markup`` (what ``h`` and ``join`` return). Templates are literals in the code; data (labels, frame
ids, shard names, messages, URIs) only ever enters as an argument, so a caller cannot forget to
escape it: a label spelled ``<script>`` prints as text.
"""
from __future__ import annotations

import html
import string
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """Text that is HTML already, inserted as it is."""

    __slots__ = ()


def escape(value: Any) -> Markup:
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


class _EscapingFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Markup):
            if format_spec:
                raise ValueError("markup takes no format spec")
            return value
        return html.escape(format(value, format_spec), quote=True)


_FORMATTER = _EscapingFormatter()


def h(template: str, /, *args: Any, **kwargs: Any) -> Markup:
    """``template.format(*args, **kwargs)``, every argument escaped unless it is Markup."""
    return Markup(_FORMATTER.vformat(template, args, kwargs))


def join(parts: Iterable[Any], separator: str = "") -> Markup:
    """The parts one after another, each escaped unless it is Markup (the separator too)."""
    return Markup(escape(separator).join(escape(p) for p in parts))

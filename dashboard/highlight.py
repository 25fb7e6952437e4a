"""Post text as safe HTML with its entities marked.

Texts come from the open internet: HTML, script tags, right-to-left overrides, zero-width
characters, megabytes of one line. Everything is escaped; bidirectional control characters
are shown as visible placeholders so they cannot reorder the page around them; long texts
are cut with a note of how much was left out. Entity offsets index the original text, so
the cut happens after the spans are placed, never shifting them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

MAX_CHARS = 2_000

# Unicode bidi embedding/override/isolate controls: harmless in data, hostile in a page.
BIDI_CONTROLS = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C}
ENTITY_COLOURS = {"ORG": "#d7e8fd", "PER": "#fde2d7", "LOC": "#dcf5dc", "MISC": "#eee2fb"}


def _escape(segment: str) -> str:
    shown = "".join(f"\\u{ord(c):04X}" if ord(c) in BIDI_CONTROLS else c for c in segment)
    return html.escape(shown, quote=True)


def clean_spans(entities: Iterable[Mapping], length: int) -> list[tuple[int, int, str]]:
    """Valid, non-overlapping (start, end, type) spans in text order; bad offsets are dropped."""
    spans = []
    for e in entities or ():
        try:
            start, end, kind = int(e["start"]), int(e["end"]), str(e["type"])
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= start < end <= length:
            spans.append((start, end, kind))
    spans.sort()
    out: list[tuple[int, int, str]] = []
    for span in spans:
        if not out or span[0] >= out[-1][1]:
            out.append(span)
    return out


def highlight_html(text: str, entities: Iterable[Mapping] = (), max_chars: int = MAX_CHARS) -> str:
    """Escaped HTML of `text[:max_chars]` with <mark> around each entity."""
    text = text or ""
    shown = text[:max_chars]
    parts: list[str] = []
    pos = 0
    for start, end, kind in clean_spans(entities, len(text)):
        if start >= len(shown):
            break
        end = min(end, len(shown))
        parts.append(_escape(shown[pos:start]))
        colour = ENTITY_COLOURS.get(kind, "#eeeeee")
        parts.append(f'<mark style="background:{colour};padding:0 2px;border-radius:3px" title="{html.escape(kind)}">'
                     f"{_escape(shown[start:end])}<sub>{html.escape(kind)}</sub></mark>")
        pos = end
    parts.append(_escape(shown[pos:]))
    if len(text) > len(shown):
        parts.append(f' <em>… ({len(text) - len(shown):,} more characters)</em>')
    # dir="auto" + bdi keeps right-to-left text readable without letting it flip the layout.
    return f'<bdi dir="auto" style="white-space:pre-wrap;word-break:break-word">{"".join(parts)}</bdi>'

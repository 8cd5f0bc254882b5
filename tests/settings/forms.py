"""Reading a settings form as a browser would submit it."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import httpx


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None
        self._in_form = False
        self._forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if (
            tag == "form"
            and found.get("method") == "post"
            and "settings-form" in found.get("class", "")
        ):
            self._in_form = True
        if not self._in_form:
            return
        name = found.get("name")
        if tag == "input" and name:
            kind = found.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in found:
                    self.values[name] = found.get("value", "on")
            else:
                self.values[name] = html.unescape(found.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "select" and name:
            self._select = name
            self.values[name] = ""
        elif tag == "option" and self._select is not None and "selected" in found:
            self.values[self._select] = html.unescape(found.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        if tag == "select":
            self._select = None
        if tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data


def read_form(client: httpx.Client, path: str) -> dict[str, str]:
    """The fields of the settings form on ``path``, as a browser would post them unchanged."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    reader = _FormReader()
    reader.feed(page.text)
    return reader.values


def field_error(page: httpx.Response, field: str) -> str:
    """The message shown next to ``field`` (fails when there is none)."""
    match = re.search(rf'data-field="{re.escape(field)}">([^<]*)<', page.text)
    shown = re.findall(r'data-field="([^"]+)"', page.text)
    assert match, f"no error next to {field}; errors shown for {shown}"
    return html.unescape(match.group(1))

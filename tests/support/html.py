"""Reading pages: CSRF tokens, a small DOM, the checks every page must pass, form errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """A CSRF token valid for this client's current session."""
    return csrf_from(client.get(path).get_data(as_text=True))


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def field_errors(response: TestResponse) -> list[str]:
    """The messages shown next to form fields."""
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r'<ul class="errors"[^>]*>(.*?)</ul>', text(response), re.S)
    ]


# --- a small DOM, enough to ask where an element sits ---------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def walk(self) -> list[Node]:
        found = [self]
        for child in self.children:
            found += child.walk()
        return found

    def ancestors(self) -> list[Node]:
        node, found = self.parent, []
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def all_text(self) -> str:
        return " ".join([*self.text, *(c.all_text() for c in self.children)])

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"stray </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.text.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def visible_text(root: Node) -> str:
    """Text a reader sees or hears, without <code> (tokens, headers) and scripts."""
    parts: list[str] = []

    def visit(node: Node) -> None:
        if node.tag in {"script", "style", "code"}:
            return
        parts.extend(node.text)
        for name in ("aria-label", "alt", "title", "placeholder"):
            if node.attrs.get(name):
                parts.append(node.attrs[name])
        for child in node.children:
            visit(child)

    visit(root)
    return re.sub(r"\s+", " ", " ".join(parts))


# --- checks every page must pass ----------------------------------------------------------


def check_page(html: str, lang: str) -> Node:
    """The rules for every page: language, labels, no inline code, nothing from outside."""
    root = parse(html)
    elements = root.walk()
    (html_el,) = [n for n in elements if n.tag == "html"]
    assert html_el.attrs.get("lang") == lang
    ids = {n.attrs["id"] for n in elements if "id" in n.attrs}
    labelled = {n.attrs.get("for") for n in elements if n.tag == "label"}

    for node in elements:
        # Forms: every visible control has a label, by for= or by being inside one.
        if node.tag in {"input", "select", "textarea"} and node.attrs.get("type") not in {
            "hidden",
            "submit",
        }:
            inside_label = any(a.tag == "label" for a in node.ancestors())
            assert inside_label or node.attrs.get("id") in labelled, f"unlabelled {node.attrs}"
        if described := node.attrs.get("aria-describedby"):
            for target in described.split():
                assert target in ids, f"aria-describedby points at missing #{target}"
        # CSP: no inline script, style attribute or event handler.
        # A JSON data block (chart figures) is data the browser never runs.
        if node.tag == "script" and node.attrs.get("type") != "application/json":
            assert node.attrs.get("src"), "inline <script>"
            assert not "".join(node.text).strip(), "<script> with inline content"
        assert "style" not in node.attrs, f"style attribute on <{node.tag}>"
        assert not [a for a in node.attrs if a.startswith("on")], f"event handler on {node.tag}"
        # No CDN: scripts, styles, images and frames come from this site.
        for name in ("src", "href"):
            value = node.attrs.get(name, "")
            if node.tag in {"link", "script", "img", "iframe", "source", "embed"}:
                assert not re.match(r"(https?:)?//", value), f"external {node.tag}: {value}"
    assert not [n for n in elements if n.tag == "style"], "inline <style>"
    return root


def assert_error_beside_field(html: str, field_id: str, message: str) -> None:
    """The field's error list sits in the field's own block and the input points at it."""
    root = parse(html)
    (control,) = [n for n in root.walk() if n.attrs.get("id") == field_id]
    assert control.attrs.get("aria-invalid") == "true"
    error_id = f"{field_id}-error"
    assert error_id in control.attrs.get("aria-describedby", "").split()
    (errors,) = [n for n in root.walk() if n.attrs.get("id") == error_id]
    assert errors.tag == "ul" and "errors" in errors.classes()
    assert message in errors.all_text()
    block = next(a for a in control.ancestors() if "field" in a.classes())
    assert errors.parent is block and "has-error" in block.classes()
    summary = [n for n in root.walk() if "error-summary" in n.classes()]
    assert summary and summary[0].attrs.get("role") == "alert"
    assert f"#{field_id}" in [n.attrs.get("href") for n in summary[0].walk()]

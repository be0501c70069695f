"""docs/security.md stays honest: every checklist item has a section, every test it cites exists.

A cited test is a pytest node id in backticks, ``tests/<path>.py::<function>`` or
``tests/<path>.py::<Class>::<method>``, without parametrisation brackets.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
ITEMS = range(1, 41)
# Items whose whole subject is a later feature: they may cite no test yet.
LATER_ONLY: dict[int, str] = {}

NODE_ID = re.compile(r"`(tests/[^`\s]+?\.py)::([^`\s]+)`")
SECTION = re.compile(r"^### (\d+)\. ", re.MULTILINE)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _sections(text: str) -> dict[int, str]:
    """Checklist item number -> the text of its section (up to the next heading)."""
    starts = [(int(m.group(1)), m.start()) for m in SECTION.finditer(text)]
    after_last = text.find("\n## ", starts[-1][1])
    ends = [start for _, start in starts[1:]] + [after_last if after_last > 0 else len(text)]
    return {number: text[start:end] for (number, start), end in zip(starts, ends, strict=True)}


def _node_ids(text: str) -> list[tuple[str, str]]:
    return NODE_ID.findall(text)


def _defined_tests(path: Path) -> set[str]:
    """``name`` of every test function and ``Class::method`` of every test method in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add(f"{node.name}::{member.name}")
    return {name for name in found if name.split("::")[-1].startswith("test")}


def test_every_checklist_item_has_a_section_in_order():
    numbers = [int(n) for n in SECTION.findall(_doc())]
    assert numbers == list(ITEMS)


def test_every_item_cites_a_test_unless_it_is_for_a_later_feature():
    sections = _sections(_doc())
    for number in ITEMS:
        cited = _node_ids(sections[number])
        if number in LATER_ONLY:
            assert not cited, number
            assert f"Later ({LATER_ONLY[number]})" in sections[number], number
        else:
            assert cited, f"item {number} cites no test"


def test_each_section_names_its_asvs_requirement_and_how_it_is_met():
    for number, text in _sections(_doc()).items():
        assert "- **ASVS** " in text, number
        assert "- **Requirement:** " in text, number
        assert "- **How" in text or number in LATER_ONLY, number


def test_the_reliability_section_is_there_and_cites_tests():
    text = _doc()
    assert "\n## Reliability tests\n" in text
    reliability = text.split("\n## Reliability tests\n", 1)[1]
    for number in range(1, 10):
        assert re.search(rf"^\| {number} \| ", reliability, re.MULTILINE), number
    assert _node_ids(reliability)


def test_every_cited_test_exists():
    cited = _node_ids(_doc())
    assert len(cited) > 40
    missing = []
    for file, name in sorted(set(cited)):
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file}: no such file")
        elif name not in _defined_tests(path):
            missing.append(f"{file}::{name}: no such test")
    assert not missing, "\n".join(missing)


def test_node_ids_carry_no_parametrisation_brackets():
    text = _doc()
    assert not re.search(r"`tests/[^`]*\.py::[^`]*\[", text)
    # In the items and the reliability table a test is a full node id, not a bare file.
    body = text.split("\n## The checklist\n", 1)[1]
    bare = re.findall(r"`(tests/[^`:]+\.py)`", body)
    assert bare == []


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("def test_a(): pass\nasync def test_b(): pass\ndef helper(): pass", {"test_a", "test_b"}),
        ("class TestX:\n    def test_m(self): pass\n    def other(self): pass", {"TestX::test_m"}),
    ],
)
def test_the_checker_finds_functions_and_methods(tmp_path, snippet, expected):
    path = tmp_path / "test_sample.py"
    path.write_text(snippet)
    assert _defined_tests(path) == expected

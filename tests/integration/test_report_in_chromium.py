"""The HTML report in a real browser: hostile text from every outside field (plan title,
override reason, confirmation note, the receiver's receipt, hosts' version replies, …) is shown
as text and never runs; the site × phase matrix (N17) is there with its cells. No lab needed;
Chromium is (`invoke test` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.unit.test_report_escaping import FIELDS, build_hostile_report
from tests.unit.test_site_matrix import build_site_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def acting(field: str) -> str:
    """Closes the element it lands in (title, textarea), then a script and an image whose
    error handler each mark the page: if either runs, the dumped DOM carries the mark."""
    return (f"</title></textarea><script>document.documentElement.setAttribute('data-pwned-1', '{field}')"
            "</script><img src=x onerror=\"document.documentElement.setAttribute('data-pwned-2', '1')\">"
            f"\"'& [{field}]")


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


class _Matrix(HTMLParser):
    """The cells of the table#sites-matrix: {site: {phase: (class, text)}}, and each row's header."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.site: str | None = None
        self.cell: tuple[str, str | None] | None = None
        self.header = False
        self.cells: dict[str, dict[str, tuple[str, str]]] = {}
        self.names: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("id") == "sites-matrix"
        elif self.inside and tag == "tr":
            self.site = attrs.get("data-site")
        elif self.inside and self.site and tag == "td" and attrs.get("data-phase"):
            self.cell = (attrs["data-phase"], attrs.get("class"))
            self.cells.setdefault(self.site, {})[attrs["data-phase"]] = (attrs.get("class") or "", "")
        elif self.inside and self.site and tag == "th":
            self.header = True

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif tag in {"td", "th"}:
            self.cell, self.header = None, False

    def handle_data(self, data):
        if self.cell and self.site:
            phase = self.cell[0]
            css, text = self.cells[self.site][phase]
            self.cells[self.site][phase] = (css, text + data)
        elif self.header and self.site:
            self.names[self.site] = self.names.get(self.site, "") + data


def parse(dom: str) -> _Dom:
    out = _Dom()
    out.feed(dom)
    out.close()
    return out


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("chromium is not installed, and this test loads the report in it: "
                    "apt-get install -y chromium fonts-wqy-zenhei (invoke test installs both)",
                    pytrace=False)
    return path


def dump_dom(chromium: str, page: Path, profile: Path) -> str:
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def marks(dom: _Dom) -> list[tuple[str, str]]:
    return [(tag, name) for tag, attrs in dom.tags for name in attrs if name.startswith("data-pwned")]


def test_the_check_sees_a_payload_that_runs(chromium, tmp_path):
    """The control: the same payload put into a page raw does run here, and marks the DOM."""
    page = tmp_path / "raw.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>{acting('title')}</title></head>"
                    f"<body><p>{acting('body')}</p></body></html>", encoding="utf-8")
    dom = parse(dump_dom(chromium, page, tmp_path / "profile"))
    assert ("html", "data-pwned-1") in marks(dom)
    assert ("html", "data-pwned-2") in marks(dom)


def test_no_outside_text_runs_in_the_report_and_all_of_it_shows_as_text(chromium, tmp_path):
    paths = build_hostile_report(tmp_path / "run", hostile=acting)
    raw = dump_dom(chromium, paths["html"], tmp_path / "profile")
    dom = parse(raw)
    assert marks(dom) == []
    assert not [tag for tag, _ in dom.tags if tag in {"script", "img", "textarea"}]
    assert "&lt;script&gt;document.documentElement.setAttribute(" in raw
    text = "".join(dom.text)
    for field in FIELDS:
        assert acting(field) in text, field
    assert "运行记录" in text  # the page itself rendered


def test_the_site_matrix_is_in_the_page_with_its_cells_and_names_as_text(chromium, tmp_path):
    built = build_site_report(tmp_path / "sites", datong_name=acting("site name"),
                              a1_title=acting("step title"))
    raw = dump_dom(chromium, built["paths"]["html"], tmp_path / "profile")
    dom = parse(raw)
    assert marks(dom) == []
    assert not [tag for tag, _ in dom.tags if tag in {"script", "img", "textarea"}]
    matrix = _Matrix()
    matrix.feed(raw)
    matrix.close()
    assert list(matrix.cells) == ["province", "taiyuan", "datong"]  # the province first
    words = {site: {phase: (css, re.sub(r"[\d:→ -]+$", "", text)) for phase, (css, text) in cells.items()}
             for site, cells in matrix.cells.items()}  # the state, without when it ran
    assert words == {
        "province": {"p-stop": ("pending", "pending"), "p-restore": ("pending", "pending"),
                     "p-follow": ("pending", "pending")},
        "taiyuan": {"p-stop": ("done", "done"), "p-restore": ("pending", "pending"), "p-follow": ("none", "—")},
        "datong": {"p-stop": ("failed", "failed"), "p-restore": ("pending", "pending"),
                   "p-follow": ("none", "—")}}
    assert "→" in matrix.cells["taiyuan"]["p-stop"][1]  # when it ran there
    assert acting("site name") in matrix.names["datong"]
    assert acting("step title") in "".join(dom.text)

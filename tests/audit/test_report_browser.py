"""The HTML audit report as a real browser renders it: headless Chromium (the Debian package ``chromium``,
installed by ``scripts/setup``) dumps the DOM it built and takes a screenshot of a report of a two-round
federation on the devnet whose second round rejected a junk blob (a finding)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit.html import write_html
from tests.audit.test_report import Reported, build_reported

WIDTH, HEIGHT = 1280, 4000
SECTIONS = ("metadata", "verdict", "findings", "task", "timeline", "rounds", "contributions", "participants", "gas",
            "evaluation", "plots")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (scripts/setup installs the Debian package "
    "'chromium' when run as root with apt-get; or: apt-get install -y --no-install-recommends chromium)")


@pytest.fixture(scope="module", name="reported")
def reported_fixture(devnet_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    yield from build_reported(devnet_env, tmp_path_factory.mktemp("browser"))


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *args], capture_output=True, timeout=60, check=True)


class _Dom(HTMLParser):
    """Ids of the elements in a DOM dump, and the class and text of each table row."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.rows: list[tuple[str, str]] = []
        self._row: list[str] | None = None
        self._row_class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "tr":
            self._row, self._row_class = [], str(a.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append((self._row_class, " ".join(self._row)))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row.append(data.strip())


def _png_pixels(path: Path) -> tuple[int, int, Any]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    import matplotlib.image

    return width, height, matplotlib.image.imread(str(path))


def test_report_renders_in_headless_chromium_with_every_section(reported: Reported, tmp_path: Path) -> None:
    report = reported.auditor().audit().with_context(gas_price_gwei="3").with_evaluation(
        {1: (0.80, 0.55), 2: (0.84, 0.47)})
    page = write_html(report, tmp_path / "audit.html")
    shot = tmp_path / "audit.png"

    dom_run = _chromium(tmp_path / "profile-dom", "--dump-dom", page.resolve().as_uri())
    _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
              page.resolve().as_uri())

    dom = _Dom()
    dom.feed(dom_run.stdout.decode("utf-8"))
    assert set(SECTIONS) <= dom.ids, f"sections missing from the rendered DOM: {sorted(set(SECTIONS) - dom.ids)}"
    assert {f"round-{r}" for r in (1, 2)} <= dom.ids
    flagged = [text for cls, text in dom.rows if cls == "finding-handled" and reported.junk in text]
    assert flagged and all("blob_format" in text for text in flagged)
    assert any(text.startswith("2 ") and "rejected" in text for _, text in [(c, t) for c, t in dom.rows
                                                                             if reported.junk in t])
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert pixels.std() > 0.05, "the screenshot is blank"
    assert pixels[: HEIGHT // 4].std() > 0.05, "the top of the page rendered nothing"

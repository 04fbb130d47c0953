"""The status page in headless Chromium, in zh-CN and in en: every character drawn has a glyph (no tofu).

How it is checked. Chromium is driven over the DevTools protocol (`--remote-debugging-pipe`, no
network port), asked for each language through the Accept-Language header, and screenshots are
saved. For every text node drawn on the page, `CSS.getPlatformFontsForNode` names the fonts Chromium
actually used to draw it (after its own fallback). fontconfig, from which Chromium on Linux takes
its fonts, gives each of those fonts' character coverage (its cmap, `fc-list %{charset}`). A
character none of the node's fonts covers would be drawn as a missing-glyph box: the test fails on
any, naming it. Without a CJK font (Debian's fonts-noto-cjk, installed by ops/setup.sh) Chromium
draws the Chinese page's characters with a Latin font that lacks them, and this test fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine, migrate
from tests.integration.conftest import TEST_PORTS
from topics.context import build_context
from topics.settings import Settings

PORT = TEST_PORTS["api_port"] + 77
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]
NOT_DRAWN = {"HEAD", "TITLE", "STYLE", "SCRIPT", "META"}


class DevTools:
    """The DevTools protocol over the pipe Chromium reads on fd 3 and writes on fd 4 (NUL-separated JSON)."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_chrome_r, self._out = os.pipe()
        self._in, from_chrome_w = os.pipe()

        def wire() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer["error"])
                return dict(answer.get("result", {}))
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within {timeout}s"
            self.events.append(self._read())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._in)
        os.close(self._out)


def coverage() -> dict[str, set[tuple[int, int]]]:
    """Each installed font's character ranges, by PostScript name and by family, from fontconfig."""
    listing = subprocess.run(
        ["fc-list", "--format", "%{postscriptname}\t%{family}\t%{charset}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fonts: dict[str, set[tuple[int, int]]] = {}
    for line in listing.splitlines():
        ps, families, charset = (line.split("\t") + ["", ""])[:3]
        ranges = set()
        for part in charset.split():
            lo, _, hi = part.partition("-")
            ranges.add((int(lo, 16), int(hi or lo, 16)))
        for name in [ps, *families.split(",")]:
            fonts.setdefault(name.strip(), set()).update(ranges)
    return fonts


def covered(char: str, ranges: set[tuple[int, int]]) -> bool:
    return any(lo <= ord(char) <= hi for lo, hi in ranges)


def text_nodes(node: dict[str, Any], parents: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    if node.get("nodeType") == 3:
        return [] if NOT_DRAWN & set(parents) or not node["nodeValue"].strip() else [node]
    found = []
    for child in node.get("children", []):
        found += text_nodes(child, (*parents, node.get("nodeName", "")))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The API with an empty read model: the status page of the Nanjing circle's ten cities."""
    data = tmp_path_factory.mktemp("glyphs")
    settings = Settings(data_dir=data, kafka_user="api", kafka_password="no broker is asked")
    engine = make_engine(settings.database_url)
    migrate(engine)
    app = create_app(build_context(settings), TokenStore(data / "tokens.json"), engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield data
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(("lang", "sample"), [("zh-CN", "各城市督导情况"), ("en", "Scoreboard by city")])
def test_the_status_page_has_a_glyph_for_every_character(served: Path, lang: str, sample: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: ops/setup.sh installs Debian's chromium package"
    fonts = coverage()
    tools = DevTools(browser, served / f"chromium-{lang}")
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tools.call("Network.enable", session)
        tools.call("Network.setExtraHTTPHeaders", session, headers={"Accept-Language": f"{lang};q=1"})
        tools.call("Page.enable", session)
        tools.call("Page.navigate", session, url=f"http://127.0.0.1:{PORT}/")
        tools.wait_for("Page.loadEventFired")
        shot = tools.call("Page.captureScreenshot", session, format="png")["data"]
        (served / f"status-{lang}.png").write_bytes(base64.b64decode(shot))
        tools.call("DOM.enable", session)
        tools.call("CSS.enable", session)
        root = tools.call("DOM.getDocument", session, depth=-1)["root"]
        nodes = text_nodes(root)
        page_text = "".join(n["nodeValue"] for n in nodes)
        assert sample in page_text, page_text[:500]
        missing: dict[str, list[str]] = {}
        used: set[str] = set()
        for node in nodes:
            drawn = tools.call("CSS.getPlatformFontsForNode", session, nodeId=node["nodeId"])["fonts"]
            names = [f["postScriptName"] for f in drawn] + [f["familyName"] for f in drawn]
            used |= {f["familyName"] for f in drawn}
            ranges = set().union(*(fonts.get(name, set()) for name in names))
            for char in set(node["nodeValue"]) - set(" \n\t\xa0"):
                if not covered(char, ranges):
                    missing.setdefault(char, names)
        assert not missing, f"tofu in the {lang} page: {missing} (fonts used: {sorted(used)})"
        if lang == "zh-CN":
            assert "南京" in page_text and "镇江" in page_text
            assert any("CJK" in name for name in used), used
        else:
            assert "Nanjing" in page_text and "南京" not in page_text
    finally:
        tools.close()

"""Headless Chromium for the report: screenshots, and a layout check the page itself cannot do.

The report has no scripts. ``layout_check`` copies it with one added script that, once the page is
laid out, measures what a reader would see clipped: every SVG text element's box against its SVG's
viewport, and every table cell whose content is wider than the cell. It also records how long the
page took from navigation start to its first complete layout. ``--dump-dom`` prints the DOM after
the script ran; the result is read back from it.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

_CHECK = """<script>
(function () {
  const laidOut = document.body.getBoundingClientRect().height;  // forces style and layout
  const layoutMs = performance.now();
  const clipped = [];
  for (const svg of document.querySelectorAll("svg")) {
    const box = svg.viewBox.baseVal;
    const w = box && box.width ? box.width : svg.width.baseVal.value;
    const h = box && box.height ? box.height : svg.height.baseVal.value;
    for (const t of svg.querySelectorAll("text")) {
      const b = t.getBBox();
      let x0 = b.x, x1 = b.x + b.width;
      const rot = t.getAttribute("transform");
      if (rot) { const m = t.getCTM(); const c = [[b.x, b.y], [b.x + b.width, b.y + b.height]].map(
          ([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
        x0 = Math.min(c[0][0], c[1][0]); x1 = Math.max(c[0][0], c[1][0]);
        const y0 = Math.min(c[0][1], c[1][1]), y1 = Math.max(c[0][1], c[1][1]);
        if (y0 < -0.5 || y1 > h + 0.5) clipped.push({svg: svg.id || svg.getAttribute("class"), text: t.textContent, y0, y1, h});
      }
      if (x0 < -0.5 || x1 > w + 0.5) clipped.push({svg: svg.id || svg.getAttribute("class"), text: t.textContent, x0, x1, w});
    }
  }
  const overflowing = [];
  for (const cell of document.querySelectorAll("td, th")) {
    if (cell.scrollWidth > cell.clientWidth + 1) overflowing.push(cell.textContent.slice(0, 80));
  }
  const rows = document.querySelectorAll("#label-frequency tbody tr").length;
  const pre = document.createElement("pre");
  pre.id = "layout-check";
  pre.textContent = JSON.stringify({layoutMs, laidOut, clipped, overflowing, rows});
  document.body.appendChild(pre);
})();
</script>"""


def chromium(*args: str, profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def layout_check(page: Path, work: Path, *, window: str = "1280,2400") -> dict:
    """Open a copy of ``page`` with the checking script; returns its findings and Chromium's wall time."""
    checked = work / f"checked-{page.name}"
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    started = time.perf_counter()
    result = chromium("--dump-dom", f"--window-size={window}", checked.resolve().as_uri(), profile=work / "profile-check")
    wall = time.perf_counter() - started
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', result.stdout, re.S)
    if found is None:
        raise RuntimeError(f"the layout check did not run: {result.stderr[-2000:]}")
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return {**json.loads(text), "wall_s": wall}


def screenshot(page: Path, shot: Path, work: Path, *, window: str = "1280,2400") -> subprocess.CompletedProcess:
    return chromium("--hide-scrollbars", f"--screenshot={shot}", f"--window-size={window}", page.resolve().as_uri(),
                    profile=work / "profile-shot")

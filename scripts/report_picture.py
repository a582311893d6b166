#!/usr/bin/python3
"""The README's picture: chosen sections of a report page, screenshotted by headless Chromium.

Usage: scripts/report_picture.py REPORT.html OUT.png [SECTION ...]
SECTION is the start of a section's heading (default: "Run", "Trade-offs: needle-decode-128k",
"Trade-offs: needle-prefill-128k", "Speed"). The page is the report itself with the other sections left out.
"""
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_SECTIONS = ["Run", "Trade-offs: needle-decode-128k", "Trade-offs: needle-prefill-128k", "Speed"]
WINDOW = (1280, 1800)


def keep_sections(page, wanted):
    """The page with only the <h3> sections whose heading starts with one of `wanted` (in page order)."""
    first = page.index("<h3>")
    end = page.rindex("</section>")
    parts = re.split(r"(?=<h3>)", page[first:end])
    kept = [p for p in parts if any(re.match(r"<h3>" + re.escape(w) + r"\b", p) for w in wanted)]
    missing = [w for w in wanted if not any(re.match(r"<h3>" + re.escape(w) + r"\b", p) for p in kept)]
    if missing:
        sys.exit("report_picture.py: no section headed %s in the report" % ", ".join(map(repr, missing)))
    return page[:first] + "".join(kept) + page[end:]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    report, out = sys.argv[1], os.path.abspath(sys.argv[2])
    with open(report, encoding="utf-8") as f:
        page = keep_sections(f.read(), sys.argv[3:] or DEFAULT_SECTIONS)
    with tempfile.TemporaryDirectory(prefix="ctxbench-picture-") as work:
        trimmed = os.path.join(work, "report.html")
        with open(trimmed, "w", encoding="utf-8") as f:
            f.write(page)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--user-data-dir=" + os.path.join(work, "profile"), "--hide-scrollbars",
                        "--screenshot=" + out, "--window-size=%d,%d" % WINDOW, "file://" + trimmed],
                       check=True, capture_output=True)
    print("wrote", out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The HTML report as a browser draws it: two small runs reported side by side (the run-to-run view, the engine
settings and the trade-off charts), screenshotted by headless Chromium. The PNG must exist, have the window's size
and not be blank (its pixels vary); a blank page's screenshot must be called blank, so the check itself can fail.

Usage: report_screenshot_test.py CTXBENCH_BINARY
Exits 77 (ctest: skipped) when Chromium is absent, except with CI=true, where scripts/setup.sh installs it.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

WINDOW = (1280, 2600)
SCALE = 0.5  # device pixels per CSS pixel: a smaller PNG, decoded here in pure Python
WIDTH, HEIGHT = int(WINDOW[0] * SCALE), int(WINDOW[1] * SCALE)
SKIPPED = 77


def fail(message):
    print(f"FAILED: {message}")
    sys.exit(1)


def find_chromium():
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(path):
            return path
    return None


def suite(budget):
    return {
        "name": "screenshot",
        "engines": [
            {"name": "dense", "params": {"threads": 1}},
            {"name": "streaming_llm", "label": "streaming-small", "params": {"threads": 1, "budget": budget}},
            {"name": "oracle_topk", "label": "topk", "params": {"threads": 1, "budget": 32}},
        ],
        "tasks": [{"name": "attention_needle", "label": "needle",
                   "params": {"mode": "decode", "heads_q": 2, "heads_kv": 1, "head_dim": 16, "queries": 2}}],
        "context_lengths": [256, 512],
        "depths": [50],
        "repetitions": 2,
    }


def run(command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_gray_rows(data):
    """Width, height and the rows of an 8-bit RGB or RGBA, non-interlaced PNG as grey levels."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("the screenshot is not a PNG")
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        fail(f"unexpected PNG format: depth {depth}, colour type {colour}, interlace {interlace}")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        if kind == 2:  # up, the most common filter: added byte by byte in one pass
            row = bytearray((a + b) & 0xFF for a, b in zip(row, previous))
        for i in range(stride if kind not in (0, 2) else 0):
            left = row[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            predictor = (0, left, up, (left + up) // 2, paeth(left, up, up_left))[kind]
            row[i] = (row[i] + predictor) & 0xFF
        rows.append([(row[x] + row[x + 1] + row[x + 2]) // 3 for x in range(0, stride, channels)])
        previous = row
    return width, height, rows


def grey_spread(rows):
    """The standard deviation of the grey levels, and the share of pixels away from the most common one."""
    pixels = [p for row in rows for p in row]
    mean = sum(pixels) / len(pixels)
    deviation = (sum((p - mean) ** 2 for p in pixels) / len(pixels)) ** 0.5
    counts = {}
    for p in pixels:
        counts[p] = counts.get(p, 0) + 1
    background = max(counts.values())
    return deviation, 1 - background / len(pixels)


def screenshot(chromium, profile, page, png):
    run(["timeout", "180", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         f"--force-device-scale-factor={SCALE}", f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
         f"file://{page}"])
    if not os.path.exists(png):
        fail(f"chromium wrote no screenshot {png}")
    with open(png, "rb") as f:
        width, height, rows = png_gray_rows(f.read())
    if (width, height) != (WIDTH, HEIGHT):
        fail(f"screenshot is {width}x{height}, expected {WIDTH}x{HEIGHT}")
    return grey_spread(rows)


def blank(spread):
    deviation, drawn = spread
    return deviation < 8 or drawn < 0.02


def main():
    binary = sys.argv[1]
    chromium = find_chromium()
    if chromium is None:
        reason = "chromium is not installed (scripts/setup.sh installs it)"
        if os.environ.get("CI") == "true":
            fail(f"CI=true, but {reason}")
        print(f"CTXBENCH-SKIPPED: {reason}")
        sys.exit(SKIPPED)
    work = tempfile.mkdtemp(prefix="ctxbench-screenshot-")
    try:
        db = os.path.join(work, "r.db")
        for budget in (64, 32):
            path = os.path.join(work, f"suite-{budget}.json")
            with open(path, "w") as f:
                json.dump(suite(budget), f)
            run([binary, "run", path, "--db", db])
        report = os.path.join(work, "report.html")
        run([binary, "report", "--db", db, "--run", "1", "--run", "2", "--html", report])
        with open(report, encoding="utf-8") as f:
            html = f.read()
        for part in ("<h2>Run 1 → run 2</h2>", "<h3>Engine settings</h3>", 'data-kind="tradeoff-keys"'):
            if part not in html:
                fail(f"the report lacks {part!r}")
        profile = os.path.join(work, "profile")
        os.makedirs(profile)
        spread = screenshot(chromium, profile, report, os.path.join(work, "report.png"))
        if blank(spread):
            fail(f"the report's screenshot is blank (grey deviation {spread[0]:.1f}, drawn share {spread[1]:.3f})")
        empty = os.path.join(work, "empty.html")
        with open(empty, "w") as f:
            f.write("<!DOCTYPE html><html><body></body></html>")
        empty_spread = screenshot(chromium, profile, empty, os.path.join(work, "empty.png"))
        if not blank(empty_spread):
            fail(f"an empty page's screenshot is not called blank: {empty_spread}")
        print(f"report screenshot {WIDTH}x{HEIGHT}: grey deviation {spread[0]:.1f}, drawn share {spread[1]:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

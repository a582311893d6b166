#!/usr/bin/env python3
"""Checks every #include of the project's sources against the layers of docs/architecture.md.

The table under "## Layers" there lists, for each part (a top-level folder), the parts it may include; a part
may always include itself. Exits 1 and names each file, line and include that points the wrong way.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
SOURCE = re.compile(r".*\.(cpp|h|cu|cuh)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_layers():
    doc = (ROOT / "docs" / "architecture.md").read_text().splitlines()
    start = doc.index("## Layers")
    allowed = {}
    for line in doc[start + 1:]:
        if line.startswith("## "):
            break
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not line.startswith("|") or cells[0] in ("part", "") or set(cells[0]) <= set("-"):
            continue
        part, uses = cells
        allowed[part] = {"*"} if uses == "everything" else {u.strip().strip("`") for u in uses.split(",") if u.strip() not in ("", "nothing")}
    if not allowed:
        sys.exit(f"{ROOT / 'docs/architecture.md'}: no layer table under '## Layers'")
    return allowed


def main():
    allowed = read_layers()
    problems = []
    for part, uses in sorted(allowed.items()):
        folder = ROOT / part
        if not folder.is_dir():
            problems.append(f"docs/architecture.md: part '{part}' has no folder")
            continue
        # npm peers (tests/peers-llamacpp) ship C++ of their own in node_modules: not ctxbench's.
        sources = (p for p in folder.rglob("*") if SOURCE.match(p.name) and "node_modules" not in p.parts)
        for path in sorted(sources):
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = match.group(1).split("/")[0]
                if "/" not in match.group(1):
                    problems.append(f"{path.relative_to(ROOT)}:{number}: include \"{match.group(1)}\" without its part's folder")
                elif target != part and "*" not in uses and target not in uses:
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {part}/ may not include \"{match.group(1)}\" "
                                    f"({part}/ may include: {', '.join(sorted(uses)) or 'nothing'})")
    for problem in problems:
        print(problem)
    print(f"checked the includes of {len(allowed)} parts: {len(problems)} against the layers")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

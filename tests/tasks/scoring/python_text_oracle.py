"""The python3 here as the oracle of tasks/scoring/python_text.h (test_scoring_python_text.cpp).

    python3 python_text_oracle.py code-points OUT   every code point python3 knows (category not Cn):
                                                    hex, lower() as hex, isspace, re \\w, re \\d value or -1
    python3 python_text_oracle.py strings IN OUT    per line of hex code points: lower(), strip(), split()
"""
import re
import sys
import unicodedata

WORD = re.compile(r"\w")
DIGIT = re.compile(r"\d")


def hexes(text):
    return " ".join("%X" % ord(c) for c in text)


def code_points(out):
    with open(out, "w") as f:
        f.write("unicode %s\n" % unicodedata.unidata_version)
        for cp in range(0x110000):
            c = chr(cp)
            if unicodedata.category(c) == "Cn":
                continue
            digit = int(c) if DIGIT.match(c) else -1
            f.write("%X;%s;%d;%d;%d\n" % (cp, hexes(c.lower()), c.isspace(), bool(WORD.match(c)), digit))


def strings(src, out):
    with open(src) as f, open(out, "w") as g:
        for line in f:
            text = "".join(chr(int(h, 16)) for h in line.split())
            g.write("%s;%s;%s\n" % (hexes(text.lower()), hexes(text.strip()), "|".join(map(hexes, text.split()))))


if __name__ == "__main__":
    code_points(sys.argv[2]) if sys.argv[1] == "code-points" else strings(sys.argv[2], sys.argv[3])

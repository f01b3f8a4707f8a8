#!/usr/bin/env python3
"""Checks the relative links of README.md and docs/*.md: every linked file
exists, and every #anchor is a heading of the page it names (GitHub's
slugs). Links inside fenced code blocks and absolute URLs are not checked.

  python3 scripts/check-doc-links.py

Prints each broken link and exits 1 if there is any. Python 3 standard
library only.
"""
import pathlib
import re
import sys
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, spaces to
    dashes, punctuation other than - and _ removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return "".join(
        "-" if ch == " " else ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN"
    )


def anchors(page):
    """Every heading anchor of a page, with -1, -2, ... for repeats."""
    seen, result = {}, set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def main():
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    checked, broken = 0, []
    for page in pages:
        for match in LINK.finditer(FENCE.sub("", page.read_text())):
            target = match.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:, ...
            checked += 1
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                broken.append(f"{where}: no such file")
            elif anchor and dest.suffix != ".md":
                broken.append(f"{where}: an anchor on a file that is not markdown")
            elif anchor and anchor not in anchors(dest):
                broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    for line in broken:
        print(line)
    print(f"check-doc-links: {checked} relative links in {len(pages)} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""doc_refs.py - every *.md a source file, comment or document names must
exist in this repository, so a comment never sends a reader to a document
they do not have (a bare name may be any file of that name; a path is
taken from the repository's root or from the naming file's folder).

Usage: doc_refs.py REPO_ROOT   (exit 1 listing each dangling reference)
"""

import pathlib
import re
import sys

SOURCES = ("*.c", "*.h", "*.py", "*.md", "meson.build", "*.5", "*.8")
SKIP = {".git", "build", "build-fuzz", "builddir", "node_modules"}
TROFF_FONT = re.compile(r"\\f[BIRP]")     # man pages: font escapes
REF = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def sources(root):
    for pattern in SOURCES:
        for path in root.rglob(pattern):
            rel = path.relative_to(root)
            if not SKIP.intersection(rel.parts[:-1]) and \
                    not rel.parts[0].startswith("build"):
                yield path


def dangling(root):
    names = {p.name for p in root.rglob("*.md")
             if not SKIP.intersection(p.relative_to(root).parts)}
    out = []
    for path in sorted(set(sources(root))):
        text = path.read_text(errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            line = TROFF_FONT.sub("", line)
            for ref in REF.findall(line):
                if "/" not in ref and ref in names:
                    continue
                if (root / ref).is_file() or (path.parent / ref).is_file():
                    continue
                out.append(f"{path.relative_to(root)}:{lineno}: {ref}")
    return out


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    bad = dangling(root)
    for line in bad:
        print(f"{line}: no such document in the repository")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

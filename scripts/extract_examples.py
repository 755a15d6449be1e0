#!/usr/bin/env python3
"""Extracts every C++ example of the documentation into one translation unit, so the build
checks that the examples compile (tests/examples builds it in the plain test config).

Examples are the ```cpp fenced blocks of README.md and docs/*.md, and the `/// @code` ...
`/// @endcode` blocks of the doc comments in include/credkit/**/*.hpp. Each becomes its own
namespace in the output, with `#line` directives so a compile error names the document and
its line. An example is one of:
- declarations (it has a line at column 0 that opens or closes a brace block, e.g. a function
  or struct definition, or `int main() {`): kept at namespace scope;
- statements (anything else): wrapped in a function, where the names such examples take from
  their surroundings (io, options, user_id, ...) come from tests/examples/example_context.hpp.
Examples from headers are written as if inside namespace credkit, so theirs get
`using namespace credkit;`. `#include` lines are hoisted to the top of the file; macros an
example defines are undefined after it. An example whose first line is
`// not compiled: <why>` is skipped (and counted).

    extract_examples.py --root <repo> --out <file.cpp> [--depfile <file.d>]
"""
import argparse
import pathlib
import re
import sys


def blocks_between(path, opening, closing, body_line):
    """(first line number, body lines) of each block between an `opening` and a `closing` line."""
    blocks, start, body = [], None, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if start is None and stripped == opening:
            start, body = number + 1, []
        elif start is not None and stripped == closing:
            blocks.append((start, body))
            start = None
        elif start is not None:
            body.append(body_line(line))
    return blocks


def fenced_examples(path):
    """(first line number, text) of each ```cpp block of a Markdown file."""
    return [(start, "\n".join(body)) for start, body in blocks_between(path, "```cpp", "```", lambda l: l)]


def doc_comment_examples(path):
    """(first line number, text) of each `/// @code` block of a header, `///` removed."""
    strip = lambda l: re.sub(r"^\s*///", "", l)
    return [(start, dedent(body)) for start, body in blocks_between(path, "/// @code", "/// @endcode", strip)]


def dedent(lines):
    indents = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(indents, default=0)
    return "\n".join(l[cut:] for l in lines)


def is_declarations(code_lines):
    return any(re.match(r"^[^\s/#].*\{\s*(//.*)?$", l) or re.match(r"^\}", l) for l in code_lines)


def render(number, source, first_line, text, from_header):
    """The namespace for one example, or None when it is marked as not compiled."""
    lines = text.splitlines()
    if lines and lines[0].strip().startswith("// not compiled:"):
        return None, []
    includes = [l.strip() for l in lines if l.strip().startswith("#include")]
    # Hoisted includes become blank lines, so #line numbering stays true.
    code = ["" if l.strip().startswith("#include") else l for l in lines]
    macros = [m.group(1) for l in code for m in [re.match(r"^\s*#\s*define\s+(\w+)", l)] if m]
    out = [f"// {source}:{first_line}"]
    out += [f'#pragma push_macro("{m}")\n#undef {m}' for m in macros]
    out.append(f"namespace example_{number} {{")
    if any(re.match(r"^int main\(", l) for l in code):
        # A main() inside a namespace gets no implicit `return 0`.
        out.append('#pragma GCC diagnostic ignored "-Wreturn-type"')
    if from_header:
        out.append("using namespace credkit;")
    declarations = is_declarations(code)
    if not declarations:
        out.append("using namespace credkit_examples;")
        out.append("[[maybe_unused]] void example() {")
    out.append(f'#line {first_line} "{source}"')
    out += code
    if not declarations:
        out.append("}")
    out.append(f"}}  // namespace example_{number}")
    out += [f'#undef {m}\n#pragma pop_macro("{m}")' for m in macros]
    return "\n".join(out), includes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=pathlib.Path)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--depfile", type=pathlib.Path)
    args = parser.parse_args()
    root = args.root.resolve()

    documents = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    headers = sorted((root / "include" / "credkit").rglob("*.hpp"))
    sources = [(d, fenced_examples(d), False) for d in documents]
    sources += [(h, doc_comment_examples(h), True) for h in headers]

    blocks, includes, skipped = [], [], 0
    for path, examples, from_header in sources:
        for first_line, text in examples:
            block, needed = render(len(blocks) + skipped + 1, path.relative_to(root).as_posix(),
                                   first_line, text, from_header)
            if block is None:
                skipped += 1
                continue
            blocks.append(block)
            includes += [i for i in needed if i not in includes]

    header = [
        "// Generated by scripts/extract_examples.py: the C++ examples of README.md, docs/*.md and",
        "// the doc comments of include/credkit. Edit the documents, not this file.",
        '#include "example_context.hpp"',
    ] + includes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + "\n"
    if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
        args.out.write_text(text, encoding="utf-8")
    if args.depfile:
        read = " ".join(str(p) for p, _, _ in sources)
        args.depfile.write_text(f"{args.out}: {read} {pathlib.Path(__file__).resolve()}\n", encoding="utf-8")
    print(f"extract_examples: {len(blocks)} examples compiled, {skipped} marked not compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fails on tests that cannot fail. The test command runs it before the tests; `--self-test` checks the rules.

What it refuses, in the Rust, JavaScript and Python tests:
- a skipped test: `#[ignore]`, `test.skip`/`it.skip`/`{ skip: … }`, `pytest.mark.skip`/`pytest.skip(`;
- an assertion of a constant: `assert!(true)`, `assert.ok(true)`, `assert True`;
- in docs/guarantees.md, a test named that does not exist (a backticked `path.rs` then backticked function names),
  or a table row of guarantees that names no test;
- a quantified assertion that an empty collection passes: `assert!(xs.iter().all(…))`, `assert all(…)`,
  unless the same assertion also checks the size (`len`, `is_empty`), the collection is a literal (`[a, b].iter()`),
  or the line before says why it cannot be empty (`// non-empty: …` or `# non-empty: …`).
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKIPS = [
    (re.compile(r"#\[ignore\b"), "a skipped test (#[ignore])"),
    (re.compile(r"\b(test|it|describe)\.skip\s*\(|\{\s*skip\s*:\s*true"), "a skipped test"),
    (re.compile(r"pytest\.mark\.skip|pytest\.skip\s*\("), "a skipped test"),
]
CONSTANTS = [
    (re.compile(r"\bassert!\s*\(\s*true\s*[,)]"), "an assertion of a constant (assert!(true))"),
    (re.compile(r"\bassert_eq!\s*\(\s*true\s*,\s*true\s*[,)]"), "an assertion of a constant"),
    (re.compile(r"\bassert\.ok\s*\(\s*true\s*[,)]"), "an assertion of a constant (assert.ok(true))"),
    (re.compile(r"^\s*assert\s+True\b"), "an assertion of a constant (assert True)"),
]


def statement(lines: list[str], i: int, opener: str) -> str:
    """The text of the statement starting at line i, up to where `opener`'s parenthesis closes (or the line ends
    for a Python `assert`)."""
    if opener == "assert ":
        return lines[i]
    text, depth, started = "", 0, False
    for line in lines[i : i + 40]:
        for ch in line:
            text += ch
            if ch == "(":
                depth += 1
                started = True
            elif ch == ")":
                depth -= 1
                if started and depth == 0:
                    return text
        text += "\n"
    return text


def vacuous(lines: list[str], i: int, lang: str) -> bool:
    line = lines[i]
    opener = {"rs": "assert!(", "py": "assert ", "js": "assert.ok("}[lang]
    if opener not in line:
        return False
    text = statement(lines, i, opener)
    quantifier = {"rs": ".all(", "py": "all(", "js": ".every("}[lang]
    if quantifier not in text:
        return False
    if re.search(r"len\(|is_empty\(|\.length\b", text):
        return False
    # A literal list is never empty: `[a, b].iter().all(…)`, `all(x for x in [a, b])`.
    if re.search(r"\]\s*\.(iter|into_iter)\(\)\s*\.all\(|in \[[^\]]+\]\)|\]\.every\(", text):
        return False
    before = lines[i - 1].strip() if i > 0 else ""
    return not re.match(r"(//|#)\s*non-empty:", before)


def check(path: str, text: str) -> list[str]:
    lang = {".rs": "rs", ".py": "py", ".mjs": "js", ".js": "js"}.get(Path(path).suffix)
    if lang is None:
        return []
    problems = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for pattern, what in SKIPS + CONSTANTS:
            if pattern.search(line):
                problems.append(f"{path}:{i + 1}: {what}: {line.strip()}")
        if vacuous(lines, i, lang):
            problems.append(
                f"{path}:{i + 1}: an assertion that an empty collection passes; check its size too, "
                f"or say `non-empty: why` on the line before: {line.strip()}"
            )
    return problems


def test_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    keep = []
    for f in out:
        p = Path(f)
        if "node_modules" in p.parts or not (ROOT / p).is_file():
            continue
        if p.parts[0] == "tests" or {"tests", "test"} & set(p.parts[:-1]) or (p.suffix == ".rs" and f != "scripts/test-lint.py"):
            keep.append(f)
    return keep


def rust_sources_with_tests(f: str, text: str) -> bool:
    # Library code counts only where it has tests in it.
    return Path(f).parts[0] == "tests" or "/tests/" in f or "#[cfg(test)]" in text or not f.endswith(".rs")


def self_test() -> None:
    bad = {
        "a.rs": "#[test]\n#[ignore]\nfn t() { assert!(true); }\nfn u() {\n    assert!(xs\n        .iter()\n        .all(|x| *x > 0));\n}\n",
        "b.py": "@pytest.mark.skip\ndef test_x():\n    assert True\n    assert all(e['ok'] for e in events)\n",
        "c.mjs": "test.skip('x', () => {});\nassert.ok(true);\nassert.ok(rows.every((r) => r.ok));\n",
    }
    good = {
        "a.rs": "fn t() {\n    assert!(!xs.is_empty() && xs.iter().all(|x| *x > 0));\n    assert!([1, 2].iter().all(|x| *x > 0));\n"
                "    // non-empty: two were published just above\n    assert!(xs.iter().all(|x| *x > 0));\n}\n",
        "b.py": "def test_x():\n    assert len(events) == 2 and all(e['ok'] for e in events)\n",
        "c.mjs": "assert.ok(rows.length > 0 && rows.every((r) => r.ok));\n",
    }
    counts = {"a.rs": 3, "b.py": 3, "c.mjs": 3}
    for name, text in bad.items():
        got = check(name, text)
        assert len(got) == counts[name], (name, got)
    for name, text in good.items():
        assert check(name, text) == [], (name, check(name, text))
    doc = "| guarantee | test |\n|---|---|\n| a | `t.rs` `real`, `gone` |\n| b | nothing |\n\n| x | y |\n|---|---|\n| c | d |\n"
    got = guarantees(doc, lambda p, n: n == "real")
    assert len(got) == 2 and "gone" in got[0] and "names no test" in got[1], got
    print("test-lint: self-test passed")


IDENT = re.compile(r"[a-z_][a-z0-9_]*")


def guarantees(text: str, exists) -> list[str]:
    """Problems with docs/guarantees.md: `exists(path, name)` says whether `fn name` is in `path` (None: no file)."""
    problems = []
    in_table, tested = False, False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            in_table, tested = True, cells[-1] == "test"
            continue
        if set(line) <= set("|-: "):
            continue
        named, path = 0, None
        for token in re.findall(r"`([^`]+)`", cells[-1]):
            if token.endswith(".rs"):
                path = token
            elif path and IDENT.fullmatch(token):
                found = exists(path, token)
                if found is None:
                    problems.append(f"docs/guarantees.md:{n}: no file {path}")
                elif not found:
                    problems.append(f"docs/guarantees.md:{n}: no test `{token}` in {path}")
                named += 1
        if tested and named == 0:
            problems.append(f"docs/guarantees.md:{n}: a guarantee that names no test")
    return problems


def fn_exists(path: str, name: str):
    f = ROOT / path
    if not f.is_file():
        return None
    return re.search(rf"\bfn {re.escape(name)}\b", f.read_text(errors="replace")) is not None


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    problems = guarantees((ROOT / "docs/guarantees.md").read_text(), fn_exists)
    for f in test_files():
        text = (ROOT / f).read_text(errors="replace")
        if rust_sources_with_tests(f, text):
            problems += check(f, text)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"test-lint: {len(problems)} problem(s): tests that cannot fail, or guarantees without a test", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

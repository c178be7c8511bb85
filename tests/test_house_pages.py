"""The house's upper floors: pages cite files that exist, nothing reads like a diary, files and
functions stay small (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "benchmarks/README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
# A path into the repository as pages write it: in backticks, in a markdown link, or bare.
CITED = re.compile(r"(?<![\w./-])((?:benchmarks|docs|configs|src|tests)/[\w./*{},-]*[\w*}])")
DIARY = re.compile(r"\bsessions?\s*\d|\bsession's\b|\bthis session\b|\bissue\s*#?\d+|(?<![\w&/])#\d{1,3}\b"
                   r"|\brun\s+\d+\s+(?:of|finished|begun)|_session\d|_run\d|_issue\d", re.IGNORECASE)


def _tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def _expand(path: str) -> list[str]:
    """`results/x/latest.{json,md}` names two files; a glob names at least one."""
    brace = re.search(r"\{([^}]*)\}", path)
    if brace:
        return [p for part in brace.group(1).split(",") for p in _expand(path[:brace.start()] + part + path[brace.end():])]
    return [path]


def cited_paths(text: str) -> list[str]:
    return [p.rstrip(".,") for match in CITED.findall(text) for p in _expand(match)]


PLACEHOLDER = re.compile(r"(^|/)[A-Z][A-Z_]{2,}(/|\.|$)")  # results/NAME/latest.json: a pattern, not a file


def missing_paths(text: str) -> list[str]:
    return [p for p in cited_paths(text) if not PLACEHOLDER.search(p)
            and not (any(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())]


def test_every_page_cites_files_that_exist():
    missing = {page: missing_paths((ROOT / page).read_text()) for page in PAGES if (ROOT / page).exists()}
    assert not {page: paths for page, paths in missing.items() if paths}


def test_the_path_check_can_fail():
    assert missing_paths("see `benchmarks/results/no_such_result/latest.{json,md}`, docs/lab.md and "
                         "benchmarks/results/NAME/latest.json") == [
        "benchmarks/results/no_such_result/latest.json", "benchmarks/results/no_such_result/latest.md"]


def _diary_hits(name: str, text: str) -> list[str]:
    return [f"{name}:{n}: {line.strip()[:100]}" for n, line in enumerate(text.splitlines(), 1) if DIARY.search(line)]


def test_nothing_reads_like_a_diary():
    """Pages, code, comments, scripts and file names speak of the project, never of the work
    that made it (sessions, runs by number, work-item numbers): that lives in git and in the
    results' history files."""
    tracked = _tracked()
    hits = [f"file name: {name}" for name in tracked if DIARY.search(Path(name).name)]
    prose = [name for name in tracked if name.endswith((".md", ".py", ".sh", ".yaml", ".toml"))
             and not name.startswith("benchmarks/results/") and name != "tests/test_house_pages.py"]
    for name in prose:
        hits += _diary_hits(name, (ROOT / name).read_text())
    assert not hits, "\n".join(hits)


def test_the_diary_check_can_fail():
    assert _diary_hits("x.md", "measured in session 9\nsee issue #16\nrun 2 finished\nfine: B0's run") == [
        "x.md:1: measured in session 9", "x.md:2: see issue #16", "x.md:3: run 2 finished"]


def _long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_source_files_and_functions_stay_small():
    sources = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    big_files = [f"{p.relative_to(ROOT)} ({len(p.read_text().splitlines())} lines)" for p in sources
                 if len(p.read_text().splitlines()) > 300]
    long_functions = [hit for p in sources for hit in _long_functions(p, 80)]
    assert not big_files and not long_functions, "\n".join(big_files + long_functions)

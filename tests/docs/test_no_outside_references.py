"""Nothing outside tests/ points outside the repository.

Someone who clones the repository has only the repository: a docstring,
README, configuration comment or unit file that cites a document beside it
(the contract folder, the design notes, an issue tracker's numbers) or a
path that no longer exists sends them nowhere.  Citations go to docs/ pages
and their numbered sections instead (``docs/protocol.md §3``), and those
must exist too.  Tests may still read the official XSDs beside the
repository, so tests/ is not scanned.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN = [
    (re.compile(r"\.\./shared(?!/xsd)"), "a folder outside the repository"),
    (re.compile(r"(?<![\w-])(corplink|routing|clearing|fx|drafts)\.md\b"), "a spec file name"),
    (re.compile(r"\b(DESIGN|STYLE|FACTS)\.md\b"), "a design note outside the repository"),
    (re.compile(r"\bissue \d+", re.I), "an issue number"),
    (re.compile(r"/work/"), "an absolute path of a build machine"),
]
TOP = r"(?:gateway|codecs|routing|keys|conf|systemd|tests|bench|docs|\.ci)"
# a repository path: starts at a top-level folder, not inside an absolute path or a word
REPO_PATH = re.compile(rf"(?<![\w/.-]){TOP}/[\w./-]*[\w/]")
CITATION = re.compile(r"\bdocs/([\w-]+\.md) §(\d+)")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
SKIP_PATH = re.compile(r"YYYY|<|\*|\{|/_data\b")


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / p for p in out.split("\0") if p and not p.startswith("tests/")]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return None


def sections(page: Path) -> set[str]:
    return set(re.findall(r"^#{2,3} (\d+)\.", page.read_text(encoding="utf-8"), re.M))


def problems(path: Path, text: str) -> Iterator[str]:
    rel = path.relative_to(REPO)
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{n}"
        for pattern, what in FORBIDDEN:
            if m := pattern.search(line):
                yield f"{where}: {what}: {m.group(0)!r}"
        for m in REPO_PATH.finditer(line):
            cited = m.group(0).rstrip("./")
            if SKIP_PATH.search(cited) or (REPO / cited).exists():
                continue
            # a name without a suffix in an existing folder is a file a command makes
            if Path(cited).suffix or not (REPO / cited).parent.exists():
                yield f"{where}: no such path in the repository: {cited}"
        for m in CITATION.finditer(line):
            page = REPO / "docs" / m.group(1)
            if not page.is_file():
                yield f"{where}: no such page: docs/{m.group(1)}"
            elif m.group(2) not in sections(page):
                yield f"{where}: docs/{m.group(1)} has no §{m.group(2)}"
        if path.suffix == ".md":
            for m in MD_LINK.finditer(line):
                target = m.group(1).split("#", 1)[0]
                if not target or re.match(r"[a-z]+:", target):
                    continue
                if not (path.parent / target).resolve().exists():
                    yield f"{where}: broken link: {m.group(1)}"


def test_the_scanner_finds_what_it_should() -> None:
    """Each rule fires on a sample, so a clean result means something."""
    sample = REPO / "README.md"
    bad = "\n".join(
        [
            "a folder that was removed: `gateway/engines_old/x`",
            "see ../shared/spec/x",
            "corplink.md §3",
            "DESIGN.md",
            "issue 15",
            "`gateway/no_such_module.py`",
            "docs/protocol.md §42",
            "[x](docs/missing.md)",
        ]
    )
    for line in bad.splitlines():
        assert list(problems(sample, line)), line
    fine = "\n".join(
        [
            "../shared/xsd is for tests",
            "docs/protocol.md §3 and docs/routing-rules.md §4",
            "`gateway/keys/xmldsig.py`, `routing/calendar/YYYY.toml`, /etc/gateway/gateway.toml",
            "topics clearing/hvps/out and core/rsp/<node>",
            "[guide](docs/protocol.md#3-signature-profile)",
        ]
    )
    assert list(problems(sample, fine)) == []


def test_nothing_outside_tests_refers_outside_the_repository() -> None:
    found = [p for path in tracked_files() if (text := text_of(path)) for p in problems(path, text)]
    assert not found, f"{len(found)} references:\n" + "\n".join(found)

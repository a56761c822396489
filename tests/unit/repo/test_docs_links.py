"""The docs cite only what the repository holds.

Every relative link in README.md and docs/*.md must reach a file (and, with a
``#fragment``, a heading of it), every repository path quoted in backticks
(``operator/flux/task.py``, ``tests/...py``, ``examples/...py``,
``docs/...md``, ...) must exist, and no doc may send its reader to the design
or the API contract that live outside the repository: what a user relies on is
written in the repo's own docs (docs/semantics.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Files kept outside the repository; a reader of the repo cannot open them.
OUTSIDE = ("DESIGN.md", "flux-task-system.md", "../shared", "/work/shared")

# Top-level folders of the repository: a backticked path starting with one is a
# claim that the path exists. ``flux/...`` is caught too: the package lives
# under operator/, and a path a reader cannot open from the root is no help.
ROOTS = (
    "operator",
    "tests",
    "examples",
    "docs",
    "charts",
    "deploy",
    "crds",
    "benchmarks",
    "runtime_image",
    "cluster",
)
PATH_TOKEN = re.compile(
    r"^(?:" + "|".join(ROOTS) + r"|flux)/[\w./-]*?(?:\.(?:py|md|ya?ml|toml|json|txt|png)|/)?"
    r"(?:::\w+)?$"
)
# A test named on its own (``test_a_run_step_by_step``), or a family of them
# (``test_parallel_*``).
TEST_NAME = re.compile(r"^test_\w+\*?$")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without fenced code blocks (shell sessions, manifests, examples)."""
    return FENCE.sub("", text)


def code_spans(text: str) -> list[str]:
    return [m.group(2).strip() for m in CODE_SPAN.finditer(prose(text))]


def links(text: str) -> list[str]:
    # Links inside code spans are code, not links.
    return LINK.findall(CODE_SPAN.sub("", prose(text)))


def quoted_paths(text: str) -> list[str]:
    """Repository paths quoted in backticks, also inside a quoted command."""
    found = []
    for span in code_spans(text):
        for token in span.split():
            token = token.rstrip(".,;:)")
            if PATH_TOKEN.match(token) and not any(c in token for c in "<>*{}"):
                found.append(token)
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(prose(doc.read_text(encoding="utf-8")))}


def link_problems(doc: Path, root: Path = REPO) -> list[str]:
    problems = []
    for target in links(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path_part, _, fragment = target.partition("#")
        where = (doc.parent / path_part).resolve() if path_part else doc
        if not where.exists():
            problems.append(f"{doc.name}: link to {target} names no file of the repository")
            continue
        if root not in where.parents and where != root:
            problems.append(f"{doc.name}: link to {target} leaves the repository")
            continue
        if fragment and where.suffix == ".md" and fragment not in anchors(where):
            problems.append(f"{doc.name}: link to {target}: {where.name} has no such heading")
    return problems


def path_problems(doc: Path, root: Path = REPO) -> list[str]:
    problems = []
    for token in quoted_paths(doc.read_text(encoding="utf-8")):
        path, _, test = token.partition("::")
        if path.startswith("flux/"):
            problems.append(f"{doc.name}: `{token}` is operator/{token} from the repository root")
        elif not (root / path).exists():
            problems.append(f"{doc.name}: `{token}` is not in the repository")
        elif test and test not in defined_tests(root / path):
            problems.append(f"{doc.name}: `{token}`: {path} defines no {test}")
    return problems


def defined_tests(path: Path) -> set[str]:
    return set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text("utf-8"), re.MULTILINE))


def named_test_problems(doc: Path, root: Path = REPO) -> list[str]:
    """Tests named in backticks without their file must exist somewhere under tests/."""
    known = set().union(*(defined_tests(p) for p in (root / "tests").rglob("test_*.py")))
    problems = []
    for span in code_spans(doc.read_text(encoding="utf-8")):
        if not TEST_NAME.match(span):
            continue
        if span.endswith("*"):
            found = any(name.startswith(span[:-1]) for name in known)
        else:
            found = span in known
        if not found:
            problems.append(f"{doc.name}: no test under tests/ is named `{span}`")
    return problems


def outside_citations(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    cited = [t for t in links(text) if any(name in t for name in OUTSIDE)]
    cited += [s for s in code_spans(text) if any(name in s for name in OUTSIDE)]
    return [f"{doc.name}: cites {c!r}, which is not in the repository" for c in cited]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_relative_link_reaches_a_file_and_heading_of_the_repo(doc: Path) -> None:
    assert link_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_quoted_repository_path_exists(doc: Path) -> None:
    assert path_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_test_a_doc_names_exists(doc: Path) -> None:
    assert named_test_problems(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_no_doc_sends_the_reader_to_files_outside_the_repo(doc: Path) -> None:
    assert outside_citations(doc) == []


def test_the_semantics_page_exists_and_is_linked_from_readme_and_architecture() -> None:
    assert (REPO / "docs/semantics.md").is_file()
    assert "docs/semantics.md" in links((REPO / "README.md").read_text(encoding="utf-8"))
    assert "semantics.md" in links((REPO / "docs/architecture.md").read_text(encoding="utf-8"))


# The checks themselves, on text that breaks each rule: a check that cannot
# fail would let the docs drift unnoticed.


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_a.py").write_text("def test_here():\n    pass\n", "utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n"
        "See [the design](../shared/DESIGN.md), the contract `flux-task-system.md`,\n"
        "[gone](nowhere.md), [bad anchor](doc.md#no-such-heading), [ok](doc.md#title),\n"
        "`operator/flux/no_such_module.py`, `flux/task.py`, `tests/unit/nope.py` and\n"
        "`kubectl apply -f deploy/missing.yaml`, `tests/test_a.py::test_here`,\n"
        "`tests/test_a.py::test_gone`, `test_here`, `test_he*`, `test_nowhere`.\n\n"
        "```sh\ncat examples/not_checked_in_code_blocks.py\n```\n",
        encoding="utf-8",
    )
    assert len(outside_citations(doc)) == 2
    assert link_problems(doc, tmp_path) == [
        "doc.md: link to ../shared/DESIGN.md names no file of the repository",
        "doc.md: link to nowhere.md names no file of the repository",
        "doc.md: link to doc.md#no-such-heading: doc.md has no such heading",
    ]
    assert path_problems(doc, tmp_path) == [
        "doc.md: `operator/flux/no_such_module.py` is not in the repository",
        "doc.md: `flux/task.py` is operator/flux/task.py from the repository root",
        "doc.md: `tests/unit/nope.py` is not in the repository",
        "doc.md: `deploy/missing.yaml` is not in the repository",
        "doc.md: `tests/test_a.py::test_gone`: tests/test_a.py defines no test_gone",
    ]
    assert named_test_problems(doc, tmp_path) == [
        "doc.md: no test under tests/ is named `test_nowhere`"
    ]


def test_slugs_follow_github() -> None:
    assert slug("Values and trust") == "values-and-trust"
    assert slug("Batching: `task.map(items, batch_size=N)`") == "batching-taskmapitems-batch_sizen"
    assert slug("`@task` and `task.with_options`") == "task-and-taskwith_options"

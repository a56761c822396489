"""Tables of figures for benchmarks/scale.py: printed, and kept in benchmarks/RESULTS.md.

RESULTS.md has one section per scenario between marker comments, so a run of
one scenario replaces only that scenario's section.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from k8s_bench import REPO

RESULTS = REPO / "benchmarks/RESULTS.md"
ORDER = (
    "throughput-perrun",
    "throughput-shared",
    "fanout",
    "batched",
    "retention-10",
    "retention-1000",
)
INTRO = """# Scale benchmarks

Figures of `benchmarks/scale.py` (issue 7) on the local test cluster
(`make cluster-up image`): a real node for driver pods (and the batched map's
task pods) and the kwok node `flux-sim`, where task pods complete without
containers. The operator runs as a local process; its CPU time and peak RSS
are read from `/proc`. Each section says when and how it was produced; rerun a
scenario with `--write-results` to replace its section.

Targets (issue 7): at least 1,000 single-task runs per minute, at most 10 API
writes per single-task run, operator RSS at most 250 MiB; a WorkflowRun of at
most 256 KiB as stored. For comparison: Argo Workflows does about 270
single-pod workflows a minute with default settings (810 tuned) and fails runs
past about 1 MiB of status; Flyte caps map tasks at 5,000 by default; Temporal
allows 2,000 pending activities per workflow.

Reading the tables: "API writes" come from the API server's own
`apiserver_request_total` (POST, PUT, PATCH, DELETE, APPLY to workflowruns,
pods without their status and binding, configmaps and events), which counts
every client on the cluster, the kubelet's and scheduler's Events included.
A write is a request the API server answered 2xx; requests it refused (a
failed JSON-patch test or conflict, kwok's delete of a pod already gone: a 404)
store nothing and are shown apart, as "refused". "Changes seen in the
namespace" are watch events of the benchmark's namespace only (successful
writes that changed an object). "Where a run's time goes"
uses receive times of watch events and the history's event times. The CPU
table reads /proc and the kubepods cgroup over the measured window; "the rest"
is mostly short-lived processes (runc, CNI plugins) and other users.

The test cluster as measured: kube-scheduler with `--kube-api-qps 500
--kube-api-burst 1000` (its default of 50/100 capped pod bindings in a burst;
kwokctl's `--disable-qps-limits` does the same) and kwok with 32 pod stage plays
in flight (`cluster/config/kwok.yaml`). Runs on noisy shared machines vary by
about 10% between runs; the PerRun section is from an older commit.
"""


@dataclass
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append(tuple(str(c) for c in cells))


@dataclass
class Report:
    key: str  # one of ORDER
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commit: str = "?"  # of the operator's code when it started


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def seconds(n: float | None) -> str:
    return "-" if n is None else f"{n:.1f} s"


# -------------------------------------------------------------------- printing


def render_text(report: Report) -> str:
    lines = [f"== {report.title}"]
    for table in report.tables:
        lines += ["", table.title, *_aligned(table)]
    lines += [f"* {note}" for note in report.notes]
    return "\n".join(lines)


def _aligned(table: Table) -> list[str]:
    rows = [table.header, *table.rows]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(table.header))]
    out = []
    for n, row in enumerate(rows):
        padded = [*row, *[""] * (len(widths) - len(row))]
        pairs = enumerate(zip(padded, widths, strict=True))
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        out.append("  " + "  ".join(cells))
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


# ------------------------------------------------------------------ RESULTS.md


def machine() -> str:
    versions = _versions()
    k8s, kwok = versions.get("K8S_VERSION", "?"), versions.get("KWOK_VERSION", "?")
    mem = _meminfo_kib("MemTotal")
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"{nproc} CPUs (`nproc`), {mem / 2**20:.1f} GiB memory, Linux {platform.release()}, "
        f"Kubernetes {k8s} (kwok {kwok}), "
        f"Python {platform.python_version()}"
    )


def _versions() -> dict[str, str]:
    text = (REPO / "cluster/versions.env").read_text()
    return {m[1]: m[2] for m in re.finditer(r"^([A-Z0-9_]+)=(\S*)", text, re.M)}


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def command_line() -> str:
    script = os.path.relpath(sys.argv[0], REPO)
    python = os.path.relpath(sys.executable, REPO)
    return shlex.join([python, script, *sys.argv[1:]])


def operator_commit() -> str:
    """The commit the operator's code is at now (-dirty with local changes in operator/)."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "operator"], capture_output=True, text=True
    )
    return (head.stdout.strip() or "?") + ("-dirty" if dirty.stdout.strip() else "")


def render_markdown(report: Report, when: dt.datetime) -> str:
    lines = [
        f"<!-- scale:{report.key} begin -->",
        f"## {report.title}",
        "",
        f"{when:%Y-%m-%d %H:%M} UTC, operator at commit `{report.commit}`, `{command_line()}`  ",
        f"Machine: {machine()}.",
    ]
    for table in report.tables:
        lines += ["", f"**{table.title}**", "", _md_row(table.header)]
        lines.append(
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.header))) + "|"
        )
        lines += [_md_row(r) for r in table.rows]
    if report.notes:
        lines.append("")
        lines += [f"- {note}" for note in report.notes]
    lines.append(f"<!-- scale:{report.key} end -->")
    return "\n".join(lines)


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_results(reports: list[Report], path: Path = RESULTS) -> None:
    """Replace (or add) the sections of these reports, keeping the others."""
    text = path.read_text() if path.exists() else INTRO
    sections = _sections(text)
    now = dt.datetime.now(dt.UTC)
    for report in reports:
        sections[report.key] = render_markdown(report, now)
    head = text.split("<!-- scale:", 1)[0].rstrip() + "\n"
    # What follows the last scale section (other benchmarks' figures) stays.
    ends = list(re.finditer(r"<!-- scale:[\w-]+ end -->", text))
    tail = text[ends[-1].end() :].lstrip("\n") if ends else ""
    body = [sections[k] for k in ORDER if k in sections]
    path.write_text(head + "\n" + "\n\n".join(body) + "\n" + ("\n" + tail if tail else ""))


def _sections(text: str) -> dict[str, str]:
    pattern = re.compile(r"<!-- scale:([\w-]+) begin -->.*?<!-- scale:\1 end -->", re.S)
    return {m.group(1): m.group(0) for m in pattern.finditer(text)}

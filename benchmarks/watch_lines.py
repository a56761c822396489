"""The API client's watch-line splitter on one large watch event, for one or
more source trees side by side.

    .venv/bin/python benchmarks/watch_lines.py [--runs 5] [--chunk 8192] [TREE ...]

A watch event carries a whole object, up to etcd's 1.5 MiB; the stream hands
it over in chunks. This feeds ``flux.k8s.kube.rest._lines`` one such line in
``--chunk``-byte pieces (no network: only the splitting, which blocks the
event loop while it runs) and reports the median time a line. Each TREE is a
directory holding the ``flux`` package (default: this checkout's
``operator/``), e.g. an older commit unpacked with
``git archive <commit> operator | tar -x -C /tmp/old``; each runs in a fresh
process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

LINE_BYTES = 1536 * 1024

PROGRAM = """
import asyncio, statistics, sys, time
from flux.k8s.kube import rest

class Content:
    def __init__(self, chunks):
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk

async def main(runs, size, line_bytes):
    line = b"x" * line_bytes + b"\\n"
    chunks = [line[i : i + size] for i in range(0, len(line), size)]
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        lines = [found async for found in rest._lines(Content(chunks))]
        times.append(time.perf_counter() - began)
        assert lines == [line[:-1]]
    print(f"{statistics.median(times) * 1000:.1f} {len(chunks)}")

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=8192, help="bytes a chunk")
    parser.add_argument("trees", nargs="*", type=Path)
    args = parser.parse_args()
    trees = args.trees or [Path(__file__).resolve().parent.parent / "operator"]
    print(f"one {LINE_BYTES // 1024} KiB watch line in {args.chunk}-byte chunks")
    for tree in trees:
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM, str(args.runs), str(args.chunk), str(LINE_BYTES)],
            env={"PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=True,
        )
        millis, chunks = done.stdout.split()
        print(f"{tree}: {millis} ms a line ({chunks} chunks), median of {args.runs}")


if __name__ == "__main__":
    main()

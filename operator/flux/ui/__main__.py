"""The console over WorkflowRuns: ``python -m flux.ui [--namespace NS]... [--port 8765]``.

What the chart's ``ui`` component runs, with its own read-only service account
(or, outside the cluster, FLUX_KUBECONFIG or the usual kubeconfig).
Namespaces also come from FLUX_UI_NAMESPACES (comma-separated); none means
every namespace.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from flux.ui.app import create_app
from flux.ui.kube_source import KubeSource, resume_command
from flux.ui.server import check_address


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flux.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--namespace", action="append", default=[], dest="namespaces")
    args = parser.parse_args()
    from_env = [n for n in os.environ.get("FLUX_UI_NAMESPACES", "").split(",") if n.strip()]
    namespaces = [n.strip() for n in args.namespaces + from_env]
    check_address(args.host, args.port)
    app = create_app(KubeSource(namespaces), resume=resume_command)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()

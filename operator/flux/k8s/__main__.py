"""``python -m flux.k8s``: run the operator."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from flux.k8s.config import OperatorConfig
from flux.k8s.operator import handlers as _handlers  # noqa: F401  (registers them)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flux.k8s", description="the Flux operator")
    parser.add_argument(
        "--liveness",
        default=None,
        help="serve kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # kopf logs every handler call that succeeded: a line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    config = OperatorConfig.from_env()
    asyncio.run(
        kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=True,
            liveness_endpoint=args.liveness,
        )
    )


if __name__ == "__main__":
    main()

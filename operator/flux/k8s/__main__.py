"""``python -m flux.k8s``: run the operator.

Several replicas may run; one acts. Each waits for the leader Lease
(:mod:`flux.k8s.operator.leader`), runs kopf while it holds it, and gives it up
when kopf stops on SIGTERM, so a standby takes over within a second or two. A
leader that can no longer renew stops kopf and exits non-zero: the kubelet
restarts it as a standby.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import kopf
import prometheus_client

from flux.k8s import metrics
from flux.k8s.config import OperatorConfig
from flux.k8s.kube.http import KubeClient, connect
from flux.k8s.leadership import LeaderElection, new_identity
from flux.k8s.operator import handlers  # registers them
from flux.k8s.operator.leader import LeaderElector
from flux.k8s.probes import Probes

log = logging.getLogger("flux.k8s")
EXIT_LEADERSHIP_LOST = 3


class ProbeState:
    """What the readiness probe looks at."""

    def __init__(self) -> None:
        self.kopf_ready = asyncio.Event()
        self.stopping = False
        self.elector: LeaderElector | None = None

    def ready(self) -> bool:
        """Serving: the leader once kopf has started its watches, or a standby in
        touch with the API server (it can take over within the lease duration).
        A standby counts as ready so that a rolling update and the
        PodDisruptionBudget can move the leader: see docs/architecture.md."""
        if self.stopping:
            return False
        elector = self.elector
        if elector is None or elector.leading:
            return self.kopf_ready.is_set()
        return elector.in_contact()


async def _run_kopf(
    config: OperatorConfig,
    state: ProbeState,
    stop: asyncio.Event,
    elector: LeaderElector | None = None,
) -> None:
    memo = kopf.Memo()
    if elector is not None:
        memo[handlers.RELEASE_LEADERSHIP] = elector.release
    await kopf.operator(
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        # Exclusion is the Lease's job, not kopf's peering (docs/architecture.md).
        standalone=True,
        stop_flag=stop,
        ready_flag=state.kopf_ready,
        memo=memo,
    )


async def _serve(config: OperatorConfig, election: LeaderElection, probes_at: str | None) -> int:
    state = ProbeState()
    probes = Probes(state.ready)
    if probes_at:
        await probes.start(probes_at)
    try:
        if not election.enabled:
            await _run_kopf(config, state, asyncio.Event())
            return 0
        return await _elect_and_run(config, election, state)
    finally:
        state.stopping = True
        await probes.stop()


async def _elect_and_run(
    config: OperatorConfig, election: LeaderElection, state: ProbeState
) -> int:
    api = await connect()
    # Uncounted: the request metrics are the reconciler's own requests.
    elector = state.elector = LeaderElector(KubeClient(api), election, new_identity())
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, terminated.set)  # kopf installs its own once it runs
    try:
        acquiring = asyncio.create_task(elector.acquire())
        waiting = asyncio.create_task(terminated.wait())
        await asyncio.wait({acquiring, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not acquiring.done():
            acquiring.cancel()
            waiting.cancel()
            return 0
        waiting.cancel()
        stop = asyncio.Event()
        holding = asyncio.create_task(elector.hold())
        holding.add_done_callback(lambda _: stop.set())
        try:
            await _run_kopf(config, state, stop, elector)
        finally:
            state.stopping = True
            holding.cancel()
            await elector.release()  # if kopf's cleanup did not
        if elector.lost:
            log.error("leadership lost: exiting so that this replica restarts as a standby")
            return EXIT_LEADERSHIP_LOST
        return 0
    finally:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flux.k8s", description="the Flux operator")
    parser.add_argument(
        "--probes",
        default=None,
        metavar="HOST:PORT",
        help="serve /healthz (liveness) and /readyz (readiness) here, e.g. 0.0.0.0:8080",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handler call that succeeded: a line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    config = OperatorConfig.from_env()
    election = LeaderElection.from_env()
    metrics.set_build_info()
    if config.metrics_port is not None:
        # On standbys too: flux_operator_leader says which replica acts.
        prometheus_client.start_http_server(config.metrics_port)
    sys.exit(asyncio.run(_serve(config, election, args.probes)))


if __name__ == "__main__":
    main()

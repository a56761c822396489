"""The local cluster's network guard: nothing from the cluster may leave the
machine. Checks the host side (blackhole routes, nft table) and a pod's view
(no default route; the API server is reachable on the bridge and through the
kubernetes Service, both addresses on this machine)."""

from __future__ import annotations

import json
import re
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def local(cluster: Cluster) -> Cluster:
    if not cluster.local:
        pytest.skip("the network guard belongs to the local cluster (FLUX_E2E_KUBECONFIG is set)")
    return cluster


def _host(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr}"
    return proc.stdout


def test_blackhole_routes_for_pod_and_service_ranges(local: Cluster) -> None:
    routes = _host("ip", "-4", "route", "show", "type", "blackhole")
    for cidr in (local.facts["POD_CIDR"], local.facts["SERVICE_CIDR"]):
        assert any(line.split()[1] == cidr for line in routes.splitlines()), (cidr, routes)
    # The bridge holds the node / API server address.
    addrs = _host("ip", "-4", "-o", "addr", "show", "dev", local.facts["BRIDGE"])
    assert f"inet {local.facts['BRIDGE_IP']}/" in addrs


def test_nft_table_drops_forwarded_and_escaping_traffic(local: Cluster) -> None:
    table = local.facts["NFT_TABLE"]
    rules = _host("nft", "list", "table", "inet", table)
    assert "hook forward" in rules and "hook postrouting" in rules, rules
    forward = rules.split("chain forward", 1)[1].split("chain ", 1)[0]
    postrouting = rules.split("chain postrouting", 1)[1]
    # Forwarding: only bridge-internal traffic passes; an unconditional drop ends the chain.
    bridge = local.facts["BRIDGE"]
    assert f'iifname "{bridge}" oifname "{bridge}" accept' in forward, forward
    assert re.search(r"^\s*counter packets \d+ bytes \d+ drop\b", forward, re.M), forward
    # Pod/service sources may only leave through the bridge or loopback.
    assert "ip saddr @guarded4" in postrouting and "drop" in postrouting, postrouting
    for cidr in (local.facts["POD_CIDR"], local.facts["SERVICE_CIDR"]):
        assert cidr in rules


def test_pod_has_no_default_route_and_reaches_api_server(local: Cluster, namespace: str) -> None:
    code = f"""
import json, os, socket
routes = open('/proc/net/route').read().splitlines()[1:]
destinations = [line.split()[1] for line in routes]

def reach(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return True
    except OSError as e:
        return repr(e)

result = {{
    'default_route': '00000000' in destinations,
    'api_bridge': reach('{local.facts["BRIDGE_IP"]}', 6443),
    'api_service': reach(os.environ['KUBERNETES_SERVICE_HOST'],
                         os.environ['KUBERNETES_SERVICE_PORT']),
}}
open('/dev/termination-log', 'w').write(json.dumps(result))
"""
    local.apply(local.pod_manifest("netcheck", ["-c", code]), namespace)
    pod = local.wait_terminated(namespace, "netcheck", timeout=120)
    terminated = local.container_state(pod)["terminated"]
    assert terminated["exitCode"] == 0, terminated
    result = json.loads(terminated["message"])
    assert result == {"default_route": False, "api_bridge": True, "api_service": True}, result

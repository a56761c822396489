"""The operator's Kubernetes API requests, counted for its metrics."""

from __future__ import annotations

from flux.k8s import metrics


def count_request(verb: str, resource: str, status: int) -> None:
    """A :data:`~flux.k8s.kube.http.RequestObserver`: every request, and each one the
    server refused by its status code (the quota alert and panel see a 403)."""
    metrics.API_REQUESTS.labels(verb, resource).inc()
    # 0 is a server not reached: no answer, so no code to count it under.
    if status and not 200 <= status < 300:
        metrics.API_ERRORS.labels(verb, resource, str(status)).inc()

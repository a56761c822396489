"""Operator settings, from environment variables (the Helm chart sets them)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

# The operator setting that lists the images tasks may ask for (chart value
# operator.allowedTaskImages), named in the error of a task refused one.
TASK_IMAGES_ENV = "FLUX_ALLOWED_TASK_IMAGES"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None


@dataclass(frozen=True)
class OperatorConfig:
    # Image for Workflows that name none: the operator's own image, normally.
    default_image: str = "flux-runtime:latest"
    driver_service_account: str = "flux-driver"
    # A pod that cannot start (image pull error, unschedulable, bad config) fails
    # its attempt after this long instead of hanging.
    pending_timeout: float = 120.0
    # Seconds a driver waits for news before exiting (a new one starts when needed).
    driver_linger: float = 30.0
    driver_max_failures: int = 5
    # Pod deletions/evictions retried without using the task's own retries.
    infrastructure_retries: int = 3
    # Grace beyond a task's timeout before the operator itself ends the attempt,
    # counted from the container's start (imports included). The runner times
    # the body out itself; the kubelet kills a stuck pod 30 s past its timeout
    # (pods.DEADLINE_SLACK); the operator steps in only after that, when no one
    # did (the node lost, say), so a slow import alone never times a body out.
    timeout_backstop: float = 45.0
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    # Task pods one run may hold at once unless its Workflow sets spec.parallelism;
    # it bounds both the cluster load and the run's inline task records.
    max_task_pods_per_run: int = 256
    # Serve Prometheus metrics on this port (all interfaces); None: do not serve.
    metrics_port: int | None = None
    # Images a task may run in instead of its Workflow's (task.with_options(image=)),
    # as shell-style patterns ("registry.example.com/ml/*"; "*" allows any). None
    # by default: whoever may patch a run's status can edit its history, and an
    # image of their choosing would get the Secrets the Workflow maps.
    allowed_task_images: tuple[str, ...] = ()
    # Seconds a finished run is kept when neither it nor its Workflow says
    # (ttlSecondsAfterFinished); None: kept until someone deletes it.
    run_ttl_seconds: int | None = None
    # Expired runs deleted per second at most: a thousand runs expiring together
    # are deleted at this steady rate, not in one burst of API writes.
    retention_deletes_per_second: float = 10.0
    # Per-run driver pods (driverMode PerRun) running at once, all runs together;
    # runs beyond it wait with status.driver.queued and the Succeeded condition's
    # reason DriverQueued, and start in turn as drivers finish. Without a bound a
    # thousand runs created together made a thousand driver pods that queued on the
    # nodes (110 pods each by default), failed their pending timeout and retried:
    # 20 runs a minute (benchmarks/RESULTS.md, throughput).
    max_driver_pods: int = 100

    def __post_init__(self) -> None:
        if self.run_ttl_seconds is not None and self.run_ttl_seconds < 0:
            raise ValueError("FLUX_RUN_TTL_SECONDS_AFTER_FINISHED must be 0 or more")
        if not self.retention_deletes_per_second > 0:
            raise ValueError("FLUX_RETENTION_DELETES_PER_SECOND must be more than 0")
        if self.max_driver_pods < 1:
            raise ValueError("FLUX_MAX_DRIVER_PODS must be 1 or more")

    def allows_task_image(self, image: str) -> bool:
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in self.allowed_task_images)

    @classmethod
    def from_env(cls) -> OperatorConfig:
        namespaces = tuple(n for n in os.environ.get("FLUX_WATCH_NAMESPACES", "").split(",") if n)
        return cls(
            default_image=os.environ.get("FLUX_DEFAULT_IMAGE", cls.default_image),
            driver_service_account=os.environ.get(
                "FLUX_DRIVER_SERVICE_ACCOUNT", cls.driver_service_account
            ),
            pending_timeout=_env_float("FLUX_PENDING_TIMEOUT_SECONDS", cls.pending_timeout),
            driver_linger=_env_float("FLUX_DRIVER_LINGER_SECONDS", cls.driver_linger),
            max_task_pods_per_run=int(
                os.environ.get("FLUX_MAX_TASK_PODS_PER_RUN", cls.max_task_pods_per_run)
            ),
            namespaces=namespaces,
            metrics_port=int(port) if (port := os.environ.get("FLUX_METRICS_PORT")) else None,
            allowed_task_images=tuple(
                p.strip() for p in os.environ.get(TASK_IMAGES_ENV, "").split(",") if p.strip()
            ),
            run_ttl_seconds=int(ttl)
            if (ttl := os.environ.get("FLUX_RUN_TTL_SECONDS_AFTER_FINISHED"))
            else None,
            retention_deletes_per_second=_env_float(
                "FLUX_RETENTION_DELETES_PER_SECOND", cls.retention_deletes_per_second
            ),
            max_driver_pods=_env_int("FLUX_MAX_DRIVER_PODS", cls.max_driver_pods),
        )

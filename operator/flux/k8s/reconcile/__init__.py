"""One reconcile of a WorkflowRun: from what is observed to what must change.

Pure: :func:`plan_run` takes the run, its Workflow and its pods as read from the
API and returns a :class:`Plan`; the operator carries the plan out. Nothing is
remembered between reconciles, so operator restarts and repeated or lost watch
events do no harm.

- :mod:`.plan`: what a reconcile reads (:class:`Observed`) and decides (:class:`Plan`);
- :mod:`.run`: the pass over one run, and a finished run's clearing away;
- :mod:`.tasks`: the task calls' part: their moves, new pods and records;
- :mod:`.driver`: the run's driver pod, per run or shared;
- :mod:`.failures`: a run that cannot start, and its Succeeded condition.
"""

from flux.k8s.reconcile.plan import Observed, Plan
from flux.k8s.reconcile.run import DRIVER_EXIT_GRACE, plan_run

__all__ = ["DRIVER_EXIT_GRACE", "Observed", "Plan", "plan_run"]

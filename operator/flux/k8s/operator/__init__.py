"""The operator: watches Workflows, WorkflowRuns and their pods, and reconciles.

One module per job, as controller-runtime splits cache, work queue, client and
``Reconcile``:

- :mod:`~flux.k8s.operator.cache`: runs, pods and Workflows as the watches and
  our own writes last showed them;
- :mod:`~flux.k8s.operator.queue`: one pass of a run at a time, "one more pass",
  requeue-after results, the backstop, one retry on a stale view;
- :mod:`~flux.k8s.operator.reconciler`: one pass: observe,
  :func:`~flux.k8s.reconcile.plan_run`, apply;
- :mod:`~flux.k8s.operator.apply`: carrying out a plan;
- :mod:`~flux.k8s.operator.status_patch`: the JSON patch of a status change;
- :mod:`~flux.k8s.operator.shared_drivers`: the shared driver pods' lifecycle;
- :mod:`~flux.k8s.operator.workflows`: Workflow readiness and inline source;
- :mod:`~flux.k8s.operator.events`: Events posted without holding up a pass;
- :mod:`~flux.k8s.operator.retention`: finished runs deleted once their time to
  live has passed, at a bounded rate;
- :mod:`~flux.k8s.operator.handlers`: the kopf registration, the only module
  importing kopf (``python -m flux.k8s`` imports it).

Every API request goes through a :class:`flux.k8s.kube.Kube`. Nothing is
imported here, so a module of the package can be used without kopf.
"""

# Placeholder replaced by the cluster harness (issue 3).
.PHONY: e2e cluster-up cluster-down
e2e:
	@echo "e2e: cluster harness not yet in place" >&2; exit 1

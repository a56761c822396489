# Cluster harness (issue 3): a real single-node Kubernetes on this machine for
# the e2e suite. Included by the top-level Makefile (which defines BIN and venv).
# All the work is in cluster/scripts/*.sh; see cluster/README.md.
#
#   make cluster-up     start the cluster (or reuse a healthy one); prints the kubeconfig
#   make cluster-down   stop it and restore the host exactly
#   make image          build the runtime image and make it available to the cluster
#   make e2e            cluster-up + image + pytest tests/e2e
#
# FLUX_E2E_KUBECONFIG=path  run e2e against that existing cluster instead (no local
#   cluster). Then either set FLUX_E2E_IMAGE to an image that cluster can pull, or
#   FLUX_E2E_IMAGE_LOAD to a command that loads a docker-archive tarball into it
#   (the tarball path is appended), e.g. 'kind load image-archive'.
# FLUX_E2E_BASE_IMAGE=python:3.11-slim  base for the runtime image where a registry
#   is reachable (default: a local debootstrapped Debian, as no registry is here).

CLUSTER_SCRIPTS := cluster/scripts
# In CI the cluster is stopped after the suite; elsewhere it is kept for reuse.
FLUX_E2E_KEEP ?= $(if $(filter true,$(CI)),0,1)

.PHONY: e2e cluster-up cluster-down cluster-binaries image

cluster-up:
	@bash $(CLUSTER_SCRIPTS)/cluster-up.sh

cluster-down:
	@bash $(CLUSTER_SCRIPTS)/cluster-down.sh

# Only the binaries (cached under $${FLUX_E2E_CACHE:-~/.cache/flux-e2e}/<k8s version>/bin).
cluster-binaries:
	@bash $(CLUSTER_SCRIPTS)/build-binaries.sh

image: venv
ifeq ($(strip $(FLUX_E2E_KUBECONFIG)),)
	@bash $(CLUSTER_SCRIPTS)/cluster-up.sh >/dev/null
	@set -euo pipefail; source $(CLUSTER_SCRIPTS)/lib.sh; \
	  tar=$$(bash $(CLUSTER_SCRIPTS)/build-runtime-image.sh $(BIN)/python); \
	  bash $(CLUSTER_SCRIPTS)/import-image.sh "$$tar" "$$RUNTIME_IMAGE"
else ifneq ($(strip $(FLUX_E2E_IMAGE)),)
	@echo "image: using FLUX_E2E_IMAGE=$(FLUX_E2E_IMAGE); the cluster must be able to pull it"
else ifneq ($(strip $(FLUX_E2E_IMAGE_LOAD)),)
	@set -euo pipefail; \
	  tar=$$(bash $(CLUSTER_SCRIPTS)/build-runtime-image.sh $(BIN)/python); \
	  echo "image: $(FLUX_E2E_IMAGE_LOAD) $$tar"; $(FLUX_E2E_IMAGE_LOAD) "$$tar"
else
	@echo "image: FLUX_E2E_KUBECONFIG is set, so the runtime image must reach that cluster:" >&2
	@echo "  set FLUX_E2E_IMAGE (an image it can pull) or FLUX_E2E_IMAGE_LOAD (a load command)" >&2
	@exit 1
endif

e2e: venv promtool image
ifneq ($(strip $(FLUX_E2E_KUBECONFIG)),)
	@command -v kubectl >/dev/null || test -n "$(FLUX_E2E_KUBECTL)" \
	  || bash $(CLUSTER_SCRIPTS)/build-binaries.sh kubectl
endif
	@set -uo pipefail; FLUX_E2E_PREPARED=1 $(BIN)/pytest -q tests/e2e; rc=$$?; \
	  if [ "$(FLUX_E2E_KEEP)" = 0 ] && [ -z "$(strip $(FLUX_E2E_KUBECONFIG))" ]; then \
	    bash $(CLUSTER_SCRIPTS)/cluster-down.sh; fi; \
	  exit $$rc

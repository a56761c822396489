"""The Kubernetes executor: CRD models, the operator and its decisions."""

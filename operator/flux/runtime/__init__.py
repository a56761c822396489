"""What runs inside the pods: the workflow driver and the task runner."""

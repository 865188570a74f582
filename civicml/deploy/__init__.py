"""Deployment on Kubernetes: objects as pure builders (objects), the API client (client, cluster),
rollout with rollback (rollout; kubernetes re-exports the three), the TrainJob builder (trainjob) and
the Pod Security "restricted" rules every pod shares (security)."""

"""Deployment backends (Kubernetes, local) and the pod security rules they share."""

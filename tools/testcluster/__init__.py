"""Real servers for the test suite, built from their Go modules (see build.sh and versions.env).

- `testcluster.minio.start_minio()`: a MinIO server on 127.0.0.1 with generated credentials.
- `testcluster.cluster.start_control_plane()`: etcd, kube-apiserver (Node,RBAC; default admission
  plugins incl. PodSecurity), kube-controller-manager (service-account token controller),
  kube-scheduler and KWOK with two fake nodes.

The pytest fixtures live in tests/conftest.py (S3) and tests/cluster/conftest.py (Kubernetes).
pytest puts tools/ on sys.path (`pythonpath` in pyproject.toml), so tests import `testcluster`.
"""

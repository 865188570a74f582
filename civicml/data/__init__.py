"""Tables in: sources (file, S3, demo), the data contract and its checks, profile, fingerprint, split."""

"""Storage: a Store base class with local and S3 backends chosen by URI (factory), the versioned
registry with manifests and hashes, compare-and-swap aliases, and verified artifact reads."""

"""Governance: the promotion policy and gate, human approval with signed records, the hash-chained
audit log (append, verify, views), signing keys and trust."""

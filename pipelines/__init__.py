"""Pipeline definitions; `compiled/` holds the YAML users upload to the KFP UI."""

"""civicml.orchestration."""

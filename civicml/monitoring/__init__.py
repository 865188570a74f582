"""civicml.monitoring."""

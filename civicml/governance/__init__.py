"""civicml.governance."""

"""civicml.modeling."""

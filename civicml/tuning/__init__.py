"""civicml.tuning."""

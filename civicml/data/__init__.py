"""civicml.data."""

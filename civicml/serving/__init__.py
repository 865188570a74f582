"""civicml.serving."""

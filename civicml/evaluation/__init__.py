"""civicml.evaluation."""

"""civicml.storage."""

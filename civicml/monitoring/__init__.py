"""Monitoring: drift of a window against the champion's profile, live performance from logged
predictions and feedback, A/B comparison, and the retraining trigger's decision."""

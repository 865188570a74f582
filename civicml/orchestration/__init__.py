"""Orchestration: running the compiled pipelines (kfp.local and the KFP API), recurring runs (cron),
retraining submission, the monitoring flow, and `doctor` checks of an install."""

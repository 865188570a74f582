"""Evaluation of one model on the test split: metrics and the shared bootstrap, fairness, baseline,
explanations, threshold choice, champion comparison, and the evaluation report and model card data."""

"""Hyperparameter tuning: Optuna in process or Katib on the cluster (experiment objects, the trial
entry point, the objective), both returning one TuningResult."""

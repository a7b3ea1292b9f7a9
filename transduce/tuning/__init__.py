"""``transduce tune``: hyper-parameter search with Optuna. ``trial.py`` turns an Optuna trial into
an ordinary training run, ``study.py`` runs the study (storage, workers, resume), ``report.py``
says what it found (table, best.yaml, plots). See docs/tuning.md."""

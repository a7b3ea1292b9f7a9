"""The training log line's time left (progress.Progress.report)."""
import logging

from transduce.training.progress import Progress


def _eta(caplog, progress: Progress, step: int, elapsed: float, max_minutes) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="transduce"):
        progress.report({"step": step, "epoch": 1, "loss": 1.0, "ppl": 2.7, "lr": 1e-3,
                         "tgt_tok_s": 100.0, "pad_frac": 0.1}, elapsed, max_minutes)
    return caplog.records[-1].getMessage().rsplit("eta ", 1)[1]


def test_the_time_left_never_wraps_and_a_budget_past_the_horizon_counts(caplog):
    steps = Progress(100, 0, show=False)  # a run that ends at update 100
    assert _eta(caplog, steps, 50, 60.0, None) == "00:01:00"
    assert _eta(caplog, steps, 50, 60.0, 1.5) == "00:00:30"  # the budget ends it first
    assert _eta(caplog, steps, 120, 60.0, None) == "00:00:00"  # was 23:59:..: negative
    horizon = Progress(100, 0, show=False, ends_at_total=False)  # only the budget ends it
    assert _eta(caplog, horizon, 50, 60.0, 10) == "00:09:00"
    assert _eta(caplog, horizon, 400, 120.0, 10) == "00:08:00"  # past the schedules' horizon

"""What a study reports: its trials as rows (the table printed as it goes and at the end), the
progress line, and at the end ``best.yaml`` and the plots."""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from transduce.yaml_io import dump_yaml
from transduce.tuning.trial import Plan, trial_config

log = logging.getLogger("transduce.tune")
BEST, BEST_RUN = "best.yaml", "best-run"


def retried(trials: Sequence[FrozenTrial]) -> dict[int, int]:
    """Trial number -> the number of the trial that runs it again."""
    return {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}


def state(t: FrozenTrial, again: dict[int, int]) -> str:
    """complete, pruned, failed, running, waiting, or interrupted (cut short, run again)."""
    if t.number in again or t.state == TrialState.FAIL and t.user_attrs.get("interrupted"):
        return "interrupted"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed", TrialState.RUNNING: "running"}.get(t.state, "waiting")


def counted(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count towards those wanted: finished (complete, pruned, failed) or running;
    not those cut short and run again (their rerun counts instead) or waiting."""
    again = retried(trials)
    return sum(state(t, again) in ("complete", "pruned", "failed", "running") for t in trials)


def show_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial: trial, state, params, value (the final one, or the last reported),
    step (the last validation reported), minutes, model_dir, note."""
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    out = []
    for t in trials:
        last = max(t.intermediate_values, default=None)
        end = t.datetime_complete
        note = (f"run again as {again[t.number]}" if t.number in again else
                f"resumes {t.user_attrs['retry_of']}" if "retry_of" in t.user_attrs else
                t.user_attrs.get("error", ""))
        out.append({"trial": t.number, "state": state(t, again), "params": t.params,
                    "value": t.value if t.value is not None else t.intermediate_values.get(last),
                    "step": last, "minutes": (end - t.datetime_start).total_seconds() / 60
                    if end and t.datetime_start else None,
                    "model_dir": t.user_attrs.get("model_dir"), "note": note})
    return out


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no trial complete yet
        return None


def progress(study: optuna.Study, number: int, plan: Plan, seconds: float) -> str:
    """The line after a trial: how it ended, the best so far, trials finished, the study's ETA
    (the mean trial time so far, for the trials left, ``plan.jobs`` at a time)."""
    table = rows(study)
    row = next(r for r in table if r["trial"] == number)
    done = [r for r in table if r["state"] in ("complete", "pruned", "failed")]
    left = max(0, plan.trials - len(done))
    eta = left * sum(r["minutes"] or 0 for r in done) * 60 / max(1, len(done)) / plan.jobs
    if plan.deadline:
        eta = min(eta, max(0.0, plan.deadline - time.time()))
    best = _best(study)
    value = "-" if row["value"] is None else f"{row['value']:.4f}"
    return (f"trial {number} {row['state']}" + (f" at step {row['step']}" if row['step'] else "")
            + f" | dev {plan.metric} {value} | {seconds / 60:.1f} min | best: "
            + (f"trial {best.number}, {plan.metric} {best.value:.4f}" if best else "none yet")
            + f" | {len(done)}/{plan.trials} finished | study ETA "
            + time.strftime("%H:%M:%S", time.localtime(time.time() + eta)))


@dataclass
class Summary:
    """What :func:`transduce.tune` returns: the trials and what the study found."""

    study_dir: Path
    storage: str
    metric: str
    direction: str
    trials: list[dict[str, Any]]  # see :func:`rows`
    best: dict[str, Any] | None  # the best trial's row
    best_config: Path | None  # best.yaml
    plots: list[Path] = field(default_factory=list)

    @property
    def best_model_dir(self) -> Path | None:
        return Path(self.best["model_dir"]) if self.best else None

    def count(self, state: str) -> int:
        return sum(r["state"] == state for r in self.trials)

    def table(self):
        """The trials as a rich Table."""
        from rich.table import Table

        names = list(dict.fromkeys(k for r in self.trials for k in r["params"]))
        short = [k.rpartition(".")[2] for k in names]  # lr, dropout: unless two keys share one
        heads = short if len(set(short)) == len(short) else names
        table = Table("trial", "state", *heads, f"dev {self.metric}", "step", "minutes", "note",
                      title=f"study in {self.study_dir}")
        for r in self.trials:
            table.add_row(str(r["trial"]), r["state"],
                          *(_cell(r["params"].get(k)) for k in names), _cell(r["value"]),
                          _cell(r["step"]), _cell(r["minutes"], ".1f"), r["note"][:60],
                          style="bold" if self.best and r["trial"] == self.best["trial"] else None)
        return table


def _cell(value: Any, form: str = ".4g") -> str:
    return "" if value is None else f"{value:{form}}" if isinstance(value, float) else str(value)


def finish(study: optuna.Study, plan: Plan) -> Summary:
    """The summary; writes best.yaml (the best trial's config, model_dir ``best-run`` in the study
    directory: a fresh run, trainable as is) and the plots."""
    directory, table, best = Path(plan.study_dir), rows(study), _best(study)
    path = None
    if best:
        path = directory / BEST
        config = trial_config(plan, best.params, str(directory / BEST_RUN)).to_dict()
        dump_yaml(config, path)
        path.write_text(f"# study {plan.name}: its best trial, {best.number} (dev {plan.metric} "
                        f"{best.value:.4f}), trained in {best.user_attrs.get('model_dir')}\n"
                        + path.read_text(encoding="utf-8"), encoding="utf-8")
    return Summary(directory, plan.storage, plan.metric, plan.direction, table,
                   next((r for r in table if best and r["trial"] == best.number), None), path,
                   plots(study, directory))


def plots(study: optuna.Study, out: Path) -> list[Path]:
    """history.png, importances.png and slice-<param>.png with Optuna's matplotlib plots; a plot
    the trials cannot make yet (importances of fewer than two complete trials) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    names = list(dict.fromkeys(k for t in study.trials for k in t.params))
    made = [("history", lambda: vis.plot_optimization_history(study)),
            ("importances", lambda: vis.plot_param_importances(study))]
    made += [(f"slice-{k}", lambda k=k: vis.plot_slice(study, params=[k])) for k in names]
    written = []
    for name, make in made:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" warnings of the matplotlib plots
            try:
                ax = make()
            except (ValueError, RuntimeError, ZeroDivisionError) as e:
                log.info("no %s plot: %s", name, e)
                continue
        fig = getattr(ax, "figure", None) or ax.flat[0].figure
        written.append(out / f"{name}.png")
        fig.savefig(written[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return written

"""Running a study: its storage, the worker processes, and picking up after a crash.

The command takes ``tune.lock`` in the study directory exclusively, so it alone may judge the
study's unfinished trials: those this directory's runs left running (the process was killed) or
interrupted (SIGINT/SIGTERM) are queued again with the same parameters and model_dir, and resume
from their ``last/``. It then holds the lock shared, as each worker process does, until the end.
A worker asks Optuna for a trial only while the finished and running trials are fewer than those
wanted, under ``tune.ask.lock``, so J workers never start more trials than asked for.
"""
from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import optuna
from optuna.trial import TrialState

from transduce.config import Config
from transduce.errors import TransduceError
from transduce.training.progress import TrainingInterrupted
from transduce.tuning import report
from transduce.tuning.trial import Plan, run, suggest

log = logging.getLogger("transduce.tune")
DB, LOCK, ASK_LOCK = "study.db", "tune.lock", "tune.ask.lock"
HOST = socket.gethostname()
# training.validate_every of each trial when the config says auto: trials are pruned by comparing
# their validations at the same step, so the interval is fixed, not set from each trial's speed
TRIAL_VALIDATE_EVERY = 500


def tune(config: Config, trials: int | None = None, minutes: float | None = None, jobs: int = 1,
         study_dir: str | Path | None = None, storage: str | None = None) -> report.Summary:
    """Run (or continue) the study of ``config.tune`` until ``trials`` trials have finished or
    ``minutes`` have passed; the arguments override the tune section."""
    plan = make_plan(config, trials, minutes, jobs, study_dir, storage)
    with _lock(Path(plan.study_dir) / LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB) as lock:
        study = open_study(plan)
        again = recover(study, plan)
        if again:
            log.info("resuming the study: trials %s were cut short and run again",
                     ", ".join(map(str, again)))
        fcntl.flock(lock, fcntl.LOCK_SH)
        if plan.jobs == 1:
            work(plan)
        else:
            _spawn(plan)
        return report.finish(study, plan)


def make_plan(config: Config, trials: int | None, minutes: float | None, jobs: int,
              study_dir: str | Path | None, storage: str | None) -> Plan:
    """The study's settings: the tune section with the arguments over it, the study directory
    (created), the threads of each trial."""
    t = config.tune
    if not t.space:
        raise TransduceError("the config has no tune.space to search; add e.g. 'tune: {space: "
                             "{training.lr: {log_uniform: [1e-4, 3e-3]}}}' (docs/tuning.md)")
    if not config.data.dev:
        raise TransduceError("transduce tune scores each trial on the dev set; set data.dev")
    directory = Path(study_dir or config.model_dir).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    threads = config.training.threads
    if jobs > 1:  # one core each (or a share), never more threads than cores in all
        cores = len(os.sched_getaffinity(0))
        threads = max(1, min(threads or cores, cores // jobs))
    minutes = minutes or t.minutes
    base = config.to_dict(tune=False)
    if base["training"]["validate_every"] == "auto":  # the pruner compares trials at fixed steps
        base["training"]["validate_every"] = TRIAL_VALIDATE_EVERY
    return Plan(config=base, space={k: d.model_dump(exclude_none=True)
                                                          for k, d in t.space.items()},
                study_dir=str(directory), storage=storage or t.storage
                or f"sqlite:///{directory / DB}", name=config.name, trials=trials or t.trials,
                metric=t.metric or config.training.early_stopping_metric, pruner=t.pruner,
                trial_steps=t.trial_steps, trial_minutes=t.trial_minutes, jobs=jobs,
                threads=threads, deadline=time.time() + 60 * minutes if minutes else None)


@contextmanager
def _lock(path: Path, how: int) -> Iterator[int]:
    """``path`` locked with flock (``how``) while inside."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, how)
        except BlockingIOError:
            raise TransduceError(f"{path.parent}: another 'transduce tune' is running on this "
                                 f"study ({path.name} is locked); wait for it to end or use "
                                 "another --study-dir") from None
        yield fd
    finally:
        os.close(fd)


def open_study(plan: Plan, worker: int = 0) -> optuna.Study:
    """The study in its storage (created on first use), with a TPE sampler seeded from the
    config's seed, the worker and the trials so far (a rerun does not repeat earlier samples)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: str | optuna.storages.BaseStorage = plan.storage
    if plan.storage.startswith("sqlite:"):  # workers wait for each other's writes
        storage = optuna.storages.RDBStorage(plan.storage,
                                             engine_kwargs={"connect_args": {"timeout": 300}})
    try:
        study = optuna.create_study(storage=storage, study_name=plan.name, load_if_exists=True,
                                    direction=plan.direction, pruner=plan.pruner_for())
    except Exception as e:  # a bad URL, a database that is not Optuna's: the driver's errors
        raise TransduceError(f"{plan.storage}: cannot open the study ({e}); check "
                             "tune.storage / --storage") from None
    settings = json.dumps({"space": plan.space, "metric": plan.metric}, sort_keys=True)
    if study.user_attrs.setdefault("settings", settings) != settings:
        raise TransduceError(f"{plan.storage}: study '{plan.name}' was run with another "
                             "tune.space or metric; set them back, or give the changed study "
                             "another name or --study-dir")
    study.set_user_attr("settings", settings)
    seed = (plan.config["seed"] + 7919 * worker + len(study.trials)) % 2**32
    study.sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(2, min(10, plan.trials // 3)),
        constant_liar=plan.jobs > 1)
    return study


def _mine(trial: optuna.trial.FrozenTrial, plan: Plan) -> bool:
    """Whether ``trial`` was run on this machine in this study directory."""
    model_dir = trial.user_attrs.get("model_dir")
    return trial.user_attrs.get("host") == HOST and bool(model_dir) and \
        Path(model_dir).parent == Path(plan.study_dir)


def recover(study: optuna.Study, plan: Plan) -> list[int]:
    """Queue again (same parameters, same model_dir) the trials of this directory that a killed
    or interrupted run left unfinished, and mark the killed ones failed; returns their numbers.
    Only the holder of the exclusive lock calls it: no trial of this directory is running."""
    trials = study.get_trials(deepcopy=False)
    retried = report.retried(trials)
    again = []
    for t in trials:
        cut = t.state == TrialState.RUNNING or (t.state == TrialState.FAIL
                                                and t.user_attrs.get("interrupted"))
        if not cut or not _mine(t, plan):
            continue
        if t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number,
                                                      "model_dir": t.user_attrs["model_dir"]})
            again.append(t.number)
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
    return again


def _next_trial(study: optuna.Study, plan: Plan) -> optuna.Trial | None:
    """A new trial, or None when the trials wanted are finished or running, or time is up."""
    with _lock(Path(plan.study_dir) / ASK_LOCK, fcntl.LOCK_EX):
        if plan.deadline and time.time() >= plan.deadline:
            return None
        if report.counted(study.get_trials(deepcopy=False)) >= plan.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("model_dir", trial.user_attrs.get("model_dir") or
                            str(Path(plan.study_dir) / f"trial-{trial.number:03d}"))
        return trial


def work(plan: Plan, worker: int = 0) -> None:
    """Run trials, one after another, until :func:`_next_trial` has none."""
    study = open_study(plan, worker)
    while (trial := _next_trial(study, plan)) is not None:
        params = suggest(trial, plan)
        log.info("trial %d starts: %s -> %s", trial.number, report.show_params(params),
                 trial.user_attrs["model_dir"])
        tic = time.time()
        try:
            study.tell(trial, run(trial, plan, params))
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except (TrainingInterrupted, KeyboardInterrupt):
            trial.set_user_attr("interrupted", True)  # a rerun resumes it
            study.tell(trial, state=TrialState.FAIL)
            raise
        except TransduceError as e:  # this trial's config cannot train: the study goes on
            trial.set_user_attr("error", str(e))
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, e)
        log.info(report.progress(study, trial.number, plan, time.time() - tic))


def _spawn(plan: Plan) -> None:
    """``plan.jobs`` worker processes sharing the study; waits for them."""
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads
    procs = [ctx.Process(target=_worker, args=(plan, i, log.getEffectiveLevel()),
                         name=f"tune-{i}") for i in range(plan.jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:  # the workers got it too: they save their trials and stop
        for p in procs:
            p.join()
        raise
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise TransduceError(f"{len(failed)} of {plan.jobs} tune workers failed (exit status "
                             f"{failed[0]}); see their messages above, then run the same "
                             "command again to continue the study")


def _worker(plan: Plan, index: int, level: int) -> None:
    """A worker process: its training logs go to the trials' train.log, to stderr only this
    module's lines and warnings."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [{index}] %(message)s", "%H:%M:%S"))
    handler.addFilter(lambda r: r.name == log.name or r.levelno >= logging.WARNING)
    root = logging.getLogger("transduce")
    root.handlers[:], root.propagate = [handler], False
    root.setLevel(min(level, logging.INFO))
    log.setLevel(level)
    try:
        with _lock(Path(plan.study_dir) / LOCK, fcntl.LOCK_SH):
            work(plan, index)
    except TransduceError as e:
        log.error("error: %s", e)
        raise SystemExit(1)
    except TrainingInterrupted as e:
        raise SystemExit(e.exit_code)

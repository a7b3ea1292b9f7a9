#!/usr/bin/env python3
"""Acceptance 2 of issue #18: ``transduce tune`` on the demo's dates task against the default
(demo) config at the same per-trial budget.

One invocation generates the data (the demo's: 40k train, 300 dev), trains the demo config for
``--trial-minutes`` (the baseline, one thread, as each trial gets with ``--jobs 2`` on 2 cores),
then runs ``transduce tune`` with ``--jobs`` workers, ``--trials`` trials and no trial starting
after the study's time (``--minutes`` less one trial: the study ends within ``--minutes``). The
search space holds the demo's values and a far too high learning rate (up to 0.5). It prints the
trials table and the comparison, and writes ``benchmarks/results/tune-dates-<date>-<pruner>.json``;
plots are in ``<out>/study/``.

    .venv/bin/python benchmarks/tune_dates.py                       # the 30-minute study
    .venv/bin/python benchmarks/tune_dates.py --minutes 3 --trials 4 --trial-minutes 0.5 \
        --validate-every 40 --smoke
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from transduce.data.generate import write_task  # noqa: E402
from transduce.demo import demo_config  # noqa: E402

SPACE = {
    "training.lr": {"log_uniform": [1e-4, 0.5]},  # the demo's 0.002 inside, 0.5 far too high
    "model.dropout": {"uniform": [0.0, 0.4]},
    "model.attention": {"choice": ["dot", "general", "mlp"]},
    "model.embedding_size": {"choice": [32, 64, 128]},
    "model.encoder_hidden_size": {"int": [64, 192], "step": 32},
    "training.batch_size": {"choice": [32, 64, 128]},
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def dev_scores(model_dir: Path) -> dict:
    """The dev scores of a run's best/ checkpoint (its meta.json)."""
    return json.loads((model_dir / "best" / "meta.json").read_text())["scores"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="the study's wall-clock budget")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--trial-minutes", type=float, default=2.5, help="training time per trial")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--pruner", default="median", choices=["median", "halving", "none"])
    p.add_argument("--validate-every", type=int, default=250, help="updates (the demo's: 250)")
    p.add_argument("--out", type=Path, default=Path("runs/tune-dates"))
    p.add_argument("--smoke", action="store_true", help="name the results file -smoke")
    args = p.parse_args()
    transduce = [str(Path(sys.executable).parent / "transduce")]
    data = write_task("dates", args.out / "data", {"train": 40000, "dev": 300, "test": 500})

    config = demo_config(str(args.out / "baseline"), args.trial_minutes)
    config["data"].update(train=str(data / "train"), dev=str(data / "dev"), test=None)
    config["training"].update(max_steps=None, patience=None,  # the budget alone stops a run
                              validate_every=args.validate_every)
    config["name"] = "tune-dates"
    base_yaml = args.out / "baseline.yaml"
    base_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    before = uptime()
    subprocess.run(transduce + ["train", str(base_yaml), "--overwrite"], check=True)

    study_minutes = max(0.5, args.minutes - args.trial_minutes - 0.5)
    config.update(model_dir=str(args.out / "study"))
    config["training"]["max_minutes"] = None
    config["tune"] = {"space": SPACE, "trials": args.trials, "trial_minutes": args.trial_minutes,
                      "minutes": study_minutes, "pruner": args.pruner}
    study_yaml = args.out / "tune.yaml"
    study_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    tic = time.time()
    subprocess.run(transduce + ["tune", str(study_yaml), "--jobs", str(args.jobs)], check=True)
    wall = (time.time() - tic) / 60

    import optuna

    from transduce.tuning.report import rows

    study = optuna.load_study(study_name="tune-dates",
                              storage=f"sqlite:///{(args.out / 'study' / 'study.db').absolute()}")
    table = rows(study)
    best = min((r for r in table if r["state"] == "complete"), key=lambda r: r["value"])
    baseline, found = dev_scores(args.out / "baseline"), dev_scores(Path(best["model_dir"]))
    result = {"date": dt.date.today().isoformat(), "args": {k: str(v) for k, v in
                                                            vars(args).items()},
              "study_wall_minutes": wall, "uptime_before": before, "uptime_after": uptime(),
              "states": {s: sum(r["state"] == s for r in table) for s in
                         ("complete", "pruned", "failed", "interrupted")},
              "baseline_dev": baseline, "best_dev": found, "best": best, "trials": table,
              "data": str(data)}
    print(f"\nstudy: {len(table)} trials in {wall:.1f} min, {result['states']}")
    for name, s in (("default config", baseline), (f"best trial {best['trial']}", found)):
        print(f"  {name:16s} dev loss {s['loss']:.4f} | BLEU {s['bleu']:.2f} | chrF "
              f"{s['chrf']:.2f}")
    out = ROOT / "benchmarks" / "results" / (f"tune-dates-{result['date']}-{args.pruner}"
                                             f"{'-smoke' if args.smoke else ''}.json")
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"results: {out}; plots: {args.out / 'study'}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The defaults suite of issue #15: the plain user config on every corpus of the suite.

For each corpus (``examples/<name>/data``, built by its ``prepare.sh``) and each system, train
the config a user writes first — the data paths, ``data.tokenizer: sentencepiece`` and
``training.max_minutes`` (``--minutes``), nothing else — decode the test split at the default
beam, score it, and store one JSON per (system, corpus, minutes) in
``benchmarks/results/defaults/``; what is stored is skipped next time, so the long comparison
fills in over several sessions. ``--table`` prints the markdown table from the stored JSON.

    .venv/bin/python benchmarks/defaults.py --quick                       # new defaults, 0.5 min each
    .venv/bin/python benchmarks/defaults.py --minutes 10 --corpora manpages-summ
    git worktree add /tmp/transduce-old <commit>
    .venv/bin/python benchmarks/defaults.py --system old --tree /tmp/transduce-old --minutes 10
    .venv/bin/python benchmarks/defaults.py --system fairseq --minutes 10
    .venv/bin/python benchmarks/defaults.py --table

Systems: ``new`` (this working tree), ``old`` (another source tree, ``--tree``, put first on
PYTHONPATH of the same venv python), ``fairseq`` (fairseq's ``lstm`` at the benchmark size of
``peers.py``, installed by it, trained for the same minutes on the same SentencePiece pieces).
Every training and decoding process runs with its working directory outside the repository (with
``python -c`` or stdin the current directory would shadow PYTHONPATH) and is checked to import
transduce from the tree it was given. See benchmarks/README.md ("defaults.py") for the columns.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yaml  # noqa: E402
import peers  # noqa: E402  (shared helpers: PeakMemory, steady, uptime, the fairseq install)
from peers import log, steady, uptime  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "defaults"
QUICK_MINUTES = 0.5
QUICK_TEST = 100  # --quick decodes the first 100 test pairs only
SYSTEMS = ("new", "init", "old", "fairseq")  # ``--label`` names variants of new/init too


@dataclass(frozen=True)
class Corpus:
    """One corpus of the suite: ``examples/<name>/data/{train,dev,test}.<src>/<tgt>``."""

    name: str
    src: str
    tgt: str
    kind: str  # "translation", "rewriting" (BLEU, chrF; copy baseline) | "summarization"
    #            (ROUGE; copy and lead-N baselines)
    role: str  # "tuning" | "held-out" (confirmation only: never look at it while choosing)

    @property
    def data(self) -> Path:
        return REPO / "examples" / self.name / "data"

    def path(self, split: str, side: str) -> Path:
        return self.data / f"{split}.{self.src if side == 'src' else self.tgt}"


SUITE = {c.name: c for c in [
    Corpus("gettext-en-fr", "en", "fr", "translation", "tuning"),
    Corpus("manpages-summ", "desc", "summary", "summarization", "tuning"),
    Corpus("dialogue", "msg", "reply", "translation", "tuning"),
    Corpus("typed-signatures", "py", "pyi", "rewriting", "tuning"),
    Corpus("bible-es-en", "es", "en", "translation", "held-out"),
    Corpus("code-docstring", "code", "doc", "summarization", "held-out"),
]}


# ----------------------------------------------------------------------------- helpers

def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 segment file, as the prepare scripts write them."""
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_split(corpus: Corpus, quick: bool) -> tuple[list[str], list[str]]:
    """(sources, references) of the test split; its first QUICK_TEST pairs with --quick."""
    src, ref = read_lines(corpus.path("test", "src")), read_lines(corpus.path("test", "tgt"))
    n = QUICK_TEST if quick else len(src)
    return src[:n], ref[:n]


def score(corpus: Corpus, hyps: list[str], refs: list[str]) -> dict:
    """Every metric (BLEU, chrF, ROUGE-1/2/L, rep3) with transduce.evaluate, on a 0-100 scale;
    the table shows those of the corpus's kind."""
    from transduce.evaluate import evaluate

    out = evaluate(hyps, refs, ["bleu", "chrf", "rouge", "repeat"])
    out.pop("signature", None)
    return {k: round(v, 2) for k, v in out.items()}


def lead(text: str, n: int) -> str:
    """The first ``n`` words of ``text``."""
    return " ".join(text.split()[:n])


def mean_words(lines: list[str]) -> float:
    return statistics.fmean(len(ln.split()) for ln in lines) if lines else 0.0


def baselines(corpus: Corpus, quick: bool) -> dict:
    """Copy-the-source (every corpus) and first-N-words (summaries; N = the mean target length
    in words of the training split, rounded) on the same test pairs as the systems."""
    src, refs = test_split(corpus, quick)
    out = {"copy": score(corpus, src, refs)}
    if corpus.kind == "summarization":
        n = max(1, round(mean_words(read_lines(corpus.path("train", "tgt")))))
        out[f"lead-{n}"] = {**score(corpus, [lead(s, n) for s in src], refs), "n": n}
    return out


def result_path(system: str, corpus: str, minutes: float, quick: bool) -> Path:
    return RESULTS / f"{system}-{corpus}-{minutes:g}m{'-quick' if quick else ''}.json"


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def git_commit(tree: Path) -> str | None:
    """HEAD of ``tree`` with "+dirty" when it has uncommitted changes (None outside git)."""
    try:
        head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def sh(cmd: list, cwd: Path, out: Path | None = None, env: dict | None = None) -> float:
    """Run ``cmd`` in ``cwd`` (stdout into ``out``, else discarded); raise with the stderr tail
    on failure; return the wall seconds."""
    t0 = time.perf_counter()
    with open(out or os.devnull, "wb") as fout:
        res = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=fout,
                             stderr=subprocess.PIPE, cwd=cwd, env={**os.environ, **(env or {})})
    if res.returncode:
        tail = res.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return time.perf_counter() - t0


def train_process(cmd: list, out: Path, cwd: Path, env: dict | None = None,
                  limit_s: float = 3600) -> tuple[float, float]:
    """Run a training command in ``cwd`` with its output in ``out``, killed after ``limit_s``;
    return (wall seconds, peak MiB of the process tree)."""
    t0 = time.perf_counter()
    with open(out, "wb") as fout:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=fout, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd,
                                env={**os.environ, **(env or {})})
    mem = peers.PeakMemory(proc.pid)
    try:
        proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    peak = mem.stop()
    if proc.returncode:
        tail = out.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"training failed ({proc.returncode}), see {out}\n{tail}")
    return time.perf_counter() - t0, peak


# ----------------------------------------------------------------------------- reading a run

# The length-limit messages of train.log, old and new wordings ("skipped 14811 of 58880 training
# pairs (...)"; "of 27807 training pairs, 2294 sources were cut to data.max_src_len=400 tokens and
# 0 pairs skipped (...)"): matched loosely, and every such line is kept verbatim in the JSON.
SKIPPED_RE = re.compile(r"skipped (\d[\d,]*) of \d[\d,]* training pairs|(\d[\d,]*) pairs? (?:were )?skipped")
TRUNCATED_RE = re.compile(r"(\d[\d,]*) (?:\w+ )?(?:were|was) (?:cut|truncated)|truncated (\d[\d,]*)")
LENGTH_LINE_RE = re.compile(r"^.*(?:skipped \d|pairs? (?:were )?skipped|were cut|truncat).*$",
                            re.MULTILINE)
FINISHED_RE = re.compile(r"training finished after (\d+) updates \(([^)]*)\)")


def read_transduce_run(model_dir: Path) -> dict:
    """Updates, steady tgt tok/s, skipped/truncated training pairs, the chosen (best/)
    checkpoint's step and dev scores, from the run's metrics.jsonl, train.log and meta.json.

    The log lines are matched loosely (``skipped N of M training pairs``, ``truncated N [of M]``)
    and kept verbatim, so a reworded message still shows up in the JSON."""
    events = [json.loads(ln) for ln in (model_dir / "metrics.jsonl").read_text().splitlines()
              if ln.strip()]
    text = (model_dir / "train.log").read_text(errors="replace")
    rates = [e["tgt_tok_s"] for e in events if e.get("tgt_tok_s")]
    valid = [e for e in events if e.get("event") == "valid"]
    meta = lambda name: (json.loads((model_dir / name / "meta.json").read_text())  # noqa: E731
                         if (model_dir / name / "meta.json").exists() else {})
    best, last = meta("best"), meta("last")
    lines = [ln.strip() for ln in LENGTH_LINE_RE.findall(text)
             if "dev loss leaves out" not in ln and "update skipped" not in ln]
    number = lambda m: int((m[1] or m[2]).replace(",", ""))  # noqa: E731
    skipped = [number(m) for ln in lines[:1] for m in SKIPPED_RE.finditer(ln)]
    truncated = [number(m) for ln in lines[:1] for m in TRUNCATED_RE.finditer(ln)]
    finished = FINISHED_RE.search(text)
    counted = {k: v for e in events for k, v in e.items()
               if re.search("skip|truncat", k) and k != "skipped_nonfinite"}
    cfg_text = (model_dir / "config.yaml").read_text() if (model_dir / "config.yaml").exists() else ""
    return {
        "updates": last.get("step") or max((e.get("step", 0) for e in events), default=0),
        "epochs": max((e.get("epoch", 0) for e in events), default=0),
        "tok_s": steady(rates), "tok_s_intervals": len(rates),
        "skipped": sum(skipped), "truncated": sum(truncated),
        "length_log": lines[:5],
        "length_events": counted,
        "chosen_step": best.get("step"), "chosen_scores": best.get("scores"),
        "last_step": last.get("step"),
        "validations": [{k: e.get(k) for k in ("step", "dev_loss", "dev_ppl", "bleu", "chrf",
                                               "best")} for e in valid],
        "stop_reason": finished[2] if finished else None,
        "resolved_config": cfg_text,
    }


# ----------------------------------------------------------------------------- systems

def plain_config(corpus: Corpus, minutes: float, model_dir: Path) -> dict:
    """The config a user writes first: data, SentencePiece, a time budget; nothing else."""
    return {"model_dir": str(model_dir),
            "data": {"train": str(corpus.data / "train"), "dev": str(corpus.data / "dev"),
                     "src_lang": corpus.src, "tgt_lang": corpus.tgt, "tokenizer": "sentencepiece"},
            "training": {"max_minutes": minutes}}


def set_keys(cfg: dict, overrides: list[str]) -> dict:
    """``SECTION.KEY=VALUE`` overrides applied to a config dict, as ``transduce train --set``
    does (an unknown key fails here, before a run)."""
    from transduce.config import Config
    from transduce.hints import known_keys
    from transduce.overrides import apply_overrides

    return apply_overrides(cfg, overrides, known_keys(Config))


class TransduceSystem:
    """transduce from a source tree (``new``: this working tree), run by the venv's python with
    the tree first on PYTHONPATH and the working directory in the run folder. ``init``: the
    config ``transduce init`` writes for the corpus (given its dev split), with the budget set
    to ``--minutes``. ``overrides`` (``--set``) change either config; such a variant is stored
    under its ``--label``."""

    def __init__(self, name: str, tree: Path, python: Path, cache: Path,
                 overrides: list[str] = (), from_init: bool = False):
        self.name, self.tree, self.python = name, tree.resolve(), python
        self.cache, self.overrides, self.from_init = cache, list(overrides), from_init
        self.env = {"PYTHONPATH": str(self.tree)}

    def config(self, corpus: Corpus, minutes: float, run_dir: Path) -> dict:
        model_dir = run_dir / "model"
        if not self.from_init:
            return set_keys(plain_config(corpus, minutes, model_dir), self.overrides)
        written = run_dir / "init.yaml"
        written.unlink(missing_ok=True)
        sh([self.python, "-m", "transduce", "init", corpus.data / "train", "--src", corpus.src,
            "--tgt", corpus.tgt, "--dev", corpus.data / "dev", "-o", written], run_dir,
           out=run_dir / "init.out", env=self.env)
        cfg = yaml.safe_load(written.read_text())
        cfg["model_dir"] = str(model_dir)
        cfg["training"]["max_minutes"] = minutes
        return set_keys(cfg, self.overrides)

    def run_dir(self, corpus: Corpus, minutes: float) -> Path:
        return self.cache / "runs" / self.name / f"{corpus.name}-{minutes:g}m"

    def check_tree(self, cwd: Path) -> str:
        """The transduce package the subprocesses import; must be inside the tree."""
        cwd.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([self.python, "-c", "import transduce; print(transduce.__file__)"],
                             capture_output=True, text=True, cwd=cwd,
                             env={**os.environ, **self.env})
        where = out.stdout.strip()
        if out.returncode or not Path(where).resolve().is_relative_to(self.tree):
            raise RuntimeError(f"{self.name}: imports transduce from {where or out.stderr[-500:]}, "
                               f"not from {self.tree}")
        return where

    def run(self, corpus: Corpus, minutes: float, quick: bool) -> dict:
        run_dir = self.run_dir(corpus, minutes)
        model_dir = run_dir / "model"
        run_dir.mkdir(parents=True, exist_ok=True)
        imported = self.check_tree(run_dir)
        cfg = self.config(corpus, minutes, run_dir)
        cfg_path = run_dir / "config.yaml"
        cfg_path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
        log(f"{self.name}/{corpus.name}: training {minutes:g} min ({uptime()})")
        wall, peak = train_process(
            [self.python, "-m", "transduce", "train", cfg_path, "--overwrite"],
            run_dir / "train.out", run_dir, env=self.env, limit_s=minutes * 60 + 1800)
        train = {**read_transduce_run(model_dir),
                 "train_pairs": len(read_lines(corpus.path("train", "src")))}
        src, refs = test_split(corpus, quick)
        inp, hyp = run_dir / "test.src", run_dir / "test.hyp"
        inp.write_text("".join(s + "\n" for s in src), encoding="utf-8")
        log(f"{self.name}/{corpus.name}: decoding {len(src)} test pairs at the default beam")
        decode_s = sh([self.python, "-m", "transduce", "translate", model_dir, "-i", inp,
                       "-o", hyp], run_dir, env=self.env)
        hyps = read_lines(hyp)
        return {"tree": str(self.tree), "commit": git_commit(self.tree), "imported": imported,
                "config": cfg, "train": {**train, "train_wall_s": round(wall, 1),
                                         "peak_mib": peak},
                "decode": {"beam": "default", "sentences": len(src), "wall_s": round(decode_s, 1)},
                "hyps": hyps, "refs": refs, "srcs": src}


class FairseqSystem:
    """fairseq's ``lstm`` at the benchmark size of peers.py (bi-LSTM 256/direction, decoder 512,
    embeddings 256, dropout 0.1, Adam 1e-3, 64 sentences a batch), installed by peers.py into
    ``<cache>/venvs/fairseq``, trained ``minutes`` (``--stop-time-hours``) on the corpus cut
    into the SentencePiece pieces of the ``new`` run of the same corpus (the same data, piece
    for piece; its own SentencePiece models with transduce's default settings when there is no
    such run). fairseq validates on dev at every epoch end and at the stop and keeps
    checkpoint_best.pt by dev loss, its default; the test split is decoded with it at fairseq's
    default beam (5)."""

    name = "fairseq"

    def __init__(self, bench_cache: Path, cache: Path, python: Path):
        self.fs = peers.Fairseq(bench_cache)
        self.cache, self.python = cache, python

    def run_dir(self, corpus: Corpus, minutes: float) -> Path:
        return self.cache / "runs" / self.name / f"{corpus.name}-{minutes:g}m"

    def spm_models(self, corpus: Corpus, minutes: float, run_dir: Path) -> tuple[Path, Path, str]:
        """(source model, target model, where they come from)."""
        runs = sorted((self.cache / "runs" / "new").glob(f"{corpus.name}-*m/model"),
                      key=lambda p: (p.parent.name != f"{corpus.name}-{minutes:g}m", p))
        for model in runs:
            if (model / "spm.src.model").exists():
                tgt = model / "spm.tgt.model"
                return model / "spm.src.model", tgt if tgt.exists() else model / "spm.src.model", \
                    f"the new run {model.parent.name}"
        return (*self.train_spm(corpus, run_dir), "trained here (8000 pieces per side, unigram)")

    def train_spm(self, corpus: Corpus, run_dir: Path) -> tuple[Path, Path]:
        """SentencePiece per side with transduce's default settings."""
        import sentencepiece as spm

        paths = []
        for side in ("src", "tgt"):
            prefix = run_dir / f"spm.{side}"
            lines = [ln for ln in read_lines(corpus.path("train", side)) if ln.strip()]
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_prefix=str(prefix), vocab_size=8000,
                model_type="unigram", character_coverage=1.0, pad_id=-1, bos_id=-1, eos_id=-1,
                unk_id=0, num_threads=2, minloglevel=2, hard_vocab_limit=False)
            paths.append(Path(f"{prefix}.model"))  # not with_suffix: it would drop .src
        return paths[0], paths[1]

    def prepare(self, corpus: Corpus, minutes: float, run_dir: Path) -> tuple[Path, dict]:
        """Pieces of train/dev/test/test_quick, binarized with fairseq-preprocess."""
        import sentencepiece as spm

        src_model, tgt_model, origin = self.spm_models(corpus, minutes, run_dir)
        sp = {"src": spm.SentencePieceProcessor(model_file=str(src_model)),
              "tgt": spm.SentencePieceProcessor(model_file=str(tgt_model))}
        text = run_dir / "pieces"
        text.mkdir(parents=True, exist_ok=True)
        for split in ("train", "dev", "test"):
            for side in ("src", "tgt"):
                lines = read_lines(corpus.path(split, side))
                pieces = [" ".join(sp[side].encode(ln, out_type=str)) for ln in lines]
                (text / f"{split}.{side}").write_text("".join(p + "\n" for p in pieces))
                if split == "test":
                    (text / f"test_quick.{side}").write_text(
                        "".join(p + "\n" for p in pieces[:QUICK_TEST]))
        dest = run_dir / "bin"
        secs = sh([self.fs.bin("fairseq-preprocess"), "--source-lang", "src", "--target-lang",
                   "tgt", "--trainpref", text / "train", "--validpref", text / "dev",
                   "--testpref", f"{text}/test,{text}/test_quick", "--destdir", dest,
                   "--workers", "2"], run_dir)
        return dest, {"spm": origin, "preprocess_s": round(secs, 1)}

    def run(self, corpus: Corpus, minutes: float, quick: bool) -> dict:
        import shutil

        install = self.fs.ensure_installed()
        run_dir = self.run_dir(corpus, minutes)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        data_bin, prep = self.prepare(corpus, minutes, run_dir)
        m = peers.MODEL
        cmd = [self.fs.bin("fairseq-train"), data_bin, *peers.fairseq_lstm(m, minutes),
               "--skip-invalid-size-inputs-valid-test",
               "--save-dir", run_dir / "model", "--no-epoch-checkpoints",
               "--log-format", "json", "--log-interval", 25]
        out = run_dir / "train.out"
        log(f"fairseq/{corpus.name}: training {minutes:g} min ({uptime()})")
        wall, peak = train_process(cmd, out, run_dir, env=self.fs.ENV,
                                   limit_s=minutes * 60 + 1800)
        text = out.read_text(errors="replace")
        inner = [json.loads(j) for j in re.findall(r"\| train_inner \| (\{.*\})", text)]
        best = re.findall(r"checkpoint_best\.pt \(epoch (\d+) @ (\d+) updates, score ([\d.]+)\)",
                          text)
        skipped = re.findall(r"(\d+) samples have invalid sizes and will be skipped", text)
        n_train = len(read_lines(corpus.path("train", "src")))
        epochs = [json.loads(j) for j in re.findall(r"\| train \| (\{.*\})", text)]
        rate = steady([float(e["wps"]) for e in inner])
        if rate is None and epochs:  # fewer than 25 updates: the epoch's average instead
            rate = float(epochs[-1]["train_wps"])
        train = {"updates": int(re.findall(r"@ (\d+) updates", text)[-1]),
                 "tok_s": rate, "tok_s_intervals": len(inner),
                 "skipped": int(skipped[0]) if skipped else 0,  # the first warning: training
                 "train_pairs": n_train, "truncated": 0,
                 "chosen_step": int(best[-1][1]) if best else None,
                 "chosen_scores": {"dev_loss": float(best[-1][2])} if best else None,
                 "epochs": int(best[-1][0]) if best else None,
                 "train_wall_s": round(wall, 1), "peak_mib": peak, **prep}
        ckpt = run_dir / "model" / ("checkpoint_best.pt" if best else "checkpoint_last.pt")
        src, refs = test_split(corpus, quick)
        raw = run_dir / "test.generate"
        log(f"fairseq/{corpus.name}: decoding {len(src)} test pairs at beam 5")
        decode_s = sh([self.fs.bin("fairseq-generate"), data_bin, "--path", ckpt,
                       "--gen-subset", "test1" if quick else "test", "--source-lang", "src",
                       "--target-lang", "tgt", "--batch-size", 64, "--cpu",
                       "--skip-invalid-size-inputs-valid-test",
                       "--required-batch-size-multiple", 1], run_dir, out=raw, env=self.fs.ENV)
        found = {int(i): h for i, h in re.findall(r"^H-(\d+)\t[^\t]*\t(.*)$", raw.read_text(),
                                                   re.MULTILINE)}
        hyps = [pieces_to_text(found.get(i, "")) for i in range(len(src))]
        return {"install": install, "config": {"command": [str(c) for c in cmd]},
                "train": train,
                "decode": {"beam": 5, "sentences": len(src), "wall_s": round(decode_s, 1),
                           "missing": len(src) - len(found)},
                "hyps": hyps, "refs": refs, "srcs": src}


def pieces_to_text(pieces: str) -> str:
    """SentencePiece pieces (space-separated, ``▁`` marking word starts) back to text."""
    return "".join(pieces.split()).replace("\u2581", " ").strip()


# ----------------------------------------------------------------------------- one result

def measure(system, corpus: Corpus, minutes: float, quick: bool) -> dict:
    """Train, decode and score one (system, corpus, minutes); the JSON record."""
    started, before = dt.datetime.now(), uptime()
    res = system.run(corpus, minutes, quick)
    hyps, refs, srcs = res.pop("hyps"), res.pop("refs"), res.pop("srcs")
    if len(hyps) != len(refs):
        raise RuntimeError(f"{len(hyps)} outputs for {len(refs)} test sources")
    return {"system": system.name, "corpus": corpus.name, "kind": corpus.kind,
            "role": corpus.role, "minutes": minutes, "quick": quick,
            "date": started.isoformat(timespec="seconds"), "uptime_before": before,
            "uptime_after": uptime(), "threads": os.environ.get("OMP_NUM_THREADS"),
            "scores": score(corpus, hyps, refs), "baselines": baselines(corpus, quick),
            "samples": [{"src": s[:300], "ref": r, "hyp": h}
                        for s, r, h in list(zip(srcs, refs, hyps))[:3]],
            **res}


# ----------------------------------------------------------------------------- the table

def metric_cells(kind: str, scores: dict | None) -> str:
    if not scores:
        return "-"
    if kind == "summarization":
        return " / ".join(f"{scores[k]:.1f}" for k in ("rouge1", "rouge2", "rougeL"))
    return f"{scores['bleu']:.1f} / {scores['chrf']:.1f}"


def load_results(root: Path = RESULTS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]


def table(results: list[dict], minutes: float | None = None) -> str:
    """Markdown tables, one per (minutes, quick) budget: the test metric per corpus and system
    with the baselines, then each run's training figures."""
    out = []
    budgets = sorted({(r["minutes"], r["quick"]) for r in results
                      if minutes is None or r["minutes"] == minutes})
    for mins, quick in budgets:
        rs = [r for r in results if (r["minutes"], r["quick"]) == (mins, quick)]
        systems = [s for s in SYSTEMS if any(r["system"] == s for r in rs)] + sorted(
            {r["system"] for r in rs} - set(SYSTEMS))
        by = {(r["corpus"], r["system"]): r for r in rs}
        corpora = [c for c in SUITE if any(r["corpus"] == c for r in rs)]
        test = f"first {QUICK_TEST} test pairs" if quick else "test split"
        out.append(f"### {mins:g} min of training{' (--quick)' if quick else ''}, {test}\n")
        out.append("BLEU / chrF (translation-like), ROUGE-1 / 2 / L F1 (summarization-like)\n")
        head = ["corpus", "kind", "role", "copy source", "first-N words", *systems]
        rows = [head, ["---"] * len(head)]
        for c in corpora:
            corpus = SUITE[c]
            base = next((by[c, s]["baselines"] for s in systems if (c, s) in by
                         and "baselines" in by[c, s]), {})
            leads = [(k, v) for k, v in base.items() if k.startswith("lead-")]
            cells = [metric_cells(corpus.kind, by[c, s].get("scores")) if (c, s) in by
                     and "error" not in by[c, s] else ("error" if (c, s) in by else "")
                     for s in systems]
            rows.append([c, corpus.kind, corpus.role, metric_cells(corpus.kind, base.get("copy")),
                         f"{metric_cells(corpus.kind, leads[0][1])} ({leads[0][0]})" if leads
                         else "-", *cells])
        out.append("\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n")
        head = ["corpus", "system", "updates", "tgt tok/s", "skipped", "truncated",
                "chosen step / last", "train wall s", "decode s", "commit"]
        rows = [head, ["---"] * len(head)]
        for c in corpora:
            for s in systems:
                r = by.get((c, s))
                if r is None:
                    continue
                if "error" in r:
                    rows.append([c, s, "error: " + r["error"].splitlines()[0][:80]]
                                + [""] * (len(head) - 3))
                    continue
                t = r["train"]
                pct = lambda n: (f" ({100 * n / t['train_pairs']:.1f}%)"  # noqa: E731
                                 if t.get("train_pairs") and n else "")
                rows.append([c, s, f"{t['updates']:,}",
                             "-" if t.get("tok_s") is None else f"{t['tok_s']:,.0f}",
                             f"{t['skipped']:,}{pct(t['skipped'])}",
                             f"{t.get('truncated', 0):,}{pct(t.get('truncated', 0))}",
                             f"{t.get('chosen_step')} / {t.get('last_step', t['updates'])}",
                             f"{t['train_wall_s']:.0f}", f"{r['decode']['wall_s']:.0f}",
                             str(r.get("commit") or "-")])
        out.append("\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", choices=SYSTEMS, default="new")
    ap.add_argument("--tree", type=Path, help="source tree of --system old (e.g. a git worktree)")
    ap.add_argument("--minutes", type=float, help="training budget per corpus (default 10)")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_MINUTES} min per corpus unless --minutes, first {QUICK_TEST} "
                         "test pairs")
    ap.add_argument("--corpora", help=f"comma-separated subset of {','.join(SUITE)}")
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="a variant of new/init: config overrides, e.g. data.vocab_size=2000 "
                         "(needs --label)")
    ap.add_argument("--label", help="the system name a --set variant is stored and shown under")
    ap.add_argument("--table", action="store_true", help="print the table of stored results only")
    ap.add_argument("--force", action="store_true", help="redo results that are stored")
    ap.add_argument("--reread", action="store_true",
                    help="re-read the training figures of stored new/old results from their run "
                         "folders (after a log message changed); trains nothing")
    ap.add_argument("--threads", type=int, help="OMP/MKL threads for every process "
                                                "(default: torch's choice)")
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/transduce-bench"),
                    help="peers.py's cache: its fairseq venv; runs go to <cache>/defaults/")
    ap.add_argument("--python", type=Path, default=REPO / ".venv/bin/python",
                    help="python with torch and transduce's dependencies")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the result JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(table(load_results(args.out), args.minutes))
        return 0
    minutes = args.minutes or (QUICK_MINUTES if args.quick else 10.0)
    names = [n.strip() for n in (args.corpora or ",".join(SUITE)).split(",") if n.strip()]
    if not names or set(names) - set(SUITE):
        ap.error(f"--corpora must be a subset of {','.join(SUITE)}")
    if bool(args.set) != bool(args.label) or (args.set and args.system == "fairseq"):
        ap.error("--set and --label go together, with --system new, init or old")
    if args.system == "old" and not args.tree:
        ap.error("--system old needs --tree PATH (a source tree of the previous defaults)")
    if args.threads:
        os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    bench_cache = args.cache.expanduser().resolve()
    cache = bench_cache / "defaults"
    if args.system == "fairseq":
        system = FairseqSystem(bench_cache, cache, args.python)
    else:
        system = TransduceSystem(args.label or args.system, args.tree or REPO, args.python, cache,
                                 args.set, from_init=args.system == "init")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reread:
        for name in names:
            path = args.out / result_path(system.name, name, minutes, args.quick).name
            model_dir = getattr(system, "run_dir")(SUITE[name], minutes) / "model"
            if system.name == "fairseq" or not path.exists() or not model_dir.is_dir():
                continue
            record = json.loads(path.read_text())
            if "error" not in record:
                record["train"].update(read_transduce_run(model_dir), train_pairs=len(
                    read_lines(SUITE[name].path("train", "src"))))
                path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
                log(f"{system.name}/{name}: re-read {shown(model_dir)}")
        print(table(load_results(args.out), minutes))
        return 0
    failed = 0
    for name in names:
        corpus = SUITE[name]
        path = args.out / result_path(system.name, name, minutes, args.quick).name
        if path.exists() and not args.force and "error" not in json.loads(path.read_text()):
            log(f"{system.name}/{name}: stored in {shown(path)} (--force redoes it)")
            continue
        if not corpus.path("test", "tgt").exists():
            log(f"{name}: no data; run bash examples/{name}/prepare.sh first")
            failed += 1
            continue
        tic = time.perf_counter()
        try:
            record = measure(system, corpus, minutes, args.quick)
        except Exception as e:  # record the failure; the other corpora are still measured
            log(f"{system.name}/{name}: FAILED: {e}")
            record = {"system": system.name, "corpus": name, "kind": corpus.kind,
                      "role": corpus.role, "minutes": minutes, "quick": args.quick,
                      "date": dt.datetime.now().isoformat(timespec="seconds"), "error": str(e)}
            failed += 1
        record["total_s"] = round(time.perf_counter() - tic, 1)
        path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        log(f"{system.name}/{name}: {record.get('scores', 'error')} -> {shown(path)}")
    print(table(load_results(args.out), minutes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Train transduce, Joey NMT and fairseq side by side on one reversal data set.

One invocation installs the peers (once, into their own venvs under the cache folder),
generates the data (once), then trains each system for the same wall-clock budget with the
same model (bi-LSTM 256/direction encoder, 1-layer LSTM 512 decoder with attention and input
feeding, embeddings 256, dropout 0.1, Adam 1e-3, 64 sentences per batch), decodes the test set
at beam 1 and beam 5, prints one table and writes ``benchmarks/results/peers-<date>.json``.

    python3 benchmarks/peers.py                                  # all four, 3 min each
    python3 benchmarks/peers.py --systems joey,fairseq --quick   # 1 min each, 100 test sentences
    python3 benchmarks/peers.py --rounds 3                       # 3 rounds, medians and ratios

On a shared machine one system's rate moves by 10-20 % from one run to the next; ``--rounds N``
trains every system N times, in an order rotated each round, and reports each number's median and
the goal ratios of each round (transduce against the peer with the same attention).

Standard library only; sacrebleu is run through whichever venv python has it.
See benchmarks/README.md for what each column means.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
VOCAB = [f"s{i}" for i in range(100)]
SIZES = {"train": 100_000, "dev": 500, "test": 1_000}
QUICK_TEST = 100
DECODE_BATCH = 64
MAX_LEN = 60  # output length cap for every decoder (longest reference: 25 tokens)
WARMUP_FRAC = 0.2  # leading share of logged intervals dropped as warm-up
MODEL = dict(emb=256, enc=256, dec=512, dropout=0.1, lr=1e-3, batch=64)


# ----------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    """Progress line on stderr, prefixed with the clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str | Path], out: Path | None = None, env: dict | None = None,
       stdin: Path | None = None) -> float:
    """Run cmd (stdin from `stdin`, stdout into `out`, both else /dev/null).

    Raises with the stderr tail on failure; returns the wall time in seconds."""
    t0 = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin, open(out or os.devnull, "wb") as fout:
        res = subprocess.run([str(c) for c in cmd], stdin=fin, stdout=fout,
                             stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    if res.returncode:
        tail = res.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return time.perf_counter() - t0


def uptime() -> str:
    """The `uptime` line (load averages)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def steady(values: list[float]) -> float | None:
    """Median of per-interval rates after dropping the first WARMUP_FRAC (at least one)."""
    if not values:
        return None
    skip = max(1, math.ceil(len(values) * WARMUP_FRAC)) if len(values) > 2 else 0
    return statistics.median(values[skip:])


def fairseq_lstm(m: dict, minutes: float) -> list:
    """``fairseq-train`` options of the benchmark model ``m`` (MODEL): fairseq's LSTM at the same
    sizes, Adam, plain cross-entropy, CPU, seed 1, a budget of ``minutes``."""
    return ["--task", "translation",
            "--source-lang", "src", "--target-lang", "tgt", "--arch", "lstm",
            "--encoder-embed-dim", m["emb"], "--encoder-hidden-size", m["enc"],
            "--encoder-layers", 1, "--encoder-bidirectional",
            "--decoder-embed-dim", m["emb"], "--decoder-hidden-size", m["dec"],
            "--decoder-layers", 1, "--decoder-out-embed-dim", m["dec"],
            "--dropout", m["dropout"], "--optimizer", "adam", "--lr", m["lr"],
            "--batch-size", m["batch"], "--criterion", "cross_entropy", "--cpu",
            "--seed", 1, "--stop-time-hours", minutes / 60]

class PeakMemory:
    """Polls /proc for the summed PSS of a process and its descendants; keeps the peak (MiB).

    PSS (proportional set size) counts shared pages once across the tree, so forked data
    workers are not double-counted; falls back to RSS where smaps_rollup is missing."""

    def __init__(self, pid: int, every: float = 0.5):
        self.pid, self.every, self.peak_mib = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _tree(pid: int) -> list[int]:
        pids, todo = [], [pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    todo += [int(c) for c in (task / "children").read_text().split()]
                except OSError:
                    pass
        return pids

    @staticmethod
    def _kib(pid: int) -> int:
        for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
            try:
                for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                    if line.startswith(key):
                        return int(line.split()[1])
            except OSError:
                continue
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            mib = sum(self._kib(p) for p in self._tree(self.pid)) / 1024
            self.peak_mib = max(self.peak_mib, mib)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_mib, 1)


def train_process(cmd: list[str | Path], out: Path, env: dict | None = None,
                  budget_s: float | None = None, start_marker: str | None = None,
                  limit_s: float = 3600) -> tuple[float, float]:
    """Run a training command with its output in `out`; return (wall seconds, peak MiB).

    With budget_s, send SIGINT budget_s seconds after `start_marker` first appears in the
    output (for toolkits without a wall-clock stop of their own)."""
    t0 = time.perf_counter()
    with open(out, "wb") as fout:
        # SIGINT back to its default: a shell's background job starts with it ignored, and a
        # Python child that inherits SIG_IGN never raises KeyboardInterrupt (Joey's stop)
        proc = subprocess.Popen([str(c) for c in cmd], stdout=fout, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    mem, started, interrupted = PeakMemory(proc.pid), None, False
    while proc.poll() is None:
        time.sleep(0.5)
        now = time.perf_counter()
        if budget_s and started is None and start_marker in out.read_text(errors="replace"):
            started = now
        if started is not None and not interrupted and now - started >= budget_s:
            proc.send_signal(signal.SIGINT)
            interrupted = True
        if now - t0 > limit_s:
            proc.kill()
    peak = mem.stop()
    if proc.returncode:
        tail = out.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"training failed ({proc.returncode}), see {out}\n{tail}")
    return time.perf_counter() - t0, peak


def pad_fraction(tgt_lens: list[int], batches: list[list[int]]) -> float:
    """Share of padding in padded target batches (lengths include EOS)."""
    real = sum(tgt_lens[i] for b in batches for i in b)
    padded = sum(len(b) * max(tgt_lens[i] for i in b) for b in batches)
    return round(1 - real / padded, 4)


def chunks(order: list[int], size: int) -> list[list[int]]:
    """Consecutive batches of `size` indices."""
    return [order[i:i + size] for i in range(0, len(order), size)]


def safetensors_params(path: Path) -> int:
    """Parameter count read from a .safetensors header (no torch needed)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


# ----------------------------------------------------------------------------- data

def make_data(root: Path, seed: int = 1) -> None:
    """Reversal task: random strings over 100 symbols, lengths 1-25, target = source reversed.

    Writes {train,dev,test,test_quick,test_one}.{src,tgt} (space-separated tokens), once."""
    marker = root / ".done"
    meta = json.dumps({"seed": seed, "sizes": SIZES, "quick": QUICK_TEST, "vocab": len(VOCAB)})
    if marker.exists() and marker.read_text() == meta:
        return
    shutil.rmtree(root, ignore_errors=True)  # also drops derived data (fairseq-bin)
    root.mkdir(parents=True)
    rng = random.Random(seed)
    for split, n in SIZES.items():
        src = [[rng.choice(VOCAB) for _ in range(rng.randint(1, 25))] for _ in range(n)]
        (root / f"{split}.src").write_text("".join(" ".join(s) + "\n" for s in src))
        (root / f"{split}.tgt").write_text("".join(" ".join(s[::-1]) + "\n" for s in src))
    for split, n in (("test_quick", QUICK_TEST), ("test_one", 1)):
        for side in ("src", "tgt"):
            lines = (root / f"test.{side}").read_text().splitlines(keepends=True)
            (root / f"{split}.{side}").write_text("".join(lines[:n]))
    marker.write_text(meta)


def train_target_lengths(data: Path) -> list[int]:
    """Target lengths of the training set, EOS included."""
    return [len(l.split()) + 1 for l in (data / "train.tgt").read_text().splitlines()]


# ----------------------------------------------------------------------------- systems

class System:
    """One toolkit: install once, train for a budget, translate a test split.

    Subclasses set `name` and implement install/train/translate."""
    name = ""

    def __init__(self, cache: Path):
        self.cache, self.data = cache, cache / "data"
        self.venv = cache / "venvs" / self.name
        self.run_dir = cache / "runs" / self.name
        self.py = self.venv / "bin" / "python"

    def marker(self) -> Path:
        """File whose presence says the venv is complete (holds the install time)."""
        return self.venv / ".transduce-bench-installed.json"

    def ensure_installed(self) -> dict:
        """Install into self.venv unless the marker exists; return the marker's content."""
        if not self.marker().exists():
            log(f"{self.name}: installing into {self.venv}")
            shutil.rmtree(self.venv, ignore_errors=True)
            t0 = time.perf_counter()
            sh([sys.executable, "-m", "venv", self.venv])
            self.install()
            info = {"install_s": round(time.perf_counter() - t0, 1),
                    "installed_at": dt.datetime.now().isoformat(timespec="seconds")}
            self.marker().write_text(json.dumps(info))
            log(f"{self.name}: installed in {info['install_s']} s")
        return json.loads(self.marker().read_text())

    def pip(self, *args: str, env: dict | None = None) -> None:
        """pip install into this system's venv."""
        sh([self.py, "-m", "pip", "install", "-q", *args], env=env)

    def constraints(self) -> Path:
        """pip constraints file pinning torch to the version the peers are known to run on."""
        path = self.cache / "constraints.txt"
        path.write_text("torch==2.13.0\n")
        return path

    def install(self) -> None:
        """Install the toolkit into the (fresh) venv."""
        raise NotImplementedError

    def train(self, minutes: float) -> dict:
        """Train afresh for `minutes`; return params, tok_s, updates, pad_frac, peak_mib..."""
        raise NotImplementedError

    def translate(self, split: str, beam: int, out: Path) -> float:
        """Translate data/<split>.src into `out` (one line per input); return wall seconds."""
        raise NotImplementedError


class Transduce(System):
    """This repository's toolkit, run from its own venv (`--transduce-python`), with MLP
    (Bahdanau) attention like Joey NMT's."""
    name = "transduce"
    attention = "mlp"

    def __init__(self, cache: Path, python: Path):
        super().__init__(cache)
        self.py = python

    def ensure_installed(self) -> dict:
        sh([self.py, "-c", "import transduce"])
        return {"install_s": None, "python": str(self.py)}

    def config(self, minutes: float) -> Path:
        """The benchmark config; JSON is valid YAML, so no YAML writer is needed."""
        d = self.data
        cfg = {
            "name": "peers-reverse", "seed": 1, "model_dir": str(self.run_dir / "model"),
            "data": {"train": f"{d}/train", "dev": f"{d}/dev", "test": f"{d}/test",
                     "src_lang": "src", "tgt_lang": "tgt", "tokenizer": "word"},
            "model": {"cell": "lstm", "attention": self.attention, "embedding_size": MODEL["emb"],
                      "encoder_hidden_size": MODEL["enc"], "bidirectional": True,
                      "decoder_hidden_size": MODEL["dec"], "layers": 1,
                      "input_feeding": True, "dropout": MODEL["dropout"]},
            "training": {"optimizer": "adam", "lr": MODEL["lr"], "batch_size": MODEL["batch"],
                         "max_minutes": minutes, "validate_every": 1_000_000,
                         "log_every": 25,  # fairseq's interval: enough rates in a 1-min run
                         "precision": "fp32"},
            "decoding": {"beam_size": 5},
        }
        path = self.run_dir / "config.yaml"
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def train(self, minutes: float) -> dict:
        # tok/s: transduce's own `tgt_tok_s` per logged interval in metrics.jsonl
        # (non-pad target tokens incl. EOS / training seconds, validation excluded).
        cfg = self.config(minutes)
        wall, peak = train_process([self.py, "-m", "transduce", "train", cfg],
                                   self.run_dir / "train.out", limit_s=minutes * 60 + 900)
        model = self.run_dir / "model"
        events = [json.loads(l) for l in (model / "metrics.jsonl").read_text().splitlines()
                  if l.strip()]
        rates = [e["tgt_tok_s"] for e in events if e.get("tgt_tok_s")]
        pads = [e["pad_frac"] for e in events if e.get("pad_frac") is not None]
        ckpt = next(p for p in (model / "last/model.safetensors",
                                model / "best/model.safetensors") if p.exists())
        return {"params": safetensors_params(ckpt), "tok_s": steady(rates),
                "tok_s_intervals": rates, "updates": max(e.get("step", 0) for e in events),
                "pad_frac": statistics.median(pads) if pads else None,
                "pad_source": "logged (metrics.jsonl pad_frac)",
                "train_wall_s": round(wall, 1), "peak_mib": peak}

    def translate(self, split: str, beam: int, out: Path) -> float:
        return sh([self.py, "-m", "transduce", "translate", self.run_dir / "model",
                   "-i", self.data / f"{split}.src", "-o", out, "--beam-size", str(beam),
                   "--batch-size", str(DECODE_BATCH), "--max-len", str(MAX_LEN)])


class Joey(System):
    """Joey NMT 2.3.0 (recipe: shared/README.md section 5)."""
    name = "joey"

    def install(self) -> None:
        self.pip("-c", str(self.constraints()), "joeynmt==2.3.0", "importlib_metadata",
                 "sentencepiece==0.2.0")
        # The plateau scheduler passes verbose=False, which torch 2.13 no longer accepts.
        site = subprocess.run([self.py, "-c", "import joeynmt,os;print(os.path.dirname("
                               "joeynmt.__file__))"], capture_output=True, text=True)
        builders = Path(site.stdout.strip()) / "builders.py"
        lines = builders.read_text().splitlines(keepends=True)
        builders.write_text("".join(l for l in lines if l.strip() != '"verbose": False,'))

    def config(self, beam: int) -> Path:
        """Joey YAML (as JSON) for training and for decoding with `beam`."""
        side = lambda lang: {"lang": lang, "level": "word", "lowercase": False,
                             "max_length": 30, "voc_min_freq": 1, "voc_limit": 1000}
        emb = {"embedding_dim": MODEL["emb"], "scale": False}
        cfg = {
            "name": "peers-reverse", "joeynmt_version": "2.3.0",
            "data": {"train": f"{self.data}/train", "dev": f"{self.data}/dev",
                     "dataset_type": "plain", "src": side("src"), "trg": side("tgt")},
            "testing": {"beam_size": beam, "batch_size": DECODE_BATCH,
                        "batch_type": "sentence", "max_output_length": MAX_LEN,
                        "eval_metrics": ["bleu"], "n_best": 1},
            "training": {"random_seed": 1, "optimizer": "adam", "learning_rate": MODEL["lr"],
                         "batch_size": MODEL["batch"], "batch_type": "sentence",
                         "epochs": 1000, "validation_freq": 1_000_000, "logging_freq": 10,
                         "early_stopping_metric": "loss",
                         # Joey requires a scheduler; plateau steps only at validation
                         # (never here), so the lr stays constant.
                         "scheduling": "plateau", "model_dir": str(self.run_dir / "model"),
                         "overwrite": True, "shuffle": True, "use_cuda": False, "fp16": False,
                         "print_valid_sents": [], "num_workers": 0},
            "model": {
                "encoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": emb,
                            "hidden_size": MODEL["enc"], "bidirectional": True,
                            "dropout": MODEL["dropout"], "num_layers": 1},
                "decoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": emb,
                            "hidden_size": MODEL["dec"], "dropout": MODEL["dropout"],
                            "hidden_dropout": MODEL["dropout"], "num_layers": 1,
                            "input_feeding": True, "attention": "bahdanau"}},
        }
        path = self.run_dir / f"config.beam{beam}.yaml"
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def train(self, minutes: float) -> dict:
        # Joey has no wall-clock stop: SIGINT `minutes` after "EPOCH 1" (training loop start);
        # Joey catches it and saves latest.ckpt. tok/s: Joey's "Tokens per Sec" per 10 updates
        # (trg_mask.sum(): non-pad target tokens incl. EOS / seconds, validation excluded).
        # Padding: Joey batches 64 shuffled sentences with no length bucketing; pad_frac is
        # computed by replaying that rule on the training targets.
        out = self.run_dir / "train.out"
        wall, peak = train_process([self.py, "-m", "joeynmt", "train", self.config(5),
                                    "--skip-test"], out, budget_s=minutes * 60,
                                   start_marker="EPOCH 1", limit_s=minutes * 60 + 900)
        text = out.read_text(errors="replace")
        rates = [float(x) for x in re.findall(r"Tokens per Sec:\s*([\d.]+)", text)]
        lens, order = train_target_lengths(self.data), list(range(SIZES["train"]))
        random.Random(1).shuffle(order)
        return {"params": int(re.search(r"Total params: (\d+)", text).group(1)),
                "tok_s": steady(rates), "tok_s_intervals": rates,
                "updates": int(re.search(r"Interrupt at epoch \d+, step (\d+)", text).group(1)),
                "pad_frac": pad_fraction(lens, chunks(order, MODEL["batch"])),
                "pad_source": "simulated (shuffled batches of 64, no bucketing)",
                "train_wall_s": round(wall, 1), "peak_mib": peak}

    def translate(self, split: str, beam: int, out: Path) -> float:
        # Joey's -o flag is unreliable here (shared/README.md section 5): use stdout.
        return sh([self.py, "-m", "joeynmt", "translate", self.config(beam)], out=out,
                  stdin=self.data / f"{split}.src")


class Fairseq(System):
    """fairseq-fixed 0.12.3.1, `lstm` architecture (recipe: shared/README.md section 5)."""
    name = "fairseq"
    SUBSETS = {"test": "test", "test_quick": "test1", "test_one": "test2"}
    ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}

    def bin(self, tool: str) -> Path:
        """A console script of the fairseq venv."""
        return self.venv / "bin" / tool

    def install(self) -> None:
        self.pip("torch==2.13.0", "numpy", "cython", "wheel", "setuptools<81")
        src = self.cache / "src"
        sh([self.py, "-m", "pip", "download", "-q", "--no-deps", "-d", src,
            "fairseq-fixed==0.12.3.1"])
        self.pip("--no-deps", "--no-build-isolation", str(src / "fairseq_fixed-0.12.3.1.tar.gz"),
                 env={"MAX_JOBS": "2"})
        self.pip("-c", str(self.constraints()), "cffi", "hydra-core==1.3.2", "omegaconf==2.3.0",
                 "regex", "sacrebleu", "tqdm", "bitarray", "scikit-learn", "packaging",
                 "tensorboardX")

    def binarize(self) -> Path:
        """fairseq-preprocess the data once (not part of the training budget)."""
        dest = self.data / "fairseq-bin"
        if not (dest / ".done").exists():
            shutil.rmtree(dest, ignore_errors=True)
            d = self.data
            secs = sh([self.bin("fairseq-preprocess"), "--source-lang", "src",
                       "--target-lang", "tgt", "--trainpref", d / "train", "--validpref",
                       d / "dev", "--testpref", f"{d}/test,{d}/test_quick,{d}/test_one",
                       "--destdir", dest, "--workers", "2"])
            (dest / ".done").write_text(json.dumps({"preprocess_s": round(secs, 1)}))
        return dest

    def train(self, minutes: float) -> dict:
        # fairseq stops itself via --stop-time-hours (trainer wall time) and saves
        # checkpoint_last.pt. tok/s: fairseq's "wps" per 25-update train_inner log
        # (sample["ntokens"]: non-pad target tokens incl. EOS; validation disabled).
        # Padding: fairseq sorts by length and takes 64 consecutive sentences per batch;
        # pad_frac replays that rule on the training targets.
        m, data_bin = MODEL, self.binarize()
        cmd = [self.bin("fairseq-train"), data_bin, *fairseq_lstm(m, minutes),
               "--disable-validation",
               "--save-dir", self.run_dir / "model", "--no-epoch-checkpoints",
               "--log-format", "json", "--log-interval", 25]
        out = self.run_dir / "train.out"
        wall, peak = train_process(cmd, out, env=self.ENV, limit_s=minutes * 60 + 900)
        text = out.read_text(errors="replace")
        inner = [json.loads(j) for j in re.findall(r"\| train_inner \| (\{.*\})", text)]
        rates = [float(e["wps"]) for e in inner]
        lens = train_target_lengths(self.data)
        order = sorted(range(len(lens)), key=lambda i: lens[i])
        return {"params": int(re.search(r"num\. shared model params: ([\d,]+)", text)
                              .group(1).replace(",", "")),
                "tok_s": steady(rates), "tok_s_intervals": rates,
                "updates": int(re.findall(r"@ (\d+) updates", text)[-1]),
                "pad_frac": pad_fraction(lens, chunks(order, m["batch"])),
                "pad_source": "simulated (length-sorted batches of 64)",
                **json.loads((data_bin / ".done").read_text()),
                "train_wall_s": round(wall, 1), "peak_mib": peak}

    def translate(self, split: str, beam: int, out: Path) -> float:
        raw = out.with_suffix(".generate")
        secs = sh([self.bin("fairseq-generate"), self.data / "fairseq-bin", "--path",
                   self.run_dir / "model" / "checkpoint_last.pt", "--gen-subset",
                   self.SUBSETS[split], "--source-lang", "src", "--target-lang", "tgt",
                   "--beam", str(beam), "--batch-size", str(DECODE_BATCH), "--cpu",
                   "--max-len-a", "0", "--max-len-b", str(MAX_LEN),
                   # the default multiple of 8 drops a lone 1-sentence batch
                   "--required-batch-size-multiple", "1"],
                  out=raw, env=self.ENV)
        hyps = {int(i): h for i, h in re.findall(r"^H-(\d+)\t[^\t]*\t(.*)$",
                                                  raw.read_text(), re.M)}
        out.write_text("".join(hyps[i] + "\n" for i in sorted(hyps)))
        return secs


# ----------------------------------------------------------------------------- measuring

def sacrebleu_python(cache: Path, transduce_python: Path) -> Path:
    """A python that can `import sacrebleu` (transduce's venv first, then the peers')."""
    for py in (transduce_python, Joey(cache).py, Fairseq(cache).py):
        if py.exists() and not subprocess.run([py, "-c", "import sacrebleu"],
                                                    capture_output=True).returncode:
            return Path(py)
    raise RuntimeError("no python with sacrebleu found; install it in /work/main/.venv")


def bleu(py: Path, hyp: Path, ref: Path) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenization) of hyp against ref."""
    code = ("import sys,sacrebleu;r=lambda p:open(p).read().splitlines();"
            "print(sacrebleu.corpus_bleu(r(sys.argv[1]),[r(sys.argv[2])]).score)")
    res = subprocess.run([py, "-c", code, hyp, ref], capture_output=True, text=True, check=True)
    return round(float(res.stdout), 2)


def decode(system: System, split: str, bleu_py: Path) -> dict:
    """Time translate at beam 1 and 5 on `split`; model load = wall time on one sentence."""
    out_dir = system.run_dir / "decode"
    out_dir.mkdir(exist_ok=True)
    load_s = system.translate("test_one", 1, out_dir / "one.txt")
    ref = system.data / f"{split}.tgt"
    n = len(ref.read_text().splitlines())
    res: dict = {"load_s": round(load_s, 2), "sentences": n}
    for beam in (1, 5):
        out = out_dir / f"{split}.beam{beam}.txt"
        secs = system.translate(split, beam, out)
        hyps = out.read_text().splitlines()
        if len(hyps) != n:
            raise RuntimeError(f"{system.name}: {len(hyps)} outputs for {n} inputs in {out}")
        toks = sum(len(h.split()) + 1 for h in hyps)
        net = max(secs - load_s, 1e-9)
        res[f"beam{beam}"] = {"wall_s": round(secs, 2), "sent_s": round(n / secs, 1),
                              "sent_s_net": round(n / net, 1), "tok_s_net": round(toks / net),
                              "bleu": bleu(bleu_py, out, ref)}
    return res


def run_system(system: System, minutes: float, split: str, bleu_py: Path) -> dict:
    """Install (if needed), train and decode one system; everything measured in one dict."""
    install = system.ensure_installed()
    shutil.rmtree(system.run_dir, ignore_errors=True)
    system.run_dir.mkdir(parents=True)
    before = uptime()
    log(f"{system.name}: training for {minutes} min ({before})")
    result = {"install": install, "uptime_before": before, **system.train(minutes)}
    log(f"{system.name}: decoding {split}")
    result["decode"] = decode(system, split, bleu_py)
    result["uptime_after"] = uptime()
    return result


class TransduceGeneral(Transduce):
    """transduce with bilinear ("general") attention: the same attention as fairseq's `lstm`
    (scores h_dec . W h_enc, then tanh(W [context; h_dec]) as the decoder output)."""
    name = "transduce-general"
    attention = "general"


def table(results: dict) -> str:
    """Fixed-width text table of the headline numbers."""
    cols = ["system", "params", "tgt tok/s", "pad %", "updates", "BLEU b5", "BLEU b1",
            "sent/s b1", "sent/s b5", "load s", "peak MiB"]
    rows = [cols]
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "error: " + r["error"].splitlines()[0][:60]])
            continue
        d = r["decode"]
        fmt = lambda x, f="{:,.0f}": "-" if x is None else f.format(x)
        rows.append([name, fmt(r["params"]), fmt(r["tok_s"]),
                     fmt(r["pad_frac"] and 100 * r["pad_frac"], "{:.1f}"), fmt(r["updates"]),
                     fmt(d["beam5"]["bleu"], "{:.2f}"), fmt(d["beam1"]["bleu"], "{:.2f}"),
                     fmt(d["beam1"]["sent_s"], "{:.1f}"), fmt(d["beam5"]["sent_s"], "{:.1f}"),
                     fmt(d["load_s"], "{:.1f}"), fmt(r["peak_mib"])])
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in rows)


def median_result(runs: list[dict]) -> dict:
    """One result with the median over rounds of every number the table shows."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]

    def med(get: Callable[[dict], float | None]) -> float | None:
        values = [v for v in (get(r) for r in ok) if v is not None]
        return statistics.median(values) if values else None

    beam = lambda b, key: med(lambda r: r["decode"][f"beam{b}"][key])  # noqa: E731
    return {"params": ok[0]["params"], "tok_s": med(lambda r: r["tok_s"]),
            "pad_frac": med(lambda r: r["pad_frac"]), "updates": med(lambda r: r["updates"]),
            "peak_mib": med(lambda r: r["peak_mib"]), "rounds": len(ok),
            "decode": {"load_s": med(lambda r: r["decode"]["load_s"]),
                       **{f"beam{b}": {"sent_s": beam(b, "sent_s"), "bleu": beam(b, "bleu")}
                          for b in (1, 5)}}}


# (transduce system, peer, what): the goal ratios of issue #4, each against the same attention
RATIOS = [("transduce-general", "fairseq", "tok_s"), ("transduce", "joey", "tok_s"),
          ("transduce", "joey", "beam5"), ("transduce-general", "joey", "beam5")]


def ratios(rounds: list[dict[str, dict]]) -> dict[str, list[float]]:
    """Per round, transduce's training / beam-5 decoding rate over the peer's."""
    get = {"tok_s": lambda r: r["tok_s"], "beam5": lambda r: r["decode"]["beam5"]["sent_s"]}
    out: dict[str, list[float]] = {}
    for ours, peer, what in RATIOS:
        key = f"{ours}/{peer} {what}"
        for res in rounds:
            a, b = res.get(ours, {}), res.get(peer, {})
            if "error" in a or "error" in b or not a or not b or not get[what](b):
                continue
            out.setdefault(key, []).append(round(get[what](a) / get[what](b), 2))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default="transduce,transduce-general,joey,fairseq",
                    help="comma-separated subset of transduce,transduce-general,joey,fairseq")
    ap.add_argument("--minutes", type=float, help="training budget per system (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help=f"1-minute budget and a {QUICK_TEST}-sentence test set")
    ap.add_argument("--cache", type=Path, default=Path("~/.cache/transduce-bench"))
    ap.add_argument("--transduce-python", type=Path, default=REPO / ".venv/bin/python")
    ap.add_argument("--threads", type=int,
                    help="OMP/MKL threads for every system (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results",
                    help="folder for peers-<date>.json")
    ap.add_argument("--rounds", type=int, default=1,
                    help="train every system this many times (order rotated); report medians")
    args = ap.parse_args(argv)
    minutes = args.minutes or (1.0 if args.quick else 3.0)
    split = "test_quick" if args.quick else "test"
    cache = args.cache.expanduser().resolve()
    makers: dict[str, Callable[[], System]] = {
        "transduce": lambda: Transduce(cache, args.transduce_python),
        "transduce-general": lambda: TransduceGeneral(cache, args.transduce_python),
        "joey": lambda: Joey(cache), "fairseq": lambda: Fairseq(cache)}
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not names or set(names) - set(makers):
        ap.error(f"--systems must be a subset of {','.join(makers)}")
    systems = [makers[n]() for n in names]
    if args.threads:  # inherited by every training and decoding subprocess
        os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    started, up_before = dt.datetime.now(), uptime()
    for s in systems:  # install everything first so a broken install fails early
        s.ensure_installed()
    make_data(cache / "data")
    bleu_py = sacrebleu_python(cache, args.transduce_python)
    rounds: list[dict[str, dict]] = []
    for k in range(max(1, args.rounds)):
        shift = k % len(systems)  # rotate the order so no system always runs first or last
        results: dict[str, dict] = {}
        for s in systems[shift:] + systems[:shift]:
            try:
                results[s.name] = run_system(s, minutes, split, bleu_py)
            except Exception as e:  # keep measuring the others; the JSON records the failure
                log(f"{s.name}: FAILED: {e}")
                results[s.name] = {"error": str(e)}
        rounds.append(results)
    if len(rounds) == 1:
        results = rounds[0]
    else:
        results = {s.name: median_result([r[s.name] for r in rounds]) for s in systems}
    per_round = ratios(rounds)
    report = {"date": started.isoformat(timespec="seconds"), "quick": args.quick,
              "minutes": minutes, "test_split": split, "threads": args.threads, "cache": str(cache),
              "model": MODEL, "decode_batch": DECODE_BATCH, "warmup_frac": WARMUP_FRAC,
              "uptime_before": up_before, "uptime_after": uptime(), "systems": results,
              "ratios": per_round}
    if len(rounds) > 1:
        report["rounds"] = rounds
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = (("-quick" if args.quick else "") + (f"-t{args.threads}" if args.threads else "")
              + (f"-r{len(rounds)}" if len(rounds) > 1 else ""))
    path = args.out / f"peers-{started:%Y-%m-%d}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"uptime before: {up_before}\n")
    print(table(results) if len(rounds) == 1 else
          f"medians over {len(rounds)} rounds\n{table(results)}")
    if per_round:
        print("\nratios (per round; median):")
        for key, values in per_round.items():
            print(f"  {key:34s} {values}  {statistics.median(values):.2f}x")
    print(f"\nuptime after:  {report['uptime_after']}\nwrote {path}")
    return 1 if any("error" in r for res in rounds for r in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

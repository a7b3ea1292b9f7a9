"""Corpora larger than memory: the training-data cache (data/cache.py, data/training_set.py,
data/binarized.py) and the streaming reader (data/corpus.py).

The cache is built once and reused without reading the text again, rebuilt when the data or the
settings change, never left looking complete by a crash, and training from it is bit-identical
to training from pairs held in memory as before; reading in chunks reports the same FILE:LINE
errors as reading a file whole. benchmarks/memory_corpus.py measures memory and start-up time.
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from transduce.config import load_config
from transduce.data import binarized, corpus
from transduce.data.batching import Pairs
from transduce.data.codec import encode_pairs
from transduce.data.corpus import decode_lines, filter_pairs, split_lines
from transduce.data.generate import write_task
from transduce.data.profile import SAMPLE, measure, profile
from transduce.data.tokenizers import WordTokenizer, sampled
from transduce.data.training_set import CACHE_DIR
from transduce.errors import TransduceError
from transduce.training.trainer import Trainer

from conftest import tiny_config

ROOT = Path(__file__).parents[1]


@pytest.fixture
def data(tmp_path) -> Path:
    """A reversal corpus with an empty pair and an over-long target (skipped), in its own
    folder (and so its own cache)."""
    out = write_task("reverse", tmp_path / "data", {"train": 400, "dev": 20}, vocab=12,
                     max_len=8)
    src = (out / "train.src").read_text().splitlines()
    tgt = (out / "train.tgt").read_text().splitlines()
    src[3], tgt[7] = "", " ".join(["w1"] * 20)
    (out / "train.src").write_text("\n".join(src) + "\n")
    (out / "train.tgt").write_text("\n".join(tgt) + "\n")
    return out


def _config(data: Path, model_dir: Path, **data_keys):
    cfg = tiny_config(data, model_dir, training={"max_steps": 6, "validate_every": 6})
    # a vocabulary without 4 of the 12 words: copy's extended ids for them
    cfg["data"].update({"max_src_len": 6, "max_tgt_len": 10, "max_vocab_size": 12, **data_keys})
    cfg["model"]["copy"] = True  # the extended source ids are cached too
    return load_config(cfg)


def _start(cfg) -> Trainer:
    trainer = Trainer(cfg)
    trainer._close_log()
    return trainer


def _entries(data: Path) -> list[str]:
    return sorted(p.name for p in (data / CACHE_DIR).iterdir() if p.is_dir())


def _kinds(names: list[str]) -> list[str]:
    return sorted(n.split("-")[0] for n in names)


def _count_reads(monkeypatch) -> list[str]:
    """The files read line by line (``corpus.iter_lines``) from now on."""
    read, real = [], corpus.iter_lines

    def counting(path, *args, **kwargs):
        read.append(Path(path).name)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(corpus, "iter_lines", counting)
    return read


def test_the_cache_is_built_once_and_a_rerun_reads_no_training_text(data, tmp_path, monkeypatch,
                                                                     caplog):
    caplog.set_level(logging.INFO, logger="transduce")
    first = _start(_config(data, tmp_path / "a"))
    assert _kinds(_entries(data)) == ["codecs", "corpus", "pairs"]
    assert caplog.text.count("data cache: built") == 3
    caplog.clear()
    read = _count_reads(monkeypatch)
    tokenized = []
    real = WordTokenizer.tokenize
    monkeypatch.setattr(WordTokenizer, "tokenize",
                        lambda self, text: tokenized.append(text) or real(self, text))
    second = _start(_config(data, tmp_path / "b"))  # a new model_dir: codecs from the cache too
    assert "train.src" not in read and "train.tgt" not in read and tokenized == []
    assert caplog.text.count("data cache: reused") == 3 and "data cache: built" not in caplog.text
    # what the build logged is said again: the skipped pairs, then the counts
    assert "2 pairs skipped (1 empty, 1 with targets over data.max_tgt_len=10" in caplog.text
    assert "training data: 398 pairs from" in caplog.text
    assert (tmp_path / "a" / "vocab.tgt.txt").read_text() == \
        (tmp_path / "b" / "vocab.tgt.txt").read_text()
    for a, b in ((first.data.src_lens, second.data.src_lens),
                 (first.data.tgt_lens, second.data.tgt_lens)):
        assert np.array_equal(a, b)
    idx = np.arange(len(first.data.src_lens))
    for name in ("src", "tgt_out", "src_ext"):
        assert torch.equal(getattr(first.data.batch(idx), name),
                           getattr(second.data.batch(idx), name))


def test_a_change_of_data_or_settings_builds_what_it_changes_and_drops_stale_entries(
        data, tmp_path):
    seen: set[str] = set()

    def new_entries(model_dir: str, **data_keys) -> list[str]:
        _start(_config(data, tmp_path / model_dir, **data_keys))
        new = set(_entries(data)) - seen
        seen.update(new)
        return _kinds(sorted(new))
    assert new_entries("m1") == ["codecs", "corpus", "pairs"]
    assert new_entries("m1b") == []
    assert new_entries("m2", max_tgt_len=12) == ["pairs"]  # other pairs, the same vocabularies
    # another vocabulary setting that builds the same vocabularies: the pairs are reused
    assert new_entries("m3", min_freq=2) == ["codecs"]
    assert new_entries("m4", max_vocab_size=10) == ["codecs", "pairs"]
    with open(data / "train.src", "a") as f, open(data / "train.tgt", "a") as g:
        f.write("w1 w2\n")
        g.write("w2 w1\n")
    assert new_entries("m5") == ["codecs", "corpus", "pairs"]
    assert _kinds(_entries(data)) == ["codecs", "corpus", "pairs"]  # the old data's are gone
    assert len(_start(_config(data, tmp_path / "m6")).data.src) == 399


def _crash_mid_build(data: Path, model_dir: Path, tmp_path: Path) -> None:
    """Start training in a child that is killed (SIGKILL) while it writes the pairs entry."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(data, model_dir).to_dict()))
    code = f"""
import json, os, signal
from transduce.config import load_config
from transduce.data import binarized
from transduce.training.trainer import Trainer
binarized.CHUNK_PAIRS = 50
real, calls = binarized.np.fromiter, []
def fromiter(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:  # two chunks written, the third being made
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
binarized.np.fromiter = fromiter
Trainer(load_config(json.loads(open({str(config)!r}).read())))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_a_build_killed_midway_leaves_no_entry_that_reads_as_complete(data, tmp_path, caplog):
    _crash_mid_build(data, tmp_path / "killed", tmp_path)
    names = [p.name for p in (data / CACHE_DIR).iterdir()]
    assert any(n.startswith("pairs-") and ".tmp-" in n for n in names)  # the half-built one
    assert not any(n.startswith("pairs-") and ".tmp-" not in n for n in names)
    caplog.set_level(logging.INFO, logger="transduce")
    trainer = _start(_config(data, tmp_path / "next"))
    assert "data cache: built" in caplog.text and "encoded pairs" in caplog.text
    assert len(trainer.data.src) == 398
    assert not any(".tmp-" in p.name for p in (data / CACHE_DIR).iterdir())  # swept


def test_an_entry_whose_files_were_cut_short_is_rebuilt(data, tmp_path, caplog):
    _start(_config(data, tmp_path / "a"))
    (pairs,) = [p for p in (data / CACHE_DIR).iterdir() if p.name.startswith("pairs-")]
    with open(pairs / binarized.TOKENS, "r+b") as f:
        f.truncate(100)
    caplog.set_level(logging.INFO, logger="transduce")
    trainer = _start(_config(data, tmp_path / "b"))
    assert f"data cache: built {pairs}" in caplog.text
    assert (pairs / binarized.TOKENS).stat().st_size > 100
    assert len(trainer.data.src) == 398


def _in_memory(cfg, trainer: Trainer) -> Pairs:
    """The training pairs as transduce held them before the cache: every line tokenized,
    filtered, cut and encoded, in lists (``Pairs.from_text`` and ``Pairs.concat``)."""
    d, src, tgt = cfg.data, trainer.src, trainer.tgt
    ids = [[], [], []]
    weights = []
    for corpus_ in d.corpora():
        lines = [Path(f"{corpus_.path}.{lang}").read_text().splitlines()
                 for lang in (d.src_lang, d.tgt_lang)]
        s_tok = [src.tokenize(s.strip()) for s in lines[0]]
        t_tok = [tgt.tokenize(t.strip()) for t in lines[1]]
        keep, _ = filter_pairs(s_tok, t_tok, d.max_src_len, d.max_tgt_len, "x")
        s, t, e, _ = encode_pairs([s_tok[i][:d.max_src_len] for i in keep],
                                  [t_tok[i] for i in keep], src.vocab, tgt.vocab,
                                  cfg.model.copy)
        for side, new in zip(ids, (s, t, e)):
            side += new
        weights += [corpus_.weight] * len(keep)
    pairs = Pairs(*ids)
    pairs.weights = np.array(weights, dtype=float) if len(d.corpora()) > 1 else None
    return pairs


@pytest.mark.parametrize("weighted", [False, True])
def test_training_from_the_cache_gives_the_weights_of_training_from_memory(data, tmp_path,
                                                                          weighted):
    extra = {}
    if weighted:
        other = write_task("reverse", tmp_path / "other", {"train": 150}, vocab=12, max_len=5,
                           seed=3)
        extra["train"] = [{"path": str(data / "train"), "weight": 1.0},
                          {"path": str(other / "train"), "weight": 2.5}]
    cfg = _config(data, tmp_path / "cached", **extra)
    cached = Trainer(cfg)
    reference = Trainer(_config(data, tmp_path / "memory", **extra))
    reference.data = _in_memory(cfg, reference)
    assert len(reference.data.src) == len(cached.data.src) == 398 + 150 * weighted
    for i in range(len(cached.data.src)):
        for side in ("src", "tgt", "ext"):
            assert np.array_equal(getattr(cached.data, side)[i], getattr(reference.data, side)[i])
    if weighted:
        assert np.array_equal(cached.data.weights, reference.data.weights)
    cached.train()
    reference.train()
    a, b = cached.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("problem, message", [
    (b"w1 w2\nw3\nbad \xff here\nw4\n", r"train\.src:3: invalid UTF-8 \(invalid start byte"),
    (b"w1 w2\nw3\nw4\x00\n", r"train\.src:3: NUL byte at byte 11"),
    (b"w1 w2\rw3\r", r"train\.src: the lines end in CR only"),
    (b"w1\nw2\nw3\nw4\nw5\n", r"train\.tgt:5: line-count mismatch: .*train\.src has 5 lines, "
                              r".*train\.tgt has 4"),
])
def test_bad_training_lines_are_errors_naming_file_and_line_and_build_no_entry(
        tmp_path, problem, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.src").write_bytes(problem)
    (data / "train.tgt").write_text("w1\nw2\nw3\nw4\n")
    cfg = load_config(tiny_config(data, tmp_path / "model", data={"dev": None}))
    with pytest.raises(TransduceError, match=message):
        Trainer(cfg)
    assert not [p for p in (data / CACHE_DIR).iterdir() if p.is_dir()]


def test_a_missing_training_file_creates_no_folder(tmp_path):
    cfg = load_config(tiny_config(tmp_path / "nope", tmp_path / "model"))
    with pytest.raises(TransduceError, match="file not found; config key 'data.train'"):
        Trainer(cfg)
    assert not (tmp_path / "nope").exists()


def _split_lines_before(raw: bytes, name: str, fix: str) -> list[str]:
    """``corpus.split_lines`` as it was before files were read in chunks (the whole input
    decoded at once)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise TransduceError(f"{name}:{line}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                             f"{fix}") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise TransduceError(f"{name}:{line}: NUL byte at byte {nul}: this is binary data or "
                             f"UTF-16/UTF-32 text, not UTF-8 text; {fix}")
    if "\n" not in text and "\r" in text:
        raise TransduceError(f"{name}: the lines end in CR only (old Mac line endings: "
                             f"{text.count(chr(13))} CR, no LF), so it would read as one line; "
                             "convert them to LF, e.g. with tr '\\r' '\\n' or mac2unix")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\ufeff" in text:
        first = text.count("\n", 0, text.index("\ufeff")) + 1
        logging.getLogger("transduce").warning(
            "%s:%d: removed %d byte-order mark(s) (U+FEFF) inside the text (files joined with "
            "cat?)", name, first, text.count("\ufeff"))
        text = text.replace("\ufeff", "")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.strip() for ln in lines]


def _random_text(rng: random.Random) -> bytes:
    parts = ["a b", "ç", "€", "\r\n", "\n", "\n\n", " ", "\ufeff", "x\ry", "日本", "\r"]
    raw = "".join(rng.choice(parts) for _ in range(rng.randint(0, rng.choice([3, 60])))).encode()
    if rng.random() < 0.3:
        at = rng.randint(0, len(raw))
        raw = raw[:at] + rng.choice([b"\xff", b"\x00", b"\xe2\x82"]) + raw[at:]
    return raw


def _outcome(read, caplog) -> tuple:
    caplog.clear()
    try:
        lines = list(read())
    except TransduceError as e:
        return "error", str(e)
    return lines, [r.getMessage() for r in caplog.records]


def test_reading_in_chunks_gives_the_lines_and_errors_of_reading_whole(caplog):
    caplog.set_level(logging.WARNING, logger="transduce")
    rng = random.Random(4)
    for _ in range(1000):
        raw = _random_text(rng)
        before = _outcome(lambda: _split_lines_before(raw, "f", "fix"), caplog)
        assert _outcome(lambda: split_lines(raw, "f", "fix"), caplog) == before, raw
        for size in (1, 2, 3, 7):
            chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
            # (at most one problem an input: with several, the first block's is reported)
            assert _outcome(lambda: decode_lines(chunks, "f", "fix"), caplog) == before, raw


def test_the_streamed_profile_and_sentencepiece_sample_are_the_ones_of_lists():
    rng = random.Random(2)
    src = [" ".join(rng.choice("abcde") for _ in range(rng.randint(0, 4))) for _ in range(5000)]
    tgt = [" ".join(rng.choice("abcxy") for _ in range(rng.randint(0, 4))) for _ in range(5000)]
    # the profile as it was measured on lists: the sample of the non-empty pairs' indices
    idx = [i for i in range(len(src)) if src[i].strip() and tgt[i].strip()]
    idx = sorted(random.Random(1).sample(idx, SAMPLE))
    assert profile(src, tgt) == measure([(src[i], tgt[i]) for i in idx])
    assert sampled(iter(src), len(src), 700, 1) == random.Random(1).sample(src, 700)


def test_of_processes_wanting_one_entry_at_once_one_builds_and_the_others_wait(data, tmp_path):
    """As DDP ranks or parallel runs on one data folder: the build holds the cache's lock."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(data, tmp_path / "model").to_dict()))
    code = f"""
import json, logging, sys, time
from pathlib import Path
from transduce.config import load_config
from transduce.data import training_set
from transduce.data.training_set import TrainingSet
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
real = training_set.write_pairs
def slow(*args):
    time.sleep(1.5)  # long enough for the other process to want the entry meanwhile
    return real(*args)
training_set.write_pairs = slow
cfg = load_config(json.loads(open({str(config)!r}).read()))
train = TrainingSet.read(cfg.data)
out = Path(sys.argv[1])
out.mkdir()
src, tgt = train.codecs(cfg.data, out)
pairs = train.pairs(cfg.data, src, tgt, cfg.model.copy)
print("pairs", len(pairs.src), int(pairs.src_lens.sum()))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{i}")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    logs = [out for out, _ in outs]
    for kind in ("corpus", "codecs", "pairs"):
        assert sum(f"data cache: built {data / CACHE_DIR}/{kind}-" in log for log in logs) == 1
        assert sum(f"data cache: reused {data / CACHE_DIR}/{kind}-" in log for log in logs) == 1
    assert len({log.splitlines()[-1] for log in logs}) == 1  # the same pairs

"""The bad-input catalogue (docs/errors.md): every mistake gives a non-zero exit and one line,
``error: ...``, naming the file and line (or the config key) and the fix, with no traceback, and
leaves what is already in model_dir untouched.

Each case runs the real command line (``transduce.cli.main``) in-process against a copy of a
trained model_dir; two cases also run as real processes to check the process-level behaviour.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from conftest import tiny_config
from transduce.cli import main


@pytest.fixture(scope="module")
def trained(reverse_data, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bad-inputs")
    cfg = tiny_config(reverse_data, root / "model", training={"max_steps": 10,
                                                              "validate_every": 5})
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "c.yaml")]) == 0
    return root / "model", cfg


class Ctx:
    """One case's world: a copy of the trained model_dir, its config, and helpers."""

    def __init__(self, tmp: Path, trained: tuple[Path, dict], monkeypatch):
        self.tmp, self.monkeypatch = tmp, monkeypatch
        self.model_dir = tmp / "model"
        shutil.copytree(trained[0], self.model_dir)
        self.cfg = yaml.safe_load(yaml.safe_dump(trained[1]))
        self.cfg["model_dir"] = str(self.model_dir)

    def config(self, text: str | None = None, **sections) -> str:
        """Write the config (the trained one with ``sections`` merged in, or raw ``text``)."""
        cfg = yaml.safe_load(yaml.safe_dump(self.cfg))
        for section, values in sections.items():
            if isinstance(values, dict):
                cfg.setdefault(section, {}).update(values)
            else:
                cfg[section] = values
        path = self.tmp / "c.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(cfg))
        return str(path)

    def corpus(self, name: str, src: bytes | str, tgt: bytes | str) -> str:
        """Write ``tmp/name.src`` and ``tmp/name.tgt``; returns the prefix."""
        for ext, text in (("src", src), ("tgt", tgt)):
            data = text.encode() if isinstance(text, str) else text
            (self.tmp / f"{name}.{ext}").write_bytes(data)
        return str(self.tmp / name)

    def file(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def stdin(self, data: bytes) -> None:
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@dataclass
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    expect: list[str]  # substrings of the error line: where (file:line or key) and the fix
    code: int = 1
    started: bool = False  # training really started: config.yaml records the new settings


def _no_checkpoints(c: Ctx) -> list[str]:
    for name in ("best", "last"):
        shutil.rmtree(c.model_dir / name)
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n")]


def _no_vocab(c: Ctx) -> list[str]:
    (c.model_dir / "vocab.tgt.txt").unlink()
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n")]


def _truncated_weights(c: Ctx) -> list[str]:
    f = c.model_dir / "best" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n")]


def _truncated_trainer_state(c: Ctx) -> list[str]:
    f = c.model_dir / "last" / "trainer_state.pt"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return ["train", c.config(training={"max_steps": 12})]


def _corrupt_vocab(c: Ctx) -> list[str]:
    (c.model_dir / "vocab.src.txt").write_text("w1\nw2\n")
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n")]


def _nan_loss(c: Ctx) -> list[str]:
    from transduce.training.trainer import Trainer

    real = Trainer._loss
    c.monkeypatch.setattr(Trainer, "_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    return ["train", c.config(training={"max_steps": 30, "max_nonfinite_updates": 3})]


def _not_writable(c: Ctx) -> list[str]:
    target = c.tmp / "locked"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
    else:  # root writes anywhere: refuse the write the way a read-only directory would
        real = Path.write_text

        def write_text(self, *a, **k):
            if self.name == ".write-test":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)
        c.monkeypatch.setattr(Path, "write_text", write_text)
    return ["train", c.config(model_dir=str(target / "model"))]


def _resume_other_model(c: Ctx) -> list[str]:
    return ["train", c.config(model={"decoder_hidden_size": 32})]


def _best_without_last(c: Ctx) -> list[str]:
    shutil.rmtree(c.model_dir / "last")
    return ["train", c.config()]


TINY_PAIRS = "a b c d e\nb c d e f\nc d e f g\n"

CASES = [
    Case("missing-data-file",
         lambda c: ["train", c.config(data={"train": str(c.tmp / "nope")})],
         ["nope.src", "file not found", "data.train", "Fix data.train"]),
    Case("missing-dev-file",
         lambda c: ["train", c.config(data={"dev": str(c.tmp / "nodev")})],
         ["nodev.src", "file not found", "data.dev"]),
    Case("data-train-unset",
         lambda c: ["train", c.config(data={"train": None})],
         ["data.train", "is not set", "give the training file prefix"]),
    Case("line-count-mismatch",
         lambda c: ["train", c.config(data={"train": c.corpus("t", "a\nb\nc\n", "a\nb\n")})],
         ["t.tgt:3", "line-count mismatch", "each source line needs exactly one target line"]),
    Case("invalid-utf8-training-data",
         lambda c: ["train", c.config(data={"train": c.corpus("t", b"a b\nc d\ne \xff f\n",
                                                               "a\nb\nc\n")})],
         ["t.src:3", "invalid UTF-8", "convert the file to UTF-8"]),
    Case("invalid-utf8-translate-file",
         lambda c: ["translate", str(c.model_dir), "-i", c.file("in.txt", b"w1\nw2 \xc3\n")],
         ["in.txt:2", "invalid UTF-8", "convert the file to UTF-8"]),
    Case("invalid-utf8-translate-stdin",
         lambda c: (c.stdin(b"w1\nw2\n\xfe w3\n"), ["translate", str(c.model_dir)])[1],
         ["<stdin>:3", "invalid UTF-8", "convert the input to UTF-8"]),
    Case("empty-training-file",
         lambda c: ["train", c.config(data={"train": c.corpus("t", "", "")})],
         ["t.src", "the file is empty", "needs at least one pair"]),
    Case("all-pairs-filtered-by-length",
         lambda c: ["train", c.config(data={"train": c.corpus("t", TINY_PAIRS, TINY_PAIRS),
                                            "max_tgt_len": 3})],
         ["t.src", "all 3 training pairs were filtered out", "first at", "t.src:1",
          "raise data.max_tgt_len"]),
    Case("all-pairs-empty",
         lambda c: ["train", c.config(data={"train": c.corpus("t", "\n \n", "x\ny\n")})],
         ["t.src", "all 2 training pairs were filtered out", "t.src:1",
          "the lines are empty"]),
    Case("cache-dir-not-writable",
         lambda c: ["train", c.config(data={"cache_dir": c.file("plain", "x") + "/cache"})],
         ["plain/cache", "cannot write the training-data cache", "Not a directory",
          "set data.cache_dir to a writable folder"]),
    Case("unknown-config-key",
         lambda c: ["train", c.config(model={"attenton": "dot"})],
         ["c.yaml", "unknown config key 'model.attenton'", "did you mean 'model.attention'"]),
    Case("unknown-config-section",
         lambda c: ["train", c.config(trainig={"lr": 1})],
         ["unknown config key 'trainig'", "did you mean 'training'"]),
    Case("wrong-value-type",
         lambda c: ["train", c.config(training={"batch_size": "many"})],
         ["config key 'training.batch_size'", "valid integer", "'many'"]),
    Case("batch-size-zero",
         lambda c: ["train", c.config(training={"batch_size": 0})],
         ["config key 'training.batch_size'", "greater than or equal to 1", "(got 0)"]),
    Case("negative-dropout",
         lambda c: ["train", c.config(model={"dropout": -0.1})],
         ["config key 'model.dropout'", "greater than or equal to 0", "(got -0.1)"]),
    Case("bad-choice",
         lambda c: ["train", c.config(model={"cell": "transformer"})],
         ["config key 'model.cell'", "'rnn', 'gru' or 'lstm'", "'transformer'"]),
    Case("bridge-last-size-mismatch",
         lambda c: ["train", c.config(model={"bridge": "last"})],
         ["config key 'model'", "model.bridge=last needs the encoder output size (32)",
          "model.decoder_hidden_size (24)", "use bridge: bridge"]),
    Case("tied-embeddings-size-mismatch",
         lambda c: ["train", c.config(model={"tied_embeddings": True})],
         ["model.tied_embeddings needs model.embedding_size (16)",
          "model.decoder_hidden_size (24)", "set model.tied_embeddings: false"]),
    Case("shared-vocab-different-tokenizers",
         lambda c: ["train", c.config(data={"shared_vocab": True, "tgt_tokenizer": "char"})],
         ["data.shared_vocab needs the same tokenizer", "set data.shared_vocab: false"]),
    Case("resume-with-another-model",
         _resume_other_model,
         ["config key 'model.decoder_hidden_size' is 32", "used 24", "set it back",
          "--overwrite"]),
    Case("best-without-last", _best_without_last,
         ["best: model_dir already holds a trained model but no last/", "--overwrite",
          "another model_dir"]),
    Case("model-dir-is-a-file",
         lambda c: ["train", c.config(model_dir=c.file("afile", "x"))],
         ["afile: model_dir exists and is not a directory", "choose another model_dir"]),
    Case("model-dir-under-a-file",
         lambda c: ["train", c.config(model_dir=str(Path(c.file("afile", "x")) / "model"))],
         ["afile/model: model_dir is not writable", "choose another model_dir"]),
    Case("model-dir-not-writable", _not_writable,
         ["locked/model: model_dir is not writable (Permission denied)",
          "fix its permissions"]),
    Case("translate-without-checkpoints", _no_checkpoints,
         ["model: no checkpoint (best/ or last/) found", "train the model first"]),
    Case("translate-without-vocabulary", _no_vocab,
         ["vocab.tgt.txt: vocabulary missing", "copy it again or retrain"]),
    Case("corrupt-vocabulary", _corrupt_vocab,
         ["vocab.src.txt: line 1-4 must be", "corrupt"]),
    Case("truncated-safetensors", _truncated_weights,
         ["best/model.safetensors: cannot load the weights", "corrupt or truncated",
          "use another checkpoint or retrain"]),
    Case("truncated-trainer-state", _truncated_trainer_state,
         ["last/trainer_state.pt: refused to load the trainer state", "--overwrite"]),
    Case("nan-loss", _nan_loss,
         ["3 updates in a row had a NaN/inf loss", "checkpoints", "are intact",
          "Lower training.lr"], started=True),
    Case("evaluate-line-count-mismatch",
         lambda c: ["evaluate", "--hyp", c.file("hyp", "a\nb\n"), "--ref", c.file("ref", "a\n")],
         ["hyp: 2 lines but", "ref has 1", "must be line-aligned"]),
    Case("evaluate-missing-file",
         lambda c: ["evaluate", "--hyp", str(c.tmp / "nohyp"), "--ref", c.file("ref", "a\n")],
         ["nohyp: file not found; check the path"]),
    Case("set-unknown-key",
         lambda c: ["train", c.config(), "--set", "training.lrr=0.1"],
         ["--set: unknown config key 'training.lrr'", "did you mean 'training.lr'"]),
    Case("set-without-value",
         lambda c: ["train", c.config(), "--set", "training.lr"],
         ["--set 'training.lr'", "expected KEY=VALUE"]),
    Case("set-out-of-range",
         lambda c: ["train", c.config(), "--set", "training.lr=-1"],
         ["config key 'training.lr'", "greater than 0"]),
    Case("invalid-yaml",
         lambda c: ["train", c.config(text="training:\n  lr: [1\nmodel: {}\n")],
         ["c.yaml: line 3", "invalid YAML", "fix the syntax there"]),
    Case("config-file-missing",
         lambda c: ["train", str(c.tmp / "nothere.yaml")],
         ["nothere.yaml: config file not found; check the path"]),
    Case("fp16-on-cpu",
         lambda c: ["train", c.config(training={"precision": "fp16", "device": "cpu"})],
         ["training.precision=fp16 needs a CUDA device", "use bf16 on CPU"]),
    Case("n-best-over-beam",
         lambda c: ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1\n"), "--n-best",
                    "4", "--beam-size", "2"],
         ["n_best (4) cannot exceed the beam size (2)", "--beam-size 4"]),
    Case("n-best-with-sampling",
         lambda c: ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1\n"), "--sample",
                    "--n-best", "3", "--beam-size", "3"],
         ["n_best (3) must be 1 when sampling"]),
    Case("bad-option-value",
         lambda c: ["translate", str(c.model_dir), "--beam-size", "0"],
         ["argument --beam-size: must be at least 1, got 0", "transduce translate --help"],
         code=2),
    Case("output-not-writable",
         lambda c: ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1\n"), "-o",
                    str(c.tmp / "no" / "such" / "dir" / "out.txt")],
         ["out.txt: cannot write the output", "check the path"]),
    # --- #16 data: special tokens, line endings, vocabularies ---
    Case("cr-only-line-endings",
         lambda c: ["train", c.config(data={"train": c.corpus("t", "a b\rc d\r", "x\ry\r")})],
         ["t.src: the lines end in CR only", "2 CR, no LF", "convert them to LF",
          "tr '\\r' '\\n'"]),
    Case("cr-only-translate-input",
         lambda c: ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\rw3\r")],
         ["in.txt: the lines end in CR only", "convert them to LF"]),
    Case("nul-bytes",
         lambda c: ["train", c.config(data={"train": c.corpus("t", b"\0" * 64, b"\0" * 64)})],
         ["t.src:1: NUL byte at byte 0", "not UTF-8 text", "convert the file to UTF-8"]),
    # (a new model_dir: the vocabularies are built, not resumed)
    Case("min-freq-leaves-only-specials",
         lambda c: ["train", c.config(model_dir=str(c.tmp / "new"),
                                      data={"min_freq": 1_000_000})],
         ["train.src: no token type occurs data.min_freq=1000000 times",
          "every token would read as <unk>", "lower data.min_freq"]),
    Case("sentencepiece-vocab-below-characters",
         lambda c: ["train", c.config(model_dir=str(c.tmp / "new"),
                                      data={"tokenizer": "sentencepiece", "vocab_size": 8})],
         ["train.src: data.vocab_size=8 is smaller than the", "raise data.vocab_size to"]),
    Case("sentencepiece-blank-side",
         lambda c: ["train", c.config(model_dir=str(c.tmp / "new"), data={
             "tokenizer": "sentencepiece", "train": c.corpus("t", "a b\nc d\n", "\n \n")})],
         ["t.tgt: every line is blank", "check the files"]),
    Case("sentencepiece-lines-over-byte-limit",
         lambda c: ["train", c.config(model_dir=str(c.tmp / "new"), data={
             "tokenizer": "sentencepiece",
             "train": c.corpus("t", ("ab " * 1500 + "\n") * 2, "x\ny\n")})],
         ["t.src: every line is over SentencePiece's limit of 4192 bytes",
          "split the text into sentences"]),
    # --- #16 model_dir: links, foreign files, overwrite, resume, untrusted loads ---
    # (the helpers that damage the model_dir copy are in test_model_dir.py)
    Case("model-dir-link", lambda c: __import__("test_model_dir").case_link(c),
         ["model/train.log: a symbolic link in model_dir", "never writes through links",
          "choose another model_dir"]),
    Case("model-dir-holds-foreign-files",
         lambda c: __import__("test_model_dir").case_foreign_files(c),
         ["model: model_dir holds config.yaml, vocab.src.txt, vocab.tgt.txt but no checkpoint",
          "transduce did not write them", "choose a new or empty model_dir"]),
    Case("overwrite-fails-to-start",
         lambda c: ["train", c.config(training={"precision": "fp16", "device": "cpu"}),
                    "--overwrite"],
         ["training.precision=fp16 needs a CUDA device", "use bf16 on CPU"]),
    Case("resume-with-another-corpus",
         lambda c: ["train", c.config(data={"train": c.corpus("other", TINY_PAIRS, TINY_PAIRS)})],
         ["config key 'data.train' is", "other' but the run in", "set it back", "--overwrite"]),
    Case("resume-with-other-length-limits",
         lambda c: ["train", c.config(data={"max_src_len": 50})],
         ["config key 'data.max_src_len' is 50 but the run in", "set it back"]),
    Case("model-size-over-the-weights", lambda c: __import__("test_model_dir").case_model_size(c),
         ["best/model.safetensors: weights do not match the model in config.yaml",
          "size mismatch for encoder", "restore them or retrain"]),
    Case("weights-of-another-dtype",
         lambda c: __import__("test_model_dir").case_weights_dtype(c),
         ["best/model.safetensors: weight", "is torch.float64, not torch.float32",
          "use another checkpoint or retrain"]),
    Case("weights-not-finite", lambda c: __import__("test_model_dir").case_weights_nan(c),
         ["best/model.safetensors: weight", "holds NaN or inf values",
          "use another checkpoint or retrain"]),
    Case("trainer-state-out-of-range",
         lambda c: __import__("test_model_dir").case_trainer_state_step(c),
         ["last/trainer_state.pt: not a transduce trainer state (step is -5, not a whole number "
          ">= 0)", "--overwrite"]),
    Case("meta-json-nested-deep", lambda c: __import__("test_model_dir").case_deep_meta(c),
         ["best/meta.json: unreadable checkpoint metadata", "use the other checkpoint"]),
    # --- #16 CLI, YAML and server errors ---
    # (the helpers are in test_cli.py)
    Case("closed-stdin", lambda c: __import__("test_cli").case_closed(c, "stdin"),
         ["stdin is closed", "give the input with -i FILE"]),
    Case("closed-stdout", lambda c: __import__("test_cli").case_closed(c, "stdout"),
         ["stdout is closed", "write the output with -o FILE"]),
    Case("seed-too-large", lambda c: __import__("test_cli").case_never_searched(
         c, "--sample", "--seed", "12345678901234567890123"),
         ["argument --seed: must be at most 9223372036854775807, got 12345678901234567890123"],
         code=2),
    Case("beam-size-huge",
         lambda c: __import__("test_cli").case_never_searched(c, "--beam-size", "1000000"),
         ["decoding option 'beam_size': Input should be less than or equal to 1000"]),
    Case("evaluate-empty-files",
         lambda c: ["evaluate", "--hyp", c.file("hyp", ""), "--ref", c.file("ref", "")],
         ["hyp and", "ref: the files are empty, there is nothing to score"]),
    Case("plot-output-directory-missing",
         lambda c: ["plot", str(c.model_dir), "w1 w2", "-o", str(c.tmp / "no" / "att.png")],
         ["no/att.png: cannot write the plot (no directory", "check the path"]),
    Case("plot-unknown-format",
         lambda c: ["plot", str(c.model_dir), "w1 w2", "-o", str(c.tmp / "att.xyz")],
         ["att.xyz: unknown image format '.xyz'; use one of", ".png", ".svg"]),
    Case("serve-port-out-of-range",
         lambda c: __import__("test_cli").case_serve(c, "--port", "99999"),
         ["argument --port: must be at most 65535, got 99999"], code=2),
    Case("serve-port-negative", lambda c: __import__("test_cli").case_serve(c, "--port", "-1"),
         ["argument --port: must be at least 1, got -1"], code=2),
    Case("serve-port-in-use", lambda c: __import__("test_cli").case_port_in_use(c),
         ["cannot listen on 127.0.0.1:", "(Address already in use); another server listens "
          "there: stop it or choose another --port"]),
    Case("serve-max-wait-nan",
         lambda c: __import__("test_cli").case_serve(c, "--max-wait-ms", "nan"),
         ["argument --max-wait-ms: expected a number, got 'nan'"], code=2),
    Case("serve-max-wait-negative",
         lambda c: __import__("test_cli").case_serve(c, "--max-wait-ms", "-5"),
         ["argument --max-wait-ms: must be at least 0, got -5"], code=2),
    Case("serve-token-not-ascii",
         lambda c: __import__("test_cli").case_serve(c, "--token", "my token"),
         ["the token must be printable ASCII without spaces"]),
    Case("model-size-huge",
         lambda c: __import__("test_cli").case_model_never_built(c, encoder_hidden_size=100000),
         ["config key 'model.encoder_hidden_size': Input should be less than or equal to 16384 "
          "(got 100000)"]),
    Case("integer-key-given-a-string",
         lambda c: ["train", c.config(training={"batch_size": "32"})],
         ["config key 'training.batch_size': Input should be a valid integer (got '32')"]),
    Case("integer-key-given-a-bool", lambda c: ["train", c.config(model={"layers": True})],
         ["config key 'model.layers': Input should be a valid integer (got True)"]),
    Case("duplicate-yaml-key", lambda c: __import__("test_cli").case_yaml(c, "seed: 2\n"),
         ["c.yaml: line", ": duplicate key 'seed' (first on line", "keep one of them"]),
    Case("yaml-alias", lambda c: __import__("test_cli").case_yaml(c, "name: &n tiny\n"),
         ["c.yaml: line", ": YAML anchors and aliases (&name, *name) are not allowed in a config",
          "write the values out"]),
    Case("yaml-too-deep",
         lambda c: __import__("test_cli").case_yaml(c, "name: " + "[" * 40_000 + "]" * 40_000),
         ["c.yaml: line", ": nested more than 32 levels deep"]),
    Case("config-file-too-large",
         lambda c: __import__("test_cli").case_yaml(c, "# " + "x" * 100_000 + "\nbogus: 1\n"),
         ["c.yaml: over 100000 bytes, too large for a config file"]),
]


def _snapshot(model_dir: Path) -> dict[str, bytes | str]:
    """Every file's hash; train.log may only grow (it logs the failed attempt)."""
    snap: dict[str, bytes | str] = {}
    for p in sorted(model_dir.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(model_dir))
            snap[rel] = p.read_bytes() if rel == "train.log" else \
                hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def _unchanged(before: dict, model_dir: Path, started: bool) -> None:
    after = _snapshot(model_dir)
    assert before.keys() == after.keys(), "files appeared or vanished in model_dir"
    for rel, value in before.items():
        if started and rel in ("config.yaml", "metrics.jsonl"):
            continue
        if rel == "train.log":
            assert after[rel].startswith(value), "train.log was rewritten"
        else:
            assert after[rel] == value, f"{rel} changed"


def run_main(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse errors
        return e.code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, trained, tmp_path, monkeypatch, capsys):
    ctx = Ctx(tmp_path, trained, monkeypatch)
    args = case.args(ctx)
    before = _snapshot(ctx.model_dir)
    # any exception escaping main would be a traceback: the test would fail right here
    code = run_main(args)
    monkeypatch.undo()
    out = capsys.readouterr()
    err_lines = out.err.strip().splitlines()
    assert code == case.code, out.err
    assert err_lines and err_lines[-1].startswith("error: "), out.err
    assert sum(line.startswith("error: ") for line in err_lines) == 1
    assert "Traceback" not in out.err
    for part in case.expect:
        assert part in err_lines[-1], f"{part!r} not in {err_lines[-1]!r}"
    assert out.out == ""
    _unchanged(before, ctx.model_dir, case.started)


def test_catalogue_has_at_least_twenty_cases_and_all_are_documented():
    doc = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    assert len(CASES) >= 20
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"cases not in docs/errors.md: {missing}"


def test_nan_steps_are_skipped_and_counted_and_training_goes_on(trained, tmp_path,
                                                                 monkeypatch, capsys):
    """A few NaN losses: each update is skipped (weights untouched), counted, and training
    continues; fewer than max_nonfinite_updates in a row never stop it."""
    from transduce.config import load_config
    from transduce.training.trainer import Trainer

    ctx = Ctx(tmp_path, trained, monkeypatch)
    real, calls = Trainer._loss, []

    def sometimes_nan(*a, **k):  # the loss of one training batch
        calls.append(1)
        loss = real(*a, **k)
        return loss * float("nan") if len(calls) in (2, 3, 6) else loss
    monkeypatch.setattr(Trainer, "_loss", sometimes_nan)
    cfg = load_config(ctx.config(training={"max_steps": 18, "validate_every": 100,
                                           "log_every": 8, "max_nonfinite_updates": 3}))
    trainer = Trainer(cfg)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._update([trainer.data.batch(trainer._epoch_batches(0)[0])])  # call 1: a normal update
    changed = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert any(not torch.equal(weights[k], changed[k]) for k in weights)
    trainer._update([trainer.data.batch(trainer._epoch_batches(0)[1])])  # call 2: NaN, skipped
    assert all(torch.equal(changed[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.state.nonfinite == 1 and trainer.state.nonfinite_run == 1
    trainer.train()  # calls 3 (NaN) and 6 (NaN) among the rest: never 3 in a row
    monkeypatch.undo()
    assert (trainer.state.step, trainer.state.nonfinite, trainer.state.nonfinite_run) == (18, 3, 0)
    state = torch.load(ctx.model_dir / "last" / "trainer_state.pt", weights_only=True)
    assert state["nonfinite"] == 3
    metrics = (ctx.model_dir / "metrics.jsonl").read_text()
    assert '"skipped_nonfinite": 3' in metrics


def test_an_input_line_far_over_the_maximum_is_truncated_with_a_warning(trained, tmp_path,
                                                                        capsys):
    """Documented behaviour: inputs over decoding.max_input_len tokens (default 4 x
    data.max_src_len) are cut to that length with one warning naming the line; every input
    still gets exactly one output line."""
    model_dir, cfg = trained
    limit = 4 * 100
    huge = " ".join(f"w{i % 10}" for i in range(limit * 25))  # 10,000 tokens
    (tmp_path / "in.txt").write_text(f"w1 w2\n{huge}\n\nw3\n")
    assert main(["translate", str(model_dir), "-i", str(tmp_path / "in.txt"), "-o",
                 str(tmp_path / "out.txt"), "--beam-size", "1", "--max-len", "20"]) == 0
    err = capsys.readouterr().err
    assert f"input line 2 has {limit * 25} tokens, over decoding.max_input_len={limit}" in err
    assert f"truncated to {limit} tokens" in err
    out = (tmp_path / "out.txt").read_text().split("\n")
    assert len(out) == 5 and out[2] == "" and out[4] == ""


def test_real_process_one_line_without_traceback_and_traceback_with_debug(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    (tmp_path / "c.yaml").write_text("training:\n  batch_size: 0\n")
    cmd = [sys.executable, "-m", "transduce"]
    r = subprocess.run(cmd + ["train", str(tmp_path / "c.yaml")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "training.batch_size" in r.stderr
    r = subprocess.run(cmd + ["train", str(tmp_path / "c.yaml"), "--debug"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "Traceback" in r.stderr and "TransduceError" in r.stderr

"""End to end through the command line: train, translate, evaluate, test, plot, resume; and the
helpers of the bad-input catalogue's command-line cases (tests/test_bad_inputs.py)."""
import gc
import json
import socket
import subprocess
import sys

import pytest
import yaml

import transduce
from transduce.cli import main
from conftest import tiny_config


def _cli(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "transduce", *args], input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(reverse_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    cfg = tiny_config(reverse_data, root / "model", training={"max_steps": 120,
                                                              "validate_every": 60},
                      data={"test": str(reverse_data / "test")})
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    return root / "model", path


def test_model_dir_layout(trained):
    model_dir, _ = trained
    for name in ("config.yaml", "vocab.src.txt", "vocab.tgt.txt", "train.log", "metrics.jsonl",
                 "best/model.safetensors", "best/meta.json", "last/model.safetensors",
                 "last/meta.json", "last/trainer_state.pt"):
        assert (model_dir / name).is_file(), name
    events = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    valid = [e for e in events if e["event"] == "valid"]
    assert train[-1]["loss"] < train[0]["loss"]
    assert {"step", "loss", "ppl", "lr", "tgt_tok_s", "pad_frac"} <= set(train[0])
    assert len(valid) == 2 and {"bleu", "chrf", "dev_ppl"} <= set(valid[0])
    assert any(e["event"] == "test" for e in events)


def test_translate_keeps_one_line_per_input_and_logs_on_stderr(trained):
    model_dir, _ = trained
    text = "w1 w2 w3\n\nw4 w5\n\n"
    r = _cli("translate", str(model_dir), stdin=text)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert len(lines) == 5 and lines[-1] == ""  # 4 outputs, newline-terminated
    assert lines[1] == "" and lines[3] == ""
    assert lines[0] != ""


def test_translate_nbest_prints_n_lines_with_scores(trained, tmp_path):
    model_dir, _ = trained
    (tmp_path / "in.txt").write_text("w1 w2\nw3\n")
    assert main(["translate", str(model_dir), "-i", str(tmp_path / "in.txt"), "-o",
                 str(tmp_path / "out.txt"), "--n-best", "3", "--beam-size", "3"]) == 0
    out = (tmp_path / "out.txt").read_text().splitlines()
    assert len(out) == 6 and all("\t" in line for line in out)
    assert main(["translate", str(model_dir), "-i", str(tmp_path / "in.txt"), "-o",
                 str(tmp_path / "one.txt"), "--beam-size", "3"]) == 0
    assert (tmp_path / "one.txt").read_text().splitlines()[0] == out[0].split("\t")[0]


def test_python_api_loads_and_translates(trained):
    model_dir, _ = trained
    model = transduce.load(model_dir)
    out = model.translate(["w1 w2 w3", "", "w5"], beam_size=2)
    assert len(out) == 3 and out[1] == ""


def test_import_is_light_and_api_names_stay_functions(trained):
    """``import transduce`` (and so the command line's start) loads neither torch nor pydantic;
    the trainer's package (``transduce.training``) does not shadow the function ``train``."""
    model_dir, _ = trained
    code = ("import sys, transduce\n"
            "assert 'torch' not in sys.modules and 'pydantic' not in sys.modules\n"
            f"transduce.load({str(model_dir)!r})\n"
            "import transduce.training.trainer\n"
            "from transduce.training.trainer import Trainer\n"
            "assert callable(transduce.train) and callable(transduce.evaluate)\n"
            "assert transduce.Trainer is Trainer and transduce.Config.__name__ == 'Config'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_translate_leaves_the_garbage_collector_on(trained, tmp_path):
    model_dir, _ = trained
    (tmp_path / "in.txt").write_text("w1 w2\n")
    assert main(["translate", str(model_dir), "-i", str(tmp_path / "in.txt"), "-o",
                 str(tmp_path / "out.txt")]) == 0
    assert gc.isenabled()


def test_evaluate_bleu_equals_sacrebleu_cli(tmp_path, capsys):
    hyp = ["the cat sat on the mat", "a quick brown fox", "hello there world", "no match"]
    ref = ["the cat sat on a mat", "the quick brown fox", "hello world", "something else"]
    (tmp_path / "hyp").write_text("\n".join(hyp) + "\n")
    (tmp_path / "ref").write_text("\n".join(ref) + "\n")
    assert main(["evaluate", "--hyp", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"),
                 "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    sacre = subprocess.run([sys.executable, "-m", "sacrebleu", str(tmp_path / "ref"), "-i",
                            str(tmp_path / "hyp"), "-m", "bleu", "chrf", "-b", "-w", "6"],
                           capture_output=True, text=True, check=True).stdout
    sacre_bleu, sacre_chrf = json.loads(sacre)
    assert ours["bleu"] == pytest.approx(sacre_bleu, abs=1e-5)
    assert ours["chrf"] == pytest.approx(sacre_chrf, abs=1e-5)
    assert set(ours) >= {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "signature"}
    assert "BLEU" in ours["signature"]["bleu"] or "nrefs" in ours["signature"]["bleu"]


def test_evaluate_line_count_mismatch_is_a_one_line_error(tmp_path):
    (tmp_path / "hyp").write_text("a\nb\n")
    (tmp_path / "ref").write_text("a\n")
    r = _cli("evaluate", "--hyp", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"))
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_test_command_scores_a_test_set(trained, reverse_data, capsys):
    model_dir, _ = trained
    assert main(["test", str(model_dir), "--src", str(reverse_data / "test.src"), "--ref",
                 str(reverse_data / "test.tgt"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0 <= scores["bleu"] <= 100


def test_plot_writes_a_png(trained, tmp_path):
    model_dir, _ = trained
    out = tmp_path / "att.png"
    assert main(["plot", str(model_dir), "w1 w2 w3", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_resumes_from_last(trained):
    model_dir, config = trained
    r = _cli("train", str(config), "--set", "training.max_steps=130")
    assert r.returncode == 0, r.stderr
    assert "resuming from step 120" in r.stderr
    meta = json.loads((model_dir / "last" / "meta.json").read_text())
    assert meta["step"] == 130 and meta["version"] == 1


def test_user_errors_are_one_line_without_traceback(tmp_path):
    r = _cli("translate", str(tmp_path / "missing"))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    (tmp_path / "c.yaml").write_text("trainig: {}\n")
    r = _cli("train", str(tmp_path / "c.yaml"))
    assert r.returncode == 1 and "did you mean 'training'" in r.stderr
    assert "Traceback" not in r.stderr


def test_chat_replies_to_piped_lines(trained):
    model_dir, _ = trained
    r = _cli("chat", str(model_dir), "--sample", "--temperature", "0.8", "--top-p", "0.9",
             stdin="w1 w2\nw3 w4 w5\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


# -- helpers of tests/test_bad_inputs.py's "#16 CLI, YAML and server errors" cases ----------------

def case_serve(c, *flags: str) -> list[str]:
    """``transduce serve`` with ``flags``; the server itself never starts (it would not return)."""
    import uvicorn

    def refuse(*_a, **_k):
        raise AssertionError("the server would have started")
    c.monkeypatch.setattr(uvicorn, "run", refuse)
    c.monkeypatch.setattr(uvicorn.Server, "run", refuse)
    return ["serve", str(c.model_dir), *flags]


def case_port_in_use(c) -> list[str]:
    c.busy = socket.socket()  # held by the case's Ctx until it ends
    c.busy.bind(("127.0.0.1", 0))
    c.busy.listen()
    return case_serve(c, "--port", str(c.busy.getsockname()[1]))


def case_closed(c, stream: str) -> list[str]:
    """``translate`` started with stdin or stdout closed (``<&-``, ``>&-``: Python sees None)."""
    c.monkeypatch.setattr(sys, stream, None)
    return ["translate", str(c.model_dir)] + (["-i", c.file("in.txt", "w1 w2\n")]
                                              if stream == "stdout" else [])


def case_never_searched(c, *flags: str) -> list[str]:
    """``translate`` with ``flags`` that must be refused before any decoding starts."""
    from transduce.decode.translator import Translator

    c.monkeypatch.setattr(Translator, "search", lambda *a, **k: pytest.fail("decoding started"))
    return ["translate", str(c.model_dir), "-i", c.file("in.txt", "w1 w2\n"), *flags]


def case_model_never_built(c, **model) -> list[str]:
    from transduce.model.seq2seq import Seq2Seq

    c.monkeypatch.setattr(Seq2Seq, "__init__", lambda *a, **k: pytest.fail("model built"))
    return ["train", c.config(model_dir=str(c.tmp / "new"), model=model)]


def case_yaml(c, extra: str) -> list[str]:
    """``train`` on the case's config (without its name) plus the YAML ``extra``."""
    cfg = {k: v for k, v in c.cfg.items() if k != "name"}
    return ["train", c.config(text=yaml.safe_dump(cfg) + extra)]


def test_closed_stdin_and_stdout_are_one_line_errors_in_a_real_process(trained, tmp_path):
    model_dir, _ = trained
    (tmp_path / "in.txt").write_text("w1 w2\n")
    for redirect, says in (("<&-", "error: stdin is closed; give the input with -i FILE"),
                           (f"-i {tmp_path / 'in.txt'} >&-", "error: stdout is closed; write the "
                                                              "output with -o FILE")):
        r = subprocess.run(f"{sys.executable} -m transduce translate {model_dir} {redirect}",
                           shell=True, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith(says), r.stderr
        assert "Traceback" not in r.stderr

"""Ensembles: several models decode together (decode/ensemble.py)."""
import socket

import pytest

import transduce
from transduce.cli import main
from transduce.data.generate import write_task
from transduce.decode.ensemble import Ensemble
from transduce.errors import TransduceError

from conftest import tiny_config

TEXTS = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9", "w10", "", "w3 w3 w2 w1"]


def _train(data, path, **sections):
    sections.setdefault("training", {}).update({"max_steps": 40, "validate_every": 40})
    transduce.train(tiny_config(data, path, **sections))
    return path


@pytest.fixture(scope="module")
def dirs(reverse_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    return (_train(reverse_data, root / "a"),
            _train(reverse_data, root / "b", seed=2, training={"lr": 0.02}))


@pytest.mark.parametrize("beam", [1, 4])
def test_an_ensemble_of_a_model_with_itself_is_that_model(dirs, beam):
    alone, twice = transduce.load(dirs[0]), transduce.load([dirs[0], dirs[0]])
    assert isinstance(twice.model, Ensemble)
    a, b = alone.search(TEXTS, beam_size=beam), twice.search(TEXTS, beam_size=beam)
    assert [[r.tgt_tokens for r in n] for n in a] == [[r.tgt_tokens for r in n] for n in b]
    assert [r.score for n in a for r in n] == pytest.approx([r.score for n in b for r in n],
                                                            abs=1e-4)


def test_two_different_models_decode_together(dirs):
    a, b = transduce.load(dirs[0]), transduce.load(dirs[1])
    both = transduce.load(list(dirs))
    assert a.translate(TEXTS) != b.translate(TEXTS)  # the members differ
    for beam in (1, 4):
        out = both.translate(TEXTS, beam_size=beam)
        assert len(out) == len(TEXTS) and out[3] == ""
    # the ensemble's step is the log of the members' mean probability
    results = both.search(["w1 w2"], beam_size=1, attention=True)[0][0]
    assert results.attention is not None
    assert both.score(["w1 w2"], [results.text])[0][0] == pytest.approx(results.score, abs=1e-4)


def test_models_with_other_vocabularies_or_copy_are_refused(dirs, tmp_path):
    other = tmp_path / "data"
    write_task("reverse", other, {"train": 200, "dev": 20}, vocab=30, max_len=6)
    with pytest.raises(TransduceError, match="vocabulary differs"):
        transduce.load([dirs[0], _train(other, tmp_path / "other")])
    copy = _train(other, tmp_path / "copy",
                  model={"copy": True})
    with pytest.raises(TransduceError, match="copy model cannot join an ensemble"):
        transduce.load([copy, copy])


def test_translate_takes_several_model_dirs(dirs, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("w1 w2 w3\nw4\n")
    main(["translate", str(dirs[0]), str(dirs[1]), "-i", str(src), "--beam-size", "3"])
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_the_server_serves_an_ensemble(dirs):
    from fastapi.testclient import TestClient

    from transduce.serve.app import create_app

    both = transduce.load(list(dirs))
    with TestClient(create_app(both), base_url="http://localhost") as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        r = client.post("/translate?attention=true", json={"text": TEXTS[:3], "beam_size": 2})
        assert r.status_code == 200, r.text
    body = r.json()
    assert body["translations"] == both.translate(TEXTS[:3], beam_size=2)
    assert len(body["attention"]) == 3 and body["attention"][0]["matrix"]


def test_transduce_serve_takes_several_model_dirs(dirs, monkeypatch, capsys):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets: served.append(self.config.app))
    monkeypatch.delenv("TRANSDUCE_TOKEN", raising=False)
    with socket.socket() as s:  # a free port (the CLI takes 1-65535)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", str(dirs[0]), str(dirs[1]), "--port", str(port)]) in (0, None)
    assert f"serving {dirs[0]} + {dirs[1]} at" in capsys.readouterr().err
    assert len(served) == 1

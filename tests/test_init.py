"""transduce init: corpus statistics and a config that trains without edits."""
import transduce
from transduce.cli import main
from transduce.config import load_config
from transduce.data.generate import write_task
from transduce.init import summarize


def test_init_writes_a_config_that_trains(tmp_path, capsys, monkeypatch):
    write_task("reverse", tmp_path, {"train": 400}, vocab=12, max_len=8)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "train", "--src", "src", "--tgt", "tgt", "-o", "c.yaml"]) in (0, None)
    out = capsys.readouterr().out
    assert "400 pairs" in out and "source (src): words per line median" in out
    assert "tokenizer: word" in out and "copy on" in out  # reversal copies every token
    # the size settings are written out (at the measured defaults), vocab_size only for pieces
    written = (tmp_path / "c.yaml").read_text()
    assert "size (400 pairs): model.embedding_size 256" in out and "vocab_size" not in written
    for key in ("  embedding_size: 256", "  dropout: 0.1", "  batch_size: 64"):
        assert key in written
    cfg = load_config("c.yaml")
    assert cfg.data.train == "train.train" and cfg.data.dev == "train.dev"
    assert len((tmp_path / "train.dev.src").read_text().splitlines()) == 20  # 5 % of 400
    assert len((tmp_path / "train.train.tgt").read_text().splitlines()) == 380
    model = transduce.train("c.yaml", overrides={
        "training.max_steps": 5, "training.max_minutes": None, "model.embedding_size": 16,
        "model.encoder_hidden_size": 16, "model.decoder_hidden_size": 16})
    assert len(model.translate(["w1 w2"])) == 1
    assert main(["init", "train", "--src", "src", "--tgt", "tgt", "-o", "c.yaml", "--dev", "x"])
    assert "error: c.yaml: exists" in capsys.readouterr().err


def test_the_statistics_and_the_settings_follow_the_data():
    src = [" ".join(f"w{i}x{j}" for j in range(30)) for i in range(300)]  # 9,000 types
    tgt = [" ".join(f"y{i}z{j}" for j in range(120)) for i in range(300)]  # long targets
    text, data = summarize(src + [""], tgt + ["a"], "en", "de")
    assert data["tokenizer"] == "sentencepiece"
    assert data["max_tgt_len"] == 170  # 99 % of 120 words x 1.4 pieces, to the next ten
    assert "301 pairs; 1 with an empty side, 0 duplicate pairs" in text
    assert "plain attention" in text
    assert "size (301 pairs): data.vocab_size 8000, model.embedding_size 256" in text

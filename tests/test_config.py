import pytest

from transduce.config import load_config
from transduce.errors import TransduceError


def test_defaults_are_valid_and_model_dir_follows_name():
    cfg = load_config({"name": "x"})
    assert cfg.model_dir == "runs/x"
    assert cfg.model.cell == "lstm" and cfg.model.attention == "mlp"


def test_unknown_key_names_the_path_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  attenton: dot\n")
    with pytest.raises(TransduceError) as e:
        load_config(path)
    msg = str(e.value)
    assert "model.attenton" in msg and "did you mean 'model.attention'" in msg
    assert str(path) in msg and "\n" not in msg


def test_wrong_type_names_key_and_value():
    with pytest.raises(TransduceError) as e:
        load_config({"training": {"batch_size": "many"}})
    assert "training.batch_size" in str(e.value) and "'many'" in str(e.value)


def test_bad_choice_lists_allowed_values():
    with pytest.raises(TransduceError) as e:
        load_config({"model": {"cell": "transformer"}})
    assert "'rnn', 'gru' or 'lstm'" in str(e.value) or "rnn" in str(e.value)


def test_out_of_range_values_rejected():
    with pytest.raises(TransduceError, match="training.batch_size"):
        load_config({"training": {"batch_size": 0}})
    with pytest.raises(TransduceError, match="model.dropout"):
        load_config({"model": {"dropout": -0.1}})


def test_set_overrides_parse_yaml_values():
    cfg = load_config({}, ["training.lr=3e-4", "model.bidirectional=false", "training.max_steps=7"])
    assert cfg.training.lr == 3e-4 and cfg.model.bidirectional is False
    assert cfg.training.max_steps == 7


def test_set_unknown_key_fails_with_suggestion():
    with pytest.raises(TransduceError, match="did you mean 'training.lr'"):
        load_config({}, ["training.lrr=1"])


def test_incompatible_sizes_fail_at_config_time():
    with pytest.raises(TransduceError, match="bridge"):
        load_config({"model": {"bridge": "last", "encoder_hidden_size": 8,
                               "decoder_hidden_size": 32}})


# -- #16: strict types, upper bounds, bounded YAML ------------------------------------------------

@pytest.mark.parametrize("section,key,value", [
    ("training", "batch_size", "32"), ("training", "batch_size", True),
    ("training", "batch_size", 32.0), ("model", "layers", "2"), ("model", "bidirectional", 1),
    ("training", "tensorboard", "yes"), ("decoding", "beam_size", False),
    ("data", "lowercase", "true")])
def test_integer_and_boolean_keys_take_only_integers_and_booleans(section, key, value):
    with pytest.raises(TransduceError, match=rf"config key '{section}.{key}': Input should be a "
                                             rf"valid (integer|boolean)"):
        load_config({section: {key: value}})


def test_numbers_in_yaml_still_mean_what_they_look_like(tmp_path):
    (tmp_path / "c.yaml").write_text("training:\n  lr: 3e-4\n  batch_size: 32\n  max_minutes: 2\n"
                                     "model:\n  bidirectional: yes\n  dropout: 0\n")
    cfg = load_config(tmp_path / "c.yaml", ["training.max_steps=7", "model.copy=false"])
    assert (cfg.training.lr, cfg.training.batch_size, cfg.training.max_steps) == (3e-4, 32, 7)
    assert cfg.model.bidirectional is True and cfg.model.dropout == 0.0


@pytest.mark.parametrize("key,value", [
    ("model.encoder_hidden_size", 100_000), ("model.decoder_hidden_size", 10**9),
    ("model.embedding_size", 16_385), ("model.layers", 1000), ("decoding.beam_size", 1_000_000),
    ("decoding.max_len_b", 100_000_000), ("decoding.max_len", 10**6), ("decoding.max_len_a", 1e4),
    ("decoding.seed", 2**64), ("seed", 2**32), ("seed", -1), ("training.batch_size", 10**9),
    ("decoding.temperature", 0.001)])
def test_sizes_and_lengths_have_sensible_upper_bounds(key, value):
    with pytest.raises(TransduceError, match=rf"config key '{key}': Input should be"):
        load_config({}, {key: value})


def test_sizes_at_the_bounds_are_accepted():
    cfg = load_config({}, {"model.encoder_hidden_size": 16_384, "decoding.beam_size": 1000,
                           "decoding.max_len_b": 10_000, "seed": 2**32 - 1})
    assert cfg.model.encoder_hidden_size == 16_384


BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{b}'] * 9)}]\n" for b, a in zip("abcdefgh", "bcdefghi"))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


@pytest.mark.parametrize("text,line,says", [
    (BOMB, 1, "YAML anchors and aliases (&name, *name) are not allowed in a config"),
    ("name: x\nmodel: &m {cell: gru}\n", 2, "YAML anchors and aliases"),
    ("training:\n  lr: 0.1\n  batch_size: 8\n  lr: 0.2\n", 4,
     "duplicate key 'lr' (first on line 2); keep one of them"),
    ("model: {cell: gru, cell: lstm}\n", 1, "duplicate key 'cell' (first on line 1)"),
    ("a: " + "[" * 40_000 + "]" * 40_000 + "\n", 1, "nested more than 32 levels deep"),
    ("".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "x\n", 32,
     "nested more than 32 levels deep")])
def test_yaml_that_a_config_never_needs_is_refused_fast_in_one_line(tmp_path, text, line, says):
    """Anchors and aliases (a 1.3 KB alias bomb expands to a billion strings), deep nesting
    (PyYAML's composer recurses) and duplicate keys (the later silently won)."""
    import time

    path = tmp_path / "c.yaml"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(TransduceError) as e:
        load_config(path)
    assert time.monotonic() - start < 2
    assert str(e.value).startswith(f"{path}: line {line}: {says}")
    assert len(BOMB) < 1400


def test_a_config_file_nested_100k_deep_or_over_100_kb_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    for text in ("a: " + "[" * 100_000 + "]" * 100_000, "a:\n" + "- " * 100_000 + "x\n",
                 "# " + "x" * 200_000 + "\n"):
        path.write_text(text)
        with pytest.raises(TransduceError, match=r"over 100000 bytes, too large for a config "
                                                 r"file|nested more than 32 levels") as e:
            load_config(path)
        assert "\n" not in str(e.value)


def test_error_messages_stay_short_whatever_the_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: [" + ", ".join(["x" * 1000] * 40) + "]\ntraining:\n" +
                    "".join(f"  k{i}: 1\n" for i in range(500)))
    with pytest.raises(TransduceError) as e:
        load_config(path)
    msg = str(e.value)
    assert len(msg) < 2500 and "and 491 more problems" in msg and "\n" not in msg


def test_the_model_dir_loader_reads_config_yaml_with_the_bounded_loader(tmp_path):
    from transduce import config, yaml_io

    (tmp_path / "config.yaml").write_text(BOMB)
    for load in (yaml_io.load_yaml, config.load_config):  # model_dir.load_model: load_config
        with pytest.raises(TransduceError, match="config.yaml: line 1: YAML anchors and aliases"):
            load(tmp_path / "config.yaml")
    with pytest.raises(TransduceError, match="meta.yaml: metadata not found; check the path"):
        yaml_io.load_yaml(tmp_path / "meta.yaml", "metadata")


def test_saved_configs_never_hold_aliases(tmp_path):
    from transduce.config import save_config

    cfg = load_config({"training": {"betas": [0.8, 0.9]}})
    save_config(cfg, tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "&" not in text and "*" not in text
    assert load_config(tmp_path / "c.yaml").to_dict() == cfg.to_dict()

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

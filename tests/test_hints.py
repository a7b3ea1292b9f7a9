"""A config written with another toolkit's key names gets transduce's key in its error."""
import pytest

from transduce.config import Config, load_config
from transduce.errors import TransduceError
from transduce.hints import PEER_KEYS, known_keys

COMMON = [  # (as a Joey NMT / fairseq user writes it, the transduce key)
    ({"training": {"learning_rate": 3e-4}}, "training.lr"),
    ({"training": {"epochs": 5}}, "training.max_epochs"),
    ({"training": {"validation_freq": 100}}, "training.validate_every"),
    ({"training": {"batch_type": "token"}}, "training.batch_tokens"),
    ({"model": {"rnn_type": "gru"}}, "model.cell"),
    ({"model": {"num_layers": 2}}, "model.layers"),
    ({"model": {"hidden_size": 256}}, "model.encoder_hidden_size"),
    ({"data": {"level": "bpe"}}, "data.tokenizer"),
    ({"data": {"voc_min_freq": 2}}, "data.min_freq"),
    ({"lr": 1e-3}, "training.lr"),  # fairseq's --lr, written at the top
    ({"max_tokens": 4096}, "training.batch_tokens"),
    ({"max_update": 1000}, "training.max_steps"),
    ({"clip_norm": 0.1}, "training.clip_grad_norm"),
    ({"share_all_embeddings": True}, "data.shared_vocab"),
    ({"decoding": {"lenpen": 0.6}}, "decoding.length_penalty"),
    ({"save_dir": "runs/x"}, "model_dir"),
]


@pytest.mark.parametrize("raw, key", COMMON)
def test_a_peer_s_key_name_suggests_the_transduce_key(raw, key):
    with pytest.raises(TransduceError, match=rf"did you mean '{key}'\?") as e:
        load_config(raw)
    assert "\n" not in str(e.value)


def test_every_suggested_key_exists_and_no_peer_name_is_a_transduce_key():
    known = set(known_keys(Config))
    assert {target for target, _ in PEER_KEYS.values()} <= known
    assert not {name for name in PEER_KEYS} & {k.rpartition(".")[2] for k in known}


def test_a_misspelling_still_gets_the_closest_key():
    with pytest.raises(TransduceError, match=r"'training.lrr'; did you mean 'training.lr'\?$"):
        load_config({"training": {"lrr": 1e-3}})

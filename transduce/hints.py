"""What a config mistake says: one line per problem, and for an unknown key a hint.

A config written from habit (``learning_rate: 0.001``, ``max_tokens: 4096``; Joey NMT, fairseq,
OpenNMT-py) gets the transduce key in its error (``... did you mean 'training.lr'? (learning_rate
in Joey NMT/OpenNMT-py)``), a key in the wrong section the one of that name (``lr`` ->
``training.lr``), and a misspelt key the closest one.
"""
from __future__ import annotations

import difflib
from typing import Iterable

from pydantic import BaseModel, ValidationError

from transduce.errors import short_repr

MAX_PROBLEMS = 10  # validation problems named in one error

# the key's last component as a peer writes it -> (the transduce key, who uses that name)
PEER_KEYS: dict[str, tuple[str, str]] = {
    # training
    "learning_rate": ("training.lr", "Joey NMT/OpenNMT-py"),
    "learning_rate_min": ("training.min_lr", "Joey NMT"),
    "batch_type": ("training.batch_tokens", "Joey NMT/OpenNMT-py (batch_type: token)"),
    "max_tokens": ("training.batch_tokens", "fairseq"),
    "epochs": ("training.max_epochs", "Joey NMT"),
    "max_epoch": ("training.max_epochs", "fairseq"),
    "max_update": ("training.max_steps", "fairseq"),
    "train_steps": ("training.max_steps", "OpenNMT-py"),
    "validation_freq": ("training.validate_every", "Joey NMT"),
    "valid_steps": ("training.validate_every", "OpenNMT-py"),
    "logging_freq": ("training.log_every", "Joey NMT"),
    "report_every": ("training.log_every", "OpenNMT-py"),
    "clip_norm": ("training.clip_grad_norm", "fairseq"),
    "max_grad_norm": ("training.clip_grad_norm", "OpenNMT-py"),
    "update_freq": ("training.accumulate", "fairseq"),
    "accum_count": ("training.accumulate", "OpenNMT-py"),
    "scheduling": ("training.schedule", "Joey NMT"),
    "lr_scheduler": ("training.schedule", "fairseq"),
    "decay_method": ("training.schedule", "OpenNMT-py"),
    "decrease_factor": ("training.plateau_factor", "Joey NMT"),
    "warmup_updates": ("training.warmup_steps", "fairseq"),
    "optim": ("training.optimizer", "OpenNMT-py"),
    "best_checkpoint_metric": ("training.early_stopping_metric", "fairseq"),
    "early_stopping": ("training.patience", "OpenNMT-py"),
    "use_cuda": ("training.device", "Joey NMT"),
    # model
    "rnn_type": ("model.cell", "Joey NMT/OpenNMT-py"),
    "num_layers": ("model.layers", "Joey NMT"),
    "enc_layers": ("model.layers", "OpenNMT-py"),
    "dec_layers": ("model.layers", "OpenNMT-py"),
    "encoder_layers": ("model.layers", "fairseq"),
    "decoder_layers": ("model.layers", "fairseq"),
    "embedding_dim": ("model.embedding_size", "Joey NMT"),
    "word_vec_size": ("model.embedding_size", "OpenNMT-py"),
    "encoder_embed_dim": ("model.embedding_size", "fairseq"),
    "decoder_embed_dim": ("model.embedding_size", "fairseq"),
    "hidden_size": ("model.encoder_hidden_size", "Joey NMT (and model.decoder_hidden_size)"),
    "rnn_size": ("model.decoder_hidden_size", "OpenNMT-py"),
    "encoder_bidirectional": ("model.bidirectional", "fairseq"),
    "brnn": ("model.bidirectional", "OpenNMT-py"),
    "global_attention": ("model.attention", "OpenNMT-py"),
    "input_feed": ("model.input_feeding", "OpenNMT-py"),
    "copy_attn": ("model.copy", "OpenNMT-py"),
    "coverage_attn": ("model.coverage", "OpenNMT-py"),
    "share_decoder_input_output_embed": ("model.tied_embeddings", "fairseq"),
    # data
    "level": ("data.tokenizer", "Joey NMT"),
    "voc_min_freq": ("data.min_freq", "Joey NMT"),
    "voc_limit": ("data.max_vocab_size", "Joey NMT"),
    "src_vocab_size": ("data.max_vocab_size", "OpenNMT-py"),
    "max_sent_length": ("data.max_src_len", "Joey NMT (and data.max_tgt_len)"),
    "src_seq_length": ("data.max_src_len", "OpenNMT-py"),
    "tgt_seq_length": ("data.max_tgt_len", "OpenNMT-py"),
    "share_all_embeddings": ("data.shared_vocab", "fairseq"),
    "share_embeddings": ("data.shared_vocab", "OpenNMT-py"),
    # decoding and the run
    "beam": ("decoding.beam_size", "fairseq"),
    "lenpen": ("decoding.length_penalty", "fairseq"),
    "alpha": ("decoding.length_penalty", "Joey NMT"),
    "save_dir": ("model_dir", "fairseq"),
    "save_model": ("model_dir", "OpenNMT-py"),
}


def suggest(key: str, known: Iterable[str]) -> str:
    """``; did you mean 'a.b'?`` for the unknown dotted ``key`` among the ``known`` keys (with
    the peer toolkit that names it so), or "" when nothing is close."""
    known, name = list(known), key.rpartition(".")[2]
    if name in PEER_KEYS:
        target, who = PEER_KEYS[name]
        return f"; did you mean '{target}'? ({name} in {who})"
    elsewhere = [k for k in known if k.rpartition(".")[2] == name]
    guess = elsewhere or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean '{guess[0]}'?" if guess else ""


def known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the schema ``model``, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(known_keys(ann, prefix + name + "."))
    return keys


def format_error(err: ValidationError, source: str | None, known: Iterable[str],
                 what: str = "config key") -> str:
    """One line per problem (the first MAX_PROBLEMS): where (``source``: the file, and the input
    given), the key path, what is wrong, what is allowed; an unknown key gets its hint among
    ``known``. ``source`` None: per-call options, named ``what``."""
    where, lines, errors, known = f"{source}: " if source else "", [], err.errors(), list(known)
    for e in errors[:MAX_PROBLEMS]:
        path = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}unknown {what} '{path}'{suggest(path, known)}")
        else:
            given = e.get("input")
            msg = e["msg"].removeprefix("Value error, ")
            # the input given, unless it is a whole section (noise)
            got = "" if isinstance(given, dict) or not source else f" (got {short_repr(given)})"
            lines.append(f"{where}{what} '{path}': {msg}{got}" if path else where + msg)
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return "; ".join(lines)

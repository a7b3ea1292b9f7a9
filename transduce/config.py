"""The one configuration schema: pydantic models, and loading a config (YAML read by ``yaml_io``,
``--set`` overrides applied by ``overrides``). Two sections have modules of their own: ``decoding``
(``decoding_options``: also every call's options) and ``tune`` (``search_space``).

Every field has a default that works. Unknown keys and wrong types are rejected with the key path,
what was given, and what is allowed (plus a "did you mean" suggestion for misspelt keys).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Field, ValidationError, model_validator

from transduce.errors import TransduceError, short_repr
from transduce.hints import format_error, known_keys
from transduce.hints import suggest as _suggest
from transduce.overrides import apply_overrides
from transduce.decoding_options import DecodingConfig
from transduce.search_space import TuneConfig
from transduce.section import Bool, Int, Section
from transduce.yaml_io import dump_yaml, load_yaml


MAX_WIDTH = 16_384  # embedding and hidden sizes: wider is a typo (1e5 wide: 10^11 parameters)
EPOCHS = 10  # training.max_epochs without a time budget; the schedules' horizon with one


class TrainCorpus(Section):
    """One of several training corpora: ``data.train: [{path: a, weight: 2}, {path: b}]``."""
    path: str  # prefix: <path>.<src_lang> + <path>.<tgt_lang>
    weight: float = Field(1.0, gt=0, le=1000)  # an epoch holds weight x its pairs (sampled)


class SidePaths(Section):
    """Per-side files: ``data.spm_model: {src: a.model, tgt: b.model}`` (either may be left out)."""
    src: Optional[str] = None
    tgt: Optional[str] = None


class DataConfig(Section):
    # path prefix: <train>.<src_lang> + <train>.<tgt_lang>; or a list of weighted corpora
    train: Optional[Union[str, list[TrainCorpus]]] = None
    dev: Optional[str] = None
    test: Optional[str] = None
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    tokenizer: Literal["char", "word", "sentencepiece"] = "word"
    src_tokenizer: Optional[Literal["char", "word", "sentencepiece"]] = None  # per-side override
    tgt_tokenizer: Optional[Literal["char", "word", "sentencepiece"]] = None
    lowercase: Bool = False
    vocab_size: Int = Field(8000, ge=8, le=1_000_000)  # sentencepiece pieces per side
    spm_model_type: Literal["unigram", "bpe"] = "unigram"
    # sentences sampled to train sentencepiece
    spm_max_sentences: Int = Field(1_000_000, ge=100, le=100_000_000)
    min_freq: Int = Field(1, ge=1)  # word/char vocabularies
    max_vocab_size: Int = Field(50_000, ge=8, le=10_000_000)
    shared_vocab: Bool = False
    # existing files to use instead of training / building them: one path for both sides, or
    # {src: ..., tgt: ...}; relative to the current directory (data/codec.py)
    spm_model: Optional[Union[str, SidePaths]] = None  # a SentencePiece .model
    vocab_file: Optional[Union[str, SidePaths]] = None  # one token per line
    # tokens; longer training sources are cut to max_src_len, pairs with longer targets skipped
    max_src_len: Int = Field(100, ge=1, le=100_000)
    max_tgt_len: Int = Field(100, ge=1, le=100_000)
    skip_bad_pairs: Bool = True  # False: an empty or over-long training pair is an error
    # image: the source file lists image paths, relative to itself (data/images.py)
    src_type: Literal["text", "image"] = "text"
    # pixels per side images are resized to; default: chosen from the training images' sizes
    image_size: Optional[Int] = Field(None, ge=16, le=1024, multiple_of=8)
    augment: Bool = True  # image sources: small random shifts and colour jitter in training
    # the training-data cache (text corpora: checked, encoded pairs; data/training_set.py);
    # default: transduce-cache/ in the folder of the first training corpus
    cache_dir: Optional[str] = None

    def corpora(self) -> list[TrainCorpus]:
        """``data.train`` as a list of corpora (one of weight 1 for a plain prefix)."""
        if isinstance(self.train, str):
            return [TrainCorpus(path=self.train)]
        return list(self.train or [])

    def given(self, key: str, side: str) -> Optional[str]:
        """The ``data.spm_model`` or ``data.vocab_file`` path given for ``side``, if any (an image
        source has none: a path for both sides then concerns the target)."""
        value = getattr(self, key)
        if isinstance(value, SidePaths):
            return getattr(value, side)
        return None if side == "src" and self.src_type == "image" else value

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if isinstance(self.train, list) and (not self.train or self.src_type == "image"):
            raise ValueError("data.train as a list needs at least one corpus, of text sources "
                             "(an image corpus is one list file)")
        if self.shared_vocab and self.src_type == "image":
            raise ValueError("data.shared_vocab needs text on both sides (data.src_type is "
                             "image); set data.shared_vocab: false")
        src = self.src_tokenizer or self.tokenizer
        tgt = self.tgt_tokenizer or self.tokenizer
        if self.shared_vocab and src != tgt:
            raise ValueError(f"data.shared_vocab needs the same tokenizer on both sides (got "
                             f"src {src}, tgt {tgt}); set data.shared_vocab: false or use one "
                             "tokenizer")
        for side, kind in (("src", src), ("tgt", tgt)):
            if self.given("spm_model", side) and kind != "sentencepiece":
                raise ValueError(f"data.spm_model is given for the {side} side, whose tokenizer "
                                 f"is {kind}; set data.tokenizer: sentencepiece or leave "
                                 "data.spm_model out")
        for key in ("spm_model", "vocab_file"):
            if isinstance(getattr(self, key), SidePaths):
                paths = getattr(self, key)
                if self.src_type == "image" and paths.src:
                    raise ValueError(f"data.{key}.src is given but the sources are images; "
                                     f"leave data.{key}.src out")
                if self.shared_vocab and paths.src != paths.tgt:
                    raise ValueError(f"data.shared_vocab needs one data.{key} for both sides "
                                     f"(got src {paths.src}, tgt {paths.tgt}); give one path")
        return self


# `copy` is a contract key name; pydantic warns that it shadows BaseModel.copy (deprecated anyway)
warnings.filterwarnings("ignore", message='Field name "copy"', category=UserWarning)


class ModelConfig(Section):
    # rnn: the attentional RNN encoder-decoder; transformer: pre-norm Transformer layers
    # (model/transformer.py) of width embedding_size, with heads and ff_size
    arch: Literal["rnn", "transformer"] = "rnn"
    heads: Int = Field(4, ge=1, le=128)  # transformer: attention heads
    ff_size: Int = Field(1024, ge=1, le=4 * MAX_WIDTH)  # transformer: feed-forward width
    # rnn over tokens, or a residual cnn over images (the default when data.src_type is image)
    encoder: Literal["rnn", "cnn"] = "rnn"
    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    attention: Literal["none", "dot", "general", "mlp"] = "mlp"
    embedding_size: Int = Field(256, ge=1, le=MAX_WIDTH)
    encoder_hidden_size: Int = Field(256, ge=1, le=MAX_WIDTH)  # per direction
    bidirectional: Bool = True
    decoder_hidden_size: Int = Field(512, ge=1, le=MAX_WIDTH)
    layers: Int = Field(1, ge=1, le=64)  # encoder and decoder
    input_feeding: Bool = True
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    bridge: Literal["bridge", "last", "zero"] = "bridge"  # decoder initial state
    tied_embeddings: Bool = False  # target embedding = output projection
    # pointer-generator: copy source tokens (See et al., 2017); coverage: a coverage vector in
    # the attention score and the coverage loss. auto (the default): the trainer decides from a
    # sample of the training pairs (data/profile.py: copy when targets reuse source tokens,
    # coverage too when targets are much shorter) and config.yaml records what it chose
    copy: Union[Bool, Literal["auto"]] = "auto"
    coverage: Union[Bool, Literal["auto"]] = "auto"

    def describe(self) -> tuple[str, str]:
        """The encoder-decoder and its attention in words (train.log, the server's /health)."""
        if self.arch == "transformer":
            return (f"transformer ({self.layers} layers, width {self.embedding_size}, "
                    f"feed-forward {self.ff_size})"), f"{self.heads}-head"
        encoder = "residual cnn" if self.encoder == "cnn" else \
            f"{self.cell} ({'bi' if self.bidirectional else 'uni'}directional)"
        return f"{encoder} encoder, {self.cell} decoder", self.attention

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        # the cnn's feature maps have encoder_hidden_size channels
        enc_out = self.encoder_hidden_size * (2 if self.bidirectional and self.encoder != "cnn"
                                              else 1)
        if self.bridge == "last" and enc_out != self.decoder_hidden_size:
            raise ValueError(
                f"model.bridge=last needs the encoder output size ({enc_out}) to equal "
                f"model.decoder_hidden_size ({self.decoder_hidden_size}); use bridge: bridge")
        if self.copy is True and self.attention == "none":
            raise ValueError("model.copy copies through attention; set model.attention to mlp, "
                             "general or dot")
        if self.coverage is True and self.attention != "mlp":
            raise ValueError(f"model.coverage needs model.attention: mlp (got "
                             f"{self.attention}); set attention: mlp or coverage: false")
        if self.arch == "transformer":
            return self._check_transformer()
        if self.tied_embeddings and self.embedding_size != self.decoder_hidden_size:
            raise ValueError(
                f"model.tied_embeddings needs model.embedding_size ({self.embedding_size}) to "
                f"equal model.decoder_hidden_size ({self.decoder_hidden_size}); make them equal "
                "or set model.tied_embeddings: false")
        return self

    def _check_transformer(self) -> "ModelConfig":
        if self.embedding_size % self.heads:
            raise ValueError(f"model.embedding_size ({self.embedding_size}) must be a multiple "
                             f"of model.heads ({self.heads}) with arch: transformer")
        if self.embedding_size % 2:
            raise ValueError(f"model.embedding_size ({self.embedding_size}) must be even with "
                             "arch: transformer (sinusoidal positions)")
        for key in ("copy", "coverage"):
            if getattr(self, key) is True:
                raise ValueError(f"model.{key} is for arch: rnn so far; set model.{key}: false "
                                 "or auto with arch: transformer")
        if self.encoder == "cnn":
            raise ValueError("arch: transformer reads text; image sources need arch: rnn")
        return self


class TrainingConfig(Section):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "plateau", "warmup_inverse_sqrt", "cosine"] = "plateau"
    warmup_steps: Int = Field(0, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: Int = Field(2, ge=0)  # validations without improvement before lr drops
    min_lr: float = Field(1e-5, ge=0)
    batch_size: Int = Field(64, ge=1, le=1_000_000)  # sentences, when batch_tokens is not set
    # token budget (max(src,tgt) len x sentences)
    batch_tokens: Optional[Int] = Field(None, ge=1, le=100_000_000)
    accumulate: Int = Field(1, ge=1, le=10_000)  # gradient accumulation steps per update
    clip_grad_norm: Optional[float] = Field(5.0, gt=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    coverage_weight: float = Field(1.0, ge=0)  # weight of the coverage loss (model.coverage)
    # Show-Attend-Tell's doubly stochastic attention: lambda * sum_cells (1 - sum_steps a)^2
    attention_reg: float = Field(0.0, ge=0)
    # default: EPOCHS, or no limit when max_minutes is set (the budget and early stopping end
    # the run: a small corpus gets the whole budget, not 10 epochs of it); see epoch_limit
    max_epochs: Optional[Int] = Field(None, ge=1)
    max_steps: Optional[Int] = Field(None, ge=1)
    max_minutes: Optional[float] = Field(None, gt=0)
    # updates between validations; auto: about ten validations a run (a tenth of max_minutes,
    # or of the updates, at most 5 minutes of training apart), an interval in updates set
    # from the speed of the first 50 updates and kept in last/, stretched so that validating
    # takes at most a tenth of the training time (training/validation.py)
    validate_every: Union[Annotated[Int, Field(ge=1)], Literal["auto"]] = "auto"
    log_every: Int = Field(50, ge=1)
    # selects best/, drives the plateau schedule and early stopping; chrF of the greedy-decoded
    # dev sample scores what is kept, the output: the dev loss bottoms out early on small corpora
    # (label-smoothed, it overfits while the outputs still improve: on a 940-pair dialogue corpus
    # it kept update 200, dev chrF 6.3, over update 850, chrF 12.1), and BLEU of one-line outputs
    # is noise (it kept an undertrained summarizer over a far better one); docs/design.md
    early_stopping_metric: Literal["bleu", "chrf", "loss", "ppl"] = "chrf"
    # dev pairs greedy-decoded at each validation for BLEU/chrF (a fixed seeded sample; None: all)
    dev_sample: Optional[Int] = Field(500, ge=1)
    patience: Optional[Int] = Field(None, ge=1)  # validations without improvement before stopping
    # kept/step-*/ checkpoints beside best/ and last/: the N most recent and the N best (for
    # transduce average); 1 and 1: none
    keep_last: Int = Field(1, ge=1, le=1000)
    keep_best: Int = Field(1, ge=1, le=1000)
    # minutes of training between writes of last/ besides those at each validation (what a
    # crash or a lost machine can cost, docs/distributed.md); None: at validations only
    save_every: Optional[float] = Field(None, gt=0)
    # at the end of training: average the last N kept checkpoints, and make the average best/ if
    # it scores better on dev (checkpoints.py); needs keep_last >= N. 0: off
    average_at_end: Int = Field(0, ge=0, le=1000)
    init_from: Optional[str] = None  # fine-tuning: a model_dir or checkpoint (training/start.py)
    reset: list[Literal["optimizer", "schedule", "data", "early_stopping"]] = \
        ["optimizer", "schedule", "data", "early_stopping"]  # with init_from: what starts afresh
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    max_nonfinite_updates: Int = Field(10, ge=1)  # NaN/inf losses in a row before training stops
    tensorboard: Bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Optional[Int] = Field(None, ge=1, le=1024)  # torch intra-op threads (default: torch's)

    @property
    def epoch_limit(self) -> float:
        """Epochs training may run: max_epochs, else EPOCHS without max_minutes, else no limit."""
        if self.max_epochs is not None:
            return self.max_epochs
        return math.inf if self.max_minutes else EPOCHS

    @model_validator(mode="after")
    def _check(self) -> "TrainingConfig":
        if self.average_at_end == 1:
            raise ValueError("training.average_at_end: 1 would average one checkpoint; set 0 "
                             "(off) or the number of last checkpoints to average, 2 or more")
        if self.average_at_end > self.keep_last:
            raise ValueError(f"training.average_at_end: {self.average_at_end} averages the last "
                             f"{self.average_at_end} kept checkpoints, but training.keep_last is "
                             f"{self.keep_last}; set training.keep_last: {self.average_at_end}")
        return self


class Config(Section):
    name: str = "transduce"
    seed: Int = Field(1, ge=0, le=2**32 - 1)  # numpy's seeds are 32-bit
    model_dir: Optional[str] = None  # default: runs/<name>
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    decoding: DecodingConfig = DecodingConfig()
    tune: TuneConfig = TuneConfig()

    @model_validator(mode="before")
    @classmethod
    def _encoder(cls, raw: Any) -> Any:
        """model.encoder unset: cnn for image sources."""
        data, model = (raw.get(k) if isinstance(raw, dict) else None for k in ("data", "model"))
        src_type = data.get("src_type") if isinstance(data, dict) else getattr(data, "src_type",
                                                                               None)
        if src_type == "image" and (model is None or isinstance(model, dict)
                                    and "encoder" not in model):
            raw = {**raw, "model": {**(model or {}), "encoder": "cnn"}}
        return raw

    @model_validator(mode="after")
    def _defaults(self) -> "Config":
        if self.model_dir is None:
            self.model_dir = f"runs/{self.name}"
        image, m = self.data.src_type == "image", self.model
        if image != (m.encoder == "cnn"):
            raise ValueError(f"model.encoder: {m.encoder} cannot read data.src_type: "
                             f"{self.data.src_type} sources; use encoder: "
                             f"{'cnn' if image else 'rnn'} (or leave it unset)")
        if image and m.copy is True:
            raise ValueError("model.copy copies source tokens, and image sources have none; "
                             "set model.copy: false (or auto)")
        if self.training.attention_reg and m.attention == "none":
            raise ValueError("training.attention_reg needs attention; set model.attention or "
                             "training.attention_reg: 0")
        return self

    @model_validator(mode="after")
    def _space(self) -> "Config":
        """Each tune.space key is a config key, and each value it may take one the key allows
        (checked by validating this config with the value set)."""
        keys = [k for k in known_keys(Config) if k.split(".")[0] != "tune"
                and not isinstance(getattr(self, k, None), BaseModel)]  # not sections
        for key, dist in self.tune.space.items():
            if key not in keys:
                raise ValueError(f"tune.space: '{key}' is not a config key{_suggest(key, keys)}")
            for value in dist.values():
                try:
                    Config.model_validate(apply_overrides(self.to_dict(False), {key: value},
                                                         known_keys(Config)))
                except ValidationError as e:
                    raise ValueError(f"tune.space '{key}': {short_repr(value)} is not allowed "
                                     f"({format_error(e, None, keys)}); keep to what the key "
                                     "allows")
        return self

    def to_dict(self, tune: bool = True) -> dict[str, Any]:
        """The config as plain data; the tune section only if asked for and it has a space."""
        return self.model_dump(mode="json", exclude=None if tune and self.tune.space else {"tune"})


def load_config(source: str | Path | dict | None = None,
                overrides: dict[str, Any] | list[str] | None = None) -> Config:
    """Read a YAML file (or a dict), apply overrides, validate."""
    name = "config"
    if source is None:
        raw: Any = {}
    elif isinstance(source, dict):
        raw = dict(source)
    else:
        name = str(source)
        raw = load_yaml(source) or {}
        if not isinstance(raw, dict):
            raise TransduceError(f"{source}: the config must be a YAML mapping of sections")
    raw = apply_overrides(raw, overrides, known_keys(Config))
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise TransduceError(format_error(e, name, known_keys(Config))) from None


def save_config(config: Config, path: str | Path) -> None:
    dump_yaml(config.to_dict(), path)

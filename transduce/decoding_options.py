"""Decoding options: the config's ``decoding`` section, and each call's options (CLI flags, API
keywords, HTTP request fields) as the same object with overrides, checked in one place."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, ValidationError, model_validator

from transduce.errors import TransduceError
from transduce.hints import format_error, known_keys, suggest
from transduce.section import Bool, Int, Section

MAX_OUTPUT = 10_000  # output tokens per input


class DecodingConfig(Section):
    """Decoding settings: the ``decoding`` section, and per call (CLI flags, API keywords, HTTP
    request fields) the same object with overrides (:meth:`override`), checked once here."""

    beam_size: Int = Field(5, ge=1, le=1000)
    n_best: Int = Field(1, ge=1, le=1000)
    length_penalty: float = Field(1.0, ge=0, le=10)  # GNMT alpha; 0 = none
    max_len_a: float = Field(1.5, ge=0, le=10)  # max output length = a * src_len + b
    max_len_b: Int = Field(10, ge=1, le=MAX_OUTPUT)
    max_len: Optional[Int] = Field(None, ge=1, le=MAX_OUTPUT)  # a cap on that, in tokens
    no_repeat_ngram_size: Int = Field(0, ge=0, le=100)
    coverage_penalty: float = Field(0.0, ge=0, le=10)  # GNMT beta: beam favours covering the source
    batch_size: Int = Field(64, ge=1, le=100_000)
    # tokens; longer inputs are truncated (with a warning naming the line); default 4 x max_src_len
    max_input_len: Optional[Int] = Field(None, ge=1, le=100_000)
    sampling: Bool = False
    temperature: float = Field(1.0, ge=0.01, le=100)  # outside: logits / t overflow
    top_k: Int = Field(0, ge=0, le=100_000)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: Optional[Int] = Field(None, ge=0, le=2**63 - 1)  # sampling; default: top-level seed

    @model_validator(mode="after")
    def _check(self) -> "DecodingConfig":
        if self.sampling and self.n_best > 1:
            raise ValueError(f"n_best ({self.n_best}) must be 1 when sampling (one sample per "
                             "input); sample again with another seed for more")
        if self.n_best > self.beam_size:
            raise ValueError(f"n_best ({self.n_best}) cannot exceed the beam size "
                             f"({self.beam_size}); raise the beam size (--beam-size "
                             f"{self.n_best}) or lower n_best")
        return self

    def override(self, **options: Any) -> "DecodingConfig":
        """A copy with ``options`` (None: keep this value), validated; a bad or unknown option
        is a one-line :class:`TransduceError`."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(type(self).model_fields))
        if unknown:
            raise TransduceError(f"unknown decoding option '{unknown[0]}'"
                                 + suggest(unknown[0], type(self).model_fields))
        try:
            return type(self).model_validate({**self.model_dump(), **given})
        except ValidationError as e:
            raise TransduceError(format_error(e, None, known_keys(DecodingConfig),
                                              "decoding option")) from None

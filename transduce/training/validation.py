"""Scoring a model during and after training: the dev set's loss and scores, the test set."""
from __future__ import annotations

import logging
import math
import random
from contextlib import nullcontext
from functools import cached_property
from typing import Callable

import torch

from transduce.config import Config, TrainingConfig
from transduce.data.batching import Batch, ImagePairs, Pairs, batch_cost, batch_indices
from transduce.data.codec import Codec, encode_pairs
from transduce.data.corpus import read_parallel, relative_to, resolve_pair
from transduce.decode.translator import Translator
from transduce.evaluate import evaluate, perplexity
from transduce.model.seq2seq import Seq2Seq
from transduce.training.loss import nll
from transduce.training.state import TrainerState

log = logging.getLogger("transduce")
# training.validate_every: auto
AUTO_TIMED = 50  # updates timed before the interval is set (and the shortest interval)
AUTO_RUNS = 10  # validations a run: a tenth of max_minutes, or of the updates ...
AUTO_LONGEST = 300.0  # ... but at most this many seconds of training apart
AUTO_SHARE = 0.1  # the most of the training time that validating may take


def validation_due(t: TrainingConfig, st: TrainerState, total_steps: int) -> bool:
    """Whether to validate after update ``st.step``: every ``training.validate_every`` updates,
    or under ``auto`` every ``st.validate_every`` updates since the last validation, an interval
    set here (and kept in the trainer state, so a resumed run validates at the same steps) once
    :data:`AUTO_TIMED` updates show the speed."""
    if t.validate_every != "auto":
        return st.step % t.validate_every == 0
    if st.validate_every is None:
        if st.step < AUTO_TIMED:
            return False
        per_update = st.elapsed / st.step
        seconds = min(AUTO_LONGEST, 60 * t.max_minutes / AUTO_RUNS if t.max_minutes else
                      AUTO_LONGEST)
        st.validate_every = max(AUTO_TIMED, min(round(seconds / per_update),
                                                math.ceil(total_steps / AUTO_RUNS)))
        log.info("validating every %d updates (about %.0f s of training at %.2f s an update; "
                 "training.validate_every: auto)", st.validate_every,
                 st.validate_every * per_update, per_update)
    return st.step - max(0, st.validated_at) >= st.validate_every


def stretch_interval(t: TrainingConfig, st: TrainerState, seconds: float) -> None:
    """Under ``validate_every: auto``, after a validation that took ``seconds``: lengthen the
    interval so that validating takes at most :data:`AUTO_SHARE` of the training time."""
    if t.validate_every != "auto" or st.validate_every is None or not st.step:
        return
    need = math.ceil(seconds * (1 - AUTO_SHARE) / AUTO_SHARE / (st.elapsed / st.step))
    if need > st.validate_every:
        st.validate_every = need
        log.info("validation took %.1f s: validating every %d updates from now on, so that it "
                 "takes at most %d %% of the training time", seconds, need, 100 * AUTO_SHARE)


class DevSet:
    """The dev set: the loss (no smoothing) over batches that are built once (the dev set does
    not change between validations), and greedy translations of a fixed sample scored with BLEU
    and chrF."""

    def __init__(self, src: list[str], ref: list[str], src_codec: Codec, tgt_codec: Codec,
                 config: Config, att_cost: float):
        self.src, self.ref, self.codecs, self.cfg = src, ref, (src_codec, tgt_codec), config
        self.att_cost = att_cost
        if config.data.src_type == "image":  # decoded now: a bad image stops the start, not
            self.batches  # noqa: B018 (the first validation)

    @classmethod
    def build(cls, dev: tuple[list[str], list[str]] | None, src_codec: Codec, tgt_codec: Codec,
              config: Config, att_cost: float) -> "DevSet | None":
        """The dev set of the pairs ``dev``; None, with a warning saying what that means,
        without ``data.dev``."""
        if dev is None:
            log.warning("no data.dev: training measures nothing, so best/ is simply the latest "
                        "model (saved at each validation) and early stopping and the plateau "
                        "schedule never act; give a dev set (transduce init carves one)")
            return None
        return cls(*dev, src_codec, tgt_codec, config, att_cost)

    @cached_property
    def batches(self) -> list[Batch]:
        """The loss batches. They keep to the training memory budget; as in training, sources
        are cut to data.max_src_len and pairs with targets over data.max_tgt_len are left out
        (all pairs are still translated and scored)."""
        t, d = self.cfg.training, self.cfg.data
        budget = t.batch_tokens or t.batch_size * batch_cost(1, d.max_src_len, d.max_tgt_len + 1,
                                                             self.att_cost)
        pairs = self._images() if d.src_type == "image" else self._texts()
        return [pairs.batch(idx) for idx in batch_indices(
            pairs.src_lens, pairs.tgt_lens, batch_tokens=int(budget), att_cost=self.att_cost,
            max_sentences=self.cfg.decoding.batch_size, shuffle=False)]

    def _images(self) -> ImagePairs:
        d = self.cfg.data
        return ImagePairs.from_lists(self.src, self.ref, self.codecs[1], d,
                                     resolve_pair(d.dev, d.src_lang, d.tgt_lang)[0])

    def _texts(self) -> Pairs:
        (s_codec, t_codec), d = self.codecs, self.cfg.data
        src, tgt, ext, _ = encode_pairs([s_codec.tokenize(s) for s in self.src],
                                        [t_codec.tokenize(s) for s in self.ref],
                                        s_codec.vocab, t_codec.vocab, self.cfg.model.copy)
        keep = [i for i in range(len(src)) if src[i] and len(tgt[i]) <= d.max_tgt_len]
        if len(keep) < len(src):
            log.info("dev loss leaves out %d of %d dev pairs (empty, or targets over "
                     "data.max_tgt_len)", len(src) - len(keep), len(src))
        cut = d.max_src_len
        return Pairs([src[i][:cut] for i in keep], [tgt[i] for i in keep],
                     [ext[i][:cut] for i in keep] if ext is not None else None)

    @torch.no_grad()
    def loss(self, model: Seq2Seq, device: torch.device, autocast: Callable = nullcontext
             ) -> tuple[float, int]:
        """Summed NLL and target token count over the dev set; the model runs under
        ``autocast()`` (the training precision), the loss in fp32."""
        model.eval()
        total, n = 0.0, 0
        for b in self.batches:
            b = b.to(device)
            with autocast():
                out = model(b.src, b.src_lens, b.tgt_in, b.src_ext)
            total += float(nll(out, b))
            n += b.n_tgt_tokens
        return total, n

    @cached_property
    def sample(self) -> list[int]:
        """The dev pairs decoded at each validation: ``training.dev_sample`` of them, the same
        every time (seeded), in file order; all when the dev set is not larger."""
        n, k = len(self.src), self.cfg.training.dev_sample
        if k is None or k >= n:
            return list(range(n))
        return sorted(random.Random(0).sample(range(n), k))

    def score(self, model: Seq2Seq, device: torch.device, autocast: Callable = nullcontext
              ) -> tuple[dict[str, float], Translator, list[str]]:
        """``{"bleu", "chrf", "loss", "ppl"}`` (the loss over the whole dev set, BLEU and chrF
        over :attr:`sample`), the translator used, its greedy outputs of the sample."""
        loss, n = self.loss(model, device, autocast)
        translator = Translator(model, *self.codecs, self.cfg, device)
        with autocast():
            hyps = translator.translate([self.src[i] for i in self.sample], beam_size=1)
        scores = evaluate(hyps, [self.ref[i] for i in self.sample], ["bleu", "chrf"])
        scores.pop("signature")
        scores.update(loss=loss / max(1, n), ppl=perplexity(loss, n))
        return scores, translator, hyps


def test_scores(translator: Translator, config: Config) -> dict:
    """``data.test`` translated with the configured decoding, scored with BLEU and chrF (and
    CIDEr for captions of images)."""
    d = config.data
    src_path, ref_path = resolve_pair(d.test, d.src_lang, d.tgt_lang)
    src, ref = read_parallel(src_path, ref_path, key="data.test")
    image = d.src_type == "image"
    if image:
        src = relative_to(src, src_path)
    scores = evaluate(translator.translate(src), ref, ["bleu", "chrf"] + ["cider"] * image)
    log.info("test (%s, beam %d): BLEU %.2f | chrF %.2f%s | %s", d.test,
             config.decoding.beam_size, scores["bleu"], scores["chrf"],
             f" | CIDEr {scores['cider']:.2f}" if image else "", scores["signature"]["bleu"])
    return scores

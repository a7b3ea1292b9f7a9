"""Search: beam 1 = greedy, batch-size invariance, n-best consistency, sampling, n-gram blocking,
each hypothesis's score and attention."""
import pytest
import torch

from transduce.config import ModelConfig
from transduce.data.batching import make_batch
from transduce.data.vocabulary import BOS_ID, EOS_ID, PAD_ID
from transduce.decode.search import (_banned_ngrams, beam_search, coverage_penalty, greedy,
                                     length_penalty, max_lengths)
from transduce.model.seq2seq import Seq2Seq


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    m = Seq2Seq(ModelConfig(embedding_size=12, encoder_hidden_size=8, decoder_hidden_size=16,
                            dropout=0.0), 30, 30)
    # sharpen the untrained model so searches make real decisions
    with torch.no_grad():
        m.decoder.output.weight.mul_(20)
    return m.eval()


@pytest.fixture(scope="module")
def lively():
    """Weights ten times their initial scale: attention moves from step to step and the
    hypotheses' lengths vary, some ending in </s>, some at the maximum length."""
    torch.manual_seed(3)
    m = Seq2Seq(ModelConfig(embedding_size=12, encoder_hidden_size=8, decoder_hidden_size=16,
                            dropout=0.0), 30, 30)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(10)
    return m.eval()


def _sources(n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, 30, (int(torch.randint(1, 9, (1,), generator=g)),),
                          generator=g).tolist() for _ in range(n)]


def _run(model, sources, fn, **kw):
    b = make_batch(sources)
    return fn(model, b.src, b.src_lens, max_lengths(b.src_lens, 1.0, 3), **kw)


def test_beam_one_equals_greedy(model):
    srcs = _sources()
    g = _run(model, srcs, greedy)
    b = _run(model, srcs, beam_search, beam_size=1, alpha=0.0)
    assert [h.tokens for h in g] == [nb[0].tokens for nb in b]


@pytest.mark.parametrize("beam", [2, 5])
def test_beam_does_not_depend_on_batch_size(model, beam):
    srcs = _sources(12)
    together = _run(model, srcs, beam_search, beam_size=beam)
    alone = [_run(model, [s], beam_search, beam_size=beam)[0] for s in srcs]
    pairs = [_run(model, srcs[i:i + 2], beam_search, beam_size=beam) for i in range(0, 12, 2)]
    pairs = [x for p in pairs for x in p]
    for t, a, p in zip(together, alone, pairs):
        assert t[0].tokens == a[0].tokens == p[0].tokens
        assert t[0].score == pytest.approx(a[0].score, abs=1e-4)


def test_nbest_top_equals_one_best_and_is_sorted(model):
    srcs = _sources()
    one = _run(model, srcs, beam_search, beam_size=4, n_best=1)
    many = _run(model, srcs, beam_search, beam_size=4, n_best=4)
    for o, m in zip(one, many):
        assert o[0].tokens == m[0].tokens
        assert len(m) == 4
        assert [h.score for h in m] == sorted((h.score for h in m), reverse=True)


def test_beam_finds_at_least_as_likely_output_as_greedy(model):
    srcs = _sources()
    g = _run(model, srcs, greedy)
    b = _run(model, srcs, beam_search, beam_size=5, alpha=0.0)
    for gh, bh in zip(g, b):
        assert bh[0].logprob >= gh.logprob - 1e-4


def test_max_length_is_respected(model):
    srcs = _sources()
    for h in _run(model, srcs, beam_search, beam_size=3):
        assert len(h[0].tokens) <= 8 + 3


def test_sampling_is_seeded_and_varies(model):
    srcs = _sources()
    runs = []
    for seed in (1, 1, 2):
        gen = torch.Generator().manual_seed(seed)
        runs.append([h.tokens for h in _run(model, srcs, greedy, sampling=True, temperature=3.0,
                                            generator=gen)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_top_k_one_sampling_is_greedy(model):
    srcs = _sources()
    g = [h.tokens for h in _run(model, srcs, greedy)]
    s = [h.tokens for h in _run(model, srcs, greedy, sampling=True, top_k=1,
                                generator=torch.Generator().manual_seed(0))]
    assert g == s


def test_no_repeat_ngram_blocks_repeats(model):
    assert sorted(_banned_ngrams([5, 6, 5, 6, 5], 2)) == [6, 6]
    for nb in _run(model, _sources(), beam_search, beam_size=3, no_repeat_ngram_size=2):
        toks = nb[0].tokens
        grams = [tuple(toks[i:i + 2]) for i in range(len(toks) - 1)]
        assert len(grams) == len(set(grams))


def _repeats(tokens, n=1):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


def test_greedy_blocks_repeats_as_beam_one_does(lively):
    srcs = _sources(12)
    assert sum(_repeats(h.tokens) for h in _run(lively, srcs, greedy)) > 0  # repeats unblocked
    g = _run(lively, srcs, greedy, no_repeat_ngram_size=1)  # no token twice
    assert all(_repeats(h.tokens) == 0 for h in g)
    b = _run(lively, srcs, beam_search, beam_size=1, alpha=0.0, no_repeat_ngram_size=1)
    assert [h.tokens for h in g] == [nb[0].tokens for nb in b]
    sampled = _run(lively, srcs, greedy, sampling=True, no_repeat_ngram_size=1,
                   generator=torch.Generator().manual_seed(0))
    assert all(_repeats(h.tokens) == 0 for h in sampled)


def test_attention_rows_are_distributions_over_the_source(model):
    srcs = _sources(4)
    for nb, s in zip(_run(model, srcs, beam_search, beam_size=3, return_attention=True), srcs):
        a = nb[0].attention
        assert a.shape[1] == len(s)
        assert torch.allclose(a.sum(-1), torch.ones(a.size(0)), atol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.4])
def test_each_hypothesis_keeps_its_own_logprob_attention_and_coverage(lively, beta):
    """Through the beams' reordering and finished sentences leaving the batch, every n-best
    entry's log-probability and attention are what the model gives its tokens under teacher
    forcing, and its score is the GNMT score computed from them (coverage: summed attention)."""
    srcs = _sources(8, seed=1)
    b = make_batch(srcs)
    lens = max_lengths(b.src_lens, 1.0, 3)
    nbests = beam_search(lively, b.src, b.src_lens, lens, beam_size=3, n_best=3, beta=beta,
                         return_attention=True)
    ends = set()
    for src, max_len, nbest in zip(srcs, lens, nbests):
        assert len(nbest) == 3
        for h in nbest:
            eos = len(h.tokens) < max_len  # else stopped at the maximum length
            ends.add(eos)
            tgt = h.tokens + [EOS_ID] * eos
            with torch.no_grad():
                out = lively(torch.tensor([src]), torch.tensor([len(src)]),
                            torch.tensor([[BOS_ID] + tgt[:-1]]))
            logits = out.logits[0].float()
            logits[:, [PAD_ID, BOS_ID]] = float("-inf")
            logprob = float(logits.log_softmax(-1).gather(1, torch.tensor(tgt)[:, None]).sum())
            assert h.logprob == pytest.approx(logprob, abs=1e-4)
            assert h.attention.shape == (len(tgt), len(src))
            assert torch.allclose(h.attention, out.attention[0], atol=1e-5)
            score = logprob / length_penalty(len(tgt), 1.0)
            score += coverage_penalty(h.attention.sum(0), beta)
            assert h.score == pytest.approx(score, abs=1e-4)
    assert ends == {True, False}

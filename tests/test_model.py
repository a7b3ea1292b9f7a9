"""The model: every option trains, options change the computation, padding changes nothing."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from transduce.config import ModelConfig
from transduce.data.batching import make_batch
from transduce.data.vocabulary import PAD_ID
from transduce.model.seq2seq import Seq2Seq


def _model(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    base = dict(embedding_size=12, encoder_hidden_size=8, decoder_hidden_size=16, dropout=0.0)
    base.update(kw)
    return Seq2Seq(ModelConfig(**base), 20, 20)


def _reverse_batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = [torch.randint(4, 20, (int(torch.randint(2, 7, (1,), generator=g)),),
                         generator=g).tolist() for _ in range(n)]
    return make_batch(src, [s[::-1] for s in src])


@pytest.mark.parametrize("cell,attention,feeding", list(itertools.product(
    ["rnn", "gru", "lstm"], ["none", "dot", "general", "mlp"], [True, False])))
def test_every_combination_trains(cell, attention, feeding):
    model = _model(cell=cell, attention=attention, input_feeding=feeding, layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    b = _reverse_batch()
    losses = []
    for _ in range(40):
        logits = model(b.src, b.src_lens, b.tgt_in).logits
        loss = F.cross_entropy(logits.view(-1, 20), b.tgt_out.view(-1), ignore_index=PAD_ID)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("option,values", [
    ("input_feeding", (True, False)), ("attention", ("dot", "general")),
    ("attention", ("general", "mlp")), ("attention", ("none", "mlp")),
    ("bridge", ("bridge", "zero")), ("bidirectional", (True, False))])
def test_each_option_changes_the_computation(option, values):
    b = _reverse_batch(4)
    outs = []
    for v in values:
        m = _model(**{option: v}).eval()
        outs.append(m(b.src, b.src_lens, b.tgt_in)[0])
    assert not torch.allclose(outs[0], outs[1])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("feeding", [True, False])
def test_padding_never_changes_results(cell, feeding):
    model = _model(cell=cell, input_feeding=feeding, layers=2).eval()
    batch = _reverse_batch(6)
    longest = int(batch.src_lens.argmax())
    i = int(batch.src_lens.argmin())  # the shortest sentence: most padding in the batch
    assert batch.src_lens[i] < batch.src_lens[longest]
    alone = make_batch([batch.src[i, : batch.src_lens[i]].tolist()],
                       [batch.tgt_out[i, : batch.tgt_out[i].ne(PAD_ID).sum() - 1].tolist()])
    with torch.no_grad():
        mem_b, _ = model.encoder(batch.src, batch.src_lens)
        mem_a, _ = model.encoder(alone.src, alone.src_lens)
        n = int(batch.src_lens[i])
        assert torch.allclose(mem_b[i, :n], mem_a[0], atol=1e-6)
        assert mem_b[i, n:].abs().max() == 0
        t = alone.tgt_in.size(1)
        lb = model(batch.src, batch.src_lens, batch.tgt_in)[0][i, :t]
        la = model(alone.src, alone.src_lens, alone.tgt_in)[0][0]
        assert torch.allclose(lb, la, atol=1e-5)


@pytest.mark.parametrize("feeding", [True, False])
def test_step_by_step_decoding_matches_teacher_forcing(feeding):
    model = _model(input_feeding=feeding, layers=2).eval()
    b = _reverse_batch(5)
    with torch.no_grad():
        logits = model(b.src, b.src_lens, b.tgt_in).logits
        state = model.encode(b.src, b.src_lens)
        steps = []
        for t in range(b.tgt_in.size(1)):
            h, state, _ = model.decoder.attentional_step(b.tgt_in[:, t], state)
            steps.append(model.decoder.output(h))
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-5)


def test_tied_embeddings_share_one_tensor():
    m = _model(tied_embeddings=True, embedding_size=16)
    assert m.decoder.output.weight is m.decoder.embed.weight


def test_dot_attention_with_mismatched_sizes_projects_keys():
    m = _model(attention="dot", encoder_hidden_size=10, decoder_hidden_size=16)
    assert m.decoder.attention.key_layer is not None
    m2 = _model(attention="dot", encoder_hidden_size=8, decoder_hidden_size=16)
    assert m2.decoder.attention.key_layer is None  # 2 x 8 == 16: plain dot product

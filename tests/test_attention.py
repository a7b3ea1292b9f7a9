"""Attention (model/attention.py): shapes, masking, each score against a hand computation."""
import pytest
import torch

from transduce.model.attention import Attention

B, S, L, Q, E = 3, 4, 5, 6, 8  # batch, query steps, source length, query size, key size


def _inputs(key_size: int = E):
    g = torch.Generator().manual_seed(0)
    query = torch.randn(B, S, Q, generator=g, dtype=torch.double)
    memory = torch.randn(B, L, key_size, generator=g, dtype=torch.double)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False  # one real source token
    return query, memory, mask


def _attention(kind: str, key_size: int = E, coverage: bool = False) -> Attention:
    torch.manual_seed(1)
    return Attention(kind, Q, key_size, coverage).double()


def _run(att: Attention, query, memory, mask, coverage=None):
    return att(query, att.project_keys(memory), memory, mask, coverage=coverage)


def _expected_scores(att: Attention, query, memory) -> torch.Tensor:
    """(B, S, L) scores written out per batch row, query step and source position."""
    out = torch.empty(B, S, L, dtype=torch.double)
    for b in range(B):
        for t in range(S):
            for i in range(L):
                q, k = query[b, t], memory[b, i]
                if att.kind == "dot":
                    out[b, t, i] = q @ k
                elif att.kind == "general":
                    out[b, t, i] = q @ (att.key_layer.weight @ k)
                else:
                    w_k, w_q = att.key_layer.weight, att.query_layer.weight
                    out[b, t, i] = att.v.weight[0] @ torch.tanh(w_q @ q + w_k @ k)
    return out


@pytest.mark.parametrize("kind,key_size", [("dot", Q), ("dot", E), ("general", E), ("mlp", E)])
def test_shapes_and_weights_are_distributions(kind, key_size):
    query, memory, mask = _inputs(key_size)
    att = _attention(kind, key_size)
    assert att.project_keys(memory).shape == (B, L, Q)
    context, weights = _run(att, query, memory, mask)
    assert context.shape == (B, S, key_size)
    assert weights.shape == (B, S, L)
    assert torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, S, dtype=torch.double))
    torch.testing.assert_close(context, weights @ memory)


@pytest.mark.parametrize("kind", ["dot", "general", "mlp"])
def test_scores_match_a_hand_computation(kind):
    key_size = Q if kind == "dot" else E  # plain dot product: keys are the encoder outputs
    query, memory, mask = _inputs(key_size)
    att = _attention(kind, key_size)
    if kind == "dot":
        assert att.key_layer is None and att.project_keys(memory) is memory
    _, weights = _run(att, query, memory, mask)
    scores = _expected_scores(att, query, memory).masked_fill(~mask.unsqueeze(1), float("-inf"))
    torch.testing.assert_close(weights, torch.softmax(scores, -1))


@pytest.mark.parametrize("kind", ["dot", "general", "mlp"])
def test_padding_gets_no_attention_and_changes_nothing(kind):
    query, memory, mask = _inputs()
    att = _attention(kind)
    context, weights = _run(att, query, memory, mask)
    assert torch.all(weights.masked_select(~mask.unsqueeze(1)) == 0)
    assert torch.all(weights[2, :, 0] == 1)  # the only real token gets all of it
    noisy = memory.masked_fill(~mask.unsqueeze(-1), 1e3)  # padded positions hold anything
    context2, weights2 = _run(att, query, noisy, mask)
    assert torch.equal(weights2, weights)
    torch.testing.assert_close(context2, context)


def test_coverage_enters_the_mlp_score():
    query, memory, mask = _inputs()
    att = _attention("mlp", coverage=True)
    plain = _attention("mlp")  # the same seed: the same W_q, W_k, v
    zeros = torch.zeros(B, S, L, dtype=torch.double)
    # no attention paid yet: the coverage term is zero and the score is plain mlp's
    torch.testing.assert_close(_run(att, query, memory, mask, zeros),
                               _run(plain, query, memory, mask))
    coverage = torch.rand(B, S, L, generator=torch.Generator().manual_seed(3),
                          dtype=torch.double)
    _, weights = _run(att, query, memory, mask, coverage)
    assert not torch.allclose(weights, _run(plain, query, memory, mask)[1])
    w_q, w_k, w_c = att.query_layer.weight, att.key_layer.weight, att.coverage_layer.weight
    z = torch.tanh((query @ w_q.T).unsqueeze(2) + (memory @ w_k.T).unsqueeze(1)
                   + coverage.unsqueeze(-1) * w_c[:, 0])  # (B, S, L, Q)
    scores = (z @ att.v.weight[0]).masked_fill(~mask.unsqueeze(1), float("-inf"))
    torch.testing.assert_close(weights, torch.softmax(scores, -1))


def test_score_weights_give_the_mlp_score():
    query, memory, mask = _inputs()
    att = _attention("mlp")
    w_q, v = att.score_weights()
    assert w_q is att.query_layer.weight
    assert v.shape == (Q,) and v.data_ptr() == att.v.weight.data_ptr()  # a view: grads reach v
    keys = att.project_keys(memory)
    scores = torch.tanh(keys.unsqueeze(1) + (query @ w_q.T).unsqueeze(2)) @ v  # (B, S, L)
    _, weights = _run(att, query, memory, mask)
    torch.testing.assert_close(weights, torch.softmax(
        scores.masked_fill(~mask.unsqueeze(1), float("-inf")), -1))


@pytest.mark.parametrize("kind", ["dot", "general"])
def test_score_weights_of_product_scores_are_none(kind):
    query, memory, mask = _inputs()
    att = _attention(kind)
    assert att.score_weights() == (None, None)
    keys = att.project_keys(memory)
    scores = (query @ keys.transpose(1, 2)).masked_fill(~mask.unsqueeze(1), float("-inf"))
    torch.testing.assert_close(_run(att, query, memory, mask)[1], torch.softmax(scores, -1))


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="unknown attention"):
        Attention("additive", Q, E)
    with pytest.raises(ValueError, match="coverage needs mlp"):
        Attention("general", Q, E, coverage=True)
    with pytest.raises(ValueError, match="coverage"):
        _attention("mlp", coverage=True).score_weights()

"""The input-feeding LSTM decoder loop for training, with a hand-written backward pass.

Input feeding makes the decoder sequential: step t needs the attentional vector of step t-1.
Run step by step under autograd, every step records ~40 small operations, computes the gradient
of each weight with its own thin matrix product (64 rows), and adds it into the weight's
gradient, and the same again for the attention keys and encoder outputs. This module runs the
same computation as one ``torch.autograd.Function``:

- forward writes each step's activations into preallocated (steps, batch, ...) buffers, with the
  previous attentional vector and hidden state side by side so that the input-feeding and
  recurrent products are one GEMM;
- backward walks the steps in reverse, computing only what the recurrence needs step by step
  (input gradients), accumulates the attention-side gradients in place, and leaves the weight
  gradients to one large GEMM per weight over all steps at the end.

It restates the LSTM cell and the attention score (``dot``/``general``/``mlp`` without coverage,
on the weights of :meth:`~transduce.model.attention.Attention.score_weights`): the backward is
the derivative of exactly these operations and reads the buffers they fill, so both halves live
here, next to each other. The definitions are ``torch.lstm_cell`` and ``Attention.forward``,
which the decoder's autograd loop runs; ``tests/test_recurrence.py`` checks outputs and every
gradient against it. Gate order is PyTorch's (input, forget, cell, output): ``nn.LSTM``'s weights.
"""
from __future__ import annotations

import torch


class InputFeedingLSTM(torch.autograd.Function):
    """See the module docstring. Shapes: B batch, T steps, H hidden, L source length,
    E encoder output size, G = 4H gates."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w: torch.Tensor,
                keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                w_query: torch.Tensor | None, v: torch.Tensor | None, w_combine: torch.Tensor,
                drop: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            pre: (T, B, G) the input projection of the embeddings plus both LSTM biases.
            h0, c0: (B, H) initial state; the first fed vector is zero.
            w: (G, 2H) [fed-vector input weights | recurrent weights].
            keys: (B, L, K) projected attention keys; memory: (B, L, E); mask: (B, L) bool.
            w_query: (K, H) and v: (K,) for mlp attention, else None (score = keys . h).
            w_combine: (H, H + E); drop: (T, B, H + E) dropout mask (scaled) or None.
        Returns:
            attentional vectors (B, T, H) and attention weights (B, T, L).
        """
        steps, batch, gates = pre.shape
        hid = gates // 4
        # x[t] = [feed_{t-1} | h_{t-1}]; x[t + 1][:, :hid] is step t's attentional vector
        x = pre.new_empty(steps + 1, batch, 2 * hid)
        x[0, :, :hid] = 0
        x[0, :, hid:] = h0
        act = torch.empty_like(pre)  # (T, B, G) activated gates i, f, g, o
        cell = pre.new_empty(steps, batch, hid)
        tanh_c = torch.empty_like(cell)
        attn = pre.new_empty(steps, batch, keys.size(1))
        comb_in = pre.new_empty(steps, batch, w_combine.size(1))  # [h | context] (dropped)
        grid = (pre.new_empty(steps, *keys.shape) if w_query is not None else None)  # (T,B,L,K)
        wt, wct = w.t(), w_combine.t()
        invalid = ~mask
        for t in range(steps):
            g = torch.addmm(pre[t], x[t], wt, out=act[t])  # (B, G)
            g[:, :2 * hid].sigmoid_()
            g[:, 2 * hid:3 * hid].tanh_()
            g[:, 3 * hid:].sigmoid_()
            i, f, gg, o = g.chunk(4, 1)
            c = torch.mul(f, cell[t - 1] if t else c0, out=cell[t]).addcmul_(i, gg)
            h = torch.mul(o, torch.tanh(c, out=tanh_c[t]), out=x[t + 1, :, hid:])  # (B, H)
            if grid is None:
                # (B, 1, K) @ (B, K, L): the row-vector form; keys @ h is ~10x slower on CPU
                scores = torch.bmm(h.unsqueeze(1), keys.transpose(1, 2)).squeeze(1)  # (B, L)
            else:
                z = torch.tanh(torch.add(keys, (h @ w_query.t()).unsqueeze(1), out=grid[t]),
                               out=grid[t])  # (B, L, K)
                scores = (z @ v)  # (B, L)
            a = attn[t]
            a.copy_(scores.masked_fill_(invalid, float("-inf")).softmax(-1))
            u = comb_in[t]
            u[:, :hid] = h
            torch.bmm(a.unsqueeze(1), memory, out=u[:, hid:].unsqueeze(1))
            if drop is not None:
                u.mul_(drop[t])
            torch.tanh(torch.mm(u, wct), out=x[t + 1, :, :hid])
        ctx.save_for_backward(x, act, cell, tanh_c, attn, comb_in, grid, h0, c0, w, keys,
                              memory, w_query, v, w_combine, drop)
        return x[1:, :, :hid].transpose(0, 1), attn.transpose(0, 1)

    @staticmethod
    def backward(ctx, d_out: torch.Tensor, d_attn: torch.Tensor | None):
        (x, act, cell, tanh_c, attn, comb_in, grid, h0, c0, w, keys, memory, w_query, v,
         w_combine, drop) = ctx.saved_tensors
        steps, batch, gates = act.shape
        hid = gates // 4
        d_out = d_out.transpose(0, 1)  # (T, B, H)
        d_attn = d_attn.transpose(0, 1) if d_attn is not None else None  # (T, B, L)
        d_gates = torch.empty_like(act)  # (T, B, G) gradient of the gate pre-activations
        d_comb = torch.empty(steps, batch, hid, dtype=act.dtype, device=act.device)
        d_keys, d_memory = torch.zeros_like(keys), torch.zeros_like(memory)
        d_query = torch.empty_like(d_comb) if grid is not None else None  # (T, B, K)
        d_scores = attn.new_empty(attn.shape) if grid is not None else None  # (T, B, L)
        one = act.new_ones(())
        # gradients reaching step t's attentional vector, hidden and cell state from step t+1
        d_feed, d_h_next, d_c = torch.zeros_like(h0), torch.zeros_like(h0), torch.zeros_like(c0)
        for t in reversed(range(steps)):
            # combine: out = tanh(u @ Wc^T)
            out = x[t + 1, :, :hid]
            dz = torch.mul(d_out[t] + d_feed, 1 - out * out, out=d_comb[t])  # (B, H)
            du = dz @ w_combine  # (B, H + E)
            if drop is not None:
                du.mul_(drop[t])
            dh = du[:, :hid] + d_h_next
            d_ctx = du[:, hid:]  # (B, E)
            # context = a @ memory
            a = attn[t]
            da = torch.bmm(d_ctx.unsqueeze(1), memory.transpose(1, 2)).squeeze(1)  # (B, L)
            if d_attn is not None:
                da = da + d_attn[t]
            d_memory.baddbmm_(a.unsqueeze(2), d_ctx.unsqueeze(1))
            ds = a * (da - (a * da).sum(1, keepdim=True))  # softmax backward, (B, L)
            h = x[t + 1, :, hid:]
            if grid is None:
                d_keys.baddbmm_(ds.unsqueeze(2), h.unsqueeze(1))
                dh += torch.bmm(ds.unsqueeze(1), keys).squeeze(1)
            else:
                # scores = tanh(keys + q) . v: the grid's gradient is ds (1 - z^2) v. The factor v
                # is applied once after the loop (to d_keys) and per step to the (B, K) query
                # gradient only; v's own gradient is one product over all steps at the end.
                d_scores[t] = ds
                slope = torch.addcmul(one, grid[t], grid[t], value=-1)  # 1 - z^2, (B, L, K)
                d_keys.addcmul_(ds.unsqueeze(2), slope)
                dq = torch.mul(torch.bmm(ds.unsqueeze(1), slope).squeeze(1), v,
                               out=d_query[t])  # (B, K)
                dh.addmm_(dq, w_query)
            # LSTM cell: c = f c_prev + i g, h = o tanh(c)
            i, f, g, o = act[t].chunk(4, 1)
            tc = tanh_c[t]
            d_c.addcmul_(dh * o, 1 - tc * tc)
            c_prev = cell[t - 1] if t > 0 else c0
            dg = d_gates[t]
            di, df, dgg, do = dg.chunk(4, 1)
            torch.mul(d_c * g, i * (1 - i), out=di)
            torch.mul(d_c * c_prev, f * (1 - f), out=df)
            torch.mul(d_c * i, 1 - g * g, out=dgg)
            torch.mul(dh * tc, o * (1 - o), out=do)
            d_c = d_c * f
            dx = dg @ w  # (B, 2H)
            d_feed, d_h_next = dx[:, :hid], dx[:, hid:]
        # weight gradients: one product over all steps each
        flat = lambda t: t.reshape(-1, t.size(-1))  # noqa: E731
        d_w = flat(d_gates).t() @ flat(x[:-1])  # (G, 2H)
        d_wc = flat(d_comb).t() @ flat(comb_in)  # (H, H + E)
        d_wq = d_v = None
        if grid is not None:
            d_wq = flat(d_query).t() @ flat(x[1:, :, hid:])  # (K, H)
            d_v = flat(grid).t() @ d_scores.reshape(-1)  # (K,)
            d_keys.mul_(v)
        return (d_gates, d_h_next, d_c, d_w, d_keys, d_memory, None, d_wq, d_v, d_wc, None)

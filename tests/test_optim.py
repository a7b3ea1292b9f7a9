"""Optimizers and learning-rate schedules (transduce/training/optim.py). The schedules are checked
on the rate the optimizer actually holds (its param groups), step by step."""
import math

import pytest
import torch

from transduce.config import TrainingConfig
from transduce.training.optim import Schedule, build_optimizer


def _params(*values):
    return [torch.nn.Parameter(torch.tensor([float(v)])) for v in values]


def _optimizer(**training):
    return build_optimizer(TrainingConfig(**training), _params(0.0, 1.0))


def _lr(schedule: Schedule) -> float:
    rates = {g["lr"] for g in schedule.optimizer.param_groups}
    assert len(rates) == 1
    return rates.pop()


def _schedule(total_steps=100, higher_is_better=False, **training) -> Schedule:
    cfg = TrainingConfig(**training)
    optimizer = build_optimizer(cfg, _params(0.0))
    optimizer.add_param_group({"params": _params(1.0)})  # every group follows the schedule
    return Schedule(cfg, optimizer, total_steps, higher_is_better)


def _curve(schedule: Schedule, steps: int) -> list[float]:
    """The rate for updates 0 .. steps - 1 (the rate each update is taken with)."""
    out = []
    for _ in range(steps):
        out.append(_lr(schedule))
        schedule.step()
    return out


# ---- optimizers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("sgd", torch.optim.SGD)])
def test_each_optimizer_is_built_with_the_configured_settings(kind, cls):
    opt = _optimizer(optimizer=kind, lr=0.03, weight_decay=0.25, momentum=0.7, betas=(0.8, 0.95))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert len(group["params"]) == 2
    assert (group["lr"], group["weight_decay"]) == (0.03, 0.25)
    if kind == "sgd":
        assert group["momentum"] == 0.7
    else:
        assert group["betas"] == (0.8, 0.95)
    assert group["fused"] is True  # CPU float parameters: one fused kernel


def test_fused_only_where_every_parameter_allows_it():
    meta = [torch.nn.Parameter(torch.zeros(2, device="meta"))]
    assert not build_optimizer(TrainingConfig(), meta).param_groups[0]["fused"]


def test_sgd_momentum_and_adamw_decoupled_weight_decay_take_effect():
    (p,) = _params(0.0)
    sgd = build_optimizer(TrainingConfig(optimizer="sgd", lr=0.1, momentum=0.5), [p])
    for _ in range(2):
        p.grad = torch.ones(1)
        sgd.step()
    assert float(p.detach()) == pytest.approx(-0.1 - 0.1 * 1.5)  # velocity 1, then 0.5 * 1 + 1
    moved = {}
    for kind in ("adam", "adamw"):
        (p,) = _params(1.0)
        opt = build_optimizer(TrainingConfig(optimizer=kind, lr=0.1, weight_decay=0.5), [p])
        p.grad = torch.zeros(1)
        opt.step()
        moved[kind] = float(p.detach())
    assert moved["adamw"] == pytest.approx(1.0 - 0.1 * 0.5)  # decay on the weight only
    assert moved["adam"] == pytest.approx(0.9, abs=1e-6)  # decay in the gradient, normalised


# ---- schedules ----------------------------------------------------------------------------------
def test_constant_keeps_the_rate_after_warmup_and_ignores_validations():
    assert _curve(_schedule(schedule="constant", lr=0.1), 5) == [0.1] * 5
    s = _schedule(schedule="constant", lr=0.1, warmup_steps=4)
    assert _curve(s, 6) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    for metric in (5.0, 6.0, 7.0, 8.0, 9.0):  # worse and worse (lower is better)
        s.validated(metric)
    assert _lr(s) == 0.1


def test_plateau_drops_after_patience_and_not_before():
    s = _schedule(schedule="plateau", lr=0.1, plateau_patience=2, plateau_factor=0.5)
    rates = []
    for ppl in (10.0, 9.0, 9.5, 9.0, 9.2, 8.0, 8.0, 8.5, 8.1, 8.1, 8.1):
        s.validated(ppl)
        rates.append(_lr(s))
    # 9.0 is best; an equal value is no improvement; the 3rd validation without one halves the
    # rate and restarts the count
    assert rates == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 3)
    _curve(s, 3)  # updates do not move a plateau rate
    assert _lr(s) == pytest.approx(0.025)


def test_plateau_never_goes_below_min_lr():
    s = _schedule(schedule="plateau", lr=0.01, plateau_patience=0, plateau_factor=0.1,
                  min_lr=5e-4)
    rates = []
    for _ in range(5):
        s.validated(1.0)
        rates.append(_lr(s))
    assert rates == pytest.approx([0.01, 0.001, 5e-4, 5e-4, 5e-4])


@pytest.mark.parametrize("higher_is_better, drops", [(True, 0), (False, 3)])
def test_plateau_direction_follows_the_metric(higher_is_better, drops):
    s = _schedule(higher_is_better=higher_is_better, schedule="plateau", lr=1.0,
                  plateau_patience=0, plateau_factor=0.5, min_lr=0.0)
    for bleu in (10.0, 11.0, 12.0, 13.0):  # rising: better for BLEU, worse for a loss
        s.validated(bleu)
    assert _lr(s) == pytest.approx(0.5 ** drops)


def test_warmup_inverse_sqrt_rises_linearly_then_falls_as_inverse_sqrt():
    s = _schedule(schedule="warmup_inverse_sqrt", lr=1.0, warmup_steps=4)
    curve = _curve(s, 65)
    assert curve[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert curve[16] == pytest.approx(0.5) and curve[64] == pytest.approx(0.25)
    assert curve[9] == pytest.approx(math.sqrt(4 / 9))
    assert all(a >= b for a, b in zip(curve[4:], curve[5:]))
    assert _curve(_schedule(schedule="warmup_inverse_sqrt", lr=0.3), 4) == [0.3] * 4


def test_cosine_warms_up_then_decays_to_min_lr_at_the_last_step():
    s = _schedule(total_steps=12, schedule="cosine", lr=1.0, min_lr=0.1, warmup_steps=2)
    curve = _curve(s, 16)
    assert curve[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert curve[7] == pytest.approx(0.55)  # halfway through the decay: the mean of lr, min_lr
    assert curve[12:] == pytest.approx([0.1] * 4)  # stays there after the last step
    assert all(a > b for a, b in zip(curve[2:12], curve[3:13]))


# ---- resume --------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [
    {"schedule": "plateau", "plateau_patience": 1, "warmup_steps": 3},
    {"schedule": "cosine", "warmup_steps": 3, "min_lr": 1e-4},
    {"schedule": "warmup_inverse_sqrt", "warmup_steps": 3},
])
def test_state_dict_round_trip_continues_the_same_curve(tmp_path, training):
    """What resume does: save the schedule's state with torch.save (loaded weights_only), build a
    fresh schedule over a fresh optimizer, load it; from then on both give the same rates."""
    def run(s, metrics):
        out = []
        for m in metrics:
            out += _curve(s, 4)
            s.validated(m)
            out.append(_lr(s))
        return out

    first = _schedule(total_steps=40, lr=0.1, **training)
    run(first, (5.0, 4.0, 4.5, 4.6))
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = _schedule(total_steps=40, lr=0.1, **training)
    assert _lr(resumed) != _lr(first)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert resumed.state_dict() == first.state_dict() and _lr(resumed) == _lr(first)
    later = (4.7, 3.0, 3.1, 3.2)
    assert run(resumed, later) == run(first, later)

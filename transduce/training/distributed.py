"""Data-parallel training with ``torch.distributed``: process group, collectives, launcher.

``torchrun`` starts one process per rank and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init` joins the process group from those (gloo on CPU, nccl on CUDA). A process started
without them is a world of one, and every helper here is then a no-op, so the trainer has one code
path. ``transduce train --nproc N`` re-runs itself under ``torchrun`` (:func:`launch`), on this
machine or, with ``--nnodes``/``--rdzv-endpoint``, as one of several that restart after a failure.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from transduce.errors import TransduceError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs, validates and writes checkpoints."""
        return self.rank == 0


def init(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment (once per process).

    ``device`` is the device picked from ``training.device``: gloo for CPU, nccl for CUDA (each
    rank then uses GPU ``LOCAL_RANK``)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise TransduceError(f"rank {world.rank} wants GPU {world.local_rank} but this "
                                 f"machine has {torch.cuda.device_count()}; start at most that "
                                 "many processes per node (--nproc_per_node)")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """This rank's device: its own GPU under CUDA, else ``device``."""
    return torch.device("cuda", world.local_rank) if device.type == "cuda" and world.size > 1 \
        else device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce(values: list[float], device: torch.device, op: str = "sum") -> list[float]:
    """Sum (or max) ``values`` element-wise over all ranks; every rank gets the result."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.tolist()


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (pickled; for small control values only)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_state(state: dict) -> list[dict] | None:
    """Every rank's ``state`` (tensors and plain values) on rank 0, in rank order; None on the
    other ranks. Sent as ``torch.save`` bytes and read back with ``weights_only=True``."""
    if not dist.is_initialized():
        return [state]
    buf = io.BytesIO()
    torch.save(state, buf)
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(buf.getvalue(), out, dst=0)
    return None if out is None else [torch.load(io.BytesIO(b), weights_only=True) for b in out]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class Nodes:
    """Several machines, as torchrun's c10d rendezvous describes them (docs/distributed.md)."""

    nnodes: str  # "N" or "MIN:MAX"
    endpoint: str  # HOST:PORT of the rendezvous, the same on every machine
    rdzv_id: str  # the same on every machine
    max_restarts: int = 3  # torchrun started again after a failure, before giving up
    wait_s: float = 5.0  # pause before starting again


def launch(nproc: int, argv: list[str], overwrite: bool = False,
           nodes: Nodes | None = None) -> int:
    """Run ``transduce <argv>`` as ``nproc`` processes on this machine under torchrun (gloo on
    CPU, nccl on CUDA); returns torchrun's exit status, or 128 + the signal number when a
    forwarded SIGINT/SIGTERM stopped the run.

    torchrun runs in its own session and this process forwards SIGINT/SIGTERM to it, so one
    Ctrl-C reaches every rank exactly once (torchrun passes it on): they save ``last/`` and stop.

    With ``nodes`` this machine is one of several: torchrun joins the c10d rendezvous, and when
    it fails (a machine died: its peers' collectives break) it is started again, up to
    ``nodes.max_restarts`` times, and waits at the rendezvous for the machines to come back; the
    run resumes from ``last/`` (``training.save_every``). The restart is done here, not by
    torchrun's ``--max-restarts``: torchrun's own re-rendezvous after a failure times out
    (pytorch/pytorch#147064), while a fresh torchrun joins a fresh rendezvous.
    """
    where = (["--standalone"] if nodes is None else
             [f"--nnodes={nodes.nnodes}", "--rdzv-backend=c10d",
              f"--rdzv-endpoint={nodes.endpoint}", f"--rdzv-id={nodes.rdzv_id}",
              "--max-restarts=0"])
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum, _frame):
        received.append(signum)
        if proc is not None:
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        attempt = 0
        while True:
            fresh = ["--overwrite"] if overwrite and attempt == 0 else []  # never wipe progress
            proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *where,
                                     f"--nproc_per_node={nproc}", "-m", "transduce", *argv,
                                     *fresh], start_new_session=True)
            code = proc.wait()
            if received:
                return 128 + received[0] if code else code  # as a single process would
            if code == 0 or nodes is None or attempt == nodes.max_restarts:
                return code
            attempt += 1
            print(f"transduce: torchrun exited with status {code}; starting it again in "
                  f"{nodes.wait_s:g} s to resume from last/ (restart {attempt} of "
                  f"{nodes.max_restarts})", file=sys.stderr, flush=True)
            time.sleep(nodes.wait_s)
            if received:
                return 128 + received[0]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

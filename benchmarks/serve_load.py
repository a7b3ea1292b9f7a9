"""Load test for `transduce serve`: N concurrent clients on 127.0.0.1, dynamic batching on and off.

    python benchmarks/serve_load.py MODEL_DIR [--clients 1,4,16] [--requests 300] [--seconds 30]

Starts two servers on free loopback ports, one with dynamic batching and one that decodes each
request alone, and drives them in turns (on, off, on, off, ...) so that both see the same machine
load. Each client sends one request at a time (one sentence by default, beam 5) and waits for the
answer; a cell stops after --requests requests or --seconds seconds, whichever comes first.
Prints a Markdown table: throughput (median over --repeat runs), p50/p95/p99 latency (all runs
pooled), errors (any answer but 200, or no answer), and the on/off throughput ratio.
Inputs: random sentences over the model's source vocabulary, or the lines of --inputs FILE.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SERVER = ("import sys, json; from transduce.serve.app import serve; "
          "serve(sys.argv[1], port=int(sys.argv[2]), device='cpu', log_level='warning', "
          "**json.loads(sys.argv[3]))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: str, limits: dict, threads: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        limits = {**limits, "threads": threads}
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, model_dir, str(port), json.dumps(limits)],
        env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit(f"error: server exited: {log.read()}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("error: server did not start within 2 minutes")


def make_inputs(model_dir: str, path: str | None, n: int, seed: int) -> list[str]:
    if path:
        lines = [x.strip() for x in Path(path).read_text(encoding="utf-8").splitlines()]
        return [x for x in lines if x][:n] or sys.exit(f"error: {path} has no non-empty line")
    vocab = [w.split("\t")[0] for w in Path(model_dir, "vocab.src.txt").read_text(
        encoding="utf-8").splitlines()]
    words = [w for w in vocab if w and not (w.startswith("<") and w.endswith(">"))]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(n)]


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the machine with the
    server, so it should cost as little CPU as possible (a full client costs more than the
    server's own HTTP handling)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(),
                                                                len(body), body))
            status = int((await self.reader.readline()).split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            payload = await self.reader.readexactly(length)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.close()
            raise
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_cell(url: str, inputs: list[str], clients: int, requests: int, seconds: float,
                   per_request: int, body: dict) -> dict:
    host, port = url.rsplit("/", 1)[-1].split(":")
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal errors, sent
        conn = Connection(host, int(port))
        while sent < requests and time.perf_counter() < deadline:
            i = sent
            sent += 1
            texts = [inputs[(i * per_request + k) % len(inputs)] for k in range(per_request)]
            payload = json.dumps({"text": texts, **body}).encode()
            start = time.perf_counter()
            try:
                status, answer = await conn.post("/translate", payload)
                ok = status == 200 and len(json.loads(answer)["translations"]) == per_request
            except (OSError, ValueError, IndexError, KeyError, asyncio.IncompleteReadError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    return {"ok": len(latencies), "errors": errors, "wall": wall, "latencies": latencies,
            "rps": len(latencies) / wall}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    p.add_argument("--requests", type=int, default=300, help="requests per cell (at most)")
    p.add_argument("--seconds", type=float, default=30, help="time per cell (at most)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--per-request", type=int, default=1, help="sentences per request")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads in each server")
    p.add_argument("--inputs", help="file with one input per line (default: random sentences)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    clients = [int(x) for x in args.clients.split(",")]
    inputs = make_inputs(args.model_dir, args.inputs, 2000, seed=1)
    body = {"beam_size": args.beam_size}
    common = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
              "max_queue": 100_000}
    print(f"# {uptime()}", flush=True)
    servers = {"on": start_server(args.model_dir, {**common, "batching": True}, args.threads),
               "off": start_server(args.model_dir, {**common, "batching": False}, args.threads)}
    results: dict = {(m, n): [] for m in servers for n in clients}
    try:
        for _, url in servers.values():  # warm-up
            asyncio.run(run_cell(url, inputs, 2, 10, 30, args.per_request, body))
        for rep in range(args.repeat):
            for n in clients:
                for mode, (_, url) in servers.items():
                    r = asyncio.run(run_cell(url, inputs, n, args.requests, args.seconds,
                                             args.per_request, body))
                    results[mode, n].append(r)
                    print(f"# run {rep + 1}: batching {mode:3} clients {n:3}: {r['ok']} ok, "
                          f"{r['errors']} errors, {r['rps']:.1f} req/s", file=sys.stderr,
                          flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)

    rows = []
    print(f"\n{args.per_request} sentence(s) per request, beam {args.beam_size}, max batch "
          f"{args.max_batch_size}, max wait {args.max_wait_ms:g} ms; throughput: median of "
          f"{args.repeat} runs; latency: all runs pooled\n")
    print("| batching | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms | on/off |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in clients:
        med = {m: statistics.median(r["rps"] for r in results[m, n]) for m in servers}
        for mode in servers:
            runs = results[mode, n]
            lat = [x * 1000 for r in runs for x in r["latencies"]]
            row = {"batching": mode, "clients": n, "requests": sum(r["ok"] for r in runs),
                   "errors": sum(r["errors"] for r in runs), "rps": med[mode],
                   "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
                   "ratio": med["on"] / med["off"] if mode == "on" and med["off"] else None}
            rows.append(row)
            ratio = f"{row['ratio']:.2f}×" if row["ratio"] else ""
            print(f"| {mode} | {n} | {row['requests']} | {row['errors']} | {row['rps']:.1f} | "
                  f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {ratio} |")
    print(f"\n# {uptime()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

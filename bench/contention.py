"""What sharing the cores costs (figures only): a training loop the size of the teacher's (GPT-2, 2 layers, d 128,
batch 32 x 64) timed alone, beside a copy of itself, and beside a CPU-bound stranger (a pure-Python loop), under
each thread policy; prints iterations per second and the slowdown against running alone.

    python bench/contention.py [--steps 40]

Policies: torch's defaults (a pool of every core; libgomp spins 300,000 times before it sleeps), spinning
(OMP_WAIT_POLICY=ACTIVE), `turnfusion.threads` (the usable cores, a short spin: what every stage uses), and one thread
per process.
"""

import argparse
import json
import os
import subprocess
import sys
import time

POLICIES = {
    "torch defaults": {"GOMP_SPINCOUNT": "300000"},  # every core; libgomp spins 300,000 times, then sleeps
    "spinning": {"OMP_WAIT_POLICY": "ACTIVE"},  # what a user's OMP_WAIT_POLICY=ACTIVE (or an MKL build) does
    "turnfusion.threads": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def loop(steps: int, policy: str) -> None:
    """In the child: `steps` training steps; prints {"it_s": ...}."""
    if policy in ("turnfusion.threads", "1 thread"):
        from turnfusion.threads import limit_threads

        limit_threads()  # as stages/common does, before torch loads
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from turnfusion.training.loop import GPT2_ACTIVATION

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=1024, n_positions=64,
                                       activation_function=GPT2_ACTIVATION))  # the teacher's
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, 1024, (32, 64))
    for step in range(steps + 3):
        if step == 3:  # warm-up steps are not timed
            started = time.perf_counter()
        loss = model(batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    print(json.dumps({"it_s": steps / (time.perf_counter() - started), "threads": torch.get_num_threads()}))


def stranger(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(10_000))


def run_together(commands: list[list[str]], environ: dict, stranger: bool = False) -> list[dict]:
    """Run `commands` at once (beside a CPU-bound stranger process, killed when they end); their JSON results."""
    other = subprocess.Popen([sys.executable, __file__, "--stranger", "600"]) if stranger else None
    children = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True, env=environ) for c in commands]
    outputs = [child.communicate()[0].strip().splitlines() for child in children]
    if other is not None:
        other.kill()
        other.wait()
    return [json.loads(lines[-1]) for lines in outputs if lines and lines[-1].startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stranger", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stranger:
        stranger(args.stranger)
        return
    if args.child:
        loop(args.steps, args.child)
        return
    print(f"{os.cpu_count()} cores; {args.steps} steps per run")
    print(f"{'policy':<20} {'threads':>7} {'alone it/s':>10} {'beside a copy':>14} {'x':>6} {'beside a stranger':>18} "
          f"{'x':>6}")
    for policy, extra in POLICIES.items():
        environ = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        environ.update(extra)
        me = [sys.executable, __file__, "--steps", str(args.steps), "--child", policy]
        alone = run_together([me], environ)[0]
        pair = run_together([me, me], environ)
        copy = sum(r["it_s"] for r in pair) / len(pair)
        beside = run_together([me], environ, stranger=True)[0]
        print(f"{policy:<20} {alone['threads']:>7} {alone['it_s']:>10.2f} {copy:>14.2f} "
              f"{alone['it_s'] / copy:>6.1f} {beside['it_s']:>18.2f} {alone['it_s'] / beside['it_s']:>6.1f}")


if __name__ == "__main__":
    main()

"""Thread count × OpenMP wait policy on the demo's hot loops, beside a busy process.

The measurement behind :mod:`surveylm.threads`: each configuration (torch threads 2 or 1
× ``OMP_WAIT_POLICY`` unset or ``PASSIVE``) runs in a fresh process (OpenMP reads the
policy when torch loads it), interleaved over repetitions so that changes in the
machine's load hit every configuration alike, beside one CPU-bound process this script
starts and stops. Each process times

* 300 training steps of the encoder's option head (small operations: where spinning
  OpenMP threads cost most), and
* one embedding pass of 512 short texts through all-MiniLM-L6-v2 (larger matrix products),

and the load average before each run is printed with it.

Usage::

    python benchmarks/thread_policy.py [--repeats 2] [--no-busy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

WORK = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from surveylm.models.sentence_folders import load_sentence_encoder
from surveylm.models.option_head import OptionHead
torch.manual_seed(0)
head = OptionHead(384)
opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
U, B, L, K = 120, 32, 5, 3
emb = torch.nn.functional.normalize(torch.randn(U, 384), dim=-1)
li, qi, oi = torch.randint(0, U, (B, L)), torch.randint(0, U, (B,)), torch.randint(0, U, (B, K))
pos, lp, tgt = torch.rand(B, K, 4), torch.zeros(B, K), torch.softmax(torch.randn(B, K), -1)
t0 = time.perf_counter()
for _ in range(300):
    loss = -(tgt * torch.log_softmax(head(emb, li, qi, oi, pos, lp), -1)).sum(-1).mean()
    opt.zero_grad(); loss.backward(); opt.step()
t1 = time.perf_counter()
enc, tok, _, _ = load_sentence_encoder(None)
b = tok([f"Feature {i}: value {i * 7 % 13} of the respondent" for i in range(512)],
        padding=True, return_tensors="pt")
t2 = time.perf_counter()
with torch.inference_mode():
    for s in range(0, 512, 256):
        enc(input_ids=b["input_ids"][s:s + 256], attention_mask=b["attention_mask"][s:s + 256])
print(f"{t1 - t0:.2f} {time.perf_counter() - t2:.2f}")
"""

CONFIGS = [(2, None), (2, "PASSIVE"), (1, None), (1, "PASSIVE")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-busy", action="store_true", help="without the busy process")
    args = parser.parse_args()
    busy = None if args.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print("threads  OMP_WAIT_POLICY  head 300 steps  embed 512 texts  load before")
    try:
        for _ in range(args.repeats):
            for threads, policy in CONFIGS:
                env = {k: v for k, v in os.environ.items()
                       if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}  # fmt: skip
                if policy:
                    env["OMP_WAIT_POLICY"] = policy
                load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                out = subprocess.run([sys.executable, "-c", WORK, str(threads)], env=env,
                                     capture_output=True, text=True, check=True)  # fmt: skip
                head, embed = out.stdout.split()[-2:]
                print(f"{threads:>7}  {policy or 'default':<15}  {float(head):>12.2f} s  "
                      f"{float(embed):>13.2f} s  {load}", flush=True)
    finally:
        if busy is not None:
            busy.terminate()
            busy.wait()


if __name__ == "__main__":
    main()

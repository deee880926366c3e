#!/usr/bin/env python3
"""The PyTorch side of bench/recompute.sh: a GPT-2 training step's time and
peak memory on the CPU, with and without activation checkpointing.

    pytorch_recompute.py --hidden H --layers L --heads A --seq S --vocab V
                         --batch B [--steps N] [--checkpoint] [--attention sdpa|eager]

Builds the model loomc compiles from `examples/gpt.loom -D hidden=H -D
layers=L -D heads=A -D seq=S -D vocab=V -D dropout=0` with Hugging Face
transformers (random initialisation): tanh GELU, pre-LN, tied LM head, no
dropout; f32. One step is the forward, the mean cross-entropy, the
backward, clipping at 1.0 and AdamW. --checkpoint turns on
transformers' gradient checkpointing (torch.utils.checkpoint around each
block: the block's input kept, its forward rerun in the backward, what
Megatron and Loom call full recomputation). PyTorch has no selective mode.

Prints machine-readable lines:
    ms/step: X              (the median of N steps after one warm-up)
    rss before bytes: R0    (the process after building the model and AdamW)
    rss peak bytes: R1      (ru_maxrss after the steps)
Run each configuration in its own process: ru_maxrss only grows.
"""

import argparse
import resource
import statistics
import sys
import time


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("hidden", "layers", "heads", "seq", "vocab", "batch"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--checkpoint", action="store_true")
    p.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa")
    args = p.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(f"pytorch_recompute.py: {e}; install torch and transformers "
                 "(bench/compare-pytorch.sh does, into ~/.cache/loom/bench-venv)")
    torch.set_num_threads(torch.get_num_threads())
    config = transformers.GPT2Config(
        vocab_size=args.vocab, n_positions=args.seq, n_embd=args.hidden,
        n_layer=args.layers, n_head=args.heads, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, attn_implementation=args.attention)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).float().train()
    if args.checkpoint:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
    tokens, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    before = rss_now()
    times = []
    for s in range(1 + args.steps):
        start = time.perf_counter()
        logits = model(input_ids=tokens).logits
        loss = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)), labels.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        loss.item()
        if s:
            times.append(time.perf_counter() - start)
    print(f"ms/step: {statistics.median(times) * 1e3:.1f}")
    print(f"rss before bytes: {before}")
    print(f"rss peak bytes: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch side of bench/compare-pytorch.sh: GPT-2 124M training steps.

    pytorch_gpt2.py [--steps N] [--warmup W] [--batch B] [--seq T]
                    [--no-eager] [--no-compile]

Builds the model that `loomc examples/gpt.loom -D seq=64 -D dropout=0
--micro-batch-size 4` compiles, with Hugging Face transformers, from a config
(random initialisation, nothing downloaded): vocabulary 50257, 768 hidden,
12 layers, 12 heads, tanh GELU, pre-LN, the LM head tied to the token
embeddings, a position table of T rows (as `-D seq=64` makes Loom's), no
dropout. One training step is what Loom's step does: the forward on B x T
token ids, the mean cross-entropy against B x T labels (given, not shifted
from the inputs: the same B x T loss positions as Loom's), the backward,
clipping to global norm 1.0, and AdamW (lr 3e-4, betas 0.9/0.999, eps 1e-8,
weight decay 0.01 except on biases and 1-D weights: loomc's defaults).

Times W warm-up steps and then N steps, eager and with torch.compile (the
model and the loss compiled; the optimizer stays eager, as torch.compile(model)
leaves it), and prints machine-readable lines:

    params: 123702528
    eager ms/step: X          (the median of N steps)
    compile s: Z              (the first compiled step's wall time: tracing,
                               code generation, C++ compilation and one step)
    compile ms/step: Y

Exits 2, saying how to install them, when torch or transformers is missing.
"""

import argparse
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--no-eager", action="store_true")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return args


def import_torch():
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"pytorch_gpt2.py: {e}\n"
              "Install PyTorch and transformers (test-only, from PyPI), e.g.\n"
              "  python3 -m venv ~/.cache/loom/bench-venv\n"
              "  ~/.cache/loom/bench-venv/bin/pip install torch transformers\n"
              "or let bench/compare-pytorch.sh do it.", file=sys.stderr)
        sys.exit(2)
    return torch, transformers


def build(torch, transformers, seq):
    config = transformers.GPT2Config(
        vocab_size=50257, n_positions=seq, n_embd=768, n_layer=12, n_head=12,
        activation_function="gelu_new",  # tanh GELU, as Loom's gelu
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).float().train()
    # Loom's rule (lib/Plan/LowerToPlan.cpp): no decay on biases and 1-D weights.
    decay = [p for n, p in model.named_parameters()
             if p.dim() > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters()
                if not (p.dim() > 1 and not n.endswith(".bias"))]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.999), eps=1e-8)
    return model, opt


def loss_of(torch, model):
    """The forward and the loss as one function, so torch.compile sees both."""

    def loss(tokens, labels):
        logits = model(input_ids=tokens).logits
        return torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)), labels.view(-1))

    return loss


def run(torch, loss_fn, model, opt, tokens, labels, steps, warmup, label):
    """Returns (seconds of each step, first loss)."""
    times, first = [], None
    for s in range(warmup + steps):
        start = time.perf_counter()
        loss = loss_fn(tokens, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        value = loss.item()  # a host sync: the step is done
        elapsed = time.perf_counter() - start
        if first is None:
            first = value
        times.append(elapsed)
        print(f"{label} step {s}: {elapsed * 1e3:.0f} ms, loss {value:.4f}",
              file=sys.stderr, flush=True)
    return times, first


def main():
    args = parse_args()
    torch, transformers = import_torch()
    torch.set_num_threads(os.cpu_count())
    print(f"torch {torch.__version__}, transformers {transformers.__version__},"
          f" {torch.get_num_threads()} threads", file=sys.stderr)

    g = torch.Generator().manual_seed(12345)
    ids = torch.randint(0, 50257, (args.batch, args.seq + 1), generator=g)
    tokens, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    if not args.no_eager:
        model, opt = build(torch, transformers, args.seq)
        print(f"params: {sum(p.numel() for p in model.parameters())}")
        print(f"attention: {model.config._attn_implementation}", file=sys.stderr)
        times, first = run(torch, loss_of(torch, model), model, opt, tokens,
                           labels, args.steps, args.warmup, "eager")
        print(f"eager first loss: {first:.4f}")
        print(f"eager ms/step: {statistics.median(times[args.warmup:]) * 1e3:.1f}")
        sys.stdout.flush()
        del model, opt

    if not args.no_compile:
        model, opt = build(torch, transformers, args.seq)
        if args.no_eager:
            print(f"params: {sum(p.numel() for p in model.parameters())}")
        compiled = torch.compile(loss_of(torch, model))
        # The first step compiles the forward and the backward; it is the
        # compile time (with one step's work), never a measured step.
        times, first = run(torch, compiled, model, opt, tokens, labels,
                           args.steps, args.warmup + 1, "compile")
        print(f"compile first loss: {first:.4f}")
        print(f"compile s: {times[0]:.1f}")
        print(f"compile ms/step: {statistics.median(times[args.warmup + 1:]) * 1e3:.1f}")


if __name__ == "__main__":
    main()

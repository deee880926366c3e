#!/usr/bin/env python3
"""The PyTorch side of bench/compare-pytorch.sh and bench/gpu-gpt2.sh: GPT-2 training steps.

    pytorch_gpt2.py [--steps N] [--warmup W] [--batch B[,B...]] [--seq T]
                    [--model 124m|350m] [--device cpu|cuda] [--dtype f32|bf16]
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

--model 350m is GPT-2 medium (24 layers, 1024 hidden, 16 heads), what
`loomc @examples/configs/gpt2-355m.args` compiles. --device cuda runs on the
GPU with torch.cuda.synchronize() around every timed step; --dtype bf16 is
mixed precision as PyTorch users run it: f32 weights, the forward and the
loss under torch.autocast(bfloat16), and AdamW's fused implementation (on
CUDA). Attention is scaled_dot_product_attention (attn_implementation
"sdpa": flash attention on the GPU).

Times W warm-up steps and then N steps, eager and with torch.compile (the
model and the loss compiled; the optimizer stays eager, as torch.compile(model)
leaves it), and prints machine-readable lines:

    params: 123702528
    eager batch: B            (the micro batch it ran)
    eager ms/step: X          (the median of N steps)
    eager peak bytes: M       (torch.cuda.max_memory_allocated; cuda only)
    compile batch: B
    compile s: Z              (the first compiled step's wall time: tracing,
                               code generation, C++ compilation and one step)
    compile ms/step: Y
    compile peak bytes: M

--batch with several sizes (e.g. 32,16,8,4) tries them from the largest
down, separately for eager and torch.compile, and measures the first that
runs out of no memory; when none fits it prints "eager batch: none" (or
"compile batch: none") and goes on.

Exits 2, saying how to install them, when torch or transformers is missing.
"""

import argparse
import gc
import os
import statistics
import sys
import time


# (hidden, layers, heads) of the GPT-2 sizes: examples/configs/gpt2-*.args.
MODELS = {"124m": (768, 12, 12), "350m": (1024, 24, 16)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", default="4",
                   help="a micro batch, or several (32,16,8): the largest that fits")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--model", choices=sorted(MODELS), default="124m")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--no-eager", action="store_true")
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    try:
        args.batches = sorted({int(b) for b in args.batch.split(",")},
                              reverse=True)
    except ValueError:
        p.error("--batch takes sizes separated by commas, e.g. 32,16,8")
    if not args.batches or args.batches[-1] < 1:
        p.error("--batch sizes must be >= 1")
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


def build(torch, transformers, args):
    hidden, layers, heads = MODELS[args.model]
    config = transformers.GPT2Config(
        vocab_size=50257, n_positions=args.seq, n_embd=hidden, n_layer=layers,
        n_head=heads,
        activation_function="gelu_new",  # tanh GELU, as Loom's gelu
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    # f32 weights in both dtypes: under bf16 autocast they are the masters,
    # as Loom's are (loomc --precision=bf16 keeps f32 weights and gradients).
    model = transformers.GPT2LMHeadModel(config).float().to(args.device).train()
    # Loom's rule (lib/Plan/LowerToPlan.cpp): no decay on biases and 1-D weights.
    decay = [p for n, p in model.named_parameters()
             if p.dim() > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters()
                if not (p.dim() > 1 and not n.endswith(".bias"))]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.999), eps=1e-8,
        # The fused kernel is the fast AdamW on CUDA; the CPU keeps the
        # default (compare-pytorch.sh's numbers were taken with it).
        fused=True if args.device == "cuda" else None)
    return model, opt


def loss_of(torch, model, args):
    """The forward and the loss as one function, so torch.compile sees both."""
    bf16 = args.dtype == "bf16"

    def loss(tokens, labels):
        with torch.autocast(device_type=args.device, dtype=torch.bfloat16,
                            enabled=bf16):
            logits = model(input_ids=tokens).logits
            return torch.nn.functional.cross_entropy(
                logits.view(-1, logits.size(-1)), labels.view(-1))

    return loss


def sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def run(torch, loss_fn, model, opt, tokens, labels, steps, warmup, label,
        device):
    """Returns (seconds of each step, first loss)."""
    times, first = [], None
    for s in range(warmup + steps):
        sync(torch, device)  # nothing of the step before in this one's time
        start = time.perf_counter()
        loss = loss_fn(tokens, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        value = loss.item()  # a host sync: the step is done
        sync(torch, device)
        elapsed = time.perf_counter() - start
        if first is None:
            first = value
        times.append(elapsed)
        print(f"{label} step {s}: {elapsed * 1e3:.0f} ms, loss {value:.4f}",
              file=sys.stderr, flush=True)
    return times, first


def is_oom(torch, e):
    """Whether e is the device (or host) running out of memory."""
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, oom) or (isinstance(e, RuntimeError)
                                  and "out of memory" in str(e))


def measure(torch, transformers, args, batch, mode, said):
    """One mode ("eager" or "compile") at one micro batch: prints its lines
    (the parameter count once: said["params"] remembers it)."""
    g = torch.Generator().manual_seed(12345)
    ids = torch.randint(0, 50257, (batch, args.seq + 1), generator=g)
    tokens = ids[:, :-1].contiguous().to(args.device)
    labels = ids[:, 1:].contiguous().to(args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model, opt = build(torch, transformers, args)
    if not said["params"]:
        said["params"] = True
        print(f"params: {sum(p.numel() for p in model.parameters())}")
        print(f"attention: {model.config._attn_implementation}",
              file=sys.stderr)
    loss_fn = loss_of(torch, model, args)
    warmup = args.warmup
    if mode == "compile":
        # A fresh Dynamo per size: each batch compiles as its own static
        # graph, not as the dynamic-shape one a second size would bring.
        torch._dynamo.reset()
        loss_fn = torch.compile(loss_fn)
        # The first step compiles the forward and the backward; it is the
        # compile time (with one step's work), never a measured step.
        warmup += 1
    times, first = run(torch, loss_fn, model, opt, tokens, labels,
                       args.steps, warmup, mode, args.device)
    print(f"{mode} batch: {batch}")
    print(f"{mode} first loss: {first:.4f}")
    if mode == "compile":
        print(f"compile s: {times[0]:.1f}")
    print(f"{mode} ms/step: {statistics.median(times[warmup:]) * 1e3:.1f}")
    if args.device == "cuda":
        print(f"{mode} peak bytes: {torch.cuda.max_memory_allocated()}")
    sys.stdout.flush()


def main():
    args = parse_args()
    torch, transformers = import_torch()
    torch.set_num_threads(os.cpu_count())
    print(f"torch {torch.__version__}, transformers {transformers.__version__},"
          f" {torch.get_num_threads()} threads", file=sys.stderr)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("pytorch_gpt2.py: --device cuda, but torch sees no GPU",
                  file=sys.stderr)
            sys.exit(3)
        print(f"device: {torch.cuda.get_device_name()}", file=sys.stderr)
        # f32 matrix products (none under bf16 autocast but the optimizer's)
        # on TF32, as PyTorch's GPU benchmarks run.
        torch.backends.cuda.matmul.allow_tf32 = True

    said = {"params": False}
    for mode in ("eager", "compile"):
        if (mode == "eager" and args.no_eager) or \
           (mode == "compile" and args.no_compile):
            continue
        for batch in args.batches:
            oom = False
            try:
                measure(torch, transformers, args, batch, mode, said)
            except Exception as e:  # an OOM is expected: try a smaller batch
                if not is_oom(torch, e):
                    raise
                oom = True
            # Outside the except block: the traceback's frames (the model,
            # the activations) are gone, so their memory can be freed.
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
            if not oom:
                break
            print(f"{mode} batch {batch}: out of memory", file=sys.stderr,
                  flush=True)
        else:
            print(f"{mode} batch: none")


if __name__ == "__main__":
    main()

"""Hugging Face GPT-2 checkpoints for loom-convert's tests, with numpy only
(and safetensors): no PyTorch in CI.

  hf_gpt2.py write DIR [--dtype f32|bf16] [--seed S] [--old] [--untied]
                       [--set K=V ...]
      a random GPT-2 (n_embd 64, n_head 4, n_layer 2, n_positions 64,
      vocab_size 256) as save_pretrained writes it: config.json and
      model.safetensors (HF's names, F32 through safetensors.numpy). --old
      writes the names without "transformer." and with the attn.bias /
      masked_bias buffers and lm_head.weight, as old hub files have them;
      --untied adds an lm_head.weight unlike wte; --set overrides
      config.json fields (JSON values): both for the refusals.
  hf_gpt2.py tokens FILE N [--seed S]       N random int32 token ids
  hf_gpt2.py loss DIR TOKENS BATCH          numpy's mean cross-entropy over
      samples 0..BATCH-1 (sample i: tokens [i*seq, i*seq + seq], labels one
      on), as loom-run --data TOKENS --data-format int32 reads them
  hf_gpt2.py check-loss LOG DIR TOKENS BATCH TOL
      the step-1 loss of loom-run's --log-json LOG (before the update)
      equals numpy's to TOL (relative)
  hf_gpt2.py same A B                        A's and B's model.safetensors
      hold the same tensors, bit for bit (names, dtypes, shapes, bytes), and
      their config.json the same model
  hf_gpt2.py damage SRC DST HOW              a copy of SRC's
      model.safetensors broken as HOW says: truncated, header-too-long,
      overlap, dtype
  hf_gpt2.py shard SRC DST                   SRC's model split into two
      shards and model.safetensors.index.json, as save_pretrained writes a
      model over max_shard_size
  hf_gpt2.py verify-transformers DIR TOKENS BATCH
      (not in CI: needs torch and transformers) numpy's logits and loss
      against GPT2LMHeadModel.from_pretrained(DIR)
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_embd": 64,
    "n_head": 4,
    "n_inner": None,
    "n_layer": 2,
    "n_positions": 64,
    "reorder_and_upcast_attn": False,
    "resid_pdrop": 0.0,
    "scale_attn_by_inverse_layer_idx": False,
    "scale_attn_weights": True,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 256,
}


def bf16_round(a):
    """float32 -> the nearest bfloat16 (ties to even), as float32."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32)


def random_weights(config, seed, dtype):
    """Every tensor of GPT2LMHeadModel, HF's names and [in, out] layout.
    Scales larger than GPT-2's init, and random layernorms and biases, so a
    wrong mapping or a wrong QKV order changes the loss."""
    rng = np.random.default_rng(seed)
    h, layers = config["n_embd"], config["n_layer"]
    ffn = config["n_inner"] or 4 * h
    w = {}

    def put(name, shape, std, mean=0.0):
        w[name] = (mean + std * rng.standard_normal(shape)).astype(np.float32)

    put("transformer.wte.weight", (config["vocab_size"], h), 0.3)
    put("transformer.wpe.weight", (config["n_positions"], h), 0.3)
    for i in range(layers):
        p = f"transformer.h.{i}."
        put(p + "ln_1.weight", (h,), 0.1, 1.0)
        put(p + "ln_1.bias", (h,), 0.1)
        put(p + "attn.c_attn.weight", (h, 3 * h), 0.3)
        put(p + "attn.c_attn.bias", (3 * h,), 0.1)
        put(p + "attn.c_proj.weight", (h, h), 0.1)
        put(p + "attn.c_proj.bias", (h,), 0.1)
        put(p + "ln_2.weight", (h,), 0.1, 1.0)
        put(p + "ln_2.bias", (h,), 0.1)
        put(p + "mlp.c_fc.weight", (h, ffn), 0.2)
        put(p + "mlp.c_fc.bias", (ffn,), 0.1)
        put(p + "mlp.c_proj.weight", (ffn, h), 0.1)
        put(p + "mlp.c_proj.bias", (h,), 0.1)
    put("transformer.ln_f.weight", (h,), 0.1, 1.0)
    put("transformer.ln_f.bias", (h,), 0.1)
    if dtype == "bf16":
        w = {k: bf16_round(v) for k, v in w.items()}
    return w


def save_raw(path, tensors, dtypes, metadata):
    """A safetensors file as the Rust library serializes one (dtype-sorted
    then name order, compact JSON, space-padded to 8 bytes), for dtypes
    numpy lacks (BF16: tensors given as float32 holding bf16 values)."""
    order = sorted(tensors)
    header, data, at = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in order:
        a = np.ascontiguousarray(tensors[name])
        if dtypes[name] == "BF16":
            raw = (a.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": dtypes[name], "shape": list(a.shape),
                        "data_offsets": [at, at + len(raw)]}
        data.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(data))


def write(directory, dtype="f32", seed=0, old=False, overrides=(), untied=False):
    config = dict(CONFIG)
    for item in overrides:
        key, value = item.split("=", 1)
        config[key] = json.loads(value)
    # The weights follow the model's true size (the override is what the
    # test says is wrong, so the weights are written for the base model).
    base = dict(CONFIG)
    weights = random_weights(base, seed, dtype)
    if dtype == "bf16":
        config["torch_dtype"] = "bfloat16"
    if old:
        weights = {k.removeprefix("transformer."): v for k, v in weights.items()}
        n = base["n_positions"]
        for i in range(base["n_layer"]):
            weights[f"h.{i}.attn.bias"] = np.tril(np.ones((n, n), np.float32))[None, None]
            weights[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
        weights["lm_head.weight"] = weights["wte.weight"].copy()
    if untied:
        weights["lm_head.weight"] = weights["transformer.wte.weight"] + 1
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    path = os.path.join(directory, "model.safetensors")
    if dtype == "bf16":
        save_raw(path, weights, {k: "BF16" for k in weights}, {"format": "pt"})
    else:
        from safetensors.numpy import save_file
        save_file(weights, path, metadata={"format": "pt"})


def read_raw(path):
    """{name: (dtype, shape, bytes)} and the metadata of a safetensors file,
    parsed here (numpy has no bfloat16 for safetensors.numpy to give)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None)
    base = 8 + n
    return {k: (v["dtype"], v["shape"],
                data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items()}, metadata


def load_f64(directory):
    """The weights as float64, without the "transformer." prefix."""
    tensors, _ = read_raw(os.path.join(directory, "model.safetensors"))
    out = {}
    for name, (dtype, shape, raw) in tensors.items():
        if dtype == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F16":
            a = np.frombuffer(raw, "<f2")
        else:
            a = np.frombuffer(raw, "<f4")
        out[name.removeprefix("transformer.")] = a.astype(np.float64).reshape(shape)
    with open(os.path.join(directory, "config.json")) as f:
        return out, json.load(f)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(w, config, tokens):
    """GPT2LMHeadModel's logits [B, S, vocab] in float64."""
    b, s = tokens.shape
    h, heads = config["n_embd"], config["n_head"]
    d = h // heads
    eps = config["layer_norm_epsilon"]
    x = w["wte.weight"][tokens] + w["wpe.weight"][:s]
    causal = np.tril(np.ones((s, s), bool))
    for i in range(config["n_layer"]):
        p = f"h.{i}."
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
                   for t in np.split(qkv, 3, axis=-1))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
        scores = np.where(causal, scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        x = x + ctx @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T


def batch(tokens_path, seq, count):
    ids = np.fromfile(tokens_path, "<i4").astype(np.int64)
    tokens = np.stack([ids[i * seq:i * seq + seq] for i in range(count)])
    labels = np.stack([ids[i * seq + 1:i * seq + seq + 1] for i in range(count)])
    return tokens, labels


def mean_loss(logits, labels):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, labels[..., None], -1).mean()


def loss(directory, tokens_path, count):
    w, config = load_f64(directory)
    tokens, labels = batch(tokens_path, config["n_positions"], count)
    return mean_loss(forward(w, config, tokens), labels)


def same(a, b):
    ta, ma = read_raw(os.path.join(a, "model.safetensors"))
    tb, mb = read_raw(os.path.join(b, "model.safetensors"))
    ok = True
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print(f"{name}: only in {'A' if name in ta else 'B'}")
            ok = False
        elif ta[name] != tb[name]:
            da, sa, ra = ta[name]
            db, sb, rb = tb[name]
            print(f"{name}: differs ({da} {sa} vs {db} {sb}, bytes equal: {ra == rb})")
            ok = False
    if ma != mb:
        print(f"metadata differs: {ma} vs {mb}")
        ok = False
    with open(os.path.join(a, "config.json")) as f:
        ca = json.load(f)
    with open(os.path.join(b, "config.json")) as f:
        cb = json.load(f)
    for key in ["model_type", "n_embd", "n_head", "n_layer", "n_positions",
                "vocab_size", "activation_function", "layer_norm_epsilon",
                "torch_dtype"]:
        if ca.get(key) != cb.get(key):
            print(f"config.json {key}: {ca.get(key)} vs {cb.get(key)}")
            ok = False
    if (ca.get("n_inner") or 4 * ca["n_embd"]) != (cb.get("n_inner") or 4 * cb["n_embd"]):
        print("config.json n_inner differs")
        ok = False
    print("same" if ok else "DIFFERENT")
    return ok


def damage(src, dst, how):
    shutil.copytree(src, dst, dirs_exist_ok=True)
    path = os.path.join(dst, "model.safetensors")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + n])
    if how == "truncated":
        data = data[:-100]
    elif how == "header-too-long":
        data[0:8] = struct.pack("<Q", len(data))
    elif how in ("overlap", "dtype"):
        name = "transformer.h.0.ln_1.bias"
        if how == "overlap":
            # Keep the length: move the tensor's start back 4 bytes.
            begin, end = header[name]["data_offsets"]
            header[name]["data_offsets"] = [begin - 4, end - 4]
        else:
            header[name]["dtype"] = "I32"
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (n - len(text))
        assert len(text) == n
        data[8:8 + n] = text
    else:
        raise SystemExit(f"unknown damage {how}")
    with open(path, "wb") as f:
        f.write(data)


def shard(src, dst):
    tensors, metadata = read_raw(os.path.join(src, "model.safetensors"))
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    names = sorted(tensors)
    halves = [names[:len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for k, part in enumerate(halves):
        file = f"model-{k + 1:05d}-of-00002.safetensors"
        header, data, at = {"__metadata__": metadata}, [], 0
        for name in part:
            dtype, shape, raw = tensors[name]
            header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [at, at + len(raw)]}
            data.append(raw)
            at += len(raw)
            weight_map[name] = file
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(os.path.join(dst, file), "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + b"".join(data))
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


def verify_transformers(directory, tokens_path, count):
    import torch
    from transformers import GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(directory, torch_dtype=torch.float64)
    model.eval()
    w, config = load_f64(directory)
    tokens, _ = batch(tokens_path, config["n_positions"], count)
    ours = forward(w, config, tokens)
    with torch.no_grad():
        # HF shifts the labels itself: the loss over positions 1..S-1.
        out = model(torch.tensor(tokens), labels=torch.tensor(tokens))
    hf, hf_loss = out.logits.numpy(), out.loss.item()
    ours_loss = mean_loss(ours[:, :-1], tokens[:, 1:])
    print(f"max |logits - transformers'| = {np.abs(ours - hf).max():.3e}")
    print(f"loss {ours_loss:.12f}, transformers' {hf_loss:.12f} (its loss "
          "upcasts the logits to float32)")
    assert np.abs(ours - hf).max() < 1e-9 and abs(ours_loss - hf_loss) < 1e-6
    # save_pretrained writes the names (and the F32 bytes) this file writes.
    import tempfile
    with tempfile.TemporaryDirectory() as saved:
        GPT2LMHeadModel.from_pretrained(directory).save_pretrained(saved)
        theirs, metadata = read_raw(os.path.join(saved, "model.safetensors"))
        mine, my_metadata = read_raw(os.path.join(directory, "model.safetensors"))
        print("save_pretrained's tensors:", "the same" if theirs == mine else
              sorted(set(theirs) ^ set(mine)), metadata, my_metadata)
        assert theirs == mine


def main(argv):
    command = argv[0]
    if command == "write":
        args, opts = [], {"--dtype": "f32", "--seed": "0"}
        overrides, old, untied, i = [], False, False, 1
        while i < len(argv):
            if argv[i] == "--old":
                old = True
            elif argv[i] == "--untied":
                untied = True
            elif argv[i] == "--set":
                overrides.append(argv[i + 1])
                i += 1
            elif argv[i] in opts:
                opts[argv[i]] = argv[i + 1]
                i += 1
            else:
                args.append(argv[i])
            i += 1
        write(args[0], opts["--dtype"], int(opts["--seed"]), old, overrides, untied)
    elif command == "tokens":
        seed = int(argv[4]) if len(argv) > 4 else 0
        ids = np.random.default_rng(seed).integers(0, CONFIG["vocab_size"], int(argv[2]))
        ids.astype("<i4").tofile(argv[1])
    elif command == "loss":
        print(f"{loss(argv[1], argv[2], int(argv[3])):.9f}")
    elif command == "check-loss":
        log, directory, tokens_path, count, tol = argv[1:6]
        with open(log) as f:
            steps = {r["step"]: r for r in map(json.loads, f) if r}
        got = steps[1]["loss"]
        want = loss(directory, tokens_path, int(count))
        rel = abs(got - want) / abs(want)
        print(f"step 1 loss {got:.7f}, numpy's {want:.7f}: relative difference {rel:.1e}")
        if rel > float(tol):
            print(f"FAIL: more than {tol}")
            return 1
    elif command == "same":
        return 0 if same(argv[1], argv[2]) else 1
    elif command == "damage":
        damage(argv[1], argv[2], argv[3])
    elif command == "shard":
        shard(argv[1], argv[2])
    elif command == "verify-transformers":
        verify_transformers(argv[1], argv[2], int(argv[3]))
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

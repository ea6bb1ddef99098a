"""PyTorch-eager twin of md4-rs's training step, for `just bench train-step` (issue 3 §4).

The same network as md4-models' `small-text8` preset (spec §7.1: adaLN-Zero transformer with
sigmoid conditioning, interleaved RoPE, GLU MLP, channel-wise dropout, 64-dim outside
embedding), the same MD4 loss (spec §3.3: ε-shifted linear schedule, antithetic t, masked
cross-entropy summed over positions) and the same AdamW + EMA update, on random text8 tokens.
With --dtype bf16 every dense layer casts its input and weights to bfloat16, as md4-models'
`compute_dtype: bf16` does; norms, the residual stream, log-softmax and loss stay float32.

Prints one JSON line: step time, tokens/s and peak memory. Run by
`cargo run -p md4-train --example bench -- train-step`, which alternates it with the Rust step.
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

EPS = 1e-4  # the MD4 schedule shift
NORM_EPS = 1e-5


def rss_mb(field):
    """VmRSS / VmHWM of this process in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Linear(torch.nn.Module):
    """y = x·Wᵀ + b with an optional bf16 compute cast (md4-models `Linear`)."""

    def __init__(self, d_in, d_out, bias, zero, compute, scale=1.0):
        super().__init__()
        w = torch.zeros(d_out, d_in)
        if not zero:
            std = math.sqrt(scale / d_in) / 0.8796256610342398
            torch.nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)
        self.weight = torch.nn.Parameter(w)
        self.bias = torch.nn.Parameter(torch.zeros(d_out)) if bias else None
        self.compute = compute

    def forward(self, x):
        c = self.compute
        b = None if self.bias is None else self.bias.to(c)
        return F.linear(x.to(c), self.weight.to(c), b)


def layer_norm(x):
    return F.layer_norm(x.float(), (x.shape[-1],), eps=NORM_EPS)


def dropout1d(x, p, train):
    if not train or p == 0.0:
        return x
    keep = torch.empty(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


def rope_tables(n, hd, device):
    k = torch.arange(0, hd, 2, dtype=torch.float64, device=device) / hd
    inv = torch.exp(k * -math.log(10000.0))
    ang = torch.arange(n, dtype=torch.float64, device=device)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    b, n, h, hd = x.shape
    pairs = x.reshape(b, n, h, hd // 2, 2)
    re, im = pairs[..., 0], pairs[..., 1]
    cos = cos.to(x.dtype).view(1, n, 1, hd // 2)
    sin = sin.to(x.dtype).view(1, n, 1, hd // 2)
    return torch.stack([re * cos - im * sin, re * sin + im * cos], -1).view(b, n, h, hd)


class Block(torch.nn.Module):
    def __init__(self, d, heads, fd, hidden, layers, p, c):
        super().__init__()
        self.heads, self.p = heads, p
        self.wq, self.wk, self.wv, self.wo = (Linear(d, d, False, False, c) for _ in range(4))
        s = 2.0 / layers  # depth-scaled MLP init
        self.w1 = Linear(d, hidden, False, False, c, s)
        self.w2 = Linear(hidden, d, False, False, c, s)
        self.w3 = Linear(d, hidden, False, False, c, s)
        self.modulation = Linear(fd, 6 * d, True, True, c)

    def attn(self, x, cos, sin, train):
        b, n, d = x.shape
        h = self.heads
        q = rope(self.wq(x).view(b, n, h, d // h), cos, sin).transpose(1, 2)
        k = rope(self.wk(x).view(b, n, h, d // h), cos, sin).transpose(1, 2)
        v = self.wv(x).view(b, n, h, d // h).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if train else 0.0)
        return dropout1d(self.wo(o.transpose(1, 2).reshape(b, n, d)), self.p, train)

    def mlp(self, x, train):
        return dropout1d(self.w2(torch.sigmoid(self.w1(x)) * self.w3(x)), self.p, train)

    def forward(self, x, cond, cos, sin, train):
        sa, ca, ga, sm, cm, gm = self.modulation(cond).float().unsqueeze(1).chunk(6, -1)
        h = x + ga * self.attn(layer_norm(x) * (ca + 1.0) + sa, cos, sin, train)
        return h + gm * self.mlp(layer_norm(h) * (cm + 1.0) + sm, train)


class Transformer(torch.nn.Module):
    """md4-models' `small-text8`: 4 layers, 4 heads of 64, width 256, GLU 704, outside embed 64."""

    def __init__(self, vocab=27, layers=4, heads=4, fd=64, embed_dim=64, p=0.05, compute=torch.float32):
        super().__init__()
        d = fd * heads
        hidden = 32 * ((2 * 4 * d // 3 + 31) // 32)
        self.fd = fd
        self.embed = torch.nn.Parameter(torch.randn(vocab + 1, embed_dim) / math.sqrt(embed_dim))
        self.embed_proj = Linear(embed_dim, d, True, False, compute)
        self.dense0 = Linear(fd, 4 * fd, True, False, compute)
        self.dense1 = Linear(4 * fd, fd, True, False, compute)
        self.blocks = torch.nn.ModuleList(Block(d, heads, fd, hidden, layers, p, compute) for _ in range(layers))
        self.final_modulation = Linear(fd, 2 * d, True, True, compute)
        self.head = Linear(d, vocab, False, True, compute)

    def time_embedding(self, t):
        half = self.fd // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / (half - 1)))
        args = (t.float() * 1000.0)[:, None] * freqs[None, :]
        emb = torch.cat([args.sin(), args.cos()], 1)
        return self.dense1(F.silu(self.dense0(emb))).float()

    def forward(self, zt, t, train):
        n = zt.shape[1]
        h = self.embed_proj(F.embedding(zt, self.embed)).float()
        cos, sin = rope_tables(n, self.fd, zt.device)
        cond = torch.sigmoid(self.time_embedding(t))
        for block in self.blocks:
            h = block(h, cond, cos, sin, train)
        shift, scale = self.final_modulation(cond).float().unsqueeze(1).chunk(2, -1)
        return self.head(layer_norm(h) * (scale + 1.0) + shift).float()


def md4_loss(model, x0, vocab):
    """Continuous-time MD4 NELBO (linear schedule, ε-shift, antithetic t) in nats per token."""
    b, n = x0.shape
    t = (torch.rand(1, device=x0.device) + torch.arange(b, device=x0.device) / b) % 1.0
    alpha = (1.0 - 2 * EPS) * (1.0 - t) + EPS
    one_minus_alpha = (1.0 - 2 * EPS) * t + EPS
    weight = -(1.0 - 2 * EPS) / one_minus_alpha
    masked = torch.rand(b, n, device=x0.device) >= alpha[:, None]
    zt = torch.where(masked, torch.full_like(x0, vocab), x0)
    logits = model(zt, t, True).float()
    logp = logits.gather(-1, x0.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    s = (logp * masked.float()).sum(1)
    nelbo = weight * s + n * EPS * math.log(vocab)
    return nelbo.mean() / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    rss_before = rss_mb("VmRSS")
    compute = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = Transformer(compute=compute).to(device)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.03)
    ema = [p.detach().clone() for p in params]
    vocab = 27
    data = torch.randint(0, vocab, (args.warmup + args.steps, args.batch, args.seq_len), device=device)

    def step(i):
        opt.zero_grad(set_to_none=False)
        loss = md4_loss(model, data[i], vocab)
        loss.backward()
        value = loss.item()  # the Rust loop reads the loss every step (NaN guard)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(0.9999).add_(p, alpha=1.0 - 0.9999)
        return value

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss = step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    out = {
        "impl": "pytorch-eager",
        "dtype": args.dtype,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "step_ms": 1000.0 * wall / args.steps,
        "tokens_per_s": args.steps * args.batch * args.seq_len / wall,
        "peak_rss_mb": rss_mb("VmHWM"),
        "rss_before_model_mb": rss_before,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "last_loss_bits": loss / math.log(2),
        "params": sum(p.numel() for p in params),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

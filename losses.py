"""The training loss: a table of terms (TERMS) with their plain definitions, and a fused, chunked port of them.

A loss term is a per-token value on the full logits, averaged over the tokens whose target is not ignore_index (-1),
and a weight; the loss is the weighted sum of the terms that are on (LossSpec says which, with the settings and the
inputs they need beyond the logits). plain_loss computes them by autograd on the full logits: the fused_loss=False
path and the oracle the fused loss is tested against. The two terms of the paper:
    ce  cross-entropy, weight 1 - kd_alpha with a KD teacher, else 1
    kd  T^2 * KL(softmax(t / T) || softmax(s / T)), t the teacher's logits, T = kd_temperature, both over the ids
        the two vocabularies share (past them: padding rows); weight kd_alpha, on with a teacher
Adding a term is one function here (its per-token definition) and its TERMS entry; fused_loss=True refuses a term
FusedLinearCrossEntropy has no port for, so it trains with fused_loss=False until one is written (and tested
against plain_loss).

The fused port exists for speed. The plain path (logits = lm_head(x); the loss on them) materialises the
(tokens x vocab) logits, an fp32 copy under autocast, the log-softmax and their gradients: with GPT-2's 50304-token
vocabulary that is most of a small model's step time and memory. Here each chunk of tokens computes its logits, the
loss and at once the gradients wrt its hidden states and the (accumulated) lm_head weight, before the next chunk
reuses its buffers: only one chunk's logits exist at a time (in the matmuls' dtype), and backward merely scales the
stored gradients. Within a chunk the softmax and its gradient go through the logits in blocks of rows that stay in
the CPU's cache, with torch's fused softmax kernel, one exp per logit. In float32 this saves memory (42-60% of a
step's peak in docs/speed.md's runs) more than time: the three vocabulary-sized matmuls are the same as the plain
path's. KD uses the same chunks: the teacher's logits for the chunk come from its final hidden states and its
lm_head weight (no gradient).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from common import fail

CHUNK_TOKENS = 2048  # tokens per chunk: 2048 x 50304 logits = 412 MB in float32, 206 in bf16 (timed 256-3072, docs/speed.md)
IGNORE_INDEX = -1
TINY = torch.finfo(torch.float32).tiny  # smallest normal float32: -log(TINY) = 87.3
CPU_BLOCK_BYTES = 1 << 23  # float32 logits per softmax block on CPU: 8 MiB stays in cache (docs/speed.md)


@dataclass(frozen=True)
class LossSpec:
    """How to compute the training loss: which terms are on, their settings, and the inputs they need beyond the
    student's logits (a KD teacher's, computed outside the model without gradients). GPT.forward takes one."""
    fused: bool = True  # chunked lm_head + loss (fused_loss); False: full logits and plain_loss
    teacher_hidden: Optional[torch.Tensor] = None  # (B, T, C_t) a KD teacher's final hidden states; KD on when given
    teacher_weight: Optional[torch.Tensor] = None  # (V_t, C_t) its lm_head weight; V_t may differ from V by padding rows
    # (B, T, V_t) a teacher's own logits instead, where they are not lm_head(final hidden state) (Gemma's softcap):
    # plain loss only
    teacher_logits: Optional[torch.Tensor] = None
    kd_alpha: float = 0.0
    kd_temperature: float = 1.0
    chunk_tokens: int = CHUNK_TOKENS  # the fused loss's tokens per chunk
    settings: object = None  # the run's settings (train.py's TrainConfig), where a term reads its own


@dataclass(frozen=True)
class Term:
    """One loss term: per_token(logits, targets, spec) -> (N,) values, differentiable, on the float32 (or wider)
    logits (N, V) and the targets (N,), ignored ones -1; weight(spec) -> its weight in the loss, None where it is off."""
    per_token: Callable
    weight: Callable


def cross_entropy(logits, targets, spec):
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="none")


def distillation(logits, targets, spec):
    """T^2 KL(p_t || p_s), both softmaxes at temperature T, the teacher's logits from its hidden states and lm_head
    (or its own, spec.teacher_logits). Both softmaxes run over the ids the two vocabularies share: the larger one's
    rows past them are padding (train.check_teacher admits no other difference), which neither distribution may
    spend mass on."""
    T, hidden = spec.kd_temperature, spec.teacher_hidden
    if spec.teacher_logits is not None:
        vocab = min(logits.size(-1), spec.teacher_logits.size(-1))
        teacher_logits = spec.teacher_logits.reshape(-1, spec.teacher_logits.size(-1))[:, :vocab].to(logits.dtype)
    else:
        vocab = kd_vocab(logits.size(-1), spec.teacher_weight)
        teacher_logits = (hidden.reshape(-1, hidden.size(-1)) @ spec.teacher_weight[:vocab].t()).to(logits.dtype)
    log_pt, log_ps = torch.log_softmax(teacher_logits / T, dim=-1), torch.log_softmax(logits[:, :vocab] / T, dim=-1)
    return T ** 2 * F.kl_div(log_ps, log_pt, reduction="none", log_target=True).sum(-1)


def kd_vocab(student_vocab, teacher_weight):
    """The ids KD compares: those of the smaller of the student's and the teacher's vocabularies."""
    return min(student_vocab, teacher_weight.size(0))


def has_teacher(spec):
    return spec.teacher_hidden is not None or spec.teacher_logits is not None


TERMS = {  # the loss's terms, in the order train.py logs them
    "ce": Term(cross_entropy, lambda spec: 1.0 - spec.kd_alpha if has_teacher(spec) else 1.0),
    "kd": Term(distillation, lambda spec: spec.kd_alpha if has_teacher(spec) else None),
}


def weights(spec):
    """{name: weight} of the terms that are on, in TERMS order."""
    on = {name: term.weight(spec) for name, term in TERMS.items()}
    return {name: w for name, w in on.items() if w is not None}


def plain_loss(logits, targets, spec):
    """(loss, terms) by autograd on the full logits (..., V): each term that is on, averaged over the tokens whose
    target is not ignored, in float32 (or the logits' wider dtype); loss = sum of weight * term, terms {name: value}
    detached. nan when every target is ignored, as F.cross_entropy."""
    logits, targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    counted = targets != IGNORE_INDEX
    loss, terms = 0.0, {}
    for name, w in weights(spec).items():
        term = torch.where(counted, TERMS[name].per_token(logits, targets, spec), 0.0).sum() / counted.sum()
        loss, terms[name] = loss + w * term, term.detach()
    return loss, terms


_scratch = {}


def cpu_eager(device):
    """True on CPU outside torch.compile tracing: where the scratch buffers and cache-sized blocks below pay."""
    return device.type == "cpu" and not torch.compiler.is_compiling()


def scratch(name, rows, cols, dtype, device):
    """A (rows, cols) scratch tensor reused across chunks and calls on CPU. Allocating a fresh chunk-sized tensor
    (hundreds of MB) page-faults all of it in again: 0.5-2 s per 400 MB chunk on the 2-vCPU EPYC of docs/speed.md,
    against 0.07 s to fill a reused one. CUDA's caching allocator reuses memory already, and torch.compile traces
    plain allocations, so both get fresh tensors."""
    if not cpu_eager(device):
        return torch.empty(rows, cols, dtype=dtype, device=device)
    buf = _scratch.get((name, dtype))
    if buf is None or buf.numel() < rows * cols:
        buf = _scratch[(name, dtype)] = torch.empty(rows * cols, dtype=dtype, device=device)
    return buf[:rows * cols].view(rows, cols)


def log_softmax_(x):
    """x <- log_softmax(x, dim=-1) in place with torch's fused kernel (each row read and written once). On CPU eager
    the kernel writes into its input; elsewhere (and under torch.compile, which must see plain ops) into a new tensor
    that is copied back."""
    if cpu_eager(x.device):
        return torch.ops.aten._log_softmax.out(x, -1, False, out=x)
    return x.copy_(torch.log_softmax(x, dim=-1))


def softmax_(x):
    """x <- softmax(x, dim=-1) in place, as log_softmax_."""
    if cpu_eager(x.device):
        return torch.ops.aten._softmax.out(x, -1, False, out=x)
    return x.copy_(torch.softmax(x, dim=-1))


def compute_dtype(device_type, dtype):
    """The dtype autocast would run a matmul in: its own dtype when enabled, else the tensors'."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else dtype


def block_rows(rows, vocab, device):
    """Rows of a chunk's logits processed together by the softmax and KD arithmetic. On CPU a block of
    CPU_BLOCK_BYTES stays in cache through all its elementwise passes, so the chunk goes through memory about
    once; on GPUs, and while torch.compile traces, the whole chunk is one block."""
    if not cpu_eager(device):
        return rows
    return max(1, min(rows, CPU_BLOCK_BYTES // (4 * vocab)))


def dlogits_(z, targets, teacher_z, ce_weight, kd_weight, temperature):
    """Overwrites one block of logits z (rows, V) with dloss/dlogits up to the 1/N mean and the ignore mask:
        ce_weight (P - onehot(targets))                                 without a teacher,
        ce_weight (P - onehot(targets)) + kd_weight T (P_T - Pt_T)      with teacher logits teacher_z,
    P = softmax(z), P_T and Pt_T the student's and the teacher's softmax at temperature T over teacher_z's columns,
    the first of z's (the rest are padding: distillation). Returns each row's CE and T^2 KL(Pt_T || P_T) (float32;
    zeros without a teacher). Works in float32 whatever z's dtype. CE is
    -log P[target], exact but for a target whose P underflows float32 (a loss over 87.3 nats: a token the model
    rules out), which counts as 87.3; the gradient stays exact."""
    rows, vocab = z.shape
    f = z if z.dtype == torch.float32 else scratch("f", rows, vocab, torch.float32, z.device).copy_(z)
    if teacher_z is None:
        kd_rows = torch.zeros(rows, dtype=torch.float32, device=z.device)
    else:
        shared = teacher_z.size(1)
        log_ps = log_softmax_(torch.div(f[:, :shared], temperature, out=scratch("ps", rows, shared, torch.float32, z.device)))
        log_pt = log_softmax_(scratch("pt", rows, shared, torch.float32, z.device).copy_(teacher_z).div_(temperature))
        log_ratio = torch.sub(log_pt, log_ps, out=scratch("ratio", rows, shared, torch.float32, z.device))
        pt = log_pt.exp_()
        kd_rows = (log_ratio.mul_(pt)).sum(-1) * temperature ** 2
        kd_grad = log_ps.exp_().sub_(pt)  # P_T - Pt_T
    target_p = softmax_(f).gather(1, targets.unsqueeze(1))
    ce_rows = -target_p.clamp_min_(TINY).log_().squeeze(1)  # one exp per logit; log only of the targets' P
    f = subtract_onehot_(f, targets)
    if ce_weight != 1.0:
        f.mul_(ce_weight)
    if teacher_z is not None:
        f[:, :shared].add_(kd_grad, alpha=kd_weight * temperature)
    if f is not z:
        z.copy_(f)
    return ce_rows, kd_rows


def subtract_onehot_(p, targets):
    """p - onehot(targets). Eager: in place, scatter_add_ touching one entry per row. Under torch.compile: a
    pointwise op, which fuses into the softmax's kernel; with scatter_add_ there, inductor let the later reads of
    the buffer run before the scatter had written, and compiled KD trained without the -onehot term (gradients off
    by 50-150% on CPU inductor, torch 2.13; tests/test_compile.py)."""
    if torch.compiler.is_compiling():
        return p - (torch.arange(p.size(1), device=p.device) == targets.unsqueeze(1)).to(p.dtype)
    return p.scatter_add_(1, targets.unsqueeze(1), torch.full((p.size(0), 1), -1.0, device=p.device))


FUSED_TERMS = ("ce", "kd")  # the terms FusedLinearCrossEntropy has ports of (dlogits_)


class FusedLinearCrossEntropy(torch.autograd.Function):
    """loss, ce, kd = FusedLinearCrossEntropy.apply(h, weight, targets, teacher_h, teacher_weight, ce_weight,
                                                    kd_weight, T, chunk)

    h (N, C) hidden states, weight (V, C) lm_head weight, targets (N,) with -1 = ignored; teacher_h (N, C_t) and
    teacher_weight (V_t, C_t) or None, KD over the first min(V, V_t) ids (distillation). Returns three scalars: the
    loss ce_weight * CE + kd_weight * KD (differentiable wrt h and weight), and the CE and KD terms as plain_loss defines them (float32, no gradient;
    kd is 0 without a teacher). Matmuls run in the autocast dtype if autocast is on; softmax, logs and sums run in
    float32, one block of rows at a time (block_rows).

    The chunk's dloss/dlogits G = diag(m / N) D, m the 0/1 mask of counted tokens and D what dlogits_ leaves in
    the logits buffer, so the gradients are grad_h = diag(m / N) (D W) and grad_W = (D^T (diag(m) h)) / N: the
    mask and the 1/N go on the small (tokens x C) side, and D goes into the matmuls as rounded once."""

    @staticmethod
    def forward(ctx, h, weight, targets, teacher_h, teacher_weight, ce_weight, kd_weight, temperature, chunk_tokens):
        device_type = h.device.type
        dtype = compute_dtype(device_type, h.dtype)
        with torch.autocast(device_type, enabled=False):
            w = weight.to(dtype)
            tw = None if teacher_h is None else teacher_weight[:kd_vocab(weight.size(0), teacher_weight)].to(dtype)
            valid = targets != IGNORE_INDEX
            inv_n = 1.0 / valid.sum().to(torch.float32)  # nan when every target is ignored, as F.cross_entropy
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device)
            ce_sum = torch.zeros((), dtype=torch.float32, device=h.device)
            kd_sum = torch.zeros((), dtype=torch.float32, device=h.device)
            for start in range(0, h.size(0), chunk_tokens):
                end = min(start + chunk_tokens, h.size(0))
                rows = end - start
                yc, vc = targets[start:end].clamp(min=0), valid[start:end]
                hc = h[start:end].to(dtype)
                z = torch.mm(hc, w.t(), out=scratch("logits", rows, w.size(0), dtype, h.device))
                if teacher_h is not None:
                    with torch.no_grad():
                        tz = torch.mm(teacher_h[start:end].to(dtype), tw.t(),
                                      out=scratch("teacher_logits", rows, tw.size(0), dtype, h.device))
                step = block_rows(rows, w.size(0), h.device)
                for b in range(0, rows, step):
                    ce_rows, kd_rows = dlogits_(z[b:b + step], yc[b:b + step],
                                                None if teacher_h is None else tz[b:b + step], ce_weight, kd_weight,
                                                temperature)
                    ce_sum += (ce_rows * vc[b:b + step]).sum()
                    kd_sum += (kd_rows * vc[b:b + step]).sum()
                mask = vc.unsqueeze(1)
                torch.mul(torch.mm(z, w), mask * inv_n, out=grad_h[start:end])
                masked_hc = hc * mask.to(dtype)
                if dtype == torch.float32:
                    grad_w.addmm_(z.t(), masked_hc)
                else:
                    grad_w += torch.mm(z.t(), masked_hc, out=scratch("grad_w", *w.shape, dtype, h.device))
            grad_w.mul_(inv_n)
            ce = ce_sum * inv_n
            kd = kd_sum * inv_n
            loss = ce_weight * ce + kd_weight * kd
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        ctx.mark_non_differentiable(ce, kd)
        return loss, ce, kd

    @staticmethod
    def backward(ctx, grad_loss, grad_ce, grad_kd):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None, None, None, None, None


def fused_loss(h, weight, targets, spec):
    """(loss, terms) as plain_loss(h @ weight.t(), targets, spec) returns them, from the (..., C) hidden states and
    the lm_head weight without the full logits (FusedLinearCrossEntropy). One-line error for a term that is on but
    has no fused port."""
    on = weights(spec)
    missing = [name for name in on if name not in FUSED_TERMS]
    if missing:
        fail(f"loss term {missing[0]!r} has no fused port in losses.py (FUSED_TERMS); train it with --fused_loss=False")
    if spec.teacher_logits is not None:
        fail("the fused loss computes the teacher's logits from its hidden states; a teacher's own logits take the plain loss (fused=False)")
    h, targets = h.reshape(-1, h.size(-1)), targets.reshape(-1)
    teacher_h = spec.teacher_hidden.reshape(-1, spec.teacher_hidden.size(-1)) if "kd" in on else None
    loss, ce, kd = FusedLinearCrossEntropy.apply(h, weight, targets, teacher_h, spec.teacher_weight,
                                                 float(on.get("ce", 0.0)), float(on.get("kd", 0.0)),
                                                 float(spec.kd_temperature), int(spec.chunk_tokens))
    computed = {"ce": ce, "kd": kd}
    return loss, {name: computed[name] for name in on}

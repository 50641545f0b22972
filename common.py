"""Small helpers shared by every script: user-facing errors, atomic writes, device/dtype choice, DDP setup."""
import ctypes
import datetime
import json
import os
import tempfile
from contextlib import contextmanager, nullcontext

import torch


def fail(msg):
    """Stop with a one-line error and exit status 1 (SystemExit prints it to stderr)."""
    raise SystemExit(f"error: {msg}")


def tensor_of(weight):
    """A weight of a state dict read lazily (a model's weights on the meta device): the tensor, or the function that
    makes it when called (a concatenation, a slice, a fresh init), so a reader holds one at a time."""
    return weight() if callable(weight) else weight


def current_umask():
    umask = os.umask(0)  # the only way to read it is to set it
    os.umask(umask)
    return umask


@contextmanager
def atomic_write(path):
    """Yield a temp path beside `path`; it replaces `path` only if the block finishes, so readers never see half a file.
    The data reaches the disk before the rename and the rename before we return (fsync of both), so a node that
    crashes leaves the old file or the new one under `path`, never a cut one."""
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-", suffix="-" + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file the permissions open() would
        fsync(tmp)
        os.replace(tmp, path)
        fsync(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fsync(path):
    """Flush a file's (or a directory's) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(obj, path):
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)


def cpu_supports_bf16():
    # AMX / AVX512-BF16 make bf16 matmuls several times faster than fp32 on CPU; without them bf16 is emulated and slow
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def keep_freed_cpu_memory():
    """Make glibc keep freed blocks for reuse instead of handing every block over 32 MiB back to the kernel.
    A CPU training step allocates and frees several logits-sized blocks (batch x block_size x 50304 floats); returned
    to the kernel, each is page-faulted back in on its next use. That cost up to 45% of a step of
    config/shakespeare_ref.py (2.0 s -> 1.1 s on one thread, 1.18 s -> 0.86 s on two). The price is a higher
    resident set: the peak working set stays mapped.
    Returns False where the C library has no mallopt (not glibc) or refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    return all([mallopt(M_MMAP_THRESHOLD, 1 << 30), mallopt(M_TRIM_THRESHOLD, 2**31 - 1), mallopt(M_TOP_PAD, 1 << 28)])


def setup_device(device="auto", dtype="auto"):
    """Resolve 'auto' settings. Returns (device, device_type, ptdtype, autocast context)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device_type = "cuda" if device.startswith("cuda") else device.split(":")[0]
    if device_type == "cuda" and not torch.cuda.is_available():
        fail(f"device={device!r} but CUDA is not available; use --device=cpu")
    if dtype == "auto":
        if device_type == "cuda":
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "bfloat16" if device_type == "cpu" and cpu_supports_bf16() else "float32"
    ptdtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in ptdtypes:
        fail(f"dtype={dtype!r} is not one of auto, float32, bfloat16, float16")
    if dtype == "float16" and device_type != "cuda":
        fail("dtype='float16' needs CUDA; use --dtype=bfloat16 or --dtype=float32 on CPU")
    ptdtype = ptdtypes[dtype]
    if device_type == "cpu":
        keep_freed_cpu_memory()
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ctx = nullcontext() if ptdtype == torch.float32 else torch.autocast(device_type=device_type, dtype=ptdtype)
    return device, device_type, ptdtype, ctx


def init_distributed(backend="auto", device="auto", timeout_minutes=30):
    """Join the process group when launched by torchrun. Returns (ddp, rank, local_rank, world_size, device).
    timeout_minutes bounds every collective, the barriers included: ranks wait in one while rank 0 saves a checkpoint."""
    if int(os.environ.get("RANK", -1)) == -1:
        return False, 0, 0, 1, device
    import torch.distributed as dist
    if dist.is_initialized():  # grow.py trains several rounds in one process group
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return True, rank, local_rank, world_size, (f"cuda:{local_rank}" if dist.get_backend() == "nccl" else device)
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if backend == "auto":
        backend = "nccl" if on_cuda else "gloo"
    if backend == "nccl" and not on_cuda:
        fail("backend='nccl' needs CUDA devices; use --backend=gloo (or auto) on CPU")
    rank, local_rank, world_size = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if on_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return True, rank, local_rank, world_size, device

"""FSDP2 (--parallelism=fsdp) and the checkpoints that outlive a run's process count, on CPU with 2 gloo processes:
FSDP training equals one process (so a gradient summed instead of averaged shows, whichever gloo does), compiled and
with activation checkpointing too; a SIGKILLed FSDP run resumes bit for bit; DDP and FSDP runs resume on 1 process
from 2 and on 2 from 1; an asynchronous sharded save writes what a blocking one does; a meta-device build reads a
large checkpoint without a full copy, started as it is or inherited from; DDP with torch.compile equals eager.
(test_hf_train.py: FSDP on transformers-path models, and inheriting from a Llama folder.)"""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, run_script
from test_train import ddp_matches_one_process, final_state, interrupt_and_resume, metrics, tiny, write_teacher


def torchrun(nproc):
    return ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def assert_same_weights(a, b, atol=1e-5):
    a, b = final_state(a)["model"], final_state(b)["model"]
    assert a.keys() == b.keys()
    for k, v in a.items():
        torch.testing.assert_close(b[k], v, rtol=0, atol=atol, msg=k)


STEPS = ["--max_iters=4", "--eval_interval=4", "--dtype=float32", "--log_interval=100", "--log_seconds=1e-9"]


def test_fsdp_matches_one_process(shakespeare_root, tmp_path):
    """Inheritune at start-up (2 of a 3-layer model's blocks, their MLPs fresh, the context cropped from 64 to 32)
    distilled from that model and probed every 3 steps, on 2 FSDP processes against one (from scratch:
    test_resume_on_another_number_of_processes). FSDP builds the target on the meta device from the memory-mapped
    source, its fresh tensors made one at a time; the provenance is one process's. The consolidated checkpoint holds
    one process's weights: gathered from both ranks' shards."""
    teacher = write_teacher(tmp_path / "teacher.pt")
    # 9 eval windows of 4 a batch: 5 on rank 0, 4 on rank 1, yet both must run two forwards; a rank left waiting in a
    # collective fails within dist_timeout (minutes)
    args = [*STEPS, "--parallelism=fsdp", f"--init_from={teacher}", "--inherit_layers=2", "--inherit_block_parts=attn,ln",
            f"--teacher={teacher}", "--probe_interval=3", "--eval_windows=9", "--dist_timeout=0.5"]
    single, fsdp = ddp_matches_one_process(shakespeare_root, tmp_path, args)
    assert_same_weights(tmp_path / "single", tmp_path / "ddp")
    assert "sharded" in final_state(tmp_path / "ddp")
    assert final_state(tmp_path / "ddp")["inherit"] == final_state(tmp_path / "single")["inherit"]
    assert [m["kd"] for m in single if "kd" in m] == pytest.approx([m["kd"] for m in fsdp if "kd" in m], abs=1e-5)
    probes = [[m for m in run if "probe" in m] for run in (single, fsdp)]
    assert [m["iter"] for m in probes[1]] == [0, 3]
    for a, b in zip(*probes):  # the probe of the weights gathered from the shards: one process's
        assert a["probe"].keys() == b["probe"].keys()
        for name, values in a["probe"].items():
            assert values == pytest.approx(b["probe"][name], abs=1e-4), (a["iter"], name)


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_compiled_and_checkpointed_match_eager(shakespeare_root, tmp_path, parallelism):
    """torch.compile (per block under FSDP, CPU inductor) with activation checkpointing against one eager process."""
    args = ["--max_iters=2", "--eval_interval=2", "--dtype=float32", f"--parallelism={parallelism}"]
    run_script(*tiny(shakespeare_root, tmp_path / "eager", *args))
    run_script(*torchrun(2), *tiny(shakespeare_root, tmp_path / "compiled", *args, "--compile=True",
                                   "--activation_checkpointing=True"))
    losses = [[m["loss"] for m in metrics(tmp_path / run) if "loss" in m] for run in ("eager", "compiled")]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert_same_weights(tmp_path / "eager", tmp_path / "compiled")


def test_fsdp_kill_and_resume_is_bit_identical(shakespeare_root, tmp_path):
    interrupt_and_resume(shakespeare_root, tmp_path, ["--max_iters=12", "--eval_interval=3", "--dropout=0.1",
                                                      "--parallelism=fsdp"], launch=torchrun(2))
    assert len(os.listdir(tmp_path / "killed" / "ckpt.pt.dcp")) == 1  # the older shards are gone


@pytest.fixture(scope="module")
def eight_steps(shakespeare_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("eight") / "run"
    run_script(*tiny(shakespeare_root, out, "--max_iters=8", "--eval_interval=4", "--dtype=float32"))
    return out


@pytest.mark.parametrize("before,after", [(("ddp", 2), ("ddp", 1)), (("ddp", 1), ("ddp", 2)), (("fsdp", 2), ("fsdp", 1)),
                                          (("fsdp", 1), ("fsdp", 2)), (("ddp", 1), ("fsdp", 2))],
                         ids=["ddp2-ddp1", "ddp1-ddp2", "fsdp2-fsdp1", "fsdp1-fsdp2", "ddp1-fsdp2"])
def test_resume_on_another_number_of_processes(shakespeare_root, tmp_path, eight_steps, before, after):
    """4 steps on `before` (parallelism, processes), resumed for 4 more on `after`: the run one process makes in 8.
    FSDP on 1 is torchrun with one process, DDP on 1 a plain process; the last case resumes a single-file checkpoint
    (today's format) under FSDP."""
    def run(parallelism, n, *args):
        launch = torchrun(n) if n > 1 or parallelism == "fsdp" else []
        return run_script(*launch, *tiny(shakespeare_root, tmp_path, "--eval_interval=4", "--dtype=float32",
                                         f"--parallelism={parallelism}", *args)).stdout
    run(*before, "--max_iters=4")
    out = run(*after, "--max_iters=8", "--init_from=resume")
    assert "not bit-exact" not in out  # no dropout: nothing depends on the number of processes
    resumed, full = metrics(tmp_path), metrics(eight_steps)
    assert [m["iter"] for m in resumed] == [m["iter"] for m in full]
    assert [m.get("loss") for m in resumed] == pytest.approx([m.get("loss") for m in full], abs=1e-5)
    assert_same_weights(eight_steps, tmp_path)


ASYNC_SAVE = """
import os, sys, torch, torch.distributed as dist, torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict
from common import setup_device
from model import GPT, GPTConfig
from parallel import ShardedCheckpoint, parallelize
from train import Setup
dist.init_process_group("gloo")
setup = Setup(True, dist.get_rank(), 2, *setup_device("cpu", "float32"))
torch.manual_seed(0)
model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64))
parallelize(model, model.transformer.h, setup, "fsdp")
optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
def step():
    x = torch.randint(64, (2, 16))
    model(x, x)[1].backward()
    optimizer.step()
    optimizer.zero_grad()
step()
out = sys.argv[1]
dcp.save(dict(zip(("model", "optimizer"), get_state_dict(model, optimizer))), checkpoint_id=f"{out}/blocking")
saver = ShardedCheckpoint(f"{out}/ckpt.pt")
saver.save(model, optimizer, {"iter_num": 1})
step()  # training goes on while the save is written: it must not change what is saved
saver.wait()
dist.destroy_process_group()
"""


def test_async_save_writes_what_a_blocking_save_does(tmp_path):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    script = tmp_path / "async_save.py"
    script.write_text(ASYNC_SAVE)
    proc = subprocess.run([sys.executable, *torchrun(2), str(script), str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    for name, folder in (("blocking", tmp_path / "blocking"), ("async", tmp_path / ckpt["sharded"])):
        dcp_to_torch_save(folder, tmp_path / f"{name}.pt")
    blocking, written = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("blocking", "async"))
    assert blocking["model"].keys() == written["model"].keys() and blocking["optimizer"]["state"]
    for k, v in blocking["model"].items():
        assert torch.equal(v, written["model"][k]), k
        assert torch.equal(v, ckpt["model"][k]), k  # the consolidated weights are the shards' too
    for k, state in blocking["optimizer"]["state"].items():
        for key, v in state.items():
            assert torch.equal(v, written["optimizer"]["state"][k][key]), (k, key)


@pytest.mark.parametrize("shape", [dict(bias=True), dict(norm="rmsnorm", position="rope", mlp="swiglu", n_kv_head=1,
                                                       qk_norm=True, tie_embeddings=False)], ids=["gpt2", "llama"])
def test_fresh_init_makes_each_tensor_as_the_whole_build_does(shape):
    """FreshInit: a GPT built on the meta device under a seed, then each parameter made alone (in reverse order, so
    no tensor's values depend on another's being made first) equals the same build on the CPU, bit for bit."""
    from checkpoint import FreshInit, new_model
    from model import GPTConfig
    args = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64, **shape).model_args()
    torch.manual_seed(3)
    whole = new_model(args, "whole").state_dict()
    torch.manual_seed(3)
    with FreshInit() as init:
        meta = new_model(args, "meta", meta=True)
    for name, p in reversed(list(meta.named_parameters())):
        assert torch.equal(init.fresh(p), whole[name]), name


META_LOAD = """
import sys, threading, time, torch, torch.distributed as dist
from contextlib import nullcontext
import parallel, train
from configurator import configure
dist.init_process_group("gloo")

def anonymous():  # bytes of this process's own memory, not the mapped checkpoint's pages
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("RssAnon"))

torch.empty(1, device="meta").normal_()  # torch imports its meta kernels at first use: ~70 MB, whatever the model
base, peak = anonymous(), [0]
def watch():
    while True:
        peak[0] = max(peak[0], anonymous())
        time.sleep(0.001)
threading.Thread(target=watch, daemon=True).start()
cfg = configure(train.TrainConfig, [f"--init_from={sys.argv[1]}", "--block_size=32", "--parallelism=fsdp", "--device=cpu",
                                    *sys.argv[2:]])
setup = train.Setup(True, dist.get_rank(), 2, "cpu", "cpu", torch.float32, nullcontext())  # not setup_device(): below
model, _, provenance, weights = train.build_model(cfg, 64, "cpu", meta=True)
parallel.parallelize(model, model.transformer.h, setup, "fsdp", weights=weights)
del weights
time.sleep(0.05)
print(f"{max(peak[0], anonymous()) - base}")
shard = model.transformer.h[1].mlp.c_fc.weight
assert shard.to_local().shape[0] == shard.shape[0] // 2
full = parallel.full_state_dict(model)
if dist.get_rank() == 0:  # the model the same start builds whole, as one process does
    whole, _, whole_provenance, _ = train.build_model(cfg, 64, "cpu")
    expected = whole.state_dict()
    assert full.keys() == expected.keys() and provenance == whole_provenance
    for k, v in expected.items():
        assert torch.equal(full[k], v), k
dist.destroy_process_group()
"""


INHERIT = ["--inherit_layers=0,5", "--inherit_block_parts=attn,ln"]


@pytest.mark.parametrize("source,start", [("checkpoint", []), ("checkpoint", INHERIT), ("gpt2 folder", INHERIT)],
                         ids=["as-is", "inherited", "inherited-from-gpt2-folder"])
def test_meta_device_load_holds_no_full_copy(tmp_path, source, start):
    """A 2-process FSDP start from a checkpoint of 38M (as it is) or 42M (inheriting 2 of its 12 blocks, their MLPs
    fresh; from a checkpoint or a Hugging Face GPT-2 folder's safetensors) float32 parameters: neither rank's own
    memory grows by much more than its half of the model it trains; building the source whole first would take all
    of it, and more. The weights and the provenance are those the same start builds whole in one process (fresh
    tensors included, made one at a time)."""
    from checkpoint import save_checkpoint
    from model import GPT, GPTConfig
    shape = dict(n_layer=12, vocab_size=4096) if start else dict(n_layer=4, vocab_size=50304)
    model = GPT(GPTConfig(n_head=8, n_embd=512, block_size=32, **shape))
    full_bytes = sum(p.numel() * 4 for p in model.parameters())
    path = tmp_path / ("source.pt" if source == "checkpoint" else "gpt2")
    if source == "checkpoint":
        save_checkpoint({"model": model.state_dict(), "model_args": model.config.model_args()}, path)
    else:
        from transformers import GPT2Config, GPT2LMHeadModel
        GPT2LMHeadModel(GPT2Config(n_embd=512, n_head=8, n_positions=32, **shape)).save_pretrained(path)
    del model
    script = tmp_path / "meta_load.py"
    script.write_text(META_LOAD)
    # glibc keeps freed blocks under its mmap threshold, which it raises to the largest block freed, and
    # setup_device() keeps all of them for speed: tens of MB of tensors made one at a time and freed, on a model this
    # small. A fixed threshold, and no setup_device(), return each freed tensor at once: the peak is what is alive
    env = {**os.environ, "PYTHONPATH": str(REPO), "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run([sys.executable, *torchrun(2), str(script), str(path), *start], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    grown = [int(line) for line in proc.stdout.split()]
    print(f"full float32 copy {full_bytes / 1e6:.0f} MB; growth per rank {[g // 10**6 for g in grown]} MB")
    # as it is: half the model per rank; inherited: half of the 2 blocks and the embeddings kept (~8M parameters)
    assert len(grown) == 2 and max(grown) < (0.25 if start else 0.75) * full_bytes


def test_two_node_command_on_localhost(shakespeare_root, tmp_path, eight_steps):
    """docs/experiments.md's multi-node torchrun, as two agents of one process each meeting on 127.0.0.1 (c10d
    rendezvous, gloo): the run one process makes."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = ["-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=two_nodes"]
    args = tiny(shakespeare_root, tmp_path, "--max_iters=8", "--eval_interval=4", "--dtype=float32")
    agents = [subprocess.Popen([sys.executable, *node, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    outs = [agent.communicate(timeout=300) for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    assert "2 process(es)" in outs[0][0] + outs[1][0]
    assert [m.get("loss") for m in metrics(tmp_path)] == pytest.approx([m.get("loss") for m in metrics(eight_steps)], abs=1e-5)
    assert_same_weights(eight_steps, tmp_path)

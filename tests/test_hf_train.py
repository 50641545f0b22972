"""Training, inheriting and exporting today's decoder families through transformers (hf_adapter.py): tiny random
OLMo 2, OLMo 3 (sliding windows shorter than the test sequences), SmolLM3 (a NoPE layer), Gemma 3 (a final logit
softcap) and Qwen3.5 (linear-attention layers), each with options away from its defaults. Logits against
transformers' own model, inheritance against transformers' model with its layer list cut, fused against plain loss,
KD, exact resume, DDP and FSDP (built on the meta device, killed and resumed), inheriting from a Llama folder under
FSDP, torch.compile, the probe on an inherited model, and export reloaded by transformers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import attention_probe
import export_hf
import hf_adapter
import inherit
from checkpoint import load_model, model_from_checkpoint, save_checkpoint
from conftest import REPO, run_script
from losses import LossSpec
from train import TrainConfig

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

VOCAB, BLOCK, T = 96, 64, 16  # the test sequences (T) are longer than the sliding windows (4)
SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=BLOCK, pad_token_id=0, bos_token_id=1, eos_token_id=1)
ALTERNATING = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
FAMILIES = {
    # norms after each sublayer, q/k norms over the whole projection width; here with attention biases
    "olmo2": ("Olmo2Config", dict(SMALL, attention_bias=True, rms_norm_eps=1e-5)),
    # OLMo 2's block with windows of 4 tokens on every other layer
    "olmo3": ("Olmo3Config", dict(SMALL, sliding_window=4, layer_types=ALTERNATING)),
    # layer 1 has no RoPE (NoPE); tied embeddings
    "smollm3": ("SmolLM3Config", dict(SMALL, no_rope_layers=[1, 0, 1, 1])),
    # sliding windows of 4, and logits softcapped at 2: not lm_head(h), so it trains with the plain loss
    "gemma3": ("Gemma3TextConfig", dict(SMALL, head_dim=8, sliding_window=4, layer_types=ALTERNATING,
                                        final_logit_softcapping=2.0, query_pre_attn_scalar=16)),
    # gated-delta-rule linear attention on layers 0 and 2, full attention on 1 and 3
    "qwen3_5": ("Qwen3_5TextConfig", dict(SMALL, head_dim=8, linear_num_key_heads=2, linear_num_value_heads=2,
                                          linear_key_head_dim=8, linear_value_head_dim=8,
                                          layer_types=["linear_attention", "full_attention"] * 2)),
}
X = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(1))
Y = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(2))


def write_tokenizer(folder):
    """A word-level tokenizer of the model's 96 ids: '<unk>', '<eos>', then w0..w93."""
    vocab = {"<unk>": 0, "<eos>": 1, **{f"w{i}": i + 2 for i in range(VOCAB - 2)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                             "eos_token": "<eos>", "unk_token": "<unk>"}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """family -> the folder of a tiny random model of it with its tokenizer, built on first use."""
    root, built = tmp_path_factory.mktemp("hf"), {}

    def folder(family):
        if family not in built:
            built[family] = root / family
            write_model(built[family], *FAMILIES[family])
        return built[family]
    return folder


def write_model(path, config_class, args):
    """A tiny random model of the transformers config class with args, and the word-level tokenizer."""
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(getattr(transformers, config_class)(**args)).save_pretrained(path)
    write_tokenizer(path)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, folders):
    """data_root/toy: random tokens of the models' vocabulary, read by the OLMo 2 folder's tokenizer."""
    root = tmp_path_factory.mktemp("data")
    (root / "toy").mkdir()
    for split, seed in (("train", 1), ("val", 2)):
        np.random.default_rng(seed).integers(0, VOCAB, 4000).astype(np.uint16).tofile(root / "toy" / f"{split}.bin")
    (root / "toy" / "meta.json").write_text(json.dumps({"tokenizer": str(folders("olmo2")), "vocab_size": VOCAB,
                                                        "dtype": "uint16", "eot_token": 1}))
    return root


def own(folder):
    """transformers' own model of the folder, without the adapter."""
    return transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


def adapter(folder):
    return load_model(str(folder), "cpu", "transformers")[0].eval()


def inherited(folder, layers, **options):
    """inherit.py's checkpoint dict of the folder's model with inherit_layers=layers."""
    model, info = load_model(str(folder), "cpu", "transformers")
    return inherit.inherit(model, info, TrainConfig(inherit_layers=layers, **options))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_fused_and_plain_loss_and_gradients_match_transformers(folders, family):
    model = adapter(folders(family))
    with torch.no_grad():
        expected = own(folders(family))(input_ids=X).logits
        assert torch.allclose(model(X, Y)[0], expected, atol=1e-5)
    # softcapped logits are not lm_head(h): that model takes the plain loss on its own logits even when asked to fuse
    assert model.plain_logits == (family != "gemma3")
    ce = nn.functional.cross_entropy(expected.view(-1, VOCAB), Y.view(-1))
    grads = []
    for fused in (True, False):
        model.zero_grad()
        _, loss, terms = model(X, Y, loss_spec=LossSpec(fused=fused))
        loss.backward()
        assert loss.item() == pytest.approx(ce.item(), abs=1e-5) and terms["ce"].item() == pytest.approx(loss.item())
        grads.append([p.grad.clone() for p in model.parameters()])
    for fused_grad, plain_grad in zip(*grads):
        assert torch.allclose(fused_grad, plain_grad, atol=1e-6)


def test_a_softcapped_teacher_is_one_line_error(folders):
    # the KD term computes the teacher's logits as final_hidden @ lm_head.weight.T, which a softcap would change
    import train
    teacher = adapter(folders("gemma3"))
    with pytest.raises(SystemExit) as e:
        train.check_teacher(teacher, None, adapter(folders("olmo2")), {"tokenizer": "gpt2"}, "gemma3")
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value) and "Gemma3ForCausalLM" in str(e.value)


def test_a_logit_scale_is_found_without_naming_the_family(tmp_path):
    # Granite divides its logits by logits_scaling: the load-time comparison finds it, as it does Gemma's softcap
    write_model(tmp_path / "granite", "GraniteConfig", dict(SMALL, num_hidden_layers=2, logits_scaling=4.0))
    assert not adapter(tmp_path / "granite").plain_logits


@pytest.mark.parametrize("family", list(FAMILIES))
def test_first_k_blocks_are_transformers_model_with_its_layer_list_cut(folders, family, tmp_path):
    ckpt = inherited(folders(family), 2)
    config = ckpt["model_args"]["hf_config"]
    assert config["num_hidden_layers"] == 2
    for key in ("layer_types", "no_rope_layers"):  # every per-layer list, cut with the layers
        if key in FAMILIES[family][1]:
            assert config[key] == FAMILIES[family][1][key][:2]
    save_checkpoint(ckpt, tmp_path / "ckpt.pt")
    model = load_model(str(tmp_path / "ckpt.pt"))[0].eval()  # a checkpoint of transformers' names and config
    reference = own(folders(family))
    reference.model.layers = reference.model.layers[:2]
    with torch.no_grad():
        assert torch.allclose(model.logits(X), reference(input_ids=X, use_cache=False).logits, atol=1e-5)
    assert ckpt["inherit"]["params_fresh"] == 0 and ckpt["inherit"]["layers"] == [0, 1]


def test_stacked_blocks_and_block_parts(folders):
    # a deeper target repeats blocks (sliding and full alike, by their types); parts keep attention + norms only
    folder = folders("olmo3")
    stacked = model_from_checkpoint(inherited(folder, "0-1,0-1,3"), "stacked").eval()
    assert stacked.config.hf_config["layer_types"] == ALTERNATING[:2] * 2 + ALTERNATING[3:]
    reference = own(folder)  # its forward picks each layer's mask by position from the config: set by hand
    reference.model.layers = nn.ModuleList([reference.model.layers[i] for i in (0, 1, 0, 1, 3)])
    reference.config.num_hidden_layers, reference.config.layer_types = 5, [ALTERNATING[i] for i in (0, 1, 0, 1, 3)]
    with torch.no_grad():
        assert torch.allclose(stacked.logits(X), reference(input_ids=X, use_cache=False).logits, atol=1e-5)
    ckpt = inherited(folder, 2, inherit_block_parts="attn,ln")
    source = adapter(folder).state_dict()
    kept = [k for k in ckpt["model"] if torch.equal(ckpt["model"][k], source[k])]
    assert any(".self_attn." in k for k in kept) and any("layernorm" in k for k in kept)
    assert not any(".mlp." in k for k in kept)
    assert ckpt["inherit"]["reinitialized"] == ["blocks.mlp"]


def test_half_width_of_a_transformers_model_is_one_line_error(folders):
    with pytest.raises(SystemExit) as e:
        inherited(folders("olmo2"), 2, inherit_n_head=2)
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value) and "Olmo2ForCausalLM" in str(e.value)


def test_a_folder_that_lacks_a_weight_is_one_line_error(folders, tmp_path):
    # transformers would initialize the missing weight at random; model_path='auto' must not pass that off as the model
    from safetensors.torch import load_file, save_file
    folder = tmp_path / "broken"
    write_model(folder, *FAMILIES["olmo2"])
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(SystemExit, match=r"^error: .* lacks 1 weight.*model.layers.1.mlp.up_proj.weight\)$"):
        load_model(str(folder), "cpu", "auto")


def test_what_has_no_decoder_layer_list_is_one_line_error(tmp_path):
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=VOCAB, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
    transformers.T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    with pytest.raises(SystemExit) as e:
        load_model(str(tmp_path / "t5"), "cpu", "transformers")
    assert str(e.value).startswith("error: ") and "\n" not in str(e.value), str(e.value)


def test_probe_on_the_inherited_model(folders, data_root, tmp_path):
    # the probe reads an inherited Qwen3.5: one linear-attention layer (no maps: NaN) and one full-attention layer
    save_checkpoint(inherited(folders("qwen3_5"), 2), tmp_path / "ckpt.pt")
    model = load_model(str(tmp_path / "ckpt.pt"))[0]
    tokens = np.fromfile(data_root / "toy" / "val.bin", dtype=np.uint16)
    settings = attention_probe.ProbeConfig(num_seqs=4, seq_len=T, batch_size=4, sink_seqs=4)
    ranks = attention_probe.Measurements(model, tokens, settings, "cpu", progress=False).metrics(["max_rank"])
    per_layer = ranks["max_rank"]["per_layer"]
    assert len(per_layer) == 2 and np.isnan(per_layer[0]) and per_layer[1] >= 1


def test_export_reloads_in_transformers_with_equal_logits_and_the_tokenizer(folders, tmp_path):
    folder = folders("smollm3")
    save_checkpoint(inherited(folder, [0, 1, 1]), tmp_path / "ckpt.pt")
    export_hf.export(str(tmp_path / "ckpt.pt"), str(tmp_path / "export"))
    model = load_model(str(tmp_path / "ckpt.pt"))[0].eval()
    reloaded = own(tmp_path / "export")
    assert reloaded.config.num_hidden_layers == 3 and reloaded.config.no_rope_layers == [1, 0, 0]
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=X).logits, model.logits(X), atol=1e-6)
    tok, source_tok = (transformers.AutoTokenizer.from_pretrained(d) for d in (tmp_path / "export", folder))
    assert tok("w0 w7 w93")["input_ids"] == source_tok("w0 w7 w93")["input_ids"] == [2, 9, 95]


def test_train_inherit_kd_and_exact_resume(folders, data_root, tmp_path):
    # 2 of OLMo 2's 4 layers, distilled from the whole model, killed after step 6 and resumed: bit for bit the same
    from test_train import interrupt_and_resume
    folder = folders("olmo2")
    args = ["--dataset=toy", "--model_path=transformers", f"--init_from={folder}", "--inherit_layers=2",
            f"--teacher={folder}", "--max_iters=12", "--eval_interval=3", "--block_size=16"]
    full, killed, resumed = interrupt_and_resume(data_root, tmp_path, args)
    assert resumed["model_args"]["architecture"] == "Olmo2ForCausalLM" and resumed["model_args"]["n_layer"] == 2
    assert "model.layers.1.self_attn.q_proj.weight" in resumed["model"]
    assert [m.get("kd") for m in killed] == [m.get("kd") for m in full] and full[1]["kd"] > 0


def test_grow_rounds_from_a_transformers_reference(folders, data_root, tmp_path):
    # Algorithm 1 on OLMo 3 (an unreachable target): rounds of 3 and 4 layers, each config cut from the reference's
    run_script("grow.py", f"--reference={folders('olmo3')}", "--dataset=toy", f"--data_root={data_root}",
               f"--out_dir={tmp_path}", "--reference_val_loss=0.5", "--start_layers=3", "--step_layers=1", "--block_size=16",
               "--batch_size=2", "--gradient_accumulation_steps=1", "--max_iters=2", "--lr_decay_iters=2",
               "--eval_interval=2", "--eval_iters=1", "--device=cpu", "--compile=False")
    rounds = json.loads((tmp_path / "grow.json").read_text())["rounds"]
    assert [r["n_layer"] for r in rounds] == [3, 4]
    args = torch.load(tmp_path / "round_3" / "ckpt.pt", weights_only=True)["model_args"]
    assert args["hf_config"]["layer_types"] == ALTERNATING[:3] and args["architecture"] == "Olmo3ForCausalLM"


def test_ddp_and_fsdp_match_one_process(folders, data_root, tmp_path):
    """DDP, and FSDP2 sharded per decoder layer on a model built on the meta device from the memory-mapped folder
    (RoPE's tables computed again after to_empty, the logits checked once filled), against one process; the FSDP
    run's consolidated checkpoint holds transformers' names and one process's weights."""
    from test_fsdp import assert_same_weights, torchrun
    from test_train import ddp_matches_one_process, metrics, tiny
    args = ["--dataset=toy", "--model_path=transformers", f"--init_from={folders('olmo3')}", "--block_size=16",
            "--max_iters=4", "--eval_interval=4", "--dtype=float32", "--log_interval=100", "--log_seconds=1e-9"]
    single = ddp_matches_one_process(data_root, tmp_path, args)[0]
    run_script(*torchrun(2), *tiny(data_root, tmp_path / "fsdp", *args, "--parallelism=fsdp"))
    fsdp = metrics(tmp_path / "fsdp")
    assert [m.get("loss") for m in single] == pytest.approx([m.get("loss") for m in fsdp], abs=1e-5)
    assert "model.layers.1.self_attn.q_proj.weight" in torch.load(tmp_path / "fsdp" / "ckpt.pt", weights_only=True)["model"]
    assert_same_weights(tmp_path / "single", tmp_path / "fsdp")


def test_fsdp_kill_and_resume_is_bit_identical(folders, data_root, tmp_path):
    """A SIGKILLed FSDP run of a transformers model resumes bit for bit from its sharded checkpoint, which holds
    transformers' names."""
    from test_fsdp import torchrun
    from test_train import interrupt_and_resume
    args = ["--dataset=toy", "--model_path=transformers", f"--init_from={folders('olmo2')}", "--block_size=16",
            "--max_iters=12", "--eval_interval=3", "--dtype=float32", "--parallelism=fsdp"]
    resumed = interrupt_and_resume(data_root, tmp_path, args, launch=torchrun(2))[2]
    assert "model.layers.1.self_attn.q_proj.weight" in resumed["optimizer"]["state"]


@pytest.mark.parametrize("model_path", ["gpt", "transformers"])
def test_fsdp_inheriting_from_a_llama_folder_matches_one_process(data_root, tmp_path, model_path):
    """Blocks 0 and 2 of a Llama folder, their MLPs fresh, under FSDP, built on the meta device from the
    memory-mapped safetensors: as model.py's GPT (q, k and v concatenated one tensor at a time, fresh tensors made
    one at a time) or through transformers (its names; the fresh tensors of a target built whole, as transformers
    initialises), against one process; the provenance is one process's."""
    from test_fsdp import assert_same_weights, torchrun
    from test_train import final_state, metrics, tiny
    write_model(tmp_path / "llama", "LlamaConfig", SMALL)
    args = ["--dataset=toy", f"--model_path={model_path}", f"--init_from={tmp_path / 'llama'}", "--inherit_layers=0,2",
            "--inherit_block_parts=attn,ln", "--block_size=16", "--max_iters=3", "--eval_interval=3", "--dtype=float32", "--log_interval=100",
            "--log_seconds=1e-9"]
    run_script(*tiny(data_root, tmp_path / "single", *args))
    run_script(*torchrun(2), *tiny(data_root, tmp_path / "fsdp", *args, "--parallelism=fsdp"))
    single, fsdp = metrics(tmp_path / "single"), metrics(tmp_path / "fsdp")
    assert [m.get("loss") for m in single] == pytest.approx([m.get("loss") for m in fsdp], abs=1e-5)
    assert_same_weights(tmp_path / "single", tmp_path / "fsdp")
    assert final_state(tmp_path / "single")["inherit"] == final_state(tmp_path / "fsdp")["inherit"]


def test_compiled_loss_and_gradients_equal_eager(folders):
    model = adapter(folders("olmo2")).train()
    results = []
    for forward in (model, torch.compile(model)):
        model.zero_grad()
        loss = forward(X, Y, loss_spec=LossSpec())[1]
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    assert torch.allclose(compiled_loss, eager_loss, atol=1e-5)
    assert all(torch.allclose(c, e, atol=1e-5) for c, e in zip(compiled_grads, eager_grads))


def test_optimizer_groups_counts_and_generate(folders):
    model = adapter(folders("smollm3"))  # tied: the embedding is lm_head's weight
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu", decay_embeddings=False)
    decayed, plain = ({id(p) for p in g["params"]} for g in optimizer.param_groups)
    assert id(model.wte.weight) in plain and all(p.dim() >= 2 for p in model.parameters() if id(p) in decayed)
    assert all(id(p) in decayed for n, p in model.hf.named_parameters() if n.endswith("proj.weight"))
    assert model.get_num_params() == sum(p.numel() for p in model.parameters())  # tied: the table is lm_head
    assert model.flops_per_token() > 6 * model.get_num_params()
    model.crop_block_size(T)
    assert model.generate(X[:, :4], 3).shape == (2, 7)


def test_training_bytes_counts_weights_grads_and_adamw_on_the_meta_device():
    config = transformers.Olmo2Config(**SMALL).to_dict()
    n = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_config(transformers.Olmo2Config(**SMALL)).parameters())
    assert hf_adapter.training_bytes(config) == {"params": n, "weights": 4 * n, "grads": 4 * n, "adamw": 8 * n, "total": 16 * n}

"""Training, inheriting and exporting today's decoder families through transformers (hf_adapter.py): tiny random
OLMo 2, OLMo 3 (sliding windows shorter than the test sequences), SmolLM3 (a NoPE layer), Gemma 3 (a final logit
softcap), Qwen3.5 (linear-attention layers) and Gemma 4 (per-layer embeddings, shared keys and values), each with options away from its defaults. Logits against
transformers' own model, inheritance against transformers' model with its layer list cut, fused against plain loss,
KD, exact resume, DDP and FSDP (built on the meta device, killed and resumed), inheriting from a Llama folder under
FSDP, torch.compile, the probe on an inherited model, and export reloaded by transformers."""
import json
import os
import subprocess
import sys
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn as nn

import attention_probe
import export_hf
import hf_adapter
import inherit
from checkpoint import load_model, model_from_checkpoint, save_checkpoint
from common import tensor_of
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
    # per-layer embeddings packed outside the layer list, layer-major; full-attention layers with a head size and KV
    # heads of their own (per_layer_config) whose keys are the values; layer 3 reuses layer 1's keys and values
    "gemma4": ("Gemma4TextConfig", dict(SMALL, head_dim=8, sliding_window=4, layer_types=ALTERNATING,
                                        vocab_size_per_layer_input=VOCAB, hidden_size_per_layer_input=8,
                                        global_head_dim=16, num_global_key_value_heads=1, attention_k_eq_v=True,
                                        num_kv_shared_layers=1)),
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
    """A tiny random model of the transformers config class with args, and the word-level tokenizer. Buffers the
    checkpoint holds (Gemma 4's layer_scalar, 1 at init) are set away from their init, as training leaves them."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(getattr(transformers, config_class)(**args))
    saved = model.state_dict()
    for name, buffer in model.named_buffers():
        if name in saved:
            buffer.uniform_(0.5, 1.5)
    model.save_pretrained(path)
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


def test_a_softcapped_teacher_distils_its_own_logits(folders):
    # Gemma 3 teaching a 2-layer Gemma 3: KD reads the teacher's softcapped logits (not final_hidden @ lm_head.T) and
    # the step takes the plain loss; both terms against float64 by hand
    import train
    teacher, student = adapter(folders("gemma3")), inherited(folders("gemma3"), 2)
    student = model_from_checkpoint(student, "gemma3 student").train()
    train.check_teacher(teacher, None, student, {"tokenizer": "gpt2"}, "gemma3")
    with torch.no_grad():
        teacher.final_norm.weight += 30.0  # logits of a few units, where the softcap at 2 bends them
        t = teacher.hf(input_ids=X).logits.double().view(-1, VOCAB) / 2.0
        s = student.logits(X).double().view(-1, VOCAB) / 2.0
    kd = 4.0 * (t.softmax(-1) * (t.log_softmax(-1) - s.log_softmax(-1))).sum(-1).mean()
    ce = nn.functional.cross_entropy(s.view(-1, VOCAB) * 2.0, Y.view(-1))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)
    loss, terms = train.train_step(student, optimizer, torch.amp.GradScaler(enabled=False), nullcontext(), [(X, Y)], 0.0,
                                   loss_spec=LossSpec(kd_alpha=0.25, kd_temperature=2.0), teacher=teacher)
    assert terms["kd"].item() == pytest.approx(kd.item(), rel=1e-5) and terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.75 * ce.item() + 0.25 * kd.item(), rel=1e-5)
    with torch.no_grad():  # without the softcap the teacher's distribution differs enough to show
        plain = (teacher.final_hidden(X) @ teacher.lm_head.weight.t()).double().view(-1, VOCAB) / 2.0
    assert abs(4.0 * (plain.softmax(-1) * (plain.log_softmax(-1) - s.log_softmax(-1))).sum(-1).mean() - kd) > 1e-2


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


def cut_gemma4_by_hand(folder, layers, shared):
    """transformers' own Gemma 4 of `layers` of the folder's model, without inherit.py: its config written from the
    family's arguments, the per-layer embeddings' and their projection's chunks (8 per layer, layer-major) taken by
    hand, `shared` trailing layers reusing keys and values."""
    args = FAMILIES["gemma4"][1]
    config = transformers.Gemma4TextConfig(**dict(args, num_hidden_layers=len(layers), num_kv_shared_layers=shared,
                                                  layer_types=[ALTERNATING[i] for i in layers]))
    source = own(folder).state_dict()
    weights = {k: v for k, v in source.items() if not k.startswith("model.layers.")}
    for i, s in enumerate(layers):
        weights.update({k.replace(f"layers.{s}.", f"layers.{i}.", 1): v for k, v in source.items()
                        if k.startswith(f"model.layers.{s}.")})
    weights["model.embed_tokens_per_layer.weight"] = source["model.embed_tokens_per_layer.weight"].view(VOCAB, 4, 8)[:, layers].reshape(VOCAB, -1)
    weights["model.per_layer_model_projection.weight"] = source["model.per_layer_model_projection.weight"].view(4, 8, 32)[layers].reshape(-1, 32)
    reference = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    reference.load_state_dict(weights, strict=True)
    return reference


@pytest.mark.parametrize("layers, shared", [([0, 1], 0), ([2, 1], 0), ([0, 2, 1, 3], 1), ([1, 2, 1, 3], 1)])
def test_gemma4_inherits_per_layer_embeddings_and_shared_keys_as_cut_by_hand(folders, layers, shared):
    # any layer list: the packed per-layer embeddings gather the kept layers' chunks, per_layer_config's head sizes
    # and num_kv_shared_layers follow the layers (layer 3 keeps reading layer 1, the last full layer before it)
    ckpt = inherited(folders("gemma4"), layers)
    reference = cut_gemma4_by_hand(folders("gemma4"), layers, shared)
    assert ckpt["model_args"]["hf_config"]["num_kv_shared_layers"] == shared and ckpt["inherit"]["params_fresh"] == 0
    for name, weight in reference.state_dict().items():  # buffers too: each layer's layer_scalar
        assert torch.equal(ckpt["model"][name], weight), name
    model = model_from_checkpoint(ckpt, "gemma4").eval()
    with torch.no_grad():
        assert torch.allclose(model.logits(X), reference(input_ids=X).logits, atol=1e-5)
    # FSDP's start: the source on the meta device, its weights memory-mapped, the same tensors made one at a time
    source, info = load_model(str(folders("gemma4")), "cpu", "transformers", meta=True)
    assert info["weights"] is not None and all(p.is_meta for p in source.parameters())
    _, weights, _ = inherit.inherited_weights(source, info, TrainConfig(inherit_layers=layers))
    assert set(ckpt["model"]) - set(weights) == {"lm_head.weight"}  # tied: made once, as the embedding
    assert all(torch.equal(tensor_of(weights[name]), ckpt["model"][name]) for name in weights)


@pytest.mark.parametrize("layers, words", [([0, 3], "num_kv_shared_layers=1: source layer 3 reuses the keys and values of layer 1"),
                                           ([3, 1], "num_kv_shared_layers=1: source layers >= 3 reuse"),
                                           ([1, 2], "Gemma4ForCausalLM rewrites layer_types")])
def test_gemma4_layers_it_cannot_cut_exactly_are_one_line_errors(folders, layers, words):
    # layer 3 without the layer it reads, or before others; a sliding layer last (transformers makes it full)
    with pytest.raises(SystemExit) as e:
        inherited(folders("gemma4"), layers)
    assert str(e.value).startswith(f"error: {words}") and "\n" not in str(e.value), str(e.value)


def test_gemma4_block_parts(folders):
    # a fresh final norm keeps everything else, the layers' per-layer gates included; dropping a block part needs
    # a group for each of a layer's children, which its layer_scalar and per-layer gates have not: a one-line error
    ckpt = inherited(folders("gemma4"), [2, 1], inherit_ln_f=False)
    reference = cut_gemma4_by_hand(folders("gemma4"), [2, 1], 0).state_dict()
    assert ckpt["inherit"]["reinitialized"] == ["ln_f"]
    assert all(torch.equal(ckpt["model"][k], reference[k]) for k in reference if k != "model.norm.weight")
    with pytest.raises(SystemExit, match=r"^error: Gemma4ForCausalLM's decoder layer has a part 'layer_scalar'.*=all$"):
        inherited(folders("gemma4"), 2, inherit_block_parts="attn,ln")


def test_gemma4_trains_and_exports_after_inheriting(folders, tmp_path):
    # 3 of 4 layers (the last one sharing keys and values): a few AdamW steps move the per-layer embeddings too, and
    # transformers reloads the export with the same logits
    ckpt = inherited(folders("gemma4"), [0, 1, 3])
    model = model_from_checkpoint(ckpt, "gemma4").train()
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = model(X, Y, loss_spec=LossSpec())[1]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(model.hf.model.embed_tokens_per_layer.weight, ckpt["model"]["model.embed_tokens_per_layer.weight"])
    ckpt["model"] = model.state_dict()
    save_checkpoint(ckpt, tmp_path / "ckpt.pt")
    export_hf.export(str(tmp_path / "ckpt.pt"), str(tmp_path / "export"))
    reloaded = own(tmp_path / "export")
    assert reloaded.config.num_hidden_layers == 3 and reloaded.config.num_kv_shared_layers == 1
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=X).logits, model.eval().logits(X), atol=1e-6)


def test_half_width_or_placed_blocks_of_a_transformers_model_is_one_line_error(folders):
    with pytest.raises(SystemExit) as e:
        inherited(folders("olmo2"), 2, inherit_n_head=2)
    assert str(e.value) == ("error: a narrower warm start slices model.py's blocks (heads, q/k/v, MLP units); Olmo2ForCausalLM "
                            "runs through transformers, whose layers are inherited by depth only: leave inherit_n_head and "
                            "inherit_n_embd unset")
    with pytest.raises(SystemExit) as e:
        inherited(folders("olmo2"), 2, inherit_place="1=0")
    assert str(e.value) == ("error: inherit_place leaves positions fresh, which a model run through transformers "
                            "(Olmo2ForCausalLM) cannot be built with here; place blocks of a model.py source, or list them "
                            "with inherit_layers")


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


@pytest.mark.parametrize("family, keys", [("smollm3", [T] * 4), ("olmo3", [4, T, 4, T]), ("qwen3_5", [0, T, 0, T])])
def test_flops_count_the_keys_each_layer_attends(folders, family, keys):
    # PaLM's 6N + 12 x heads x head size x keys per layer: full attention over the block, a sliding window over its
    # window of 4, linear attention over none
    model = adapter(folders(family))
    model.crop_block_size(T)
    heads, head_size = model.config.n_head, model.config.head_size
    assert model.flops_per_token() == 6 * model.get_num_params() + 12 * heads * head_size * sum(keys)
    assert model.flops_per_token(backward=False) * 3 == model.flops_per_token()


def test_training_bytes_counts_weights_grads_and_adamw_on_the_meta_device():
    config = transformers.Olmo2Config(**SMALL).to_dict()
    n = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_config(transformers.Olmo2Config(**SMALL)).parameters())
    assert hf_adapter.training_bytes(config) == {"params": n, "weights": 4 * n, "grads": 4 * n, "adamw": 8 * n, "total": 16 * n}

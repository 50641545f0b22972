# Inheritune on a small Qwen3.5 (hybrid: 3 of every 4 layers gated-delta-rule linear attention, the 4th full
# attention): the first half of its layers, layer_types cut with them, through transformers (hf_adapter.py).
# inherit_layers is half of the folder's num_hidden_layers (its text_config's): check it after the download.
# Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_qwen35_0p8b_half.py
exec(open('config/hf/half_depth_fineweb_edu.py').read())
out_dir = 'out/inherit_qwen35_0p8b_half'
wandb_run_name = 'qwen35-0.8b-half-inheritune'
init_from = 'models/Qwen3.5-0.8B-Base'
inherit_layers = 12
dataset = 'fineweb_edu_Qwen3.5-0.8B-Base'  # prepare_fineweb_edu.py --tokenizer=models/Qwen3.5-0.8B-Base

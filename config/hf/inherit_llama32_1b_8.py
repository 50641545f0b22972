# Inheritune on Llama-3.2-1B: its first 8 of 16 layers (GQA 32/8 heads, tied embedding, llama3 RoPE scaling) with the
# embedding and final norm, retrained on FineWeb-edu in Llama 3's own tokens. model_path='auto': model.py once it has
# llama3 RoPE scaling, transformers (hf_adapter.py) until then. Commands and memory: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_llama32_1b_8.py
out_dir = 'out/inherit_llama32_1b_8'
wandb_project = 'inheritune-hf'
wandb_run_name = 'llama32-1b-8L-inheritune'
init_from = 'models/Llama-3.2-1B'
model_path = 'auto'
inherit_layers = 8
dataset = 'fineweb_edu_Llama-3.2-1B'  # prepare_fineweb_edu.py --tokenizer=models/Llama-3.2-1B

block_size = 2048
batch_size = 8  # per GPU: with 8 accumulation steps in total, 64 sequences of 2048 tokens, 131K tokens a step
gradient_accumulation_steps = 8  # in total over all ranks
max_iters = 15000  # ~2B tokens
lr_decay_iters = 15000
learning_rate = 3e-4
min_lr = 3e-5
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
eval_interval = 1000
eval_windows = 512

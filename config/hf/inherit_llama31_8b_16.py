# Inheritune on Llama-3.1-8B: its first 16 of 32 layers (untied lm_head, llama3 RoPE scaling), retrained on
# FineWeb-edu in Llama 3's tokens. The comparison to make is NVIDIA's depth-pruned Llama-3.1-Minitron-4B-Depth-Base
# (also 16 of the 8B's 32 layers, then distilled from the 8B); --teacher=models/Llama-3.1-8B distils here too.
# 4.5B parameters train in ~68 GiB per GPU before activations (train_memory.py): H200s, or H100s with batch_size=1.
# Commands: docs/other_models.md#todays-checkpoints-the-transformers-path
#   torchrun --standalone --nproc_per_node=8 train.py config/hf/inherit_llama31_8b_16.py
exec(open('config/hf/half_depth_fineweb_edu.py').read())
out_dir = 'out/inherit_llama31_8b_16'
wandb_run_name = 'llama31-8b-16L-inheritune'
init_from = 'models/Llama-3.1-8B'
inherit_layers = 16
dataset = 'fineweb_edu_Llama-3.1-8B'  # prepare_fineweb_edu.py --tokenizer=models/Llama-3.1-8B
batch_size = 2  # per GPU: with 32 accumulation steps in total, 64 sequences of 2048 tokens, 131K tokens a step
gradient_accumulation_steps = 32  # in total over all ranks
learning_rate = 1e-4
min_lr = 1e-5

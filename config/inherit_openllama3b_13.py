# The paper's OpenLLaMA experiment (PAPER.md §5; v1 of the paper, Appendix B of v2): the first 13 of OpenLLaMA-3B v1's
# 26 layers, with its embedding, final norm and untied lm_head (the paper's algorithm; the authors' lit-gpt script
# copies only the blocks and lm_head), retrained on the 1B-token RedPajama sample, 8 epochs. Hyperparameters as the
# paper reports them (64K steps of 64 x 2048 tokens, lr 3e-4, 1K warmup, cosine, AdamW, weight decay 0.1); the released
# script differs (16K-token batches, weight decay 0.01, betas (0.9, 0.999), constant lr after warmup). Not reported,
# so ours: beta2 0.95 and min_lr = lr / 10. Commands (download, tokenizer.json, data, run, zero-shot):
# docs/other_models.md#openllama-3b-13-layers-the-papers-experiment
#   torchrun --standalone --nproc_per_node=8 train.py config/inherit_openllama3b_13.py
out_dir = 'out/inherit_openllama3b_13'
wandb_project = 'inheritune-llama'
wandb_run_name = 'openllama3b-13L-inheritune'
init_from = 'models/open_llama_3b'  # the HF folder (hf:openlm-research/open_llama_3b reads it from the hub instead)
inherit_layers = 13
dataset = 'redpajama_sample_open_llama_3b'  # prepare_openwebtext.py --files=... --tokenizer=models/open_llama_3b

block_size = 2048
batch_size = 4  # per GPU: 4 x 16 accumulation steps = 64 sequences of 2048 tokens, 131K tokens a step
gradient_accumulation_steps = 16  # in total over all ranks
max_iters = 64000
lr_decay_iters = 64000
learning_rate = 3e-4
min_lr = 3e-5
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
eval_interval = 2000
eval_windows = 512  # fixed val windows of 2048 tokens

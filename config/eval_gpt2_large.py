# Loss of OpenAI's gpt2-large on the fixed OpenWebText val windows (nanoGPT measured about 2.66 on its random windows).
# python train.py config/eval_gpt2_large.py
batch_size = 8
eval_iters = 500  # 500 * 8 = 4,000 fixed windows of 1024 tokens
eval_only = True
wandb_log = False
dataset = 'openwebtext'
init_from = 'gpt2-large'

# GPT-2 medium family on FineWeb-edu (PAPER.md §4 zero-shot rows): the 24-layer reference, trained from scratch with
# the medium recipe (zero-shot average 47.74). python prepare_fineweb_edu.py first.
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2m_24_fineweb.py
exec(open('config/train_gpt2m_24.py').read())
out_dir = 'out/gpt2m_24_fineweb'
wandb_run_name = 'gpt2m-24L-fineweb-reference'
dataset = 'fineweb_edu'

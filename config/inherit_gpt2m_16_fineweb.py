# Inheritune on FineWeb-edu, medium family: 16 of the 24-layer FineWeb-edu reference's layers (PAPER.md §4 zero-shot
# average 48.08, against 47.74 for the reference and 46.84 for 16 layers from random init). Zero-shot afterwards:
#   python export_hf.py --ckpt=out/inherit_gpt2m_16_fineweb --out_dir=out/hf_gpt2m_16_fineweb
#   lm_eval --model hf --model_args pretrained=out/hf_gpt2m_16_fineweb,tokenizer=gpt2 --tasks arc_easy,piqa,sciq,hellaswag,lambada_openai
exec(open('config/train_gpt2m_24_fineweb.py').read())
out_dir = 'out/inherit_gpt2m_16_fineweb'
wandb_run_name = 'gpt2m-16L-fineweb-inheritune'
init_from = 'out/gpt2m_24_fineweb/ckpt.pt'
inherit_layers = 16

# Inheritune on FineWeb-edu: 16 of the 32-layer large-dagger reference's layers.
# Evaluate zero-shot afterwards: python export_hf.py --ckpt=out/inherit_gpt2l_dagger_16 --out_dir=out/hf_dagger_16
# then lm_eval --model hf --model_args pretrained=out/hf_dagger_16 --tasks arc_easy,piqa,sciq,hellaswag,lambada_openai
exec(open('config/train_gpt2l_dagger_32.py').read())
out_dir = 'out/inherit_gpt2l_dagger_16'
wandb_run_name = 'gpt2l-dagger-16L-inheritune'
init_from = 'out/gpt2l_dagger_32/ckpt.pt'
inherit_layers = 16

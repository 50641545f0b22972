# Row 5: Inheritune at exactly L/2: blocks 0-3 (and embeddings, ln_f) of the reference, then the reference's T steps
# with a fresh optimizer. Each seed inherits from the reference trained with the same seed.
exec(open('config/shakespeare_char_ref.py').read())
out_dir = 'out/shakespeare_char/inherit_4_s1337'
init_from = 'out/shakespeare_char/ref_8_s1337/ckpt.pt'
inherit_layers = 4

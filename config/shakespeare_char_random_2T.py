# Row 3: half depth from random init for 2T steps, equal total compute with Inheritune (the reference's T plus the
# small model's T), with the schedule stretched over the 2T steps.
exec(open('config/shakespeare_char_ref.py').read())
out_dir = 'out/shakespeare_char/random_4_2T_s1337'
n_layer = 4
max_iters = 6000
lr_decay_iters = 6000

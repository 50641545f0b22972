# Row 2: half depth (4 layers) from random init, the reference's T steps and schedule.
exec(open('config/shakespeare_char_ref.py').read())
out_dir = 'out/shakespeare_char/random_4_s1337'
n_layer = 4

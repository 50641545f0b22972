# Same-depth baseline for the CPU reproduction: 6 layers from random init, the same steps and tokens as a grow round.
exec(open('config/shakespeare_ref.py').read())
out_dir = 'out/shakespeare/random_6'
n_layer = 6

"""Settings for torch's CPU thread pool that must be in the environment before torch is imported (libgomp, the OpenMP
runtime of torch's CPU wheels, reads them once, when torch loads it). Every script imports this module first.

GOMP_SPINCOUNT: how long a thread of the pool that has finished its share of an op spins, waiting for the next op,
before it sleeps. libgomp's default (300,000 spins) suits a machine that runs nothing else; on a laptop or shared box
the spinning threads take turns from the thread they wait for, and every op of a step waits for its slowest thread.
1,000 (libgomp's own value when it knows the cores are oversubscribed) measured, on the 2-vCPU EPYC of docs/speed.md,
6/6/384 float32 at the same quiet speed (3,170 against 3,249 ms/iter) and 1.15x faster beside one busy process
(5,750 against 6,606), 1.33x beside two (6,646 against 8,815). A value already in the environment is kept.
"""
import os

SPINCOUNT_FROM_USER = "GOMP_SPINCOUNT" in os.environ  # bench_nanogpt.py runs nanoGPT with libgomp's default otherwise
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

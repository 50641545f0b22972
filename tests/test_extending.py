"""The README's "Extending" examples, from outside the modules as a fork's own file would: a new setting, a new loss
term and a new warm start, trained with end to end."""
import json
from dataclasses import dataclass

import torch

import inherit
import losses
import results
import train
from checkpoint import load_checkpoint
from configurator import configure
from test_train import TINY, write_teacher


@dataclass
class ForkConfig(train.TrainConfig):
    z_loss: float = 0.0  # weight of the z-loss, mean logsumexp(logits)^2 (PaLM); 0: off
    inherit_noise: float = 0.0  # std of Gaussian noise added to every inherited tensor; 0: off


def z_loss(logits, targets, spec):
    return logits.logsumexp(-1) ** 2


def add_noise(plan, cfg):
    """Perturb every inherited tensor by N(0, inherit_noise^2), seeded by cfg.seed."""
    if cfg.inherit_noise:
        generator = torch.Generator().manual_seed(cfg.seed)
        plan.tensors = {k: v + cfg.inherit_noise * torch.randn(v.shape, generator=generator) for k, v in plan.tensors.items()}
        plan.record['noise'] = cfg.inherit_noise


def test_a_setting_a_loss_term_and_a_warm_start_from_outside(shakespeare_root, tmp_path, monkeypatch):
    monkeypatch.setitem(losses.TERMS, 'z', losses.Term(z_loss, lambda spec: spec.settings.z_loss or None))
    monkeypatch.setitem(inherit.WARM_STARTS, 'noise', inherit.WarmStart(
        add_noise, lambda p: f", noise {p['noise']}" if p.get('noise') else ''))
    reference = write_teacher(tmp_path / 'ref.pt')  # a 3-layer, 48-wide checkpoint
    out_dir = tmp_path / 'run'
    args = [*TINY[:1], *TINY[4:], f'--data_root={shakespeare_root}', f'--out_dir={out_dir}', f'--init_from={reference}',
            '--inherit_layers=2', '--inherit_noise=0.01', '--z_loss=1e-3', '--fused_loss=False', '--dtype=float32',
            '--max_iters=3', '--eval_interval=3']
    cfg = configure(ForkConfig, args)
    assert (cfg.z_loss, cfg.inherit_noise) == (1e-3, 0.01)

    model, _, provenance, _ = train.build_model(cfg, 50257, 'cpu')  # the warm start train() will train
    ref = load_checkpoint(reference)['model']
    diff = model.state_dict()['transformer.h.1.attn.c_attn.weight'] - ref['transformer.h.1.attn.c_attn.weight']
    assert 0.008 < diff.std().item() < 0.012  # the noise, on the inherited block
    assert provenance['noise'] == 0.01 and provenance['warm_starts'] == ['layers', 'place', 'parts', 'width', 'noise']

    train.train(cfg)
    logged = [json.loads(line) for line in open(out_dir / 'metrics.jsonl') if '"loss"' in line]
    assert len(logged) == 3 and all(0 < m['z'] and 0 < m['ce'] < m['loss'] for m in logged)
    for m in logged:  # the loss is the weighted sum of the terms it logs
        assert abs(m['loss'] - (m['ce'] + 1e-3 * m['z'])) < 1e-4 * m['loss']
    ckpt = load_checkpoint(out_dir)
    assert ckpt['config']['z_loss'] == 1e-3 and ckpt['inherit']['noise'] == 0.01
    assert results.describe_init(ckpt) == 'inherited blocks 0-1 of ref.pt (3L), noise 0.01'

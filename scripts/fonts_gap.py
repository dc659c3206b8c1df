"""Measure what keeps FONTS blind spots ~0.1 RMSE away from their targets.

Builds a pool of FONTS test glyphs that both FONTS CNNs (``fonts_cnn``, ``fonts_cnn_at``)
classify correctly with confidence > 0.6 (``--sources`` of them, class-balanced), pairs
each source glyph (class c) with the pool glyph of class c+1 (mod 10), runs LST
(``blindspots_nb.lst.Traversal``, the paper's hyperparameters) with eps = 2e-3 and
eps = 0 on both models, plus two counterfactual controls, and prints three tables
(d = target - x is the gap, g_t the gradient of cross_entropy(model(x), y) at x_t):

1. Outcome: RMSE to the target; ||d_t|| / ||d_0|| at t = T/4, T/2, T beside (1 - eta)^t,
   the decay if every step were accepted and removed the fraction eta of the whole gap;
   acceptance rate over the run and over its last 100 iterations; confidence minus the
   initial confidence at the end.
2. Where the final gap lies: share of ||d_T||^2 along g_T (the one direction the
   projected step never moves in); cos(g_t, g_t-1) over accepted steps of the last 100
   iterations (how slowly the gradient turns); pixels where the parallel accumulator
   sits at +-eps ("sat"), the share of ||d||^2 on them, |d| and |d_perp| there (the old
   explanation predicts eps/eta); pixels clipped at 0/1 away from their target value
   and the share of ||d||^2 on them.
3. Budget of ||d||^2 over the second half of the run, in units of ||d_0||^2, split
   exactly by the parts of the accepted updates: orthogonal pull 2<d, -eta d_perp>,
   parallel push 2<d, x_par> (and the part of it from saturated pixels), clipping, and
   the second-order term ||step||^2; rejected steps contribute nothing.

Controls (``--no-controls`` drops them):
  ``eps=0,delta=1``   no parallel part and no acceptance test (every step accepted):
                      the bare projected walk;
  ``eps=2e-3,reset``  the parallel part set to zero before every step (not accumulated).

Everything is deterministic given ``--seed`` (it seeds the glyph draw and LST's
initial noise). Example::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/fonts_gap.py --sources 30 --seed 0
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from blindspots_nb.protocol.pool import next_class_pairs
from blindspots_nb.lst import LSTConfig, Traversal, forward_backward, orthogonal_step, per_sample_dot
from blindspots_nb.models import load_model
from blindspots_nb.data.sources import open_source

MODELS = ("fonts_cnn", "fonts_cnn_at")


def gradient(traversal):
    """The gradient of cross_entropy at the traversal's current point, as LST takes it."""
    return forward_backward(traversal.model, traversal.images, traversal.labels, traversal.execution)[1]


def build_pairs(models, n_sources, seed):
    """Sources (first n of a class-balanced pool) and targets of the next class."""
    dataset = open_source("fonts:test", models[0], seed=seed)
    try:
        pool, order, targets = next_class_pairs(models, dataset, n_sources)
    except ValueError as error:
        raise SystemExit(str(error))
    src, tgt = pool.images[order], pool.images[targets]
    return src, pool.labels[order], tgt, pool.labels[targets]


def measure(model, sources, labels, targets, target_labels, config, reset_parallel=False):
    """Run one traversal step by step and measure; returns per-sample tensors and pooled values."""
    tr = Traversal(model, sources, labels, targets, config, target_labels=target_labels)
    n, T, eta, eps = sources.shape[0], config.iterations, config.step_size, config.eps
    half = T // 2
    g = gradient(tr)
    budget = {k: torch.zeros(n) for k in ("orth", "par", "par_sat", "clip", "quad")}
    cos_late, accepted, recon_err = [], [], 0.0
    for i in range(T):
        x = tr.images
        d = tr.targets - x
        if reset_parallel:
            tr.parallel = torch.zeros_like(tr.parallel)
        tr.step(1)
        acc = tr.history.accepted[-1].to(x.device)
        accepted.append(acc.cpu())
        par = tr.parallel
        orth = eta * orthogonal_step(g, d)
        raw = x + orth - par
        cand = raw.clamp(0, 1)
        clip = cand - raw
        new = torch.where(acc.view(-1, 1, 1, 1), cand, x)
        recon_err = max(recon_err, float((new - tr.images).abs().max()))
        g_new = gradient(tr)
        if i >= half:
            # ||d'||^2 - ||d||^2 = 2<d, -orth> + 2<d, par> + 2<d, -clip> + ||d' - d||^2, accepted steps only
            step = -orth + par - clip
            sat = (par.abs() >= eps * (1 - 1e-6)) if eps > 0 else torch.zeros_like(par, dtype=torch.bool)
            zero = torch.zeros(())
            budget["orth"] += torch.where(acc, -2 * per_sample_dot(d, orth), zero).cpu()
            budget["par"] += torch.where(acc, 2 * per_sample_dot(d, par), zero).cpu()
            budget["par_sat"] += torch.where(acc, 2 * per_sample_dot(d, par * sat), zero).cpu()
            budget["clip"] += torch.where(acc, -2 * per_sample_dot(d, clip), zero).cpu()
            budget["quad"] += torch.where(acc, per_sample_dot(step, step), zero).cpu()
            if i >= T - 100:
                cos = F.cosine_similarity(g_new.flatten(1), g.flatten(1)).cpu()
                cos_late.append(cos[acc.cpu()])
        g = g_new

    x, tgt = tr.images, tr.targets
    d = (tgt - x).flatten(1)
    gf = g.flatten(1)
    dist = torch.stack(tr.history.distance)            # (T+1, n)
    acc = torch.stack(accepted).float()                # (T, n)
    dsq = d.pow(2)
    par = tr.parallel.flatten(1)
    sat = (par.abs() >= eps * (1 - 1e-6)) if eps > 0 else torch.zeros_like(par, dtype=torch.bool)
    xf, tf = x.flatten(1), tgt.flatten(1)
    clipped = ((xf == 0) | (xf == 1)) & ((xf - tf).abs() > 1e-6)
    d0sq = dist[0].pow(2)
    return {
        "rmse": dsq.mean(1).sqrt(),
        "ratio": {t: dist[t] / dist[0] for t in (T // 4, T // 2, T)},
        "acc_all": acc.mean(0),
        "acc_late": acc[-100:].mean(0),
        "conf_drop": tr.confidence.cpu() - tr.initial_confidence.cpu(),
        "along_g": per_sample_dot(d, gf).pow(2) / (per_sample_dot(gf, gf) * dsq.sum(1)),
        "cos_late": torch.cat(cos_late) if cos_late else torch.empty(0),
        "sat_frac": sat.float().mean(1),
        "sat_share": (dsq * sat).sum(1) / dsq.sum(1),
        "sat_gap": d.abs()[sat],
        "sat_gap_perp": orthogonal_step(g, tgt - x).flatten(1).abs()[sat],
        "clip_frac": clipped.float().mean(1),
        "clip_share": (dsq * clipped).sum(1) / dsq.sum(1),
        "budget": {k: v / d0sq for k, v in budget.items()},
        "net": (dist[T].pow(2) - dist[half].pow(2)) / d0sq,
        "recon_err": recon_err,
    }


def fmt(v, digits=3):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=10, help="number of source glyphs (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="glyph draw and LST initial-noise seed")
    ap.add_argument("--iterations", type=int, default=LSTConfig().iterations)
    ap.add_argument("--no-controls", action="store_true", help="only eps=2e-3 and eps=0")
    args = ap.parse_args(argv)
    if args.sources < 1 or args.iterations < 2:
        ap.error("need --sources >= 1 and --iterations >= 2")

    torch.manual_seed(args.seed)
    models = [load_model(name, device="cpu") for name in MODELS]
    sources, labels, targets, target_labels = build_pairs(models, args.sources, args.seed)
    base = LSTConfig(iterations=args.iterations, record_every=1, seed=args.seed)
    variants = [("eps=2e-3", dict(), False), ("eps=0", dict(eps=0.0), False)]
    if not args.no_controls:
        variants += [("eps=0,delta=1", dict(eps=0.0, delta=1.0), False),
                     ("eps=2e-3,reset", dict(), True)]
    eta, T = base.step_size, base.iterations
    print(f"{len(sources)} sources (classes {labels.tolist()}), targets of classes "
          f"{target_labels.tolist()}; seed {args.seed}; eta {eta}, T {T}, delta {base.delta}, "
          f"eps {base.eps}, a {base.init_noise:.4g}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")

    results, started = [], time.time()
    for model in models:
        for name, change, reset in variants:
            cfg = LSTConfig(**{**base.to_dict(), **change})
            results.append((model.info.get("name", "?"), name,
                            measure(model, sources, labels, targets, target_labels, cfg, reset)))
    elapsed = time.time() - started

    med = lambda v: float(v.median()) if v.numel() else float("nan")
    ts = sorted(results[0][2]["ratio"])
    print("\n1. Outcome (medians over sources; RMSE also as mean)")
    head = (f"{'model':<13}{'variant':<16}{'RMSE med':>9}{'RMSE mean':>10}"
            + "".join(f"{f'gap t={t}':>11}" for t in ts)
            + f"{'acc all':>8}{f'acc last{min(100, T)}':>12}{'conf-init':>10}")
    print(head)
    print(f"{'':<13}{'(1-eta)^t':<16}{'':>9}{'':>10}" + "".join(f"{(1 - eta) ** t:>11.3f}" for t in ts))
    for model, name, r in results:
        print(f"{model:<13}{name:<16}{fmt(med(r['rmse'])):>9}{fmt(float(r['rmse'].mean())):>10}"
              + "".join(f"{fmt(med(r['ratio'][t])):>11}" for t in ts)
              + f"{fmt(med(r['acc_all'])):>8}{fmt(med(r['acc_late'])):>12}{fmt(med(r['conf_drop'])):>10}")

    print(f"\n2. Where the final gap d = target - x lies (medians over sources; |d| on saturated "
          f"pixels pooled; eps/eta = {base.eps / eta:.2f})")
    print(f"{'model':<13}{'variant':<16}{'along g_T':>10}{'cos(g_t,g_t-1)':>15}{'sat px':>8}{'(mean)':>7}"
          f"{'d^2 on sat':>11}{'|d| on sat':>11}{'|d_perp| sat':>13}{'clip px':>8}{'d^2 on clip':>12}")
    for model, name, r in results:
        print(f"{model:<13}{name:<16}{fmt(med(r['along_g'])):>10}{fmt(med(r['cos_late'])):>15}"
              f"{fmt(med(r['sat_frac'])):>8}{fmt(float(r['sat_frac'].mean())):>7}{fmt(med(r['sat_share'])):>11}{fmt(med(r['sat_gap'])):>11}"
              f"{fmt(med(r['sat_gap_perp'])):>13}"
              f"{fmt(med(r['clip_frac'])):>8}{fmt(med(r['clip_share'])):>12}")

    print(f"\n3. Budget of ||d||^2 over iterations {T // 2}-{T}, in units of ||d_0||^2 (means over "
          "sources; net = orth + par + clip + quad)")
    print(f"{'model':<13}{'variant':<16}{'net':>8}{'orth pull':>10}{'par push':>9}{'(sat px)':>9}"
          f"{'clip':>8}{'quad':>8}")
    for model, name, r in results:
        b = r["budget"]
        print(f"{model:<13}{name:<16}{fmt(float(r['net'].mean()), 4):>8}{fmt(float(b['orth'].mean()), 4):>10}"
              f"{fmt(float(b['par'].mean()), 4):>9}{fmt(float(b['par_sat'].mean()), 4):>9}"
              f"{fmt(float(b['clip'].mean()), 4):>8}{fmt(float(b['quad'].mean()), 4):>8}")
    worst = max(r["recon_err"] for _, _, r in results)
    print(f"\nre-derived update vs Traversal: max |difference| {worst:.2e}; {elapsed:.1f} s for "
          f"{len(results)} traversals (with one extra gradient per iteration)")


if __name__ == "__main__":
    main()

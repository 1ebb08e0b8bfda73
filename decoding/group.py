"""Group statistics over a study's participants: is decoding above chance across people?

Each participant contributes an honest weighted F1 (out-of-fold) and a permutation null of the
same statistic. At the group level:

- the mean difference from chance (F1 minus the mean of the participant's null), with a 95 %
  t confidence interval;
- a sign-flip permutation test of that mean (exact for up to 16 participants): under the null
  each participant's difference is as likely negative as positive;
- a summed-null test: the group mean F1 against the distribution of means of one draw from
  each participant's own null (Monte Carlo), which needs no symmetry assumption;
- the fraction of participants whose own p is at most 0.05.

Pure numpy and scipy; nothing here reads or writes files.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class GroupResult:
    """One decoder across participants."""

    decoder: str
    n: int
    mean_f1: float
    mean_chance: float
    mean_difference: float
    ci95: tuple[float, float]
    p_sign_flip: float
    sign_flip_exact: bool
    p_summed_null: float | None
    n_summed_null: int
    fraction_above_chance: float | None  # participants with their own p <= 0.05
    leaky_mean_f1: float | None  # the paper's protocol, for comparison only (LEAKY)

    def to_dict(self) -> dict:
        return asdict(self)


def sign_flip_p(diffs: np.ndarray, n_random: int = 100_000, seed: int = 0) -> tuple[float, bool]:
    """One-sided p of mean(diffs) > 0 under random sign flips; exact when 2**n is small."""
    d = np.asarray(diffs, float)
    n = len(d)
    observed = d.mean()
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = (signs * d).mean(axis=1)
        return float(np.mean(means >= observed - 1e-12)), True
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_random, n))
    means = (signs * d).mean(axis=1)
    return float((1 + np.sum(means >= observed - 1e-12)) / (n_random + 1)), False


def summed_null_p(
    f1: np.ndarray, nulls: list[np.ndarray], n_draws: int = 100_000, seed: int = 0
) -> float | None:
    """p of the group mean F1 against means of one draw from each participant's null.

    As in each participant's own permutation p, the observed value counts as one member of
    their null, so p is never below what the nulls' sizes can resolve."""
    if any(len(x) == 0 for x in nulls):
        return None
    rng = np.random.default_rng(seed)
    pools = [np.append(np.asarray(x, float), v) for x, v in zip(nulls, f1)]
    draws = np.stack([rng.choice(pool, size=n_draws) for pool in pools])
    means = draws.mean(axis=0)
    return float((1 + np.sum(means >= np.mean(f1) - 1e-12)) / (n_draws + 1))


def group_result(decoder: str, participants: dict[str, dict]) -> GroupResult | None:
    """The group figures of ``decoder`` over the participants that have it (``summary.json``'s
    ``participants`` entries); ``None`` when fewer than two have an honest figure."""
    from scipy import stats

    rows = [
        r["decoders"][decoder]
        for r in participants.values()
        if r.get("status") == "ok" and decoder in r.get("decoders", {})
    ]
    rows = [m for m in rows if m.get("f1_weighted") is not None]
    if len(rows) < 2:
        return None
    f1 = np.array([m["f1_weighted"] for m in rows], float)
    nulls = [np.asarray(m.get("null_f1_weighted") or [], float) for m in rows]
    chance = np.array([x.mean() if len(x) else np.nan for x in nulls])
    have_chance = np.isfinite(chance)
    diffs = (f1 - chance)[have_chance]
    n = len(diffs)
    if n >= 2:
        sem = diffs.std(ddof=1) / np.sqrt(n)
        t = stats.t.ppf(0.975, n - 1)
        ci = (float(diffs.mean() - t * sem), float(diffs.mean() + t * sem))
        p_flip, exact = sign_flip_p(diffs)
    else:
        ci, p_flip, exact = (float("nan"), float("nan")), float("nan"), False
    pvals = [m.get("p_value") for m in rows]
    known = [p for p in pvals if p is not None]
    leaky = [m["leaky_f1_weighted"] for m in rows if m.get("leaky_f1_weighted") is not None]
    return GroupResult(
        decoder=decoder,
        n=len(rows),
        mean_f1=float(f1.mean()),
        mean_chance=float(np.nanmean(chance)) if have_chance.any() else float("nan"),
        mean_difference=float(diffs.mean()) if n else float("nan"),
        ci95=ci,
        p_sign_flip=p_flip,
        sign_flip_exact=exact,
        p_summed_null=summed_null_p(f1, nulls),
        n_summed_null=100_000,
        fraction_above_chance=(float(np.mean([p <= 0.05 for p in known])) if known else None),
        leaky_mean_f1=float(np.mean(leaky)) if leaky else None,
    )

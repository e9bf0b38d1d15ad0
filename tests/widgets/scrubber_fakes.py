"""A hand-made ``TrainingHistory`` whose every number is known: for the scrubber's tests."""

from __future__ import annotations

import torch

from kit.train.history import TrainingHistory

STEPS = [0, 10, 20, 30, 40, 50]
L, H, T = 2, 3, 3


def fake_history(tokens: list[str] | None = None, steps: list[int] = STEPS) -> TrainingHistory:
    """Head L1H2's induction score jumps from 0.05 to 0.9 between steps 20 and 30; L0H1 is a previous-token
    head from step 10 on; the loss on the repeated copy falls at the same time. Each snapshot's pattern of
    head (l, h) puts weight ``(1 + snapshot) / 10`` on the first key of every query (the rest on the query
    itself), so a test can read back which snapshot and head are shown."""
    n = 1 + 2 * T
    tokens = tokens or ["<|bos|>", "ba", "be", "bi", "ba", "be", "bi"]
    assert len(tokens) == n
    prev, ind, pats = [], [], []
    for i, _ in enumerate(steps):
        p = torch.full((L, H), 0.1)
        p[0, 1] = 0.2 if i == 0 else 0.85
        q = torch.full((L, H), 0.05)
        q[1, 2] = 0.05 if i < 3 else 0.9
        prev.append(p)
        ind.append(q)
        w = (1 + i) / 10
        pat = torch.zeros(L, H, n, n)
        for l in range(L):
            for h in range(H):
                pat[l, h] = torch.eye(n) * (1 - w)
                pat[l, h, :, 0] += w
                pat[l, h, 0, 0] = 1.0
        pats.append(pat.half())
    rep = [4.0, 3.9, 3.8, 0.8, 0.6, 0.5][: len(steps)]
    return TrainingHistory(
        steps=list(steps), loss_plain=[4.2] * len(steps), loss_repeated=rep, prev_token=prev, induction=ind,
        patterns=pats, probe_ids=list(range(n)), probe_tokens=tokens, probe_half_len=T,
        meta={"model": "fake-2l", "n_layers": L, "n_heads": H, "every": 10}, finished=True,
    )

"""Direct logit attribution refuses what it cannot attribute exactly, with messages naming what it needs.

Written from the mutants of ``kit/analysis/attribution.py`` that survived ``python
benchmarks/mutation.py --group attribution``: the function's name dropped from a refusal, ``mlp_post``
no longer required for ``neurons=True``, an activation left out of the NaN check. The older tests
matched one word of each message ("Trace", "missing", "NaN") and poisoned ``resid_post`` only.
"""

from __future__ import annotations

import re

import pytest
import torch

import kit.analysis as A
from tests.fixtures_teeth import PROMPT

NEED = "['head_out', 'mlp_out', 'mlp_post', 'resid_post', 'resid_pre']"


@pytest.fixture()
def m(teeth):
    return teeth["gpt2"]


def test_a_model_instead_of_a_trace_is_refused_naming_the_function(m):
    message = ("direct_logit_attribution takes a Trace from model.trace(...); got Model "
               "(this is a model: trace a prompt first, tr = model.trace(prompt))")
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        A.direct_logit_attribution(m, 5)


def test_neurons_need_mlp_post_and_attribution_without_them_does_not(m):
    names = ["resid_pre", "resid_post", "z", "head_out", "mlp_out"]
    tr = m.trace(PROMPT, capture=names)
    message = f"direct_logit_attribution needs a trace of every layer with {NEED}; missing ['mlp_post']"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        A.direct_logit_attribution(tr, 5)
    att = A.direct_logit_attribution(tr, 5, neurons=False)
    assert att.neurons is None
    full = A.direct_logit_attribution(m.trace(PROMPT, capture=names + ["mlp_post"]), 5)
    torch.testing.assert_close(att.heads, full.heads, atol=0, rtol=0)
    torch.testing.assert_close(att.mlps, full.mlps, atol=0, rtol=0)


def test_a_trace_of_some_layers_only_is_refused(m):
    tr = m.trace(PROMPT, layers=[0, 2])
    message = f"direct_logit_attribution needs a trace of every layer with {NEED}; missing []"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        A.direct_logit_attribution(tr, 5)


@pytest.mark.parametrize("name", ["resid_pre", "resid_post", "z", "mlp_out", "mlp_post"])
def test_a_nan_in_any_attributed_activation_is_refused_naming_it(m, name):
    tr = m.trace(PROMPT)
    bad = tr._store[(name, 1)].clone()
    bad.view(-1)[7] = float("nan")
    tr._store[(name, 1)] = bad
    with pytest.raises(ValueError, match=rf"^direct_logit_attribution: the trace's '{name}' at layer 1 holds NaN"):
        A.direct_logit_attribution(tr, 5)

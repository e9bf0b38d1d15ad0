# Solutions to the exercises of lesson 05 (find a circuit), with the names the exercise cells use.
# In the lesson: `%load solutions/05_find_a_circuit.py`.
import torch


# Exercise 5.1: the last position, then each prompt's own answer and subject
def logit_diff(logits, io, s):
    """diff[batch]: logits[b, -1, io[b]] - logits[b, -1, s[b]]."""
    rows = torch.arange(logits.shape[0])
    last = logits[:, -1]  # [batch, vocab]
    return last[rows, io] - last[rows, s]


# Exercises 5.2 and 5.3 are about the student's own prompts and receiver (the lesson's `my_batch` and
# `receiver`; without a student id, the lesson's 32 prompts and L2H2)
import kit  # noqa: E402
from kit.analysis import path_patching  # noqa: E402
from kit.lessons.circuit import exercise_batch, exercise_receiver, patching_by_head  # noqa: E402

_model = kit.load("ioi-3l", device="cpu")
_batch = exercise_batch(_model)
_receiver = exercise_receiver(_model, _batch)

# Exercise 5.2: the brightest cell of the patching grid (L1H1 on the lesson's own prompts; a student's prompts may give another head)
_grid = patching_by_head(_model, _batch)  # [layer, head]
top_head = divmod(int(_grid.argmax()), _model.n_heads)

# Exercise 5.3: the most negative path effect into the receiver
(sender, _effect), = path_patching(_model, *_batch.args(), receivers=[_receiver], receiver_pos=-1).top(1)

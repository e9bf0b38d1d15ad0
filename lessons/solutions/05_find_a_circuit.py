# Solutions to the exercises of lesson 05 (find a circuit), with the names the exercise cells use.
# In the lesson: `%load solutions/05_find_a_circuit.py`.
import torch


# Exercise 5.1: the last position, then each prompt's own answer and subject
def logit_diff(logits, io, s):
    """diff[batch]: logits[b, -1, io[b]] - logits[b, -1, s[b]]."""
    rows = torch.arange(logits.shape[0])
    last = logits[:, -1]  # [batch, vocab]
    return last[rows, io] - last[rows, s]


# Exercise 5.2: the brightest cell of the patching grid
top_head = (1, 1)

# Exercise 5.3: the most negative path effect into L2H2
sender = (1, 1)

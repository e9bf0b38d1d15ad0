# Solutions of lesson 03 (factual recall). Load into the notebook with `%load solutions/03_factual_recall.py`
# after the cells that define `model`, `facts`, `facts_2`, `ex` and `ex_trace` (the student's own instances;
# without a student id, all of `facts`, the lesson's first fact and its residual trace).
import torch

import kit


# Exercise 1: the subject's tokens are those whose character span overlaps the subject's.
def subject_tokens(prompt: str, subject: str) -> list[int]:
    start = prompt.index(subject)
    end = start + len(subject)
    spans = model.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(spans) if b > a and a < end and b > start]


# Exercise 2: mean attention from each prompt's last token to its subject, per layer and head.
def mover_head(facts) -> str:
    tr = model.trace([f.text for f in facts], capture=["pattern"])
    total = torch.zeros(model.n_layers, model.n_heads)
    for b, f in enumerate(facts):
        last, subj = tr.lengths[b] - 1, subject_tokens(f.text, f.subject)
        for layer in range(model.n_layers):
            total[layer] += tr["pattern", layer][b, :, last, subj].sum(-1)
    i = int(total.argmax())
    return f"L{i // model.n_heads}H{i % model.n_heads}"


answer_2 = mover_head(facts_2)


# Exercise 3: the argmax of the residual trace over the subject's columns only.
def subject_peak(ct) -> tuple[int, int]:
    sub = ct.scores[:, ct.subject]  # [layer, subject position]
    i = int(sub.argmax())
    return i // sub.shape[1], ct.subject[i % sub.shape[1]]


answer_3 = subject_peak(ex_trace)


# Exercise 4: p(answer) before minus after blocking the last token's attention to the subject.
def knockout_drop(prompt: str, subject: str, answer: str) -> float:
    a = model.tokenizer(answer, add_special_tokens=False)["input_ids"][0]
    subj = subject_tokens(prompt, subject)
    before = model.trace(prompt, capture=[]).logits[0, -1].softmax(-1)[a]
    blocked = kit.Knockout(layer=list(range(model.n_layers)), query=-1, key=subj)
    after = model.trace(prompt, capture=[], interventions=[blocked]).logits[0, -1].softmax(-1)[a]
    return float(before - after)


answer_4 = knockout_drop(ex.text, ex.subject, ex.answer)

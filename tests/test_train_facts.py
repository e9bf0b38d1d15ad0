"""The facts-4l data pipeline: tokenizer, packed training sequences, and the accuracy measure."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kit.train.facts import FactsRecipe, FactsTask, answer_accuracy, facts_tokenizer


@pytest.fixture(scope="module")
def world():
    return FactsRecipe().world()


@pytest.fixture(scope="module")
def tok(world):
    r = FactsRecipe()
    return facts_tokenizer(world, r.vocab_size, r.n_ctx)


def test_tokenizer_makes_answers_single_tokens_and_subjects_longer(world, tok):
    assert all(len(tok(" " + f.answer, add_special_tokens=False)["input_ids"]) == 1 for f in world.facts)
    subjects = {f.subject for f in world.facts}
    multi = sum(len(tok(" " + s, add_special_tokens=False)["input_ids"]) > 1 for s in subjects)
    assert multi / len(subjects) >= 0.5
    text = world.prompts("held_out")[0].sentence
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_packed_sequences_mark_every_answer(world, tok):
    task = FactsTask(world.prompts("train"), tok, n_ctx=64, max_sentences=3)
    b = task.batch(64, torch.Generator().manual_seed(0))
    answers = {tok(" " + f.answer, add_special_tokens=False)["input_ids"][0] for f in world.facts}
    n_sentences = []
    for row in range(64):
        n = int(b.attention_mask[row].sum())
        ids = b.input_ids[row, :n].tolist()
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and n <= 64
        assert (b.input_ids[row, n:] == tok.pad_token_id).all()
        marked = b.groups["answer"][row].nonzero().flatten().tolist()
        assert all(ids[p] in answers for p in marked)
        assert all(ids[p + 1] == tok.convert_tokens_to_ids(".") for p in marked)  # each answer ends its sentence
        n_sentences.append(len(marked))
        assert not b.loss_mask[row, 0] and b.loss_mask[row, 1:n].all() and not b.loss_mask[row, n:].any()
    assert set(n_sentences) == {1, 2, 3}


def test_held_out_templates_never_reach_training(world, tok):
    task = FactsTask(world.prompts("train"), tok, n_ctx=64)
    held = {p.text for p in world.prompts("held_out")}
    assert not held & {p.text for p in task.prompts}


class OracleStub(torch.nn.Module):
    """Predicts the right first answer token at the last real position of every prompt whose text is
    in ``known``, and a wrong token everywhere else (so any off-by-one in the gather is caught)."""

    def __init__(self, tok, known: dict[tuple[int, ...], int]):
        super().__init__()
        self.known, self.vocab = known, len(tok)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab)
        logits[..., 5] = 10.0  # a wrong token by default
        for b in range(B):
            n = int(attention_mask[b].sum())
            key = tuple(input_ids[b, :n].tolist())
            if key in self.known:
                logits[b, n - 1, self.known[key]] = 20.0
        return SimpleNamespace(logits=logits)


def test_answer_accuracy_reads_the_last_real_position(world, tok):
    prompts = world.prompts("held_out")[:40]
    known = {}
    for p in prompts[::2]:
        known[tuple(tok(p.text)["input_ids"])] = tok(p.answer, add_special_tokens=False)["input_ids"][0]
    stub = OracleStub(tok, known)
    assert answer_accuracy(stub, tok, prompts, batch_size=16) == pytest.approx(0.5)
    assert answer_accuracy(stub, tok, prompts[::2], batch_size=7) == pytest.approx(1.0)


def test_per_subject_sequences_state_several_relations_of_one_subject(world, tok):
    task = FactsTask(world.prompts("train"), tok, n_ctx=64, per_subject=4)
    rows = task._subject_picks(200, torch.Generator().manual_seed(0))
    for row in rows:
        assert 2 <= len(row) <= 4 and len(set(row)) == len(row)
        assert len({task.prompts[i].subject for i in row}) == 1
        relations = [task.prompts[i].relation for i in row]
        n_own = len({p.relation for p in task.prompts if p.subject == task.prompts[row[0]].subject})
        assert len(set(relations)) == min(len(row), n_own)  # different relations before repeats
    assert {len(r) for r in rows} == {2, 3, 4}
    b = task.batch(8, torch.Generator().manual_seed(0))
    assert (b.groups["answer"].sum(1) >= 2).all()
    with pytest.raises(ValueError, match="per_subject"):
        FactsTask(world.prompts("train"), tok, n_ctx=64, per_subject=1)
    assert "per_subject" not in FactsRecipe().to_dict() and FactsRecipe(per_subject=4).to_dict()["per_subject"] == 4


def test_record_sequences_follow_each_name_with_all_its_answers(world, tok):
    task = FactsTask(world.prompts("train"), tok, n_ctx=64, records=1.0)
    entities = {e["name"]: e for e in world.countries + world.people}
    b = task.batch(64, torch.Generator().manual_seed(0))
    assert not b.groups["answer"].any()  # records have no template answers
    for row in range(64):
        text = tok.decode(b.input_ids[row][b.attention_mask[row].bool()], skip_special_tokens=True)
        for record in text.split("."):
            if not record.strip():
                continue
            name = next(n for n in sorted(entities, key=len, reverse=True) if record.strip().startswith(n))
            answers = record.strip()[len(name):].split()
            expected = [v for k, v in entities[name].items() if k != "name"]
            assert sorted(answers) == sorted(expected), record
    # every order of the answers occurs: the token after a name is any one of its answers
    firsts = {tok.decode(task.record_sequence([0], [order])[len(task.record_names[0][0]) + 1: ][:1])
              for order in ([0, 1, 2, 3], [1, 0, 2, 3], [2, 1, 0, 3], [3, 1, 2, 0])}
    assert len(firsts) == 4


def test_records_fraction_is_validated_and_sets_the_share_of_record_sequences(world, tok):
    with pytest.raises(ValueError, match="records"):
        FactsTask(world.prompts("train"), tok, n_ctx=64, records=1.5)
    mixed = FactsTask(world.prompts("train"), tok, n_ctx=64, records=0.5).batch(256, torch.Generator().manual_seed(3))
    n_records = int((mixed.groups["answer"].sum(1) == 0).sum())
    assert 80 <= n_records <= 176  # about half of 256
    plain = FactsTask(world.prompts("train"), tok, n_ctx=64, records=0.0).batch(64, torch.Generator().manual_seed(3))
    assert (plain.groups["answer"].sum(1) > 0).all()
    assert "records" not in FactsRecipe(records=0.0).to_dict() and FactsRecipe().to_dict()["records"] == 0.5

"""The key-value recall task and its embedded causal LM (captum_attn_shapley.demos.recall, recall_lm).

Ground truth: the prompts are parsed back independently of the generator (split on the separators), the
decisive positions must hold the queried pair and the query, and the trained model must answer held-out
prompts (its greedy next token, and Captum's ``LLMAttribution`` target log-probability of the answer).
"""

import pathlib

import numpy as np
import pytest
import torch

from captum_attn_shapley.demos.recall import (
    NUM_PAIRS,
    RecallPrompts,
    format_prompt,
    prompt_split,
    recall_prompts,
    recall_tokenizer,
    vocabulary,
)


def _parse(prompt: str):
    """The listed pairs and the query key of a prompt, read from its text alone."""
    listed, query = prompt.split(" ; ")
    pairs = [tuple(word.split("=")) for word in listed.split(" ")]
    assert query.endswith("=") and " " not in query
    return pairs, query[:-1]


def test_decisive_positions_hold_the_queried_pair():
    data = recall_prompts(200, seed=3, split="all")
    tokenizer = recall_tokenizer()
    counts = set()
    for i, (prompt, target) in enumerate(zip(data.prompts, data.targets)):
        pairs, query = _parse(prompt)
        counts.add(len(pairs))
        assert len({k for k, _ in pairs}) == len(pairs) and len({v for _, v in pairs}) == len(pairs)
        answer = dict(pairs)[query]
        assert target == " " + answer
        tokens = tokenizer.tokenize(prompt)
        assert tokens == prompt.split(" ")  # one token per word
        pair_at, query_at = data.decisive_positions[i]
        assert tokens[pair_at] == f"{query}={answer}" and tokens[query_at] == f"{query}="
        assert query_at == len(tokens) - 1 and tokens[-2] == ";"
        labels = data.decisive_labels(i)
        assert labels.shape == (len(tokens),) and labels.sum() == 2
        # no other token names the queried key or holds the answer's value
        others = [t for j, t in enumerate(tokens) if not labels[j]]
        assert not any(t.startswith(query + "=") or t.endswith("=" + answer) for t in others)
    assert counts == set(range(NUM_PAIRS[0], NUM_PAIRS[1] + 1))


def test_splits_are_disjoint_and_reproducible():
    test = recall_prompts(300, seed=0, split="test")
    train = recall_prompts(3000, seed=0, split="train")
    assert all(prompt_split(p) == "test" for p in test.prompts)
    assert not set(test.prompts) & set(train.prompts)
    again = recall_prompts(300, seed=0, split="test")
    assert again.prompts == test.prompts and again.decisive_positions == test.decisive_positions
    assert recall_prompts(300, seed=1, split="test").prompts != test.prompts
    # about one prompt in ten is held out
    assert (
        0.05
        < sum(prompt_split(p) == "test" for p in recall_prompts(2000, seed=5, split="all").prompts) / 2000
        < 0.15
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=-1), "`n` must be"),
        (dict(n=1, split="valid"), "`split` must be"),
        (dict(n=1, num_pairs=(0, 3)), "num_pairs"),
        (dict(n=1, num_pairs=(3, 11)), "num_pairs"),
    ],
)
def test_recall_prompts_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        recall_prompts(**kwargs)


def test_tokenizer_round_trip(tmp_path: pathlib.Path):
    from transformers import AutoTokenizer

    tokenizer = recall_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    words = vocabulary()
    assert len(set(words)) == len(words) == len(loaded)
    data = recall_prompts(50, seed=2, split="all")
    for prompt, target in zip(data.prompts, data.targets):
        for tok in (tokenizer, loaded):
            ids = tok.encode(prompt)
            assert ids == [words.index(w) for w in prompt.split()]  # one id per word, no special token
            assert tok.decode(ids) == prompt
            assert tok.encode(target, add_special_tokens=False) == [words.index(target.strip())]
    assert loaded.pad_token_id == 0 and loaded.eos_token == "<eos>"
    assert loaded.encode("a=3 zz") == [words.index("a=3"), loaded.unk_token_id]
    assert format_prompt([("a", "3"), ("k", "7")], "k") == "a=3 k=7 ; k="


def test_decisive_labels_match_positions():
    data = recall_prompts(5, seed=0)
    assert isinstance(data, RecallPrompts) and len(data) == 5
    for i in range(len(data)):
        assert np.flatnonzero(data.decisive_labels(i)).tolist() == list(data.decisive_positions[i])


def test_trained_recall_lm_answers_held_out_prompts(recall_lm):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    model, tokenizer, info = recall_lm
    assert info["accuracy"] > 0.95 and info["test_prompts_unseen"]
    assert model.config._attn_implementation == "sdpa"
    data = recall_prompts(100, seed=11, split="test")
    words = [p.split() for p in data.prompts]
    width = max(len(w) for w in words)
    ids = torch.tensor([[0] * (width - len(w)) + tokenizer.encode(p) for w, p in zip(words, data.prompts)])
    mask = (ids != 0).long()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, do_sample=False)
    answers = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    accuracy = np.mean([a.strip() == t.strip() for a, t in zip(answers, data.targets)])
    assert accuracy > 0.95
    # Captum's LLM interface sees the same model: the answer's probability is high on an answered prompt
    right = next(i for i, (a, t) in enumerate(zip(answers, data.targets)) if a.strip() == t.strip())
    inp = TextTokenInput(data.prompts[right], tokenizer)
    result = LLMAttribution(FeatureAblation(model), tokenizer).attribute(inp, target=data.targets[right])
    assert result.seq_attr.shape == (len(words[right]),)
    assert int(result.seq_attr.argmax()) in data.decisive_positions[right]
    assert float(result.seq_attr[data.pair_positions[right]]) > 1.0  # ablating the pair costs > 1 nat

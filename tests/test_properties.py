"""Property-based tests (hypothesis): the Shapley axioms of the built-in games, the capture's pair sums,
and AttnGradShapley on random batches of tiny models (batched equals per example, efficiency, the model
left as found). Bounded (few examples, tiny models) so the suite stays fast, and derandomized so that CI is
reproducible (``pytest --hypothesis-seed=N`` explores other cases)."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_IDS, VOCAB, zoo_model

import captum_attn_shapley.capture.pair_sums as pair_sums_module
from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.capture.pair_sums import PairSums
from captum_attn_shapley.shapley import exact_shapley, game_function, grand_coalition_value, shapley_values

GAMES = ("cls", "mutual", "max_mutual")
FAST = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
MODEL_RUNS = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def games_on_matrices(draw, max_tokens=7):
    """A float64 matrix (batch 1..3, T tokens) with a player mask and a game."""
    batch = draw(st.integers(1, 3))
    tokens = draw(st.integers(1, max_tokens))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.rand(batch, tokens, tokens, generator=gen, dtype=torch.float64)
    if draw(st.booleans()):  # signed entries (user-built matrices)
        matrix = matrix - 0.5
    players = torch.rand(batch, tokens, generator=gen) < draw(st.floats(0.2, 1.0))
    return matrix, players, draw(st.sampled_from(GAMES))


def enumerated(matrix, players, game):
    """Shapley values by enumerating every coalition of each example's players."""
    phi = torch.zeros(matrix.shape[:2], dtype=torch.float64)
    for b in range(matrix.shape[0]):
        idx = torch.nonzero(players[b]).flatten()
        if idx.numel() == 0:
            continue
        sub = matrix[b][idx][:, idx]
        value = game_function(game, cls_row=matrix[b, 0, idx]) if game == "cls" else game_function(game)
        phi[b, idx] = exact_shapley(value, sub)
    return phi


@FAST
@given(games_on_matrices())
def test_closed_forms_are_the_shapley_values(case):
    matrix, players, game = case
    phi = shapley_values(matrix, players, game)
    assert torch.allclose(phi, enumerated(matrix, players, game), atol=1e-10)
    # efficiency: the values add up to v(N); non-players get exactly zero
    assert torch.allclose(phi.sum(dim=1), grand_coalition_value(matrix, players, game), atol=1e-10)
    assert bool((phi[~players] == 0).all())


@FAST
@given(games_on_matrices(), st.data())
def test_symmetry_and_null_players(case, data):
    matrix, players, game = case
    b = data.draw(st.integers(0, matrix.shape[0] - 1))
    idx = torch.nonzero(players[b]).flatten().tolist()
    if game == "cls":
        idx = [i for i in idx if i != 0]
    if len(idx) < 2:
        return
    i, j = data.draw(st.permutations(idx))[:2]
    # symmetry: make i and j interchangeable (swap their rows and columns: equal rows, columns, diagonals)
    m = matrix.clone()
    if game == "cls":
        m[b, 0, j] = m[b, 0, i]
    else:
        m[b, j, :] = m[b, i, :]
        m[b, :, j] = m[b, :, i]
        m[b, j, j] = m[b, i, i]
        m[b, i, j] = m[b, j, i]
    phi = shapley_values(m, players, game)
    assert torch.isclose(phi[b, i], phi[b, j], atol=1e-10)
    # null player (v(S + i) = v(S) for every S): no weight with anyone; in the pairwise games a pair
    # replaces its members' singleton values, so the diagonal must be zero too
    m = matrix.clone()
    if game == "cls":
        m[b, 0, i] = 0
    else:
        m[b, i, :] = 0
        m[b, :, i] = 0
        m[b].fill_diagonal_(0)
    phi = shapley_values(m, players, game)
    assert abs(float(phi[b, i])) < 1e-10


@FAST
@given(games_on_matrices(), games_on_matrices(), st.floats(-3, 3), st.floats(0, 3))
def test_linearity(first, second, a, c):
    """CLS and Mutual are linear in M; every game is positively homogeneous (Max-Mutual's max is not linear)."""
    m1, players, game = first
    m2 = second[0]
    if m2.shape != m1.shape:
        m2 = torch.rand_like(m1)
    if game != "max_mutual":
        combined = shapley_values(a * m1 + m2, players, game)
        assert torch.allclose(
            combined, a * shapley_values(m1, players, game) + shapley_values(m2, players, game), atol=1e-9
        )
    assert torch.allclose(shapley_values(c * m1, players, game), c * shapley_values(m1, players, game), atol=1e-9)


@FAST
@given(games_on_matrices(max_tokens=12), st.integers(1, 5), st.integers(3, 40))
def test_the_capture_pair_sums_equal_the_matrix_closed_form(case, rows_per_add, block):
    matrix, players, game = case
    if game == "cls":
        game = "max_mutual"
    matrix = matrix.float()
    old_block = pair_sums_module.PAIR_BLOCK
    pair_sums_module.PAIR_BLOCK = block
    try:
        sums = PairSums(game, players)
        batch, tokens = players.shape
        for b in range(batch):
            for start in range(0, tokens, rows_per_add):
                rows = slice(start, min(start + rows_per_add, tokens))
                sums.add(matrix[b : b + 1, rows], rows, slice(b, b + 1))
    finally:
        pair_sums_module.PAIR_BLOCK = old_block
    from captum_attn_shapley.shapley import shapley_values_from_sums

    phi = shapley_values_from_sums(sums.pair_weight_sums(), sums.diagonal, players)
    assert torch.allclose(phi, shapley_values(matrix.double(), players, game), atol=1e-5)


_MODELS = {}


def _model(arch, dtype=torch.float32):
    if (arch, dtype) not in _MODELS:
        _MODELS[arch, dtype] = zoo_model(arch, seed=5).to(dtype)
    return _MODELS[arch, dtype]


@st.composite
def text_batches(draw):
    """Token ids with [CLS] ... [SEP], extra special tokens inside, right or left padding, and a mask."""
    batch = draw(st.integers(1, 3))
    length = draw(st.integers(4, 12))
    left = draw(st.booleans())
    ids = torch.full((batch, length), PAD_ID)
    mask = torch.zeros(batch, length, dtype=torch.long)
    for b in range(batch):
        real = draw(st.integers(3, length))
        words = draw(st.lists(st.integers(5, VOCAB - 1), min_size=real - 2, max_size=real - 2))
        for position in draw(st.lists(st.integers(0, real - 3), max_size=2)):  # special tokens inside
            words[position] = draw(st.sampled_from([MASK_ID, SEP_ID]))
        row = torch.tensor([CLS_ID, *words, SEP_ID])
        span = slice(length - real, length) if left else slice(0, real)
        ids[b, span] = row
        mask[b, span] = 1
    return ids, mask, left


def _state(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        model.training,
        model.config._attn_implementation,
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()),
    )


@MODEL_RUNS
@given(
    text_batches(),
    st.sampled_from(["bert", "gpt2"]),
    st.sampled_from(GAMES),
    st.sampled_from(["attention", "grad_attention"]),
    st.sampled_from([None, [0], [1], [0, 1]]),
    st.sampled_from(["fused", "hooks"]),
    st.booleans(),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_attributions_on_random_batches(batch, arch, game, weighting, layers, engine, user_players, dtype):
    ids, mask, _ = batch
    model = _model(arch, dtype)

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    explainer = AttnGradShapley(
        forward, model=model, game=game, weighting=weighting, special_token_ids=SPECIAL_IDS, engine=engine
    )
    players = None
    if user_players:  # a random subset of the real non-special tokens
        gen = torch.Generator().manual_seed(int(ids.sum()))
        players = (
            (mask == 1)
            & ~torch.isin(ids, torch.tensor(SPECIAL_IDS))
            & (torch.rand(ids.shape, generator=gen) < 0.7)
        )
    before = _state(model)
    phi, delta = explainer.attribute(
        ids, additional_forward_args=(mask,), layers=layers, player_mask=players, return_convergence_delta=True
    )
    after = _state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]
    assert phi.dtype == torch.float32 and bool(torch.isfinite(phi).all())
    assert float(delta.abs().max()) < 1e-5  # efficiency
    assert bool((phi[mask == 0] == 0).all())  # padding is never a player
    for b in range(ids.shape[0]):  # batched equals per example
        alone = explainer.attribute(
            ids[b : b + 1],
            additional_forward_args=(mask[b : b + 1],),
            layers=layers,
            player_mask=None if players is None else players[b : b + 1],
        )
        assert torch.allclose(alone[0], phi[b], atol=1e-5, rtol=1e-4)


def _corrupt(kind, ids, mask):
    """One invalid argument of the catalogue (docs/errors.md) and the error class it documents."""
    kwargs = {}
    if kind == "float_ids":
        ids = ids.float()
    elif kind == "one_dimensional_ids":
        ids, mask = ids[0], mask[0]
    elif kind == "outside_vocabulary":
        ids = ids.clone()
        ids[0, 1] = VOCAB + 7
    elif kind == "mask_length":
        mask = mask[:, :-1]
    elif kind == "mask_values":
        mask = mask * 2
    elif kind == "bool_layers":
        kwargs["layers"] = [True]
    elif kind == "float_player_mask":
        kwargs["player_mask"] = torch.full(ids.shape, 0.5)
    return ids, mask, kwargs, {"bool_layers": TypeError}.get(kind, ValueError)


@FAST
@given(
    text_batches(),
    st.sampled_from(
        ["float_ids", "one_dimensional_ids", "outside_vocabulary", "mask_length", "mask_values", "bool_layers"]
        + ["float_player_mask"]
    ),
    st.sampled_from(GAMES),
    st.sampled_from(["attention", "grad_attention"]),
)
def test_invalid_combinations_raise_the_documented_error_before_any_work(batch, kind, game, weighting):
    ids, mask, _ = batch
    model = _model("bert")
    calls = []

    def forward(input_ids, attention_mask):
        calls.append(1)
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    explainer = AttnGradShapley(
        forward, model=model, game=game, weighting=weighting, special_token_ids=SPECIAL_IDS
    )
    ids, mask, kwargs, error = _corrupt(kind, ids, mask)
    try:
        explainer.attribute(ids, additional_forward_args=(mask,), **kwargs)
    except error as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{kind}: no {error.__name__}")
    named = {
        "float_player_mask": "player_mask",
        "bool_layers": "layers",
        "mask_length": "mask",
        "mask_values": "mask",
    }
    assert named.get(kind, "inputs") in message, message
    assert not calls, "the forward function ran before the error"

"""Zero-cost proxies against hand-computed values on tiny networks, and the ``screen`` stage on the tiny space.

The hand checks use fixed weights small enough to follow on paper (the working
is in each test's comments); the stage tests run the real :class:`ScreenTask`
on a tiny-space graph at 16 px with the embedded Fashion-MNIST images.
"""
from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from gensynth.data import load_dataset
from gensynth.ir import ArchGraph
from gensynth.ir.serialize import to_dict
from gensynth.nn.builder import build_model
from gensynth.search.config import SearchConfig
from gensynth.search.metrics import metric
from gensynth.search.stages import STAGES, make_stages
from gensynth.search.zero_cost import (
    JACOB_COV_K, SCREENED, ZERO_COST, ScreenStage, ScreenTask, fixed_batch, grad_norm, jacob_cov, macs, naswot, params,
    register_zero_cost, snip, synflow,
)
from gensynth.space import load_space
from tiny_space import write_tiny_space

pytestmark = pytest.mark.usefixtures("one_thread")

A = 1 / (1 + math.e**2)  # sigmoid(-2)
B = 1 / (1 + math.e**-2)  # sigmoid(2); A + B = 1


def linear(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


def pointwise_graph() -> ArchGraph:
    """input 3×8×8 → pwconv(4) (conv 1×1, BN, ReLU) → global pool → classifier(10)."""
    g = ArchGraph("pw", 3, 8, 10)
    g.add("input", "input")
    g.add("pw", "pwconv", ["input"], out_channels=4)
    g.add("gp", "global_pool", ["pw"])
    g.add("fc", "classifier", ["gp"], in_channels=4)
    return g


# -- the proxies by hand ----------------------------------------------------------------------------------

def test_synflow_by_hand_with_abs_weights_and_biases_and_batch_norm_bypassed():
    # |W1| = [[1, 2], [3, .5]], |b1| = [1, 1], |W2| = [[1, 2]]; input ones(1, 2); BN bypassed (eval mode would scale by 5)
    # h = |W1|·1 + |b1| = [4, 4.5]; L = |W2|·h = 4 + 9 = 13
    # layer 2: |W2 ⊙ h| = [4, 9] → 13;  layer 1: ∂L/∂W1 = [[1, 1], [2, 2]], |W1| ⊙ that = [[1, 2], [6, 1]] → 10
    # synflow = 13 + 10 = 23, reported as ln 23 (biases and BN weights are not summed)
    norm = nn.BatchNorm1d(2)
    with torch.no_grad():
        norm.weight.fill_(5.0)
    model = nn.Sequential(linear([[1, -2], [3, 0.5]], [-1, 1]), norm, nn.ReLU(), linear([[-1, 2]]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert synflow(model, torch.randn(8, 2), torch.zeros(8, dtype=torch.long)) == pytest.approx(math.log(23), abs=1e-6)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # signs untouched
    assert next(model.parameters()).dtype == torch.float32


def test_snip_and_grad_norm_by_hand():
    # W = [[1, 2], [-1, 0]] then V = I (no biases); x = [[1, 0], [0, 1]], y = [0, 1]; mean cross-entropy
    # logits z1 = [1, -1], z2 = [2, 0]; softmax of both = [B, A]; ∂L/∂z1 = [-A, A]/2, ∂L/∂z2 = [B, -B]/2
    # ∂L/∂W = [∂L/∂z1 | ∂L/∂z2] = [[-A/2, B/2], [A/2, -B/2]]
    # ∂L/∂V = ∂L/∂z1·h1ᵀ + ∂L/∂z2·h2ᵀ with h1 = [1, -1], h2 = [2, 0]: [[B - A/2, A/2], [A/2 - B, -A/2]]
    # snip = (A/2 + B + A/2 + 0) + (B - A/2 + A/2) = 1 + B
    # grad_norm = ‖∂L/∂W‖ + ‖∂L/∂V‖ = √((A² + B²)/2) + √(2(B - A/2)² + A²/2)
    model = nn.Sequential(linear([[1, 2], [-1, 0]]), linear([[1, 0], [0, 1]]))
    x, y = torch.eye(2), torch.tensor([0, 1])
    assert snip(model, x, y) == pytest.approx(1 + B, abs=1e-6)
    expected = math.sqrt((A**2 + B**2) / 2) + math.sqrt(2 * (B - A / 2) ** 2 + A**2 / 2)
    assert grad_norm(model, x, y) == pytest.approx(expected, abs=1e-6)
    assert model[0].weight.grad is None  # gradients are not left on the model


def test_naswot_by_hand_over_a_relu_and_a_silu():
    # pre-activation codes (input > 0; 0 is off): [1,1,0,0], [1,0,1,0], [0,0,0,1]
    # agreements: K = [[4, 2, 1], [2, 4, 1], [1, 1, 4]], det K = 4·15 - 2·7 + 1·(-2) = 44
    # the SiLU sees relu(x): the same codes, so the kernel is 2K and det = 2³·44 = 352
    x = torch.tensor([[2.0, 1, -1, -3], [0.5, -2, 4, -1], [-1, 0, -0.5, 3]]).reshape(3, 1, 2, 2)
    targets = torch.zeros(3, dtype=torch.long)
    assert naswot(nn.Sequential(nn.ReLU()), x, targets) == pytest.approx(math.log(44), abs=1e-6)
    assert naswot(nn.Sequential(nn.ReLU(), nn.SiLU()), x, targets) == pytest.approx(math.log(352), abs=1e-6)
    assert naswot(nn.Sequential(nn.Hardswish()), x, targets) == pytest.approx(math.log(44), abs=1e-6)
    assert naswot(nn.Sequential(nn.ReLU()), x[[0, 0, 1]], targets) == -math.inf  # two equal images: singular kernel


def test_jacob_cov_where_the_jacobian_is_known():
    k = JACOB_COV_K
    # linear: ∂(Σ Wx)/∂x = column sums of W = [1, 3, 3, 0] for every image → correlations all 1 → eigenvalues 3, 0, 0
    model = linear([[1, 2, 0, -1], [0, 1, 3, 1]])
    expected = -(math.log(3 + k) + 1 / (3 + k) + 2 * (math.log(k) + 1 / k))
    assert jacob_cov(model, torch.randn(3, 4), torch.zeros(3, dtype=torch.long)) == pytest.approx(expected, rel=1e-9)

    # x ↦ x²: the Jacobian is 2x; rows [1,-1,0,0], [0,0,1,-1], [1,1,-1,-1] are centred and orthogonal → correlation I
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    x = torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1]])
    assert jacob_cov(Square(), x, torch.zeros(3, dtype=torch.long)) == pytest.approx(-3 * (math.log(1 + k) + 1 / (1 + k)), abs=1e-6)
    # equal column sums: a constant Jacobian row has no correlation
    assert math.isnan(jacob_cov(linear([[1, 1], [1, 1]]), torch.randn(3, 2), torch.zeros(3, dtype=torch.long)))


def test_the_baselines_count_trainable_parameters_and_the_graphs_macs():
    # conv 3·4 = 12, BN 4 + 4, classifier 4·10 + 10 = 50 → 70 parameters; MACs 3·4·8·8 + 4·10 = 808
    graph = pointwise_graph()
    model = build_model(graph)
    x, y = torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
    assert params(model, x, y) == 70
    model.fc[2].bias.requires_grad_(False)
    assert params(model, x, y) == 60
    assert macs(model, x, y, graph) == 808
    with pytest.raises(ValueError, match="needs the graph"):
        macs(model, x, y)


def test_the_registry_holds_every_proxy_and_the_metrics_are_declared():
    assert set(ZERO_COST.names()) == {*SCREENED, "params", "macs"}
    for name in SCREENED:
        declared = metric(f"zc_{name}")
        assert (declared.direction, declared.stage, declared.unit) == ("maximize", "screen", "")


# -- the screen stage -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_space(str(write_tiny_space(tmp_path_factory.mktemp("space"))))


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion-mnist", train_limit=128, val_limit=10, seed=0)


@pytest.fixture
def replaced(request):
    """Replace a registered proxy for one test (``replaced(name, proxy)``), restoring it after."""
    saved = {}

    def replace(name, proxy):
        saved.setdefault(name, ZERO_COST.get(name))
        register_zero_cost(name, proxy, override=True)

    yield replace
    for name, proxy in saved.items():
        register_zero_cost(name, proxy, override=True)


def screen_task(space, genome_seed: int = 0, seed: int = 0) -> ScreenTask:
    stage = STAGES.get("screen")(SearchConfig(seed=seed), space, 1)
    return stage.task(space.to_graph(space.sample(genome_seed)))


def test_the_screen_stage_scores_a_tiny_space_graph(tiny, data):
    stages = make_stages(SearchConfig(stages=["probe", "screen", "train"]), tiny, 1)
    assert isinstance(stages[1], ScreenStage) and stages[1].measures == tuple(f"zc_{n}" for n in SCREENED)
    task = pickle.loads(pickle.dumps(screen_task(tiny)))
    result = task(data)
    assert result.ok, result.reason
    assert set(result.measurements) == set(stages[1].measures)
    assert all(math.isfinite(v) for v in result.measurements.values())
    assert result.timings["screen_s"] > 0


def test_the_same_graph_always_gets_the_same_scores(tiny, data):
    first, again = screen_task(tiny)(data), screen_task(tiny)(data)
    assert first.ok and first.measurements == again.measurements
    reseeded = screen_task(tiny, seed=1)(data)
    assert reseeded.measurements["zc_snip"] != first.measurements["zc_snip"]  # the seed is the initialisation's


def test_the_fixed_batch_is_the_same_every_time_and_mixes_classes(data):
    images, labels = fixed_batch(data, 64, 16, 3, seed=0)
    again, _ = fixed_batch(data, 64, 16, 3, seed=0)
    assert images.shape == (64, 3, 16, 16) and torch.equal(images, again)
    assert len(labels.unique()) > 1


def test_a_broken_graph_fails_the_screen_without_raising(tiny, data):
    task = screen_task(tiny)
    task.graph = {**task.graph, "nodes": [{"name": "x", "op": "no_such_op"}]}
    result = task(data)
    assert not result.ok and result.reason.startswith("crashed:")


def test_a_proxy_that_is_not_finite_or_crashes_fails_the_screen_naming_it(tiny, data, replaced):
    replaced("naswot", lambda model, inputs, targets, graph=None: -math.inf)
    result = screen_task(tiny)(data)
    assert not result.ok and result.reason == "zero-cost proxy naswot is not finite (-inf)"
    assert "zc_naswot" not in result.measurements and "zc_synflow" in result.measurements

    def crash(model, inputs, targets, graph=None):
        raise RuntimeError("boom")

    replaced("jacob_cov", crash)
    result = screen_task(tiny)(data)
    assert not result.ok and "zero-cost proxy jacob_cov crashed: RuntimeError: boom" in result.reason

"""The op and space-family registries: one registration per op (spec, module factory, MAC rule)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gensynth.cost import count_macs, graph_macs
from gensynth.errors import UserError
from gensynth.ir import OPS, ArchGraph, Attr, GraphError, OpSpec, Shape, list_ops, register_op
from gensynth.nn import build_model
from gensynth.space import FAMILIES, list_families, register_family

pytestmark = pytest.mark.usefixtures("one_thread", "scratch_registries")


@pytest.fixture
def scratch_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers is gone after it: the registries are process-wide."""
    for registry in (OPS, FAMILIES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "_origins", dict(registry._origins))


# -- a user op: squeeze-and-excite, declared in one call ----------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def _same_shape(attrs: dict[str, Any], ins: list[Shape], ctx: Any) -> Shape:
    return ins[0]


def _hidden(attrs: dict[str, Any], channels: int) -> int:
    return max(1, channels // attrs["reduction"])


def se_spec(name: str = "squeeze_excite", **parts: Any) -> OpSpec:
    return OpSpec(name, "Squeeze-and-excite channel gate.", {"reduction": Attr(int, 4, minimum=1)}, _same_shape, **parts)


SE_PARTS = {
    "module": lambda a, ins, out: SqueezeExcite(ins[0][0], _hidden(a, ins[0][0])),
    "macs": lambda a, ins, out: 2 * ins[0][0] * _hidden(a, ins[0][0]),
}


def graph_with(op: str, resolution: int = 32) -> ArchGraph:
    g = ArchGraph("user_op", 3, resolution, 10)
    g.add("input", "input")
    g.add("stem", "stem", ["input"], out_channels=16, stride=2)
    g.add("user", op, ["stem"])
    g.add("gp", "global_pool", ["user"])
    g.add("fc", "classifier", ["gp"])
    return g


def test_one_registration_infers_builds_and_counts_like_fvcore() -> None:
    register_op(se_spec(**SE_PARTS))
    g = graph_with("squeeze_excite")
    assert g.infer_shapes()["user"] == (16, 16, 16)
    model = build_model(g)
    assert isinstance(model.get_submodule("user"), SqueezeExcite)
    assert graph_macs(g)["user"] == 2 * 16 * 4
    for resolution in (32, 45):
        assert sum(graph_macs(g, resolution).values()) == count_macs(build_model(g, resolution), g.input_shape(resolution)).macs


def test_origin_names_the_module_that_declared_the_op() -> None:
    register_op(se_spec(**SE_PARTS))
    assert OPS.origin("squeeze_excite") == f"python {__name__}"
    assert OPS.origin("conv") == "python gensynth.ir.ops"


def test_registering_a_name_twice_raises_unless_override() -> None:
    first = register_op(se_spec(**SE_PARTS))
    with pytest.raises(ValueError, match="op 'squeeze_excite' is already registered .*override=True"):
        register_op(se_spec(**SE_PARTS))
    with pytest.raises(ValueError, match="op 'conv' is already registered"):
        register_op(OPS["conv"])
    second = register_op(se_spec(**SE_PARTS), override=True)
    assert OPS["squeeze_excite"] is second is not first


def test_unknown_op_is_a_one_line_user_error_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as info:
        OPS.get("convv")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown op 'convv' (expected one of: add, attention_condenser, ")
    assert all(op in message for op in ("conv", "dcac", "stem"))


def test_an_op_without_a_mac_rule_makes_graph_macs_raise() -> None:
    register_op(se_spec(module=SE_PARTS["module"]))
    g = graph_with("squeeze_excite")
    build_model(g)  # building needs only the module factory
    with pytest.raises(GraphError, match=r"^node 'user': op 'squeeze_excite' has no MAC rule"):
        graph_macs(g)


def test_an_op_without_a_module_factory_cannot_be_built() -> None:
    register_op(se_spec(macs=SE_PARTS["macs"]))
    g = graph_with("squeeze_excite")
    assert graph_macs(g)["user"] == 2 * 16 * 4
    with pytest.raises(GraphError, match=r"^node 'user': op 'squeeze_excite' has no module factory"):
        build_model(g)


def test_list_ops_by_pattern() -> None:
    assert list_ops("*pool") == ["avgpool", "blurpool", "global_pool", "maxpool"]
    assert list_ops("*conv") == ["conv", "dwconv", "gconv", "pwconv"]
    assert list_ops("nothing*") == []
    register_op(se_spec("my_gate", **SE_PARTS))
    assert "my_gate" in list_ops() and list_ops("my_*") == ["my_gate"]


# -- space families -------------------------------------------------------------------------------


def _build_a(genome: Any, space: Any) -> ArchGraph:
    """Family a."""
    return graph_with("conv")


def _build_b(genome: Any, space: Any) -> ArchGraph:
    return graph_with("conv")


def test_register_and_list_families() -> None:
    assert list_families() == ["dcac"]
    register_family("tiny", {"width"})(_build_a)
    assert list_families() == ["dcac", "tiny"]
    assert list_families("t*") == ["tiny"]
    family = FAMILIES.get("tiny")
    assert (family.build, family.genes, family.doc) == (_build_a, frozenset({"width"}), "Family a.")
    assert FAMILIES.origin("tiny") == f"python {__name__}._build_a"


def test_registering_a_family_twice_raises_unless_override() -> None:
    register_family("tiny", {"width"})(_build_a)
    with pytest.raises(ValueError, match="space family 'tiny' is already registered"):
        register_family("tiny", {"width"})(_build_b)
    register_family("tiny", {"depth"}, override=True)(_build_b)
    assert FAMILIES.get("tiny").build is _build_b
    assert FAMILIES.get("tiny").doc == ""  # a builder without a docstring is fine


def test_unknown_family_is_a_one_line_user_error() -> None:
    with pytest.raises(UserError, match=r"^unknown space family 'nope' \(expected one of: dcac\)$"):
        FAMILIES.get("nope")

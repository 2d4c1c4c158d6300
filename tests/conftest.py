import pytest
import torch as th

from sb3_pdm import PDMLayer


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests run side by side on small machines: avoid oversubscription.
    th.set_num_threads(1)


def pdm_params(policy: th.nn.Module) -> dict[str, th.Tensor]:
    """Copies of the parameters of every PDM layer of ``policy``, by name."""
    return {
        f"{name}.{p_name}": p.detach().clone()
        for name, module in policy.named_modules()
        if isinstance(module, PDMLayer)
        for p_name, p in module.named_parameters()
    }


def head_params(policy: th.nn.Module) -> dict[str, th.Tensor]:
    local = {id(p) for m in policy.modules() if isinstance(m, PDMLayer) for p in m.parameters()}
    return {name: p.detach().clone() for name, p in policy.named_parameters() if id(p) not in local}


def all_equal(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> bool:
    assert a.keys() == b.keys()
    return all(th.equal(a[k], b[k]) for k in a)


def none_equal(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> bool:
    assert a.keys() == b.keys()
    return not any(th.equal(a[k], b[k]) for k in a)


def record_guidance_shapes(module: th.nn.Module) -> dict[str, tuple[int, ...]]:
    """Spy on the PDM layers of ``module``: the returned dict fills with the shape of the guidance each one receives."""
    received: dict[str, tuple[int, ...]] = {}
    for name, layer in module.named_modules():
        if isinstance(layer, PDMLayer):
            original = layer.set_guidance

            def record(signals, *, name=name, original=original):
                if signals is not None:
                    received[name] = tuple(signals.shape)
                original(signals)

            layer.set_guidance = record
    return received

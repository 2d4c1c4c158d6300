import pytest
from sb3_contrib import TRPO

from sb3_pdm import PDMCallback, PDMPolicy
from sb3_pdm.layers import pdm_layers


@pytest.mark.parametrize("local_epochs, critic_passes", [(5, 4), (None, 20)])
def test_trpo_critic_trunk_steps_in_the_passes_local_epochs_allows(local_epochs, critic_passes):
    """At the zoo's n_critic_updates (20): the actor's pass and the critic's passes each count as a pass."""
    pdm_kwargs = dict(local_epochs=local_epochs, max_feature_move=None)
    model = TRPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_critic_updates=20,
        seed=0,
        policy_kwargs=dict(net_arch=[16], pdm_kwargs=pdm_kwargs),
    )
    # One rollout and one train(); PDMCallback pops the diagnostics at the rollout's end, so those left are train()'s.
    model.learn(64, callback=PDMCallback())
    updates = {
        name: int(module.pop_diagnostics()["updates"])
        for name, module in model.policy.mlp_extractor.named_modules()
        if module in pdm_layers(model.policy)
    }
    assert updates == {"policy_net.0": 1, "value_net.0": critic_passes * 2}

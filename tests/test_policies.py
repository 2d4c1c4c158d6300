import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.envs import IdentityEnvBox

from sb3_pdm import (
    CnnPDMPolicy,
    MultiInputPDMPolicy,
    PDMCallback,
    PDMLayer,
    PDMMlpFeaturesExtractor,
    PDMPolicy,
    PDMRolloutBuffer,
)
from tests.conftest import all_equal, head_params, none_equal, pdm_params


def test_rl_loss_reaches_only_the_heads():
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=64, batch_size=32, seed=0)
    policy = model.policy
    obs = th.as_tensor(np.stack([model.env.observation_space.sample() for _ in range(32)]))
    actions = th.randint(0, 2, (32,))
    pdm_before, heads_before = pdm_params(policy), head_params(policy)
    policy.set_training_mode(True)
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    # The forward pass took local steps; reset the reference so only the optimizer step below is compared.
    pdm_before = pdm_params(policy)
    loss = -(log_prob.mean()) + values.pow(2).mean() - entropy.mean()
    policy.optimizer.zero_grad()
    loss.backward()
    for module in policy.modules():
        if isinstance(module, PDMLayer):
            assert all(p.grad is None for p in module.parameters())
    policy.optimizer.step()
    assert all_equal(pdm_before, pdm_params(policy))
    assert none_equal(heads_before, head_params(policy))
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    local = {id(p) for m in policy.modules() if isinstance(m, PDMLayer) for p in m.parameters()}
    assert optimized and not optimized & local
    assert optimized | local == {id(p) for p in policy.parameters()}


@pytest.mark.parametrize("net_arch", [[32], dict(pi=[32, 16], vf=[8])])
def test_net_arch_and_shared_trunk(net_arch):
    model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=net_arch), n_steps=64)
    pi_widths = net_arch if isinstance(net_arch, list) else net_arch["pi"]
    assert model.policy.mlp_extractor.latent_dim_pi == pi_widths[-1]
    assert len(model.policy.mlp_extractor.policy_net) == len(pi_widths)
    shared = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[32], share_trunk=True), n_steps=64)
    assert shared.policy.mlp_extractor.policy_net is shared.policy.mlp_extractor.value_net
    shared.learn(128)


def test_activation_by_class_or_name():
    for activation in (th.nn.ReLU, "relu"):
        model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(activation_fn=activation), n_steps=64)
        assert isinstance(model.policy.mlp_extractor.policy_net[0].activation, th.nn.ReLU)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[64, 0])), "net_arch"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=dict(pi=[-3]))), "net_arch"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=dict(q=[3]))), "net_arch"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(activation_fn="swoosh")), "activation_fn"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(pdm_kwargs=dict(distance="l1"))), "distance"),
        (
            lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(pdm_kwargs=dict(normalization="x"))),
            "normalization.*0.1.0",
        ),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_follow="pi")), "head_follow.*0.1.0"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(share_trunk="yes")), "share_trunk"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(pdm_kwargs=dict(local_lr=0))), "local_lr"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(pdm_kwargs=dict(guidance_coef=-0.1))), "guidance_coef"),
        (lambda: PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(pdm_kwargs=dict(lr=1e-3))), "pdm_kwargs"),
        (lambda: PDMPolicy(spaces.Box(-1, 1, (2,)), spaces.Tuple([spaces.Discrete(2)] * 2), lambda _: 1e-3), "action space"),
        (lambda: PDMPolicy(spaces.Tuple([spaces.Discrete(2)] * 2), spaces.Discrete(2), lambda _: 1e-3), "observation space"),
        (lambda: PPO(CnnPDMPolicy, "CartPole-v1"), "image"),
        (lambda: PPO(MultiInputPDMPolicy, "CartPole-v1"), "Dict"),
        (lambda: DQN(PDMPolicy, "CartPole-v1"), "q_net"),
        (lambda: SAC(PDMPolicy, "Pendulum-v1"), "actor"),
        (lambda: RecurrentPPO(PDMPolicy, "CartPole-v1"), "RecurrentPPO"),
    ],
)
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError, AttributeError), match=match):
        make()


def test_dict_observations_need_the_multi_input_policy():
    from stable_baselines3.common.envs import SimpleMultiObsEnv

    with pytest.raises(ValueError, match="MultiInputPDMPolicy"):
        PPO(PDMPolicy, SimpleMultiObsEnv())


def test_pdm_extractor_alone_with_stock_policy_learns_and_warns_once_that_it_is_not_served():
    model = A2C(
        "MlpPolicy",
        IdentityEnvBox(ep_length=10),
        policy_kwargs=dict(features_extractor_class=PDMMlpFeaturesExtractor, features_extractor_kwargs=dict(net_arch=[16])),
        rollout_buffer_class=PDMRolloutBuffer,
        n_steps=32,
        seed=0,
    )
    extractor_before = pdm_params(model.policy)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.learn(128)
    assert none_equal(extractor_before, pdm_params(model.policy))
    assert sum("not inside a PDM policy" in str(w.message) for w in record) == 1
    # Inside a PDM policy, the policy serves it: no warning.
    served = A2C(
        PDMPolicy,
        IdentityEnvBox(ep_length=10),
        policy_kwargs=dict(features_extractor_class=PDMMlpFeaturesExtractor),
        n_steps=32,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not inside a PDM policy")
        served.learn(64, callback=PDMCallback())


def test_callback_warns_that_a_stock_policy_does_not_serve_its_pdm_layers():
    model = A2C(
        "MlpPolicy",
        "CartPole-v1",
        policy_kwargs=dict(features_extractor_class=PDMMlpFeaturesExtractor),
        n_steps=8,
    )
    with pytest.warns(UserWarning, match="not a PDM policy"):
        model.learn(16, callback=PDMCallback())


@pytest.mark.parametrize("net_arch", [[], dict(pi=[], vf=[])])
def test_callback_on_a_policy_without_pdm_layers_says_why(net_arch):
    model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=net_arch), n_steps=64)
    with pytest.raises(ValueError, match=r"net_arch=\[\].*leaves no hidden layer.*net_arch=\[64, 64\]"):
        model.learn(64, callback=PDMCallback())


def test_share_trunk_with_the_default_net_arch_shares_one_trunk_of_default_widths():
    model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(share_trunk=True), n_steps=64, batch_size=32, n_epochs=1)
    trunk = model.policy.mlp_extractor
    assert trunk.policy_net is trunk.value_net
    assert [layer.linear.out_features for layer in trunk.policy_net] == [64, 64]
    model.learn(64, callback=PDMCallback())


@pytest.mark.parametrize("attribute", ["q_net", "q_net_target", "actor", "critic", "critic_target", "lstm_actor"])
def test_attributes_of_other_algorithms_are_absent_with_an_explanation(attribute):
    policy = PPO(PDMPolicy, "CartPole-v1", n_steps=64).policy
    assert not hasattr(policy, attribute)
    with pytest.raises(AttributeError, match=f"has no '{attribute}'"):
        getattr(policy, attribute)
    # nn.Module's own lookups still work.
    assert isinstance(policy.action_net, th.nn.Linear)


def test_nan_minibatch_leaves_pdm_params_finite():
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=64, seed=0)
    obs = th.randn(32, 4)
    obs[5, 1] = float("nan")
    model.policy.set_training_mode(True)
    before = pdm_params(model.policy)
    # Through the trunks only: the heads' distribution itself rejects NaN logits, as in stock SB3.
    model.policy.mlp_extractor(obs)
    after = pdm_params(model.policy)
    assert all(
        layer.pop_diagnostics()["skipped"] == 1
        for layer in model.policy.mlp_extractor.modules()
        if isinstance(layer, PDMLayer)
    )
    assert all_equal(before, after)
    assert all(th.isfinite(p).all() for p in after.values())


def test_gym_env_instance_and_seed_determinism():
    def run():
        model = PPO(PDMPolicy, gym.make("CartPole-v1"), n_steps=64, batch_size=32, n_epochs=2, seed=3)
        model.learn(128)
        return pdm_params(model.policy)

    assert all_equal(run(), run())


def test_actor_pdm_kwargs_override_the_actor_trunk_only(tmp_path):
    model = PPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        policy_kwargs=dict(pdm_kwargs=dict(local_lr=1e-3), actor_pdm_kwargs=dict(local_lr=1e-5, local_epochs=1)),
        rollout_buffer_class=PDMRolloutBuffer,
        seed=0,
        device="cpu",
    )
    trunk = model.policy.mlp_extractor
    assert all(layer.optimizer.param_groups[0]["lr"] == 1e-5 for layer in trunk.policy_net)
    assert all(layer.optimizer.param_groups[0]["lr"] == 1e-3 for layer in trunk.value_net)
    model.learn(32)
    # One rollout, two epochs: the actor layers step in the first only (their local_epochs), the critic's in both.
    assert [layer.optimizer.state[layer.linear.weight]["step"].item() for layer in trunk.policy_net] == [1, 1]
    assert [layer.optimizer.state[layer.linear.weight]["step"].item() for layer in trunk.value_net] == [2, 2]
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.actor_pdm_kwargs == dict(local_lr=1e-5, local_epochs=1)
    assert loaded.policy.mlp_extractor.policy_net[0].config.local_lr == 1e-5


def test_local_learning_false_fixes_the_actor_trunk_only(tmp_path):
    model = PPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        policy_kwargs=dict(net_arch=[8, 8], actor_pdm_kwargs=dict(local_learning=False)),
        rollout_buffer_class=PDMRolloutBuffer,
        seed=0,
        device="cpu",
    )
    trunk = model.policy.mlp_extractor
    before = {name: [p.detach().clone() for p in getattr(trunk, name).parameters()] for name in ("policy_net", "value_net")}
    model.learn(64)
    moved = {
        name: any(not th.equal(a, b) for a, b in zip(params, getattr(trunk, name).parameters()))
        for name, params in before.items()
    }
    assert moved == {"policy_net": False, "value_net": True}
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert [layer.local_learning for layer in loaded.policy.mlp_extractor.policy_net] == [False, False]
    assert [layer.local_learning for layer in loaded.policy.mlp_extractor.value_net] == [True, True]


def _linear_local_lr_ppo(**kwargs):
    """A small PPO on CartPole whose PDM layers' rate decays linearly from 1e-3 ("lin_1e-3")."""
    return PPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        policy_kwargs=dict(net_arch=[8], pdm_kwargs=dict(local_lr="lin_1e-3")),
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_linear_local_lr_decays_with_training_progress(tmp_path):
    model = _linear_local_lr_ppo()
    layers = [m for m in model.policy.modules() if isinstance(m, PDMLayer)]
    assert all(layer.optimizer.param_groups[0]["lr"] == 1e-3 for layer in layers)
    model.learn(128, callback=PDMCallback())
    # The rate is set at the start of each rollout: the fourth of four starts with 1/4 of the budget left.
    assert all(layer.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4) for layer in layers)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.pdm_config.local_lr == "lin_1e-3"
    assert [layer.optimizer.param_groups[0]["lr"] for layer in loaded.policy.modules() if isinstance(layer, PDMLayer)] == [
        layer.optimizer.param_groups[0]["lr"] for layer in layers
    ]


def test_local_lr_schedule_without_callback_warns_and_keeps_its_initial_rate():
    model = _linear_local_lr_ppo(rollout_buffer_class=PDMRolloutBuffer)
    with pytest.warns(UserWarning, match="PDMCallback"):
        model.learn(64)
    assert all(m.optimizer.param_groups[0]["lr"] == 1e-3 for m in model.policy.modules() if isinstance(m, PDMLayer))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(actor_pdm_kwargs=dict(local_lr=-1.0)), ValueError, "local_lr"),
        (dict(actor_pdm_kwargs=dict(speed=1.0)), ValueError, "Unknown pdm_kwargs"),
        (dict(actor_pdm_kwargs=3e-5), TypeError, "actor_pdm_kwargs"),
        (dict(actor_pdm_kwargs=dict(local_lr=1e-5), share_trunk=True, net_arch=[8]), ValueError, "actor_pdm_kwargs"),
    ],
)
def test_bad_actor_pdm_kwargs_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=kwargs, device="cpu")

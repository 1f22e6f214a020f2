"""Search-space parsing, sweep settings and the command-line split: no training here, all fast."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from cardio.sweep.driver import Sweep, check_space, compose_train
from cardio.sweep.export import experiment_text
from cardio.sweep.settings import (
    CONFIG_DIR,
    SweepConfigError,
    find_sweep_file,
    load_settings,
    split_overrides,
)
from cardio.sweep.space import SearchSpaceError, format_value, parse_space
from cardio.sweep.study import make_pruner

# name -> (spec, check on the sampled value)
VALID = {
    "LogFloat": ({"type": "float", "low": 1e-4, "high": 1e-2, "log": True}, lambda v: 1e-4 <= v <= 1e-2),
    "SteppedFloat": ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}, lambda v: v in (0, 0.25, 0.5, 0.75, 1)),
    "LogInt": ({"type": "int", "low": 10, "high": 2000, "log": True}, lambda v: isinstance(v, int) and 10 <= v <= 2000),
    "SteppedInt": ({"type": "int", "low": 32, "high": 256, "step": 32}, lambda v: v % 32 == 0),
    "ScalarChoice": ({"type": "categorical", "choices": [0.95, 0.99]}, lambda v: v in (0.95, 0.99)),
    "ListChoice": ({"type": "categorical", "choices": [[64, 64], [256, 256]]}, lambda v: v in ([64, 64], [256, 256])),
}

# name -> (spec, words the error message must contain)
INVALID = {
    "UnknownType": ({"type": "uniform", "low": 0, "high": 1}, ["x.type", "float, int, categorical"]),
    "MissingHigh": ({"type": "float", "low": 0}, ["x needs both low and high"]),
    "Inverted": ({"type": "float", "low": 1, "high": 0}, ["low=1.0 is above high=0.0"]),
    "LogAtZero": ({"type": "float", "low": 0, "high": 1, "log": True}, ["log=true needs low > 0"]),
    "LogAndStep": ({"type": "int", "low": 1, "high": 9, "log": True, "step": 2}, ["log=true or a step"]),
    "FractionalInt": ({"type": "int", "low": 0.5, "high": 3}, ["whole bounds"]),
    "EmptyChoices": ({"type": "categorical", "choices": []}, ["x.choices"]),
    "StrayField": ({"type": "categorical", "choices": [1], "low": 0}, ["unknown field(s) ['low']"]),
    "NotAMapping": ("loguniform(1e-4, 1e-2)", ["must be a mapping"]),
}


@pytest.mark.parametrize("case", VALID)
def test_every_kind_samples_inside_its_range_and_round_trips(case: str) -> None:
    spec, inside = VALID[case]
    param = parse_space({"x": spec})["x"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        value = param.suggest(trial)
        assert inside(value), (case, value)
        assert param.decode(trial.params["x"]) == value  # what the study stores decodes to the config value
        assert param.contains(value)
        study.tell(trial, 0.0)


@pytest.mark.parametrize("case", INVALID)
def test_a_bad_spec_is_refused_naming_the_key(case: str) -> None:
    spec, words = INVALID[case]
    with pytest.raises(SearchSpaceError) as err:
        parse_space({"x": spec}, source="sweep.params")
    for word in words:
        assert word in str(err.value)


def test_sampled_values_become_overrides_hydra_applies() -> None:
    space = parse_space(
        {
            "agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "agent.hidden_sizes": {"type": "categorical", "choices": [[32, 16]]},
            "agent.double_q": {"type": "categorical", "choices": [True]},
            "runner.schedule.batch_size": {"type": "int", "low": 48, "high": 48},
        }
    )
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    values = {k: p.suggest(trial) for k, p in space.items()}
    cfg = compose_train(CONFIG_DIR, [p.override(values[k]) for k, p in space.items()])
    assert cfg.agent.lr == values["agent.lr"]  # full float precision survives the text round trip
    assert list(cfg.agent.hidden_sizes) == [32, 16]
    assert cfg.agent.double_q is True
    assert cfg.runner.schedule.batch_size == 48


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e-05, "1e-05"), (0.1 + 0.2, "0.30000000000000004"), ([64, 64], "[64,64]"), (True, "true"), (None, "null")],
)
def test_format_value_writes_hydra_grammar(value: object, text: str) -> None:
    assert format_value(value) == text


def test_split_sends_sweep_words_to_the_sweep_and_the_rest_to_train() -> None:
    name, sweep, train = split_overrides(
        ["agent=dqn", "sweep=dqn_cartpole", "sweep.n_trials=40", "n_workers=2", "+agent.foo=1", "seed=3"]
    )
    assert name == "dqn_cartpole"
    assert sweep == ["n_trials=40", "n_workers=2"]
    assert train == ["agent=dqn", "+agent.foo=1", "seed=3"]
    with pytest.raises(SweepConfigError, match="key=value"):
        split_overrides(["-m"])


def test_the_sweep_file_is_found_from_agent_and_env_in_any_case() -> None:
    assert find_sweep_file(None, "dqn", "CartPole").name == "dqn_cartpole.yaml"
    with pytest.raises(SweepConfigError, match=r"available: .*dqn_cartpole"):
        find_sweep_file(None, "dqn", "Pendulum")
    with pytest.raises(SweepConfigError, match="sweep=nope"):
        find_sweep_file("nope", "dqn", "CartPole")


def test_a_users_sweep_files_are_found_beside_cardios_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$CARDIO_CONFIG_PATH/sweep`` is searched after cardio's own folder, as Hydra's search path is."""
    mine = tmp_path / "my_configs" / "sweep"
    mine.mkdir(parents=True)
    (mine / "Mine.yaml").write_text("params: {agent.lr: {type: float, low: 0.1, high: 0.2}}\n")
    with pytest.raises(SweepConfigError, match="sweep=mine: not in"):  # negative control: not searched yet
        find_sweep_file("mine", "dqn", "CartPole")
    monkeypatch.setenv("CARDIO_CONFIG_PATH", str(mine.parent))
    assert find_sweep_file("mine", "dqn", "CartPole") == mine / "Mine.yaml"
    with pytest.raises(SweepConfigError, match=rf"not in {CONFIG_DIR / 'sweep'} or {mine}; available: .*Mine"):
        find_sweep_file("nope", "dqn", "CartPole")
    (mine / "dqn_cartpole.yaml").write_text("params: {}\n")  # same name as a shipped file: cardio's wins, loudly
    with pytest.warns(UserWarning, match=r"dqn_cartpole.yaml is hidden by cardio's own"):
        assert find_sweep_file(None, "dqn", "CartPole") == CONFIG_DIR / "sweep" / "dqn_cartpole.yaml"


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    path = CONFIG_DIR / "sweep" / "dqn_cartpole.yaml"
    settings = load_settings(path, ["n_trials=7", "seeds=[0,1]"])
    assert (settings.n_trials, settings.seeds, settings.study_name) == (7, [0, 1], "dqn_cartpole")
    assert settings.storage_url == "sqlite:///outputs/sweeps/dqn_cartpole.db"
    with pytest.raises(SweepConfigError, match="n_trails"):
        load_settings(path, ["n_trails=7"])
    with pytest.raises(SweepConfigError, match="direction"):
        load_settings(path, ["direction=up"])


def test_another_pruner_on_the_command_line_does_not_take_the_files_pruner_args(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = CONFIG_DIR / "sweep" / "dqn_cartpole.yaml"  # median with n_startup_trials / n_warmup_steps
    assert load_settings(path, []).pruner_args == {"n_startup_trials": 5, "n_warmup_steps": 2000}
    for pruner in ["none", "hyperband"]:
        settings = load_settings(path, [f"pruner={pruner}"])
        assert settings.pruner_args == {}
        make_pruner(settings)  # NopPruner() and HyperbandPruner() would refuse median's keywords
        assert f"sweep.pruner={pruner}: dqn_cartpole.yaml's pruner_args" in capsys.readouterr().out
    given = load_settings(path, ["pruner=hyperband", "pruner_args.min_resource=3"])
    assert given.pruner_args == {"min_resource": 3}
    assert make_pruner(given)._min_resource == 3
    with pytest.raises(SweepConfigError, match=r"sweep.pruner_args=.* do not fit hyperband"):
        make_pruner(load_settings(path, ["pruner=hyperband", "pruner_args.n_startup_trials=3"]))
    assert (
        load_settings(path, ["pruner=median", "pruner_args.n_startup_trials=1"]).pruner_args["n_warmup_steps"] == 2000
    )


@pytest.mark.parametrize("path", sorted((CONFIG_DIR / "sweep").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_searches_keys_that_exist(path: Path) -> None:
    settings = load_settings(path, [])
    check_space(Sweep(settings, list(settings.overrides)))


def test_a_searched_key_missing_from_the_config_is_named() -> None:
    settings = load_settings(CONFIG_DIR / "sweep" / "dqn_cartpole.yaml", [])
    settings.params = {"agent.lrr": {"type": "float", "low": 0.1, "high": 0.2}}
    with pytest.raises(SweepConfigError, match=r"sweep.params.agent.lrr: no such key .* keys under agent: .*lr"):
        check_space(Sweep(settings, []))


def test_the_exported_experiment_reproduces_group_choices_and_values(tmp_path: Path) -> None:
    settings = load_settings(CONFIG_DIR / "sweep" / "dqn_cartpole.yaml", ["study_name=grp"])
    overrides = ["env=Acrobot", "runner.total_steps=3000", "agent.hidden_sizes=[32,32]", "agent.lr=0.00123"]
    sweep = Sweep(settings, overrides)
    best = optuna.trial.create_trial(value=1.0, user_attrs={"overrides": [*overrides, "seed=4", "run_dir=/x"]})
    text = experiment_text(best, settings, check_space(sweep), "0123abcd", "grp_best")
    assert "  - override /env: Acrobot" in text and "seed" not in text.split("\ndefaults")[1]
    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    (configs / "experiment" / "grp_best.yaml").write_text(text)
    from_file = compose_train(configs, ["experiment=grp_best"])
    assert OmegaConf.to_container(from_file) == OmegaConf.to_container(compose_train(configs, overrides))
    # negative control: the zoo numbers of the default env differ, so a dropped group choice would show
    assert OmegaConf.to_container(from_file) != OmegaConf.to_container(compose_train(configs, overrides[1:]))

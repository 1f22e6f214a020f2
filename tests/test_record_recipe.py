"""Dataset recipes (scripts/record.py): every key given is one a recipe reads, every source's value in range,
checked before any run is loaded. An unknown key used to be merged in and ignored: ``episodes=20`` (meant for
the sources) or a typo such as ``sources.0.epsilom=0.1`` recorded the recipe's own numbers without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardio.errors import ConfigError
from scripts.record import load_recipe, main


@pytest.mark.parametrize("recipe", ["cartpole_mixed", "pendulum_medium"])
def test_the_shipped_recipes_pass_their_own_checks(recipe: str) -> None:
    assert load_recipe([f"recipe={recipe}", "seed=3", "sources.0.episodes=7"]).sources[0].episodes == 7


REFUSED = [
    (["episodes=20"], "episodes=20 .*no such recipe key; a recipe has dataset_id, seed"),
    (["sources.0.epsilom=0.1"], "sources.0.epsilom=0.1 .*no such recipe key"),
    (["sources.2.episodes=3"], "sources.2.episodes=3 .*there are 2 sources, numbered from 0"),
    (["sources.0.episodes=-1"], "sources.0.episodes=-1: expected a positive integer"),
    (["sources.0.episodes=2.5"], "sources.0.episodes=2.5: expected a positive integer"),
    (["sources.1.epsilon=1.5"], "sources.1.epsilon=1.5: expected a probability in"),
    (["sources.1.kind=video"], "sources.1.kind='video': use agent or buffer"),
]


@pytest.mark.parametrize(("words", "message"), REFUSED, ids=[w[0] for w, _ in REFUSED])
def test_a_key_no_recipe_reads_or_a_value_out_of_range_is_refused(words: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(["recipe=cartpole_mixed", *words])


def test_a_typo_in_the_recipe_file_is_refused_too(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset_id: x\nseed: 0\nsources:\n  - run: somewhere\n    episodes: 3\n    epsilom: 0.3\n")
    with pytest.raises(ConfigError, match=r"recipe .*recipe\.yaml: sources\.0\.epsilom: no such recipe key"):
        load_recipe([f"recipe={recipe}"])


def test_make_dataset_refuses_in_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDIO_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["recipe=cartpole_mixed", "episodes=20"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: episodes=20 (recipe ")

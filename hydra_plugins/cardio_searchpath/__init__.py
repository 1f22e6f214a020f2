"""Hydra search-path plugin: a user's ``./configs`` (or ``$CARDIO_CONFIG_PATH``) joins cardio's config search path
(see ``cardio/paths.py``). ``hydra_plugins`` is a namespace package, so Hydra finds this file both in a source
checkout (the repo root on the import path) and in an installed wheel."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class CardioSearchPathPlugin(SearchPathPlugin):
    """Appends the user's config folder, so it adds files and never shadows cardio's own."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        try:
            from cardio.paths import config_dir, user_config_dir
        except ImportError:  # another project's Hydra app in an environment without cardio's source
            return
        own = str(config_dir())
        if not any(str(entry.path).removeprefix("file://") == own for entry in search_path.get_path()):
            return  # not a cardio command: leave other Hydra apps alone
        user = user_config_dir()
        if user is not None:
            search_path.append(provider="cardio-user", path=f"file://{user}")

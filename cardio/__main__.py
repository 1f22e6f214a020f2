"""``python -m cardio train ...`` is the ``cardio`` command (cardio/commands)."""

from cardio.commands import main

main()

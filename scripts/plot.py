"""Plot runs: the shim of ``cardio plot`` (cardio/commands/plot.py); ``make plot`` runs it."""

from cardio.commands.plot import main

if __name__ == "__main__":
    main()

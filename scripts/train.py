"""Train an agent: the shim of ``cardio train`` (cardio/commands/train.py); ``make train`` runs it."""

from cardio.commands.train import main

if __name__ == "__main__":
    main()

"""Evaluate a run: the shim of ``cardio evaluate`` (cardio/commands/evaluate.py); ``make evaluate`` runs it."""

from cardio.commands.evaluate import main, record_video, write_gif, write_mp4  # noqa: F401  (imported from here too)

if __name__ == "__main__":
    main()

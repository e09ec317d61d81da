"""``python -m lookalike``: the command line."""

from lookalike.cli import main

if __name__ == "__main__":  # not when multiprocessing re-imports the main module in a worker
    raise SystemExit(main())

"""Command-line reports that measure the shipped models and write their cards and write-ups.

They are not part of the installed library: each may tie library packages together (for example
``kit.analysis`` measurements on ``kit.train``'s invented world) in a way the packages themselves
never do. Run them from the repository root, with the kit installed (``make setup``) or on
``PYTHONPATH``:

    python scripts/factual_story.py [DIR]     # facts-4l's factual-recall story, into its MODEL_CARD.md
    python scripts/snmf_report.py [--quick]   # the SNMF tables of docs/snmf.md
    python scripts/torch_install_args.py      # which torch build `make` installs here, and from where

Tests import them as ``scripts.NAME`` (the repository root is on pytest's path).
"""

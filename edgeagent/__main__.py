"""``python -m edgeagent``: the same entry point as the ``edgeagent`` console script."""

from edgeagent.cli import main

if __name__ == "__main__":
    main()

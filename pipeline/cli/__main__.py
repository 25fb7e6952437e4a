"""`python -m finpulse.pipeline.cli`: the same command as the `finpulse` script (used by subprocesses)."""
from finpulse.pipeline.cli.main import main

if __name__ == "__main__":
    main()

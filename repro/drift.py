"""`python -m repro.drift`: the command line of repro.report.drift (the numerics drift guard)."""
from repro.report.drift import main

if __name__ == "__main__":
    main()

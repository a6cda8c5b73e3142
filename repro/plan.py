"""`python -m repro.plan NAME [--cell ...] --write`: the command line of repro.report.plan."""
from repro.report.plan import main

if __name__ == "__main__":
    main()

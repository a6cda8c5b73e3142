"""What an arm is, stated once: a method as a (drop.kind, drop.mode) pair, or a drop setting (the
`drop=...` and `drop.*=...` overrides a run is launched with, e.g. `drop=early_dropout,drop.rate=0.2`);
how plans name it; and which runs are its. The tables, the plans and the W&B grouping all match runs
to arms by this rule."""
from __future__ import annotations


def method_key(method: tuple | str) -> str:
    """A method as plans name it: 'kind/mode', or an arm as written."""
    return method if isinstance(method, str) else "/".join(method)


def method_of(key: str) -> tuple | str:
    """The method a plan's name stands for (method_key's inverse): an arm holds '='."""
    return key if "=" in key else tuple(key.split("/"))


def drop_setting(overrides: str) -> list[str]:
    """The drop overrides (`drop=...`, `drop.*=...`) of a run's name or an arm, sorted."""
    return sorted(o for o in overrides.split(",") if o.partition("=")[0].split(".")[0] == "drop")


def of_method(row: dict, method: tuple | str) -> bool:
    """Whether a run is one of `method`'s: `row` holds its name ("run": its folder's name, the
    overrides that name it, repro.paths.run_dir) and "drop.kind", "drop.mode". A (kind, mode) pair
    matches on those two; an arm, when the run's name has exactly its drop overrides."""
    if isinstance(method, str):
        return drop_setting(row["run"]) == drop_setting(method)
    return (row["drop.kind"], row["drop.mode"]) == method

"""The Invoke command surface (ARCHITECTURE.md: these names are a contract)."""

from __future__ import annotations

from invoke import Collection

from cutover.cli import cutover, data, lab, plan, test, verify


def namespace() -> Collection:
    ns = Collection()
    ns.add_collection(Collection.from_module(lab), name="lab")
    ns.add_collection(Collection.from_module(plan), name="plan")
    ns.add_collection(Collection.from_module(cutover), name="cutover")
    ns.add_collection(Collection.from_module(verify), name="verify")
    ns.add_collection(Collection.from_module(data), name="data")
    ns.add_task(test.run_tests, name="test")
    ns.configure({
        "cutover": {"plan": "plans/shanxi-2023-11.yml", "inventory": "inventories/lab",
                    "artifacts": "artifacts", "journal": "artifacts/journal.sqlite"},
        "lab": {"cities": 11, "scale": 1000, "seed": 20231118},
    })
    return ns

"""Every ``python ...`` command shown in the README and the docs names an entry point that exists
and only options that entry point (or, where it passes them on, the config) knows.

A static check: it reads the command lines and the entry points' sources; it runs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recbole_lsrm.config import known_keys

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "benchmarks" / "README.md",
               *(ROOT / "results").glob("*/README.md")])
# Where each module entry point declares its options.
MODULE_SOURCES = {
    "recbole_lsrm": ["recbole_lsrm/cli.py"],
    "recbole_lsrm.sweep": ["recbole_lsrm/sweep/plan.py"],
    "recbole_lsrm.study": ["recbole_lsrm/study/__main__.py"],
    "recbole_lsrm.scaling": ["recbole_lsrm/scaling/__main__.py"],
    "recbole_lsrm.prepare": ["recbole_lsrm/prepare/__main__.py"],
    "recbole_lsrm.tasks": ["recbole_lsrm/tasks/__main__.py"],
    "recbole_lsrm.scales": ["recbole_lsrm/scales.py"],
    "recbole_lsrm.recommend": ["recbole_lsrm/recommend/__main__.py"],
    "pytest": [],
}
# Entry points that pass unknown --KEY=VALUE on as config keys.
PASS_CONFIG_KEYS = {"recbole_lsrm", "recbole_lsrm.sweep", "run_recbole_lsrm.py"}
COMMAND = re.compile(r"python3? (-m [\w.]+|[\w./-]+\.py)([^`\n]*)")
OPTION = re.compile(r"(?<![\w-])--([A-Za-z_][\w-]*)")
CONFIG_KEYS = set().union(*(known_keys(model, "ml-1m") for model in ("LSRM", "HSTU", "FMLPRec", "SASRec")))


def commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in doc.read_text(encoding="utf-8").splitlines():
            for match in COMMAND.finditer(line):
                found.append((f"{doc.relative_to(ROOT)}: {match.group(0).strip()}", match.group(1),
                              OPTION.findall(match.group(2))))
    return found


COMMANDS = commands()


def test_the_docs_show_commands():
    entry_points = {entry for _, entry, _ in COMMANDS}
    assert {"-m recbole_lsrm.sweep", "-m recbole_lsrm.study", "run_recbole_lsrm.py"} <= entry_points


@pytest.mark.parametrize("where,entry,options", COMMANDS, ids=[c[0][:90] for c in COMMANDS])
def test_each_command_names_an_entry_point_and_its_options(where, entry, options):
    if entry.startswith("-m "):
        module = entry[3:]
        assert module in MODULE_SOURCES, f"{where}: no entry point python -m {module}"
        sources = [ROOT / p for p in MODULE_SOURCES[module]]
        passes_keys = module in PASS_CONFIG_KEYS
    else:
        script = ROOT / entry
        assert script.is_file(), f"{where}: no file {entry}"
        sources = [script]
        passes_keys = entry in PASS_CONFIG_KEYS or entry.startswith("benchmarks/")
    text = "".join(p.read_text(encoding="utf-8") for p in sources)
    for option in (o for o in options if o not in ("help", "KEY")):  # --KEY=VALUE: a placeholder
        declared = f'"--{option}"' in text or f"'--{option}'" in text or f"--{option}=" in text
        assert declared or (passes_keys and option in CONFIG_KEYS), f"{where}: unknown option --{option}"

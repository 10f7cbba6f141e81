"""NGINX's entrypoint rules (nginx/rules.sh) against the cases in tests/rules/cases.json, which the
gateway and the launcher are checked against too. Runs the functions with the system's sh, as
the entrypoint does: POSIX sh, dash on Debian-based images."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "nginx" / "rules.sh"
TABLE = json.loads((ROOT / "tests" / "rules" / "cases.json").read_text(encoding="utf-8"))

# The rules.sh function that applies each rule, and how to read what it prints.
FUNCTIONS = {
    "prefix": ("rules_prefix", lambda out: out.rstrip("\n")),
    "publicOrigins": ("rules_public_origins", lambda out: out.splitlines()),
}


def cases():
    return [
        pytest.param(name, case, id=f"{name}: {json.dumps(case['env'], ensure_ascii=False)}")
        for name, rule in TABLE["rules"].items()
        for case in rule["cases"]
        if "nginx" in case.get("programs", rule["programs"])
    ]


def test_the_table_has_the_rules_this_test_knows():
    applying = sorted(name for name, rule in TABLE["rules"].items() if "nginx" in rule["programs"])
    assert applying == sorted(FUNCTIONS)


@pytest.mark.parametrize(("name", "case"), cases())
def test_case(name, case):
    assert ("expect" in case) != ("refused" in case)
    function, read = FUNCTIONS[name]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
    env.update({k: v for k, v in case["env"].items() if v is not None})
    result = subprocess.run(
        ["sh", "-c", f'. "$1" && {function}', "sh", str(RULES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if "refused" in case:
        assert result.returncode == 2, result.stdout
        assert result.stdout == ""
        assert result.stderr.startswith("nginx-entrypoint: ")
    else:
        assert result.returncode == 0, result.stderr
        assert read(result.stdout) == case["expect"]

"""The launcher against the cases in tests/rules/cases.json, which the gateway and NGINX's
entrypoint are checked against too, so that the three programs read the same settings the same way."""

import json
from pathlib import Path

import pytest
from launcher.settings import ConfigError, load_config, public_origins

TABLE = json.loads((Path(__file__).resolve().parents[2] / "tests" / "rules" / "cases.json").read_text(encoding="utf-8"))
KEY = "k3Y-for-the-launcher-tests_0123456789abcdefgh"


def origins(env):
    load_config(env)  # the launcher starts with these settings at all
    return list(public_origins(env))


# What the launcher makes of each rule's setting.
RESULTS = {
    "prefix": lambda env: load_config(env).prefix,
    "secretKey": lambda env: load_config(env).env_updates["BOKEH_SECRET_KEY"],
    "publicOrigins": origins,
}


def cases():
    return [
        pytest.param(name, case, id=f"{name}: {json.dumps(case['env'], ensure_ascii=False)}")
        for name, rule in TABLE["rules"].items()
        for case in rule["cases"]
        if "launcher" in case.get("programs", rule["programs"])
    ]


def test_the_table_has_the_rules_this_test_knows():
    assert sorted(TABLE["rules"]) == sorted(RESULTS)
    assert all("launcher" in rule["programs"] for rule in TABLE["rules"].values())


@pytest.mark.parametrize(("name", "case"), cases())
def test_case(name, case):
    assert ("expect" in case) != ("refused" in case)
    env = {"BOKEH_SECRET_KEY": KEY}
    for variable, value in case["env"].items():
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
    if "refused" in case:
        with pytest.raises(ConfigError):
            load_config(env)
    else:
        assert RESULTS[name](env) == case["expect"]

"""The sites of a window (N17): the tree the inventory declares, what plan.check refuses in it,
and how a site id in a limit reaches Ansible as hosts, checked before any host is touched."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from cutover.engine.session import RunOptions, Session
from cutover.errors import CutoverError
from cutover.inventory import combine_limits, hosts_matching, hostvars
from cutover.plan.lint import load_plan
from cutover.sites import SiteTree, inventory_targets, site_limit

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
EXAMPLE = ROOT / "inventories" / "example"
PLAN = ROOT / "plans" / "shanxi-2023-11.yml"


def tree_of(declared, host_site) -> SiteTree:
    return SiteTree(declared, host_site)


TREE = {"province": {"name": "山西省"}, "taiyuan": {"name": "太原市", "parent": "province"},
        "taiyuan-c01": {"name": "太原市第1县区", "parent": "taiyuan"}}


@pytest.mark.parametrize("inventory", [LAB, EXAMPLE], ids=["lab", "example"])
def test_the_shipped_inventories_place_every_host_in_one_tree(inventory):
    tree = SiteTree.from_hostvars(hostvars(inventory))
    assert tree.problems(production=True) == []
    order = [site.id for site in tree.ordered()]
    assert order[:5] == ["province", "taiyuan", "taiyuan-c01", "taiyuan-c02", "taiyuan-c03"]
    # the lab: 9 county counters per city (#17's ~120 hosts); the example inventory: 3
    assert len(order) == 1 + 11 + (99 if inventory == LAB else 33)
    assert tree.path("taiyuan-c02") == ["province", "taiyuan", "taiyuan-c02"]
    assert tree.sites["taiyuan"].name == "太原市"
    province = tree.hosts_of("province")
    assert any(host.startswith("db") for host in province)
    assert not any(host.startswith("counter") for host in province)


@pytest.mark.parametrize(("declared", "host_site", "says"), [
    (TREE, {"h1": "taiyuan-c1"}, "cutover_site 'taiyuan-c1' is not a site of cutover_sites"),
    (TREE, {"h1": "province", "h2": None}, "host h2 has no cutover_site"),
    ({**TREE, "datong": {"name": "大同市", "parent": "provnice"}}, {}, "parent 'provnice' is not a site"),
    ({**TREE, "shanxi": {"name": "山西"}}, {}, "2 roots (province, shanxi)"),
    ({**TREE, "a": {"name": "甲", "parent": "b"}, "b": {"name": "乙", "parent": "a"}}, {},
     "its parents lead back to itself"),
    ({**TREE, "Tai Yuan": {"name": "太原"}}, {}, "is not lower-case letters, digits and dashes"),
    ({**TREE, "jinzhong": {"parent": "province"}}, {}, "site jinzhong has no name"),
    ({**TREE, "jinzhong": {"name": "晋中市", "parnet": "province"}}, {}, "unknown key(s) parnet"),
    (["province"], {}, "cutover_sites is not a mapping"),
    (None, {"h1": "province"}, "declares no site tree"),
])
def test_a_tree_that_cannot_place_every_host_is_refused_saying_what(declared, host_site, says):
    problems = [problem.message for problem in tree_of(declared, host_site).problems()]
    assert any(says in problem for problem in problems), problems


def test_the_hint_for_a_misspelled_site_names_the_right_one():
    problem = tree_of(TREE, {"h1": "taiyaun"}).problems()[0]
    assert problem.hint == "did you mean 'taiyuan'?"


def test_an_inventory_without_any_site_is_one_site_unless_it_is_production():
    assert tree_of(None, {"h1": None}).problems() == []
    assert "declares no site tree" in tree_of(None, {"h1": None}).problems(production=True)[0].message


def test_plan_check_refuses_a_host_outside_the_tree_with_file_and_line(tmp_path):
    inventory = tmp_path / "inv"
    shutil.copytree(LAB, inventory)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("cutover_site: datong", "cutover_site: datnog"))
    _, problems = load_plan(PLAN, inventory=inventory)
    errors = [str(problem) for problem in problems if problem.severity == "error"]
    line = next(n for n, text in enumerate(hosts.read_text().splitlines(), 1) if "datnog" in text)
    found = [error for error in errors if "host counter-datong: cutover_site 'datnog' is not a site" in error]
    assert len(found) == 1, errors
    assert f"hosts.yml:{line}" in found[0]
    assert "did you mean 'datong'?" in found[0]


def test_a_site_in_a_limit_stands_for_its_own_hosts():
    targets = inventory_targets(LAB)
    tree = targets[0]
    assert site_limit("taiyuan", targets) == "counter-taiyuan"
    province = site_limit("province", targets).split(",")
    assert set(province) == set(tree.hosts_of("province"))
    assert "db1" in province
    counties = [f"datong-c0{n}" for n in range(1, 10)]
    assert site_limit("counter:!datong" + "".join(f":!{c}" for c in counties), targets) == \
        "counter,!counter-datong" + "".join(f",!counter-{c}" for c in counties)
    assert site_limit("core,db1", targets) == "core,db1"  # hosts and groups stay
    assert site_limit("core[0:1],~counter-t.*", targets) == "core[0:1],~counter-t.*"  # Ansible's own
    assert site_limit("counter:!taiyuan-c01", targets) == "counter,!counter-taiyuan-c01"


@pytest.mark.parametrize(("limit", "says"), [
    ("", "names no host, group or site"),
    (" , ", "names no host, group or site"),
    ("!", "names no host, group or site"),
    ("counter:&taiyuan", "intersects with a site"),
    ("taiyaun", "'taiyaun' is no host, group or site"),
])
def test_a_limit_that_cannot_mean_what_it_says_is_refused(limit, says):
    with pytest.raises(CutoverError, match=re.escape(says)):
        site_limit(limit, inventory_targets(LAB))


def test_a_site_without_hosts_is_refused_and_leaving_it_out_is_nothing():
    tree = SiteTree(TREE, {"db1": "province", "counter-taiyuan": "taiyuan"})
    targets = (tree, {"db1", "counter-taiyuan"}, {"counter"})
    with pytest.raises(CutoverError, match="has no host"):
        site_limit("taiyuan-c01", targets)
    assert site_limit("counter:!taiyuan-c01", targets) == "counter"


def test_the_hosts_a_lab_did_not_start_are_no_sites(monkeypatch):
    monkeypatch.setattr("cutover.inventory.lab_state",
                        lambda: {"skipped_hosts": [f"counter-taiyuan-c0{n}" for n in range(1, 10)]})
    targets = inventory_targets(LAB)
    assert site_limit("counter:!taiyuan", targets) == "counter,!counter-taiyuan"
    with pytest.raises(CutoverError, match="has no host"):
        site_limit("taiyuan-c01", targets)


def test_leaving_out_a_city_whose_counties_have_hosts_is_refused_until_they_are_named():
    targets = inventory_targets(EXAMPLE)
    with pytest.raises(CutoverError, match="not those of taiyuan-c01, taiyuan-c02, taiyuan-c03") as caught:
        site_limit("counter:!taiyuan", targets)
    assert "!taiyuan,!taiyuan-c01" in caught.value.hint
    limit = site_limit("counter:!taiyuan:!taiyuan-c01:!taiyuan-c02:!taiyuan-c03", targets)
    assert not {host for host in hosts_matching(EXAMPLE, limit) if "taiyuan" in host}
    assert len(hosts_matching(EXAMPLE, limit)) == 44 - 4


def test_a_site_id_that_is_also_a_host_or_group_name_is_refused():
    problems = [p.message for p in SiteTree(TREE, {"taiyuan": "province"}, groups={"province"}).problems()]
    assert "site id 'province' is also the name of a group" in problems
    assert "site id 'taiyuan' is also the name of a host" in problems


def test_plan_check_reads_a_steps_limit_as_the_engine_does(tmp_path):
    text = PLAN.read_text().replace("        tags: [counters]\n", "        tags: [counters]\n        limit: counter:&taiyuan\n")
    path = tmp_path / "p.yml"
    path.write_text(text)
    _, problems = load_plan(path, inventory=LAB)
    assert any("limit counter:&taiyuan: '&taiyuan' intersects with a site" in str(p) for p in problems
               if p.severity == "error")


@pytest.mark.parametrize(("limits", "expected"), [
    (("core", "counter"), set()),
    (("core", "core-qyyl,core-gs,db1"), {"core-qyyl", "core-gs"}),
    # two unions: Ansible cannot intersect them in one pattern, so the hosts are listed
    (("core-qyyl,db1,counter-taiyuan", "core,db"), {"core-qyyl", "db1"}),
    (("counter", "all:!counter-datong:!counter-taiyuan"), {f"counter-{city}{county}" for city in (
        "yangquan", "changzhi", "jincheng", "shuozhou", "jinzhong", "yuncheng", "xinzhou", "linfen", "lvliang")
        for county in ("", *(f"-c0{n}" for n in range(1, 10)))} | {
        f"counter-{city}-c0{n}" for city in ("datong", "taiyuan") for n in range(1, 10)}),
])
def test_combined_limits_select_exactly_the_hosts_every_limit_selects(limits, expected):
    combined = combine_limits(LAB, *limits)
    assert hosts_matching(LAB, combined) == expected


def test_a_limit_naming_nothing_in_the_inventory_is_refused_before_any_host_is_touched(tmp_path):
    opts = RunOptions(plan=str(PLAN), journal=str(tmp_path / "j.db"), artifacts=str(tmp_path / "a"),
                      limit="province,taiyaun")
    with pytest.raises(CutoverError, match="'taiyaun' is no host, group or site") as caught:
        Session(opts)
    assert caught.value.hint == "did you mean 'taiyuan'?"


def test_a_session_narrowed_to_a_site_runs_each_step_on_that_sites_hosts_only(tmp_path):
    opts = RunOptions(plan=str(PLAN), journal=str(tmp_path / "j.db"), artifacts=str(tmp_path / "a"),
                      limit="taiyuan,province")
    session = Session(opts)
    province = set(SiteTree.from_hostvars(hostvars(LAB)).hosts_of("province"))
    assert hosts_matching(LAB, session.limit()) == province | {"counter-taiyuan"}
    assert hosts_matching(LAB, session.limit("counter")) == {"counter-taiyuan"}
    assert hosts_matching(LAB, session.limit("core")) == {h for h in province if h.startswith("core-")}


def test_the_example_inventory_documents_its_tree_in_one_file():
    sites = yaml.safe_load((EXAMPLE / "group_vars" / "all" / "sites.yml").read_text(encoding="utf-8"))
    assert sites["cutover_sites"]["province"] == {"name": "山西省", "code": "140000"}


def test_levels_of_the_tree_are_the_province_its_cities_and_their_counties():
    tree = SiteTree({"province": {"name": "省", "code": "1"},
                     "datong": {"name": "大同", "code": "3", "parent": "province"},
                     "taiyuan": {"name": "太原", "code": "2", "parent": "province"},
                     "taiyuan-c01": {"name": "小店", "code": "21", "parent": "taiyuan"}}, {})
    assert tree.level("province") == "province"
    assert tree.level("taiyuan-c01") == "counties"
    assert tree.at_level("cities") == ["taiyuan", "datong"]  # by agency code
    assert tree.at_level("counties") == ["taiyuan-c01"]
    with pytest.raises(CutoverError, match="unknown site level 'towns'"):
        tree.at_level("towns")

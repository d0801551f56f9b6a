"""What a user of the channel sees while the notice is up."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")


def curl(host, path, accept="application/json", port=18088, data=None):
    post = f"-X POST -H 'Content-Type: application/json' -d '{data}' " if data else ""
    out = host.check_output(
        f"curl -s {post}-H 'Accept: {accept}' -w '\\n%{{http_code}}' http://127.0.0.1:{port}{path}")
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_collection_answers_503_with_the_json_notice(host):
    code, body = curl(host, "/online/collection/")
    assert code == 503
    notice = json.loads(body)
    assert notice["code"] == "MAINTENANCE"
    assert notice["until"] == "2023-12-01 13:00"
    assert "征缴类业务、账户类业务" in notice["message"]


def test_a_browser_gets_the_html_notice(host):
    code, body = curl(host, "/online/account", accept="text/html")
    assert code == 503
    assert "友情提示" in body
    assert "2023-11-20 18:00" in body


def test_benefit_payment_keeps_working(host):
    code, body = curl(host, "/online/benefit-payment/")
    assert code == 200
    assert "benefit-payment works" in body


def test_component_maintenance_file_names_the_functions(host):
    data = json.loads(host.file("/etc/si/maintenance/demo-core.json").content_string)
    assert data["scope"] == "functions"
    assert data["functions"] == ["collection", "account"]
    assert "友情提示" in data["html"]


def test_a_stopped_component_answers_on_its_own_port_with_the_notice(host):
    """N4: a counter or the core's front does not refuse connections while it is stopped."""
    assert not host.service("demo-core").is_running
    assert host.service("si-notice@demo-core").is_running
    code, body = curl(host, "/collection", port=18091, data='{"line": "qyyl"}')
    assert code == 503
    assert json.loads(body)["code"] == "MAINTENANCE"
    code, page = curl(host, "/account", accept="text/html", port=18091)
    assert code == 503
    assert "友情提示" in page
    code, body = curl(host, "/health", port=18091)  # a probe never takes the notice for the service
    assert code == 503
    headers = host.check_output("curl -s -o /dev/null -D - http://127.0.0.1:18091/version")
    assert "X-SI-Notice-Standin: demo-core" in headers  # how a probe tells it from a live service


def test_starting_the_component_takes_its_port_back_from_the_stand_in(host):
    host.run_expect([0], "systemctl start demo-core")
    assert not host.service("si-notice@demo-core").is_running
    code, body = curl(host, "/collection/", port=18091)
    assert code == 200
    assert "collection works" in body

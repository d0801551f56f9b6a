#!/usr/bin/python
"""Send a host's own services a list of requests, each with the status it must answer (N2).

#17: the freeze's check was a looped uri task per kind of request, a round trip per request
(a core host with six components: twelve). This module sends them all on the host in one
call, every one of them, then fails naming each that answered otherwise.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: channel_requests
short_description: Send requests from the host itself and check the status each answers
description:
  - Sends each request (C(method), C(url), a JSON C(body)), all of them, and fails naming every
    one whose status differs from C(status), with what it answered (at most 200 characters).
  - It only reads what services answer; the requests are the check's own (refused before any
    write when the business is stopped). In check mode it asks too.
options:
  requests: {type: list, elements: dict, required: true, description: "[{url, method, body, status}]"}
  timeout: {type: int, default: 30, description: Seconds each request waits.}
"""

import http.client
import json
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

SHOWN = 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other (the check asks where it is sent, nowhere else):
    a channel that redirects collection elsewhere does not pass by what the other place says."""

    def redirect_request(self, *_args, **_kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def ask(request: dict, timeout: int) -> dict:
    data = None if request.get("body") is None else json.dumps(request["body"]).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(request["url"], data=data, method=request.get("method") or "GET",  # noqa: S310
                                 headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as answer:  # the host's own services
            status, body = answer.status, answer.read(65536)
    except urllib.error.HTTPError as answer:
        status, body = answer.code, answer.read(65536)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # not HTTP at all: no answer either
        status, body = -1, repr(exc).encode()
    # what a host answers is shown to operators: short, and never a control character
    head = body.decode("utf-8", "replace")[:SHOWN + 1]
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in head)
    return {"url": request["url"], "method": req.get_method(), "status": status,
            "expected": int(request["status"]), "ok": status == int(request["status"]),
            "answer": text if len(text) <= SHOWN else text[:SHOWN] + "…"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "requests": {"type": "list", "elements": "dict", "required": True, "options": {
                "url": {"type": "str", "required": True},
                "method": {"type": "str", "default": "GET"},
                "body": {"type": "raw"},
                "status": {"type": "int", "required": True}}},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    results = [ask(request, module.params["timeout"]) for request in module.params["requests"]]
    wrong = [r for r in results if not r["ok"]]
    if wrong:
        module.fail_json(msg="; ".join(
            f"{r['method']} {r['url']} answered {'nothing' if r['status'] == -1 else r['status']},"
            f" not {r['expected']}: {r['answer']}" for r in wrong), results=results)
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()

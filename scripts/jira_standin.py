#!/usr/bin/env python3
"""A Jira stand-in for scripts/probes.sh: a tiny Jira Data Center that accepts any credentials.

Like Xray, Herald saves a Jira connection through its Xray-compatible API only once it works, and its
own API checks every integration it stores. Generated requests name random Jira hosts, which do not
exist inside the probes' network namespace; so Herald runs there with this script as its HTTP proxy
(HTTP_PROXY), and every plain-http Jira it is given answers through it: serverInfo, myself, a
project with every key, both permissions, and one issue type (10004, Bug) with its create screen.
The answers are read from the same fixtures as the Rust simulator (tests/support/jira_sim.rs).
Anything else (HTTPS through the proxy: CONNECT) is refused, as an unreachable Jira would be.

Usage: jira_standin.py PORT_FILE  (binds 127.0.0.1 on a free port and writes it to PORT_FILE)
"""

import base64
import json
import pathlib
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "jira"


def fixture(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


SERVER_INFO = fixture("scanapi-readme__serverInfo.datacenter.issues.redhat.com.json")
MYSELF = fixture("jira-ruby__user_accountId.json")
PROJECT = fixture("jira-ruby__project_SAMPLEPROJECT.json")
PERMISSION = fixture("spec-example__mypermissions.cloud.200.json")["permissions"]["EDIT_ISSUES"]
ISSUE_TYPES = fixture("spec-example__createmeta_issuetypes.cloud.200.json")
FIELDS = fixture("spec-example__createmeta_fields.cloud.200.json")


def field(template, field_id, name, required):
    return dict(template, fieldId=field_id, key=field_id, name=name, required=required, hasDefaultValue=False)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        base = f"{url.scheme or 'http'}://{url.netloc or self.headers.get('Host', 'jira')}"
        path, query = url.path, parse_qs(url.query)
        if path.endswith("/rest/api/2/serverInfo"):
            return self.answer(200, dict(SERVER_INFO, baseUrl=base + path[: -len("/rest/api/2/serverInfo")]))
        user = self.user()
        if user is None:
            return self.answer(401, {"errorMessages": ["You are not authenticated."], "errors": {}})
        rest = path.split("/rest/api/2/", 1)[1] if "/rest/api/2/" in path else ""
        parts = rest.split("/")
        if parts == ["myself"]:
            return self.answer(200, dict(MYSELF, name=user, active=True))
        if len(parts) == 2 and parts[0] == "project":
            return self.answer(200, dict(PROJECT, key=parts[1]))
        if parts == ["mypermissions"]:
            grant = lambda pid, key, name: dict(PERMISSION, id=pid, key=key, name=name, havePermission=True)  # noqa: E731
            return self.answer(200, {"permissions": {
                "BROWSE_PROJECTS": grant("10", "BROWSE_PROJECTS", "Browse Projects"),
                "CREATE_ISSUES": grant("11", "CREATE_ISSUES", "Create Issues"),
            }})
        if len(parts) == 4 and parts[:2] == ["issue", "createmeta"] and parts[3] == "issuetypes":
            bug = {"self": f"{base}/rest/api/2/issuetype/10004", "id": "10004", "name": "Bug",
                   "description": "", "subtask": False, "iconUrl": f"{base}/images/icons/issuetypes/bug.png"}
            return self.answer(200, self.page(ISSUE_TYPES, [bug], query))
        if len(parts) == 5 and parts[:2] == ["issue", "createmeta"] and parts[3] == "issuetypes":
            if parts[4] != "10004":
                return self.answer(404, {"errorMessages": ["Issue type not found."], "errors": {}})
            template = FIELDS["fields"][0]
            fields = [field(template, "summary", "Summary", True), field(template, "issuetype", "Issue Type", True),
                      field(template, "project", "Project", True), field(template, "description", "Description", False)]
            return self.answer(200, self.page(FIELDS, fields, query))
        return self.answer(404, {"errorMessages": ["Not found."], "errors": {}})

    def user(self):
        """The user the request signs in as: any Basic user, or `pat-user` for any bearer token."""
        value = self.headers.get("Authorization", "")
        if value.startswith("Bearer ") and value[7:].strip():
            return "pat-user"
        if value.startswith("Basic "):
            try:
                decoded = base64.b64decode(value[6:], validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
            name, _, _ = decoded.partition(":")
            return name or None
        return None

    @staticmethod
    def page(template, items, query):
        """A Data Center page (`values`, `isLast`) of `items`, as the fixture's shape with Jira's paging."""
        start = int(query.get("startAt", ["0"])[0] or 0)
        size = max(1, min(int(query.get("maxResults", ["50"])[0] or 50), 50))
        chunk = items[start:start + size]
        body = {k: v for k, v in template.items() if k not in ("issueTypes", "fields")}
        body.update(values=chunk, startAt=start, maxResults=size, total=len(items),
                    isLast=start + len(chunk) >= len(items))
        return body


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    pathlib.Path(sys.argv[1]).write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


if __name__ == "__main__":
    main()

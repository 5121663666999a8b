"""Runs Schemathesis from the published Events, Identity and Cohorts API
descriptions (../shared/reference/permutive-openapi) against a running
hivestream, and prints one JSON summary line.

The descriptions are used as published, but for the named defects below,
each patched in memory (the files are never changed):

- events.json: the 201 answer is `oneOf` EventResponse / EventUnenrichedResponse,
  but neither excludes the other's fields, so every enriched answer (it has
  `user_id` and `time`) matches both and fails `oneOf` whatever the server
  sends. Read as `anyOf`.
- cohorts.json: its schemas spell fields in camelCase (`workspaceId`,
  `segmentType`, `createdAt`, `requestId`) where every example of the same
  file uses snake_case; the API follows the examples, so the schemas are read
  in snake_case. `SegmentType` is `oneOf` two empty objects where the
  examples send the strings `real_time` and `offline`: read as that string
  enum. `SegmentDetailApiV2WithAudience` is `oneOf` a lookalike and a query
  cohort, and a query cohort satisfies both: read as `anyOf`. Its error's
  `status` is an object `{code}` where its examples send a string: read as a
  string (hivestream answers every route with one envelope, contract §2).

Checks: no 5xx, and every documented answer conforms to its schema and
content type. Status codes the files do not list are not failures: a bad
request gets a precise 400 even where a file lists none (identity.json).

usage: schemathesis_run.py REFERENCE_DIR BASE_URL ADMIN_KEY WORK_DIR [MAX_EXAMPLES]
"""

import copy
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path


def snake(name):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def snake_schema(node):
    """Renames camelCase property names (and `required` entries) to snake_case."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                out[k] = {snake(p): snake_schema(s) for p, s in v.items()}
            elif k == "required" and isinstance(v, list):
                out[k] = [snake(p) for p in v]
            else:
                out[k] = snake_schema(v)
        return out
    if isinstance(node, list):
        return [snake_schema(x) for x in node]
    return node


def patch_events(spec):
    answer = spec["paths"]["/events"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    answer["anyOf"] = answer.pop("oneOf")
    return spec


def create_cohort(base_url, key, name):
    """Creates a cohort through the API; returns its id."""
    body = json.dumps({"name": name, "query": {"event": "Pageview"}}).encode()
    req = urllib.request.Request(base_url + "/v2/cohorts", data=body, method="POST",
                                 headers={"x-api-key": key, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["id"]


def aim_at(spec, method, cohort_id):
    """Makes `method /v2/cohorts/{cohortId}` address an existing cohort, so
    that its documented 200 answer is generated and checked (random ids only
    ever find 404s)."""
    op = spec["paths"]["/v2/cohorts/{cohortId}"][method]
    for p in op.get("parameters", []):
        if p["name"] == "cohortId":
            p["schema"] = {"type": "string", "enum": [cohort_id]}
            p.pop("example", None)
            p.pop("examples", None)


def patch_cohorts(spec):
    schemas = snake_schema(spec["components"]["schemas"])
    schemas["SegmentType"] = {"type": "string", "enum": ["real_time", "offline"]}
    detail = schemas["SegmentDetailApiV2WithAudience"]
    detail["anyOf"] = detail.pop("oneOf")
    schemas["HttpError"]["properties"]["status"] = {"type": "string"}
    spec["components"]["schemas"] = schemas
    return spec


PATCHES = {"events.json": patch_events, "identity.json": lambda s: s, "cohorts.json": patch_cohorts}
# Base path of each description's server, on our collector.
BASES = {"events.json": "/v2.0", "identity.json": "/v2.0", "cohorts.json": ""}
CHECKS = "not_a_server_error,content_type_conformance,response_schema_conformance"


def run(reference, base_url, key, work, max_examples):
    results = {}
    for name, patch in PATCHES.items():
        spec = patch(copy.deepcopy(json.loads((reference / name).read_text())))
        if name == "cohorts.json":
            kept, deleted = (create_cohort(base_url, key, f"schemathesis {n}") for n in ("kept", "deleted"))
            aim_at(spec, "get", kept)
            aim_at(spec, "patch", kept)
            aim_at(spec, "delete", deleted)
        path = work / name
        path.write_text(json.dumps(spec))
        cmd = [
            "schemathesis", "run", str(path),
            "--url", base_url + BASES[name],
            "-H", f"x-api-key: {key}",
            "--checks", CHECKS,
            "--max-examples", str(max_examples),
            "--seed", "20261202",
            "--generation-database", "none",
            "--workers", "1",
            "--request-timeout", "10",
            "--no-color",
            "--report", "junit",
            "--report-junit-path", str(work / f"{name}.junit.xml"),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        (work / f"{name}.log").write_text(done.stdout + done.stderr)
        lines = [l.strip() for l in done.stdout.splitlines()]
        closing = [l.strip("= ") for l in lines if l.startswith("==") and " in " in l]
        cases = [lines[i + 1] for i, l in enumerate(lines[:-1]) if l == "Test cases:"]
        results[name] = {
            "exit": done.returncode,
            "summary": closing[-1] if closing else "",
            "cases": cases[-1] if cases else "",
            "log": str(work / f"{name}.log"),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    reference, base_url, key, work = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
    run(reference, base_url, key, work, int(sys.argv[5]) if len(sys.argv) > 5 else 30)

"""Fuzz the running shop's HTTP API with schemathesis (``make fuzz``).

Runs every operation of /openapi.json, once authenticated as a customer and
once as an admin, with at most ``--examples`` generated cases per operation,
and fails on any 5xx answer or any answer that does not conform to the
document (status, content type, body schema). schemathesis runs from its own
virtualenv (.venv-fuzz); the shop must be running (``make run``).
"""
import argparse
import os
import subprocess
import sys
import time
import uuid

import requests

SCHEMATHESIS = os.path.join(".venv-fuzz", "bin", "schemathesis")
# One worker: hypothesis parses sources with ast in each thread, and CPython
# 3.11.7's ast is not thread-safe (SystemError "AST constructor recursion depth
# mismatch", fixed in 3.11.8).
WORKERS = "1"
MAX_THROTTLE_WAIT = 120
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--examples", type=int, default=30, help="cases per operation")
    parser.add_argument("--max-time", type=int, default=120, help="seconds per identity")
    parser.add_argument("--admin-username", default=os.environ.get("SHOP_ADMIN_USERNAME", "admin"))
    parser.add_argument("--admin-password",
                        default=os.environ.get("SHOP_ADMIN_PASSWORD", "admin-password"))
    args = parser.parse_args(argv)

    try:
        requests.get(f"{args.base_url}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        sys.exit(f"Error: the shop does not answer at {args.base_url} ({exc}); start `make run`")
    identities = {"customer": customer_token(args.base_url),
                  "admin": token(args.base_url, args.admin_username, args.admin_password)}
    failed = []
    for name, bearer in identities.items():
        print(f"\n== fuzzing as {name}", flush=True)
        result = subprocess.run([
            SCHEMATHESIS, "run", f"{args.base_url}/openapi.json",
            "--header", f"Authorization: Bearer {bearer}",
            "--max-examples", str(args.examples), "--max-time", str(args.max_time),
            "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
            "--workers", WORKERS, "--request-timeout", "15", "--seed", "1",
            "--report", "junit", "--report-junit-path", f"var/fuzz/{name}.xml"])
        if result.returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"Fuzzing found problems as: {', '.join(failed)}")
    print("\nFuzzing found no 5xx answer and no answer that breaks the document.")


def token(base_url, username, password):
    answer = login(base_url, username, password)
    wait = int(answer.headers.get("Retry-After", 0))
    if answer.status_code == 429 and wait <= MAX_THROTTLE_WAIT:
        # a previous run's fuzzed logins count as failures for this username
        print(f"Logins as {username} are throttled; waiting {wait} s", flush=True)
        time.sleep(wait + 1)
        answer = login(base_url, username, password)
    if answer.status_code != 200:
        sys.exit(f"Error: cannot log in as {username} ({answer.status_code}); "
                 "set SHOP_ADMIN_USERNAME and SHOP_ADMIN_PASSWORD as for make run")
    return answer.json()["access_token"]


def login(base_url, username, password):
    return requests.post(f"{base_url}/login", timeout=10,
                         json={"username": username, "password": password})


def customer_token(base_url):
    username = f"fuzz{uuid.uuid4().hex[:8]}"
    requests.post(f"{base_url}/register", timeout=10, json={
        "username": username, "email": f"{username}@example.com", "password": "fuzz-password"})
    return token(base_url, username, "fuzz-password")


if __name__ == "__main__":
    main()

"""Reference checks the Rust suite delegates to independent implementations.

    check.py signatures FILE   verify webhooks with the `standardwebhooks` package
    check.py schemas FILE      validate documents against JSON Schemas (jsonschema_rs)

FILE is JSON written by the test. Prints one line per failure and a summary;
exits non-zero when anything failed.
"""

import json
import sys


def signatures(cases):
    from standardwebhooks import Webhook, WebhookVerificationError

    failures = 0
    for i, case in enumerate(cases):
        try:
            Webhook(case["secret"]).verify(case["body"], case["headers"])
            ok = True
        except WebhookVerificationError as err:
            ok = False
            reason = str(err)
        if ok != case["expect"]:
            failures += 1
            print(f"case {i}: expected {'valid' if case['expect'] else 'invalid'}, got "
                  f"{'valid' if ok else 'invalid: ' + reason}")
    return failures


def schemas(cases):
    import jsonschema_rs

    failures = 0
    for i, case in enumerate(cases):
        try:
            jsonschema_rs.validate(case["schema"], case["instance"])
        except jsonschema_rs.ValidationError as err:
            failures += 1
            print(f"case {i} ({case.get('name', '?')}): {err}")
    return failures


def main():
    command, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as handle:
        cases = json.load(handle)
    failures = {"signatures": signatures, "schemas": schemas}[command](cases)
    print(f"{len(cases) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

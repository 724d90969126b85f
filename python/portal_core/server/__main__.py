"""``python -m portal_core.server openapi``: prints the OpenAPI document (the source of
``docs/openapi.json``). To serve, use uvicorn: ``uvicorn --factory
portal_core.server:app_from_env``."""

from __future__ import annotations

import json
import sys

from portal_core.server.openapi import build_openapi


def main(argv: list[str]) -> int:
    if argv != ["openapi"]:
        print("usage: python -m portal_core.server openapi > docs/openapi.json", file=sys.stderr)
        return 2
    json.dump(build_openapi(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Reads YAML documents from a file (or stdin with "-") and prints them as one JSON list.

Used by the deployment tests, which assert on manifests and the compose file in Rust.
"""
import json
import sys

import yaml


def main() -> None:
    source = sys.stdin if sys.argv[1] == "-" else open(sys.argv[1], encoding="utf-8")
    documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
    json.dump(documents, sys.stdout)


if __name__ == "__main__":
    main()

import argparse
import json
import sys

from tools.contracts import CURRENT, RELEASED, current_document
from tools.contracts.compatibility import breaks


def write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.contracts",
                                     description="The shop's contracts and their gate")
    parser.add_argument("command", choices=("write", "check", "release"), help=(
        "write: regenerate gateway/asyncapi.json; check: compare the contracts with the "
        "last release's and fail on what would break it; release: record the contracts "
        "as the last release's"))
    args = parser.parse_args(argv)
    document = current_document()
    if args.command == "write":
        write(CURRENT, document)
        print(f"wrote {CURRENT.relative_to(CURRENT.parents[1])}")
    elif args.command == "release":
        write(RELEASED, document)
        print(f"recorded the contracts of {document['info']['version']} in "
              f"{RELEASED.relative_to(RELEASED.parents[1])}")
    else:
        released = json.loads(RELEASED.read_text())
        found = breaks(released, document)
        for problem in found:
            print(problem, file=sys.stderr)
        if found:
            print(f"{len(found)} change(s) would break services on "
                  f"{released['info']['version']}, the last release", file=sys.stderr)
            return 1
        print(f"the contracts are compatible with {released['info']['version']}, "
              "the last release")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m kit.lessons report DIR``: a class's progress files as a table (nothing leaves the machine).

    python -m kit.lessons report DIR                       # the table as CSV on stdout, problems on stderr
    python -m kit.lessons report DIR --csv progress.csv --chart progress.vl.json

``--chart`` writes the altair chart as a Vega-Lite JSON spec (JupyterLab opens it offline). The exit
status is 0 even when some files have problems (they are listed); 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys

from .progress import collect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.lessons", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="collect a class's .kit-progress files into a table")
    rep.add_argument("folder", help="folder holding the students' progress files (searched recursively)")
    rep.add_argument("--csv", help="write the table to this CSV file (default: print it)")
    rep.add_argument("--chart", help="write the chart as a Vega-Lite JSON spec to this file")
    args = parser.parse_args(argv)
    try:
        report = collect(args.folder)
    except ValueError as err:
        parser.error(str(err))
    text = report.to_csv(args.csv)
    if args.csv is None:
        sys.stdout.write(text)
    if args.chart:
        with open(args.chart, "w", encoding="utf-8") as f:
            f.write(report.chart().to_json())
    print(f"{len(report.students)} students, {len(report.exercises)} exercises, {len(report.problems)} problem "
          f"file(s)", file=sys.stderr)
    for path, why in report.problems:
        print(f"  {path}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

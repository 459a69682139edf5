"""Classify a lab archive of millions of cells on a Ray cluster, with the same runtime and the same CSV.

    python -m hematovision.cli.distributed PATH... --csv results.csv [--workers 8] [--address auto]

An optional extra (``pip install -r requirements-cluster.txt``); the base install does not need it.
Ray Data reads the list of files, and ``map_batches`` runs one :class:`~hematovision.core.predict.Classifier`
per worker (LiteRT on the exported model, loaded once per worker) over batches of files; the rows come
back and are written in the order of the files, so the table is exactly the one ``python -m hematovision
classify --csv`` writes on one machine. ``--address auto`` joins a running cluster (``ray start
--head`` on one machine, ``ray start --address HEAD:6379`` on the others, the files on a shared
filesystem); without it Ray starts a local cluster on this machine.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from hematovision.core import paths
from hematovision.core.inputs import expand_paths
from hematovision.core.reading import CLASSIFY_MODES
from hematovision.core.results_schema import csv_columns, csv_row

BATCH_FILES = 256


class _Worker:
    """One classifier per Ray worker process, reused for every batch it is given."""

    def __init__(self, model_dir: str, mode: str) -> None:
        from hematovision.core.predict import Classifier

        self.classifier = Classifier.load(Path(model_dir))
        self.mode = mode

    def __call__(self, batch: dict) -> dict:
        names = [str(name) for name in batch["file"]]
        sources = [(name, Path(str(path))) for name, path in zip(names, batch["path"], strict=True)]
        results = self.classifier.classify(sources, mode=self.mode)
        columns = csv_columns(self.classifier.classes)
        rows = [csv_row(result) for result in results]
        # The file's position travels with each row, so the driver can restore the input order.
        order = {name: int(index) for name, index in zip(names, batch["index"], strict=True)}
        return {"index": [order[row["file"]] for row in rows]} | {
            column: [str(row.get(column, "")) for row in rows] for column in columns
        }


def classify_on_ray(
    files: list[tuple[str, Path]],
    model_dir: Path,
    table: Path,
    workers: int,
    mode: str = "auto",
    address: str | None = None,
) -> int:
    """Classify ``files`` (name, path) on Ray and write the CSV; returns the number of rows."""
    import ray

    from hematovision.core.predict import Classifier

    classes = Classifier.load(model_dir).classes  # the columns, and a clear error before any worker starts
    ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False)
    try:
        items = [{"file": name, "path": str(path), "index": i} for i, (name, path) in enumerate(files)]
        dataset = ray.data.from_items(items)
        rows = dataset.map_batches(
            _Worker,
            fn_constructor_args=(str(model_dir), mode),
            batch_size=BATCH_FILES,
            concurrency=workers,
            batch_format="numpy",
        ).take_all()
    finally:
        ray.shutdown()
    # Stable: rows of one file (the cells of a field of view) keep the order the worker gave them.
    rows.sort(key=lambda row: int(row["index"]))
    columns = csv_columns(classes)
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({column: str(row[column]) for column in columns} for row in rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hematovision.cli.distributed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("paths", nargs="+", type=Path, help="image files, folders and/or ZIP archives")
    parser.add_argument("--csv", type=Path, required=True, help="the table to write")
    parser.add_argument("--workers", type=int, default=2, help="classifier processes (one model each)")
    parser.add_argument("--mode", choices=CLASSIFY_MODES, default="auto")
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: models/)")
    parser.add_argument("--address", help="a running Ray cluster to join ('auto' finds the local head)")
    args = parser.parse_args(argv)
    expansion = expand_paths(args.paths)
    for name, reason in expansion.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    files = [(name, source) for name, source in expansion.sources if isinstance(source, Path)]
    if len(files) != len(expansion.sources):
        print("error: ZIP members cannot be shipped to workers; unpack the archive on the shared filesystem",
              file=sys.stderr)  # fmt: skip
        return 2
    if not files:
        print("error: nothing to classify", file=sys.stderr)
        return 2
    count = classify_on_ray(files, args.model or paths.model_dir(), args.csv, args.workers, args.mode, args.address)
    print(f"{count} rows for {len(files)} files written to {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

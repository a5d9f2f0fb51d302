#!/usr/bin/env python3
"""Applies every ClickHouse migration (core/ then modern/, in file order) in an embedded modern ClickHouse (chdb),
then applies them all a second time (they must be idempotent), and exits non-zero on the first error.

Install: python3 -m pip install chdb-core
Usage:   python3 schemas/clickhouse/check_modern.py
"""
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def statements(sql: str):
    """Splits a migration into statements the way the Rust migrator does: `--` comment lines dropped, `;` ends."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def main() -> int:
    try:
        from chdb import session as chs
    except ImportError as e:  # pragma: no cover - reported to the caller
        print(f"check_modern: chdb is not importable ({e}); install with: python3 -m pip install chdb-core")
        return 3
    files = sorted((HERE / "core").glob("*.sql")) + sorted((HERE / "modern").glob("*.sql"))
    if not files:
        print("check_modern: no migration files found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as path:
        sess = chs.Session(path)
        try:
            version = str(sess.query("SELECT version()", "CSV")).strip().strip('"')
            sess.query("CREATE DATABASE IF NOT EXISTS migcheck")
            sess.query("USE migcheck")
            for round_ in (1, 2):
                for f in files:
                    for stmt in statements(f.read_text()):
                        try:
                            sess.query(stmt)
                        except Exception as e:  # noqa: BLE001 - any engine error fails the check
                            rel = f.relative_to(HERE)
                            print(f"check_modern: {rel} failed on round {round_} (ClickHouse {version}): {e}",
                                  file=sys.stderr)
                            return 1
            tables = str(sess.query(
                "SELECT name FROM system.tables WHERE database = 'migcheck' ORDER BY name", "TSV")).split()
            ddl = str(sess.query("SHOW CREATE TABLE migcheck.raw_events", "TSVRaw"))
            for needle in ("TTL", "LowCardinality", "DateTime64"):
                if needle not in ddl:
                    print(f"check_modern: raw_events lacks {needle} after the modern migrations", file=sys.stderr)
                    return 1
        finally:
            sess.close()
    print(f"check_modern: {len(files)} migrations applied twice on ClickHouse {version}: {', '.join(tables)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

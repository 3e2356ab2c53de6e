#!/usr/bin/env python3
"""SQLite rows of bench/run: what databases do to a volume.

Usage: sqlite_bench.py DIR tx N     N small transactions, one INSERT each, WAL, synchronous=FULL;
                                    prints transactions per second
       sqlite_bench.py DIR bulk N   N rows inserted and indexed in one transaction (WAL,
                                    synchronous=FULL); prints seconds
The database is DIR/bench.db (with its -wal and -shm); it is removed before and after.
"""
import os
import sqlite3
import sys
import time


def remove(db):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass


def open_db(db):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
    return conn


def main(argv):
    if len(argv) != 4 or argv[2] not in ("tx", "bulk"):
        print(__doc__, file=sys.stderr)
        return 2
    db, mode, n = os.path.join(argv[1], "bench.db"), argv[2], int(argv[3])
    remove(db)
    conn = open_db(db)
    payload = "x" * 100
    start = time.perf_counter()
    if mode == "tx":
        for i in range(n):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", ((i * 7919) % n, payload))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        result = f"{n / elapsed:.1f}"
    else:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)",
                         (((i * 7919) % n, payload) for i in range(n)))
        conn.execute("CREATE INDEX t_k ON t (k)")
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        result = f"{elapsed:.6f}"
    conn.close()
    remove(db)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A psycopg 3 client run against the server by tests/clients.rs.

Usage: psycopg_client.py HOST PORT USER PASSWORD DBNAME
Exercises text and binary parameters and results of every type Meridian
supports, transactions, errors with SQLSTATEs and a catalog type lookup;
prints OK on success and raises (non-zero exit) on any mismatch.
"""

import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.types import TypeInfo

host, port, user, password, dbname = sys.argv[1:6]
conninfo = f"host={host} port={port} user={user} dbname={dbname} connect_timeout=10"
if password:
    conninfo += f" password={password}"

with psycopg.connect(conninfo, autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS py_t")
    cur.execute(
        "CREATE TABLE py_t (id INT PRIMARY KEY, name TEXT, score NUMERIC(10,2), "
        "ts TIMESTAMP, tstz TIMESTAMPTZ, ok BOOLEAN, data BYTEA, d DATE, "
        "f DOUBLE PRECISION, big BIGINT, small SMALLINT, v VARCHAR(10))"
    )
    row = (
        1, "alice", Decimal("12.50"), datetime(2024, 2, 29, 12, 30, 1, 500000),
        datetime(2024, 3, 1, 8, 0, 0, tzinfo=timezone.utc), True, b"\x00\x01\xff",
        date(2024, 2, 29), 1.25, 9_000_000_000, 7, "vee",
    )
    cur.execute("INSERT INTO py_t VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
    cur.executemany(
        "INSERT INTO py_t (id, name) VALUES (%s, %s)", [(2, "bob"), (3, "carol")]
    )
    assert cur.rowcount == 2, cur.rowcount

    # Text results.
    cur.execute("SELECT id, name, score, ts, tstz, ok, data, d, f, big, small, v FROM py_t WHERE id = %s", (1,))
    got = cur.fetchone()
    assert got == row, got
    # Binary results and binary parameters.
    bcur = conn.cursor(binary=True)
    bcur.execute("SELECT id, name, score, ts, tstz, ok, data, d, f, big, small, v FROM py_t WHERE id = %b", (1,))
    got = bcur.fetchone()
    assert got == row, got
    cur.execute("SELECT count(*) FROM py_t")
    assert cur.fetchone()[0] == 3

    # Transactions.
    conn.autocommit = False
    with conn.transaction():
        cur.execute("UPDATE py_t SET name = %s WHERE id = %s", ("bobby", 2))
        assert cur.rowcount == 1
    cur.execute("SELECT name FROM py_t WHERE id = 2")
    assert cur.fetchone()[0] == "bobby"
    conn.commit()

    # A unique violation inside a transaction, then recovery.
    try:
        cur.execute("INSERT INTO py_t (id, name) VALUES (%s, %s)", (1, "dup"))
        raise AssertionError("expected a unique violation")
    except errors.UniqueViolation as e:
        assert e.diag.sqlstate == "23505", e.diag.sqlstate
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    try:
        cur.execute("SELECT 1")
        raise AssertionError("expected in-failed-transaction")
    except errors.InFailedSqlTransaction:
        pass
    conn.rollback()
    cur.execute("SELECT name FROM py_t WHERE id = 1")
    assert cur.fetchone()[0] == "alice"
    conn.commit()

    # Undefined table.
    try:
        cur.execute("SELECT * FROM no_such_table")
        raise AssertionError("expected undefined table")
    except errors.UndefinedTable:
        conn.rollback()

    # A catalog lookup, as psycopg's type adaptation machinery does it.
    info = TypeInfo.fetch(conn, "int4")
    assert info is not None and info.oid == 23, info
    conn.commit()

print("OK")

-- Tables, command tags, and psql-style aligned output: numbers right,
-- text left, NULL empty, wide characters, values spanning lines.
CREATE TABLE accounts (
    id INT PRIMARY KEY,
    owner TEXT NOT NULL,
    balance NUMERIC(10,2) DEFAULT 0,
    note VARCHAR(20)
);
INSERT INTO accounts VALUES (1, 'alice', 10.5, 'first'), (22, 'bob', NULL, NULL);
INSERT INTO accounts VALUES (3, '日本語', -1, 'two
lines');
SELECT * FROM accounts ORDER BY id;
SELECT id, owner FROM accounts WHERE id > 100;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
DELETE FROM accounts WHERE id = 22;
-- Several statements on a line, and a semicolon inside a string.
SELECT 'semi;colon' AS s, id FROM accounts WHERE id = 1; SELECT 2 AS two;
BEGIN; INSERT INTO accounts (id, owner) VALUES (4, 'carol'); COMMIT;
SELECT id, balance FROM accounts ORDER BY id;

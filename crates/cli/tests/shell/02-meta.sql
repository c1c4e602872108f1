-- Meta commands: listing and describing tables, timing toggles.
CREATE TABLE orders (id BIGINT PRIMARY KEY, account INT NOT NULL, total DOUBLE PRECISION, placed TIMESTAMPTZ, shipped BOOLEAN DEFAULT false);
\d
\dt acc*
\dt nosuch*
\d accounts
\d orders
\d nosuch
\timing on
\timing off

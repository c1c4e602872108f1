-- An unknown table.
SELECT * FROM nosuch;

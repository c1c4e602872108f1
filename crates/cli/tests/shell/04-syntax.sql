-- A syntax error points at the offending token.
SELECT id
  FROM accounts
 WHERE id = = 1;

-- An error shows its SQLSTATE, detail and position, and stops the script
-- with exit status 3.
SELECT 1 AS before;
INSERT INTO accounts (id, owner) VALUES (1, 'again');
SELECT 'never runs';

// A PostgreSQL JDBC client run against the server by tests/clients.rs.
//
// Usage: java -cp postgresql.jar:. JdbcClient HOST PORT USER PASSWORD DBNAME
// Exercises prepared statements (past the driver's server-side prepare
// threshold, so binary transfer kicks in), every supported type, result set
// metadata, transactions and SQLSTATEs; prints OK, or throws.

import java.math.BigDecimal;
import java.sql.*;

public class JdbcClient {
    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[4]
            + "?connectTimeout=10&socketTimeout=60";
        try (Connection conn = DriverManager.getConnection(url, args[2], args[3])) {
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE IF EXISTS j_t");
                st.execute("CREATE TABLE j_t (id INT PRIMARY KEY, name VARCHAR(20), score NUMERIC(10,2), "
                    + "ts TIMESTAMP, ok BOOLEAN, data BYTEA, d DATE, f DOUBLE PRECISION, big BIGINT)");
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO j_t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 10; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "name" + i);
                    ps.setBigDecimal(3, new BigDecimal("1.25").multiply(BigDecimal.valueOf(i)));
                    ps.setTimestamp(4, Timestamp.valueOf("2024-01-0" + (i % 9 + 1) + " 10:00:00.5"));
                    ps.setBoolean(5, i % 2 == 0);
                    ps.setBytes(6, new byte[] {1, 2, (byte) i});
                    ps.setDate(7, Date.valueOf("2024-02-0" + (i % 9 + 1)));
                    ps.setDouble(8, i * 0.5);
                    ps.setLong(9, 10_000_000_000L + i);
                    check(ps.executeUpdate() == 1, "insert count");
                }
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, name, score, ts, ok, data, d, f, big FROM j_t WHERE id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "row " + i);
                        check(rs.getInt(1) == i, "id");
                        check(rs.getString(2).equals("name" + i), "name");
                        check(rs.getBigDecimal(3).compareTo(new BigDecimal("1.25").multiply(BigDecimal.valueOf(i))) == 0, "score " + rs.getBigDecimal(3));
                        check(rs.getTimestamp(4).equals(Timestamp.valueOf("2024-01-0" + (i % 9 + 1) + " 10:00:00.5")), "ts " + rs.getTimestamp(4));
                        check(rs.getBoolean(5) == (i % 2 == 0), "ok");
                        byte[] data = rs.getBytes(6);
                        check(data.length == 3 && data[2] == (byte) i, "data");
                        check(rs.getDate(7).toString().equals("2024-02-0" + (i % 9 + 1)), "date " + rs.getDate(7));
                        check(rs.getDouble(8) == i * 0.5, "f");
                        check(rs.getLong(9) == 10_000_000_000L + i, "big");
                        check(!rs.next(), "one row");
                        ResultSetMetaData md = rs.getMetaData();
                        check(md.getColumnCount() == 9, "columns");
                        check(md.getColumnName(2).equals("name"), "column name");
                        check(md.getColumnType(1) == Types.INTEGER, "int type");
                        check(md.getColumnTypeName(3).equals("numeric"), "numeric type " + md.getColumnTypeName(3));
                    }
                }
            }
            // Transactions and SQLSTATEs.
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("UPDATE j_t SET name = 'changed' WHERE id = 1");
                conn.rollback();
                try (ResultSet rs = st.executeQuery("SELECT name FROM j_t WHERE id = 1")) {
                    check(rs.next() && rs.getString(1).equals("name1"), "rolled back");
                }
                try {
                    st.executeUpdate("INSERT INTO j_t (id) VALUES (1)");
                    throw new AssertionError("expected a unique violation");
                } catch (SQLException e) {
                    check("23505".equals(e.getSQLState()), "sqlstate " + e.getSQLState());
                }
                conn.rollback();
                st.executeUpdate("UPDATE j_t SET name = 'committed' WHERE id = 2");
                conn.commit();
                try (ResultSet rs = st.executeQuery("SELECT name FROM j_t WHERE id = 2")) {
                    check(rs.next() && rs.getString(1).equals("committed"), "committed");
                }
                conn.commit();
            }
            conn.setAutoCommit(true);
            DatabaseMetaData meta = conn.getMetaData();
            check(meta.getDatabaseProductName().equals("PostgreSQL"), "product");
        }
        System.out.println("OK");
    }
}

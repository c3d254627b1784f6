//! The SQLite and PostgreSQL schemas agree after migration: the same tables, columns, primary keys,
//! unique constraints and indexes, by name (types differ by design: INTEGER vs BIGINT, TEXT vs
//! VARCHAR/BYTEA). The two migration directories are written by hand side by side; this is what
//! catches a column or an index added to one and forgotten in the other.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, Row};

use crate::support::{Backend, TestDatabase};

/// One table's shape, as far as both backends can express it alike.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeSet<String>,
    /// The primary key's columns, in key order.
    primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints (not of indexes created by name).
    unique: BTreeSet<Vec<String>>,
    /// Indexes created by name (`CREATE [UNIQUE] INDEX name`): their columns and whether unique.
    indexes: BTreeMap<String, (Vec<String>, bool)>,
}

type Schema = BTreeMap<String, Table>;

/// sqlx's own bookkeeping, created by the migrator on each backend with its own shape.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

async fn sqlite_schema(db: &TestDatabase) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(&db.settings().database.url)
        .await
        .expect("open the SQLite database");
    let mut schema = Schema::new();
    // `sqlite_%` are SQLite's own tables (e.g. `sqlite_sequence`, which AUTOINCREMENT creates; PostgreSQL
    // keeps the counter of an identity column in a sequence, which is not a table).
    let tables = "SELECT m.name FROM sqlite_master m \
                  WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> ?";
    let columns = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT m.name AS tbl, p.name AS col, p.pk AS pk FROM ({tables}) m \
         JOIN pragma_table_info(m.name) p ORDER BY m.name, p.pk, p.cid"
    )))
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .expect("read SQLite columns");
    for row in columns {
        let table = schema.entry(row.get("tbl")).or_default();
        let column: String = row.get("col");
        // `pk` is the column's position in the primary key (1-based), 0 when not part of it. The key
        // comes from here, not from the index list: an INTEGER PRIMARY KEY is the rowid, with no index.
        if row.get::<i64, _>("pk") > 0 {
            table.primary_key.push(column.clone());
        }
        table.columns.insert(column);
    }
    let indexes = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT m.name AS tbl, il.name AS idx, il.\"unique\" AS uniq, il.origin AS origin, ii.name AS col \
         FROM ({tables}) m JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii \
         ORDER BY m.name, il.name, ii.seqno"
    )))
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .expect("read SQLite indexes");
    let mut by_index: BTreeMap<(String, String), (String, bool, Vec<String>)> = BTreeMap::new();
    for row in indexes {
        let entry = by_index
            .entry((row.get("tbl"), row.get("idx")))
            .or_insert_with(|| (row.get("origin"), row.get::<i64, _>("uniq") == 1, Vec::new()));
        entry.2.push(row.get("col"));
    }
    for ((table, index), (origin, unique, columns)) in by_index {
        let table = schema.get_mut(&table).expect("index of a listed table");
        match origin.as_str() {
            // Created by CREATE INDEX, under the name the migration gave it.
            "c" => {
                table.indexes.insert(index, (columns, unique));
            }
            // A UNIQUE constraint's automatic index (`sqlite_autoindex_…`; PostgreSQL calls it
            // `…_key`): the names are the engines' own, so compare the columns.
            "u" => {
                table.unique.insert(columns);
            }
            // The primary key's automatic index: already compared through `primary_key`.
            _ => {}
        }
    }
    let _ = conn.close().await;
    schema
}

async fn postgres_schema(db: &TestDatabase) -> Schema {
    let url = db.url.as_deref().expect("a PostgreSQL database");
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the PostgreSQL database");
    let mut schema = Schema::new();
    let tables = sqlx::query(
        "SELECT table_name::text AS tbl FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .expect("read PostgreSQL tables");
    for row in tables {
        schema.insert(row.get("tbl"), Table::default());
    }
    let columns = sqlx::query(
        "SELECT table_name::text AS tbl, column_name::text AS col FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .expect("read PostgreSQL columns");
    for row in columns {
        let table: String = row.get("tbl");
        if let Some(table) = schema.get_mut(&table) {
            table.columns.insert(row.get("col"));
        }
    }
    // pg_indexes names every index; the catalog behind it says which back a PRIMARY KEY or UNIQUE
    // constraint (named by PostgreSQL, `…_pkey` / `…_key`) and which columns each covers, in order.
    let indexes = sqlx::query(
        "SELECT pi.tablename::text AS tbl, pi.indexname::text AS idx, ix.indisunique AS uniq, \
                ix.indisprimary AS pk, \
                EXISTS (SELECT 1 FROM pg_constraint c \
                        WHERE c.conindid = ix.indexrelid AND c.conrelid = ix.indrelid \
                          AND c.contype = 'u') AS by_constraint, \
                ARRAY(SELECT a.attname::text \
                      FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                      ORDER BY k.ord) AS cols \
         FROM pg_indexes pi \
         JOIN pg_class i ON i.relname = pi.indexname AND i.relnamespace = to_regnamespace(pi.schemaname) \
         JOIN pg_index ix ON ix.indexrelid = i.oid \
         WHERE pi.schemaname = current_schema() AND pi.tablename <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .expect("read PostgreSQL indexes");
    for row in indexes {
        let table: String = row.get("tbl");
        let table = schema.get_mut(&table).expect("index of a listed table");
        let columns: Vec<String> = row.get("cols");
        if row.get("pk") {
            table.primary_key = columns;
        } else if row.get("by_constraint") {
            table.unique.insert(columns);
        } else {
            table.indexes.insert(row.get("idx"), (columns, row.get("uniq")));
        }
    }
    let _ = conn.close().await;
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgresql_have_the_same_tables_columns_and_indexes() {
    let Some(postgres) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let sqlite = TestDatabase::new(Backend::Sqlite).await.expect("a SQLite database");
    sqlite.store().await;
    postgres.store().await;
    let (sqlite, postgres) = (sqlite_schema(&sqlite).await, postgres_schema(&postgres).await);
    // Not vacuous: the schema was read, with its keys and indexes.
    assert!(sqlite.contains_key("mail_messages"), "{sqlite:#?}");
    assert_eq!(sqlite["users"].primary_key, ["id"]);
    assert!(sqlite["mail_messages"].indexes.contains_key("mail_messages_due"));
    let names = |s: &Schema| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "the same tables");
    for (name, table) in &sqlite {
        assert_eq!(
            table, &postgres[name],
            "table {name}: SQLite (left) and PostgreSQL (right)"
        );
    }
}

//! Storing a batch in few statements on SQLite: a multi-row `INSERT … VALUES`, every value bound,
//! per chunk of the batch. Every statement is a round trip to SQLite's worker thread, so a statement
//! per row costs more than the rows; and a batch passed as one JSON document costs SQLite a parse of
//! it per column. Used by the mail intake and the event intake.

/// The largest chunk.
pub(super) const SQLITE_CHUNK: usize = 256;
/// The largest chunk of any size; bigger batches are cut in powers of two first, so at most 35
/// statement texts exist per table and each stays prepared in the connection's cache.
pub(super) const SQLITE_EXACT: usize = 32;

/// The batch cut into chunks: power-of-two sizes, largest first, until at most [`SQLITE_EXACT`] rows
/// are left, which are the last chunk.
pub(super) fn sqlite_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = if rows.len() <= SQLITE_EXACT {
            rows.len()
        } else {
            SQLITE_CHUNK.min(1 << rows.len().ilog2())
        };
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// `head` (`INSERT INTO t (…) VALUES `) followed by `rows` copies of `row` (`(?, ?, …)`). With at most
/// [`SQLITE_CHUNK`] rows of up to 100 values, far below SQLite's 32,766 bound values.
pub(super) fn values_insert(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_are_cut_into_power_of_two_chunks() {
        let sizes = |n: usize| sqlite_chunks(&vec![0u8; n]).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(7), [7]);
        assert_eq!(sizes(32), [32]);
        assert_eq!(sizes(33), [32, 1]);
        assert_eq!(sizes(1024), [256, 256, 256, 256]);
        assert_eq!(sizes(300), [256, 32, 12]);
    }

    #[test]
    fn rows_are_joined_after_the_head() {
        assert_eq!(
            values_insert("INSERT INTO t (a) VALUES ", "(?)", 3),
            "INSERT INTO t (a) VALUES (?), (?), (?)"
        );
        assert_eq!(values_insert("H ", "(?)", 1), "H (?)");
    }
}

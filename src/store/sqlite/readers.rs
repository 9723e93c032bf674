//! A small pool of read-only connections, used from the blocking thread pool.
//!
//! In WAL mode readers never wait for the writer and each read transaction
//! sees one consistent snapshot of committed data.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::store::StoreError;

pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub fn new(path: PathBuf, size: usize) -> Arc<Readers> {
        Arc::new(Readers {
            path,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        })
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    /// Run `work` on a pooled connection.
    pub async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let pooled = self.idle.lock().expect("reader pool lock").pop();
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pooled {
                Some(conn) => conn,
                None => pool.connect()?,
            };
            let result = work(&conn);
            if conn.is_autocommit() {
                pool.idle.lock().expect("reader pool lock").push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Backend("a read task panicked".into()))?
    }
}

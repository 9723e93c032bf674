//! Connections: the pool, error mapping, and small query helpers that
//! prepare each statement once per connection.

use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::store::StoreError;

/// The parameters of one statement.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Parse `postgres://…` into a connection configuration with chartwire's
/// timeouts (a database that does not answer must not hang a request).
pub fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| StoreError::Config("the PostgreSQL URL cannot be parsed".into()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    config.application_name("chartwire");
    config.keepalives_idle(Duration::from_secs(30));
    Ok(config)
}

/// A pool of `size` connections that waits at most a few seconds for one.
pub fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(3)))
        .recycle_timeout(Some(Duration::from_secs(3)))
        .build()
        .map_err(|err| StoreError::Config(format!("cannot build the connection pool: {err}")))
}

pub async fn get(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|err| match err {
        deadpool_postgres::PoolError::Backend(err) => StoreError::from(err),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    })
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        // Only the SQLSTATE and the server's message: never a DETAIL line,
        // which can quote the values of a row.
        match err.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let text = format!("{code}: {}", db.message());
                let unavailable = code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "25006";
                if unavailable {
                    StoreError::Unavailable(text)
                } else {
                    StoreError::Backend(text)
                }
            }
            None if err.is_closed() => StoreError::Unavailable("the connection was closed".into()),
            None if io_failure(&err) => {
                StoreError::Unavailable(format!("the database is unreachable: {err}"))
            }
            None => StoreError::Backend(err.to_string()),
        }
    }
}

/// Whether the error comes from the network (connecting, reading, writing).
fn io_failure(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    let text = err.to_string();
    text.contains("connect") || text.contains("timed out") || text.contains("unexpected EOF")
}

pub async fn query(
    c: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

pub async fn query_opt(
    c: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

pub async fn query_one(
    c: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_one(&stmt, params).await?)
}

pub async fn execute(c: &ClientWrapper, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

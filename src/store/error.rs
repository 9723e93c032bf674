use thiserror::Error;

/// What can go wrong below the domain. Messages never contain record values.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("version conflict: the record is at version {current}")]
    VersionConflict { current: i64 },
    #[error("field `{field}` points to a record that does not exist")]
    MissingReference { field: String },
    #[error("the last active {0} key cannot be revoked")]
    LastKeyOfRole(String),
    #[error("{0}")]
    Locked(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // rusqlite's messages describe the statement or the failure, never bound values.
        match &err {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Backend(err.to_string()),
        }
    }
}

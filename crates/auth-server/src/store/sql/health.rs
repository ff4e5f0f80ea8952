//! `HealthStore` in SQL: readiness and the config version replicas poll.

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::store::HealthStore;
use crate::store::StoreError;

#[async_trait]
impl HealthStore for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("select 1").execute(pool).await?;
        });
        Ok(())
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select version from config_version where config_version_id = 1")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("version")?)
        })
    }
}

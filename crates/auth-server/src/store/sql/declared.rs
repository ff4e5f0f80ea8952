//! `DeclaredStore` in SQL: a configuration file applied in one transaction.
//!
//! The transaction's first statement bumps the configuration version: a write, so on PostgreSQL it holds
//! that row's lock and on SQLite the database's write lock until commit. Two replicas applying one file at
//! once therefore run one after the other, and the second finds what the first made (nothing to change).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use async_trait::async_trait;
use auth_core::id::{ClientId, UserId};
use auth_core::wire::GrantType;
use sqlx::Row;

use super::clients::{
    CLIENT_COLUMNS, DELETE_CLIENT, INSERT_CLIENT, INSERT_FIRST_KEY, RECORD_DELETED_CLIENT,
    UPDATE_CLIENT, bind_client, bind_first_key, client_from_row,
};
use super::users::{END_USER_SESSIONS, REVOKE_USER_FAMILIES, USER_COLUMNS, user_from_row};
use super::{BUMP_CONFIG_VERSION, digest, scope, words};
use super::{Backend, SqlStore};
use crate::store::{
    Applied, ClientRecord, Declared, DeclaredPassword, DeclaredStore, StoreError, StoredKey,
    UserRecord,
};

/// The record to store for a declared client, given the stored one: the stored secret where the
/// declaration keeps it.
fn desired_client(
    declared: &crate::store::DeclaredClient,
    stored: Option<&ClientRecord>,
) -> Result<ClientRecord, StoreError> {
    let mut record = declared.record.clone();
    if declared.keep_secret {
        record.secret_digest = stored.and_then(|stored| stored.secret_digest);
        if record.secret_digest.is_none() {
            return Err(StoreError::Declared(format!(
                "client {}: it has no stored secret to keep, so its entry needs secret_env, secret_file or secret",
                record.client_id.as_str()
            )));
        }
    }
    Ok(record)
}

/// The hash to store for a declared user, given the stored one, and whether it changed.
fn desired_hash(
    username: &str,
    password: &DeclaredPassword,
    stored: Option<&UserRecord>,
) -> Result<(String, bool), StoreError> {
    match (password, stored) {
        (DeclaredPassword::Keep, Some(stored)) => Ok((stored.password_hash.clone(), false)),
        (DeclaredPassword::Keep, None) => Err(StoreError::Declared(format!(
            "user {username}: it is new, so its entry needs password_env, password_file or password_hash"
        ))),
        (DeclaredPassword::Set { hash, equivalent }, Some(stored))
            if stored.password_hash == *hash
                || equivalent.as_deref() == Some(stored.password_hash.as_str()) =>
        {
            Ok((stored.password_hash.clone(), false))
        }
        (DeclaredPassword::Set { hash, .. }, _) => Ok((hash.clone(), true)),
    }
}

#[async_trait]
impl DeclaredStore for SqlStore {
    async fn apply_declared(&self, declared: &Declared, now: i64) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // The lock: replicas applying at once queue here.
            sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;

            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {CLIENT_COLUMNS} from client")))
                .fetch_all(&mut *tx)
                .await?;
            let mut stored_clients = HashMap::new();
            for row in &rows {
                let client = client_from_row!(row);
                stored_clients.insert(client.client_id.as_str().to_owned(), client);
            }
            let mut named = BTreeSet::new();
            for declared_client in &declared.clients {
                let id = declared_client.record.client_id.as_str();
                named.insert(id.to_owned());
                let stored = stored_clients.get(id);
                let record = desired_client(declared_client, stored)?;
                match stored {
                    Some(stored) if *stored == record => applied.clients.unchanged += 1,
                    Some(_) => {
                        bind_client!(sqlx::query(UPDATE_CLIENT), &record, now)
                            .execute(&mut *tx)
                            .await?;
                        applied.clients.updated += 1;
                    }
                    None => {
                        bind_client!(sqlx::query(INSERT_CLIENT), &record, now)
                            .execute(&mut *tx)
                            .await?;
                        applied.clients.created += 1;
                    }
                }
            }
            if declared.prune {
                for id in stored_clients.keys().filter(|id| !named.contains(*id)) {
                    sqlx::query(DELETE_CLIENT).bind(id).execute(&mut *tx).await?;
                    sqlx::query(RECORD_DELETED_CLIENT)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    applied.clients.pruned += 1;
                }
            }
            for key in &declared.keys {
                bind_first_key!(sqlx::query(INSERT_FIRST_KEY), key)
                    .execute(&mut *tx)
                    .await?;
            }

            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from app_user")))
                .fetch_all(&mut *tx)
                .await?;
            let mut stored_users = HashMap::new();
            for row in &rows {
                let user = user_from_row!(row);
                stored_users.insert(user.username.clone(), user);
            }
            let mut named = BTreeSet::new();
            for user in &declared.users {
                named.insert(user.username.clone());
                let stored = stored_users.get(&user.username);
                let (hash, password_changed) = desired_hash(&user.username, &user.password, stored)?;
                match stored {
                    Some(stored)
                        if !password_changed
                            && stored.name == user.name
                            && stored.email == user.email
                            && stored.email_verified == user.email_verified =>
                    {
                        applied.users.unchanged += 1;
                    }
                    Some(stored) => {
                        sqlx::query(
                            "update app_user set password_hash = $2, name = $3, email = $4, email_verified = $5 \
                             where user_id = $1",
                        )
                        .bind(stored.user_id.as_str())
                        .bind(&hash)
                        .bind(&user.name)
                        .bind(&user.email)
                        .bind(user.email_verified)
                        .execute(&mut *tx)
                        .await?;
                        if password_changed {
                            // Whoever knew the old password may hold sessions and grants made with it.
                            sqlx::query(END_USER_SESSIONS)
                                .bind(stored.user_id.as_str())
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(REVOKE_USER_FAMILIES)
                                .bind(now)
                                .bind(stored.user_id.as_str())
                                .execute(&mut *tx)
                                .await?;
                        }
                        applied.users.updated += 1;
                    }
                    None => {
                        sqlx::query(
                            "insert into app_user (user_id, username, password_hash, name, email, email_verified, created_at) \
                             values ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(user.new_id.as_str())
                        .bind(&user.username)
                        .bind(&hash)
                        .bind(&user.name)
                        .bind(&user.email)
                        .bind(user.email_verified)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        applied.users.created += 1;
                    }
                }
            }
            if declared.prune {
                for username in stored_users.keys().filter(|name| !named.contains(*name)) {
                    sqlx::query("delete from app_user where username = $1")
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                    applied.users.pruned += 1;
                }
            }
            tx.commit().await?;
        });
        Ok(applied)
    }
}

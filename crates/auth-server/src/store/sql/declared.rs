//! `DeclaredStore` in SQL: a configuration file applied in one transaction.
//!
//! The transaction's first statement writes the configuration row without changing it: on PostgreSQL that
//! holds the row's lock and on SQLite the database's write lock until commit. Two replicas applying one file
//! at once therefore run one after the other, and the second finds what the first made (nothing to change;
//! a password the first hashed anew is checked again by the second, [`crate::store::StoreError::Stale`]).
//! The version is bumped, so that replicas reload, only when something changed.

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
use super::{BUMP_CONFIG_VERSION, LOCK_CONFIG_VERSION, digest, scope, words};
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
    let stored_hash = stored.map(|stored| stored.password_hash.as_str());
    match password {
        DeclaredPassword::Keep => match stored_hash {
            Some(hash) => Ok((hash.to_owned(), false)),
            None => Err(StoreError::Declared(format!(
                "user {username}: it is new, so its entry needs password_env, password_file or password_hash"
            ))),
        },
        DeclaredPassword::Hash(hash) => Ok((hash.clone(), stored_hash != Some(hash.as_str()))),
        DeclaredPassword::Checked {
            hash,
            checked_against,
        } => {
            if stored_hash != checked_against.as_deref() {
                return Err(StoreError::Stale);
            }
            Ok((hash.clone(), stored_hash != Some(hash.as_str())))
        }
    }
}

#[async_trait]
impl DeclaredStore for SqlStore {
    async fn apply_declared(&self, declared: &Declared, now: i64) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // The lock first: replicas applying at once queue here, and each finds what the last made.
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            let mut keys_added = false;

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
                // Never a client its developer registered: the file is the operator's list.
                let mut pruned: Vec<&String> = stored_clients
                    .iter()
                    .filter(|(id, client)| {
                        !named.contains(*id) && client.registered == crate::store::Registered::Operator
                    })
                    .map(|(id, _)| id)
                    .collect();
                pruned.sort();
                for id in pruned {
                    sqlx::query(DELETE_CLIENT).bind(id).execute(&mut *tx).await?;
                    sqlx::query(RECORD_DELETED_CLIENT)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    applied.clients.pruned += 1;
                    applied.pruned_clients.push(id.clone());
                }
            }
            for key in &declared.keys {
                keys_added |= bind_first_key!(sqlx::query(INSERT_FIRST_KEY), key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
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
                            applied.passwords_changed.push(user.username.clone());
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
                let mut pruned: Vec<&String> =
                    stored_users.keys().filter(|name| !named.contains(*name)).collect();
                pruned.sort();
                for username in pruned {
                    sqlx::query("delete from app_user where username = $1")
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                    applied.users.pruned += 1;
                    applied.pruned_users.push(username.clone());
                }
            }
            let changed = applied.clients.created + applied.clients.updated + applied.clients.pruned
                + applied.users.created + applied.users.updated + applied.users.pruned
                > 0;
            // Replicas reload what changed; an apply that changed nothing makes none of them reload.
            if changed || keys_added {
                sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(applied)
    }
}

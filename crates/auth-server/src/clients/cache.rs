//! The in-memory cache of client records, so issuing a token reads no database row. Dropped whole when any
//! replica changes a client (the config-version poll).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use auth_core::id::ClientId;

use crate::store::{ClientRecord, ClientStore, StoreError};

/// Client records by id.
#[derive(Debug, Default)]
pub struct ClientCache {
    /// The records, and how many times the cache was dropped: a record read from the store before a drop
    /// is not stored after it (it may be the deleted or changed client the drop is for).
    clients: RwLock<(HashMap<ClientId, Arc<ClientRecord>>, u64)>,
}

impl ClientCache {
    /// The client, from memory or else from the store.
    pub async fn get(
        &self,
        store: &dyn ClientStore,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        // An id that could never be registered is looked up nowhere.
        let Ok(client_id) = ClientId::parse(client_id) else {
            return Ok(None);
        };
        let generation = match self.clients.read() {
            Ok(cache) => {
                if let Some(client) = cache.0.get(&client_id) {
                    return Ok(Some(client.clone()));
                }
                cache.1
            }
            Err(_) => u64::MAX,
        };
        let Some(client) = store.find_client(&client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut cache) = self.clients.write()
            && cache.1 == generation
        {
            // Unknown ids are not cached, so the map holds only registered clients.
            cache.0.insert(client_id, client.clone());
        }
        Ok(Some(client))
    }

    /// Forgets one client (this replica changed it); a read of the store already under way does not put
    /// the old record back.
    pub fn forget(&self, client_id: &ClientId) {
        if let Ok(mut cache) = self.clients.write() {
            cache.0.remove(client_id);
            cache.1 = cache.1.wrapping_add(1);
        }
    }

    /// Forgets every client.
    pub fn clear(&self) {
        if let Ok(mut cache) = self.clients.write() {
            cache.0.clear();
            cache.1 = cache.1.wrapping_add(1);
        }
    }
}

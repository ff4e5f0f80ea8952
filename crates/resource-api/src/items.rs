//! The items the API serves: kept in memory (it is a demo; the bearer layer is the product).

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// An item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
}

/// Items by id.
#[derive(Debug, Default)]
pub struct ItemStore {
    items: RwLock<BTreeMap<u64, Item>>,
    next_id: AtomicU64,
}

impl ItemStore {
    /// Every item, by id.
    pub fn list(&self) -> Vec<Item> {
        self.items
            .read()
            .map(|items| items.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds an item.
    pub fn create(&self, name: String) -> Item {
        let item = Item {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            name,
        };
        if let Ok(mut items) = self.items.write() {
            items.insert(item.id, item.clone());
        }
        item
    }

    /// Removes an item; false when there was none.
    pub fn delete(&self, id: u64) -> bool {
        self.items
            .write()
            .map(|mut items| items.remove(&id).is_some())
            .unwrap_or(false)
    }
}

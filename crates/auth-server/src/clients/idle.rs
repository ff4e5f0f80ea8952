//! Which dynamic clients got a token today, at this replica: issuance notes a self-registered client's
//! activity in the database at most once a day per replica, so the token endpoint does not write per
//! request, and idle registrations can still be found (`--registration-idle-days`).

use std::collections::HashSet;
use std::sync::Mutex;

use auth_core::id::ClientId;

/// Seconds in a day of the server's clock.
pub const DAY_SECONDS: i64 = 86_400;

/// The clients noted today. It holds at most the dynamic clients that exist (registration is capped), and
/// is emptied when the day changes.
#[derive(Debug, Default)]
pub struct IssuedToday {
    today: Mutex<(i64, HashSet<ClientId>)>,
}

impl IssuedToday {
    /// Whether `client_id`'s activity at `now` is the first of its day here (then it counts as noted).
    pub fn first_today(&self, client_id: &ClientId, now: i64) -> bool {
        let day = now.div_euclid(DAY_SECONDS);
        let mut today = self
            .today
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if today.0 != day {
            *today = (day, HashSet::new());
        }
        today.1.insert(client_id.clone())
    }

    /// Forgets a note that could not be written, so that the next issuance tries again.
    pub fn forget(&self, client_id: &ClientId) {
        self.today
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
            .remove(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_noted_once_a_day() {
        let issued = IssuedToday::default();
        let client = ClientId::from_trusted("c");
        let other = ClientId::from_trusted("d");
        let noon = 20_000 * DAY_SECONDS + DAY_SECONDS / 2;
        assert!(issued.first_today(&client, noon));
        assert!(!issued.first_today(&client, noon + 3_600));
        assert!(issued.first_today(&other, noon + 3_600));
        assert!(issued.first_today(&client, noon + DAY_SECONDS));
        issued.forget(&client);
        assert!(issued.first_today(&client, noon + DAY_SECONDS));
    }
}

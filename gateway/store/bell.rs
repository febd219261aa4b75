//! Wakes the agents' long polls (`GET /v1/requests/next`) when a request is asked of their
//! agency, so that a waiting poll need not look at the ledger every second: with hundreds of
//! agencies' agents waiting on a shared PostgreSQL, that would be hundreds of queries a second
//! that find nothing.
//!
//! The store rings the bell for each request it records. With a shared ledger, the request
//! is also announced (PostgreSQL `NOTIFY`) and every serving instance's listener rings its own
//! bell, so a request asked on one instance (or by the command line) wakes the poll waiting on
//! another at once. What no ring can reach — a command-line `gateway request ask` on a SQLite
//! ledger, an announcement made while a listener was reconnecting — is found by looking anyway,
//! at the period given to [`RequestBell::new`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

/// Rings kept for a listener that has not yet read them; one that falls further behind
/// looks at the ledger, which is all a ring asks of it.
const RINGS_KEPT: usize = 256;

#[derive(Debug, Clone)]
enum Ring {
    /// A request was asked of this agency.
    Agency(Arc<str>),
    /// Announcements may have been missed: every listener looks.
    Everyone,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RequestBell {
    rings: broadcast::Sender<Ring>,
    look_every: Duration,
}

impl RequestBell {
    /// A bell whose listeners look at the ledger at least every `look_every`, rung or not.
    pub fn new(look_every: Duration) -> RequestBell {
        let (rings, _) = broadcast::channel(RINGS_KEPT);
        RequestBell { rings, look_every }
    }

    /// A request was asked of `agency`.
    pub fn ring(&self, agency: &str) {
        // An error means nobody is listening, which is fine.
        let _ = self.rings.send(Ring::Agency(agency.into()));
    }

    /// Announcements may have been missed (a listener reconnected): every poll looks.
    pub fn ring_everyone(&self) {
        let _ = self.rings.send(Ring::Everyone);
    }

    /// Listens for `agency`'s requests from now on: what rings after this call is heard, so
    /// listen before the first look at the ledger.
    pub fn listen(&self, agency: &str) -> Listener {
        Listener {
            rings: self.rings.subscribe(),
            agency: agency.into(),
            look_every: self.look_every,
            next_look: Instant::now() + self.look_every,
        }
    }
}

/// One waiting poll's ear; see [`RequestBell::listen`].
#[derive(Debug)]
pub struct Listener {
    rings: broadcast::Receiver<Ring>,
    agency: Arc<str>,
    look_every: Duration,
    next_look: Instant,
}

impl Listener {
    /// Waits until the agency's bell rings or its periodic look is due (`true`: look at the
    /// ledger now), or until `until` (`false`), whichever comes first. Callers pass a near
    /// `until` to check on other things (a shutdown) while they wait.
    pub async fn wait(&mut self, until: Instant) -> bool {
        let deadline = until.min(self.next_look);
        loop {
            let heard = match tokio::time::timeout_at(deadline, self.rings.recv()).await {
                Err(_) => break,
                Ok(Ok(Ring::Agency(a))) => a == self.agency,
                Ok(Ok(Ring::Everyone)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => true,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
            };
            if heard {
                return self.looked();
            }
        }
        if Instant::now() >= self.next_look {
            return self.looked();
        }
        false
    }

    /// Whether a ring for the agency (or everyone) came since the last wait, without waiting.
    #[cfg(test)]
    pub(crate) fn rung(&mut self) -> bool {
        use broadcast::error::TryRecvError;
        loop {
            match self.rings.try_recv() {
                Ok(Ring::Agency(a)) if a != self.agency => continue,
                Ok(_) | Err(TryRecvError::Lagged(_)) => return true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return false,
            }
        }
    }

    fn looked(&mut self) -> bool {
        self.next_look = Instant::now() + self.look_every;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_ring_for_the_agency_wakes_its_listener_and_others_wait() {
        let bell = RequestBell::new(LONG);
        let mut police = bell.listen("police");
        let mut school = bell.listen("school");
        bell.ring("police");
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(police.wait(soon).await);
        assert!(!school.wait(soon).await);
        assert!(
            Instant::now() >= soon,
            "the school's listener waited its time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rings_before_listening_are_not_heard_and_rings_after_are_kept() {
        let bell = RequestBell::new(LONG);
        bell.ring("police");
        let mut police = bell.listen("police");
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(!police.wait(soon).await);
        bell.ring("police");
        // Rung while nobody waited: heard at the next wait.
        assert!(police.wait(Instant::now() + Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn everyone_looks_after_a_general_ring_or_falling_behind() {
        let bell = RequestBell::new(LONG);
        let mut police = bell.listen("police");
        bell.ring_everyone();
        assert!(police.wait(Instant::now() + Duration::from_secs(1)).await);
        for _ in 0..RINGS_KEPT + 1 {
            bell.ring("school");
        }
        assert!(police.wait(Instant::now() + Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_ring_the_listener_looks_every_period() {
        let bell = RequestBell::new(Duration::from_secs(10));
        let mut police = bell.listen("police");
        let start = Instant::now();
        // Short waits (a caller checking for shutdown) say "not yet" until the period is up.
        let mut looks = Vec::new();
        while looks.len() < 2 {
            if police.wait(Instant::now() + Duration::from_secs(1)).await {
                looks.push(start.elapsed().as_secs());
            }
        }
        assert_eq!(looks, [10, 20]);
    }
}

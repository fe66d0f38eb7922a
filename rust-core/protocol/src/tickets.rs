//! Join tickets: how a managed streamer knows a viewer was let in by its orchestrator.
//!
//! A streamer with a control secret admits a viewer only with a ticket its control client
//! asked for (`issueTicket`) a moment before. The ticket says what the viewer may do (its
//! [`ViewerRole`]), lives [`TICKET_LIFETIME`], and is good once. Whoever reaches the signaling
//! port on the rendering machine without going through the orchestrator gets nothing.
//!
//! [`TicketBook`] is pure bookkeeping with the clock passed in, so expiry is tested without
//! sleeping. Used and expired tickets are remembered for [`TICKET_MEMORY`] more, so a refusal
//! can say which it was; the book is bounded ([`MAX_TICKETS`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{ControlReply, ViewerRole};

/// How long a ticket is good for. The supervisor connects with it at once; the margin covers
/// a loaded machine, not a person.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(10);

/// How long a used or expired ticket is remembered, to tell "used" and "expired" from
/// "unknown" in the refusal.
pub const TICKET_MEMORY: Duration = Duration::from_secs(60);

/// Tickets (live and remembered) a book holds at most. Issuing is for the trusted control
/// client only, but a bug there must not grow the streamer's memory without bound.
pub const MAX_TICKETS: usize = 1024;

/// Why a ticket admits nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Never issued here (or forgotten long ago).
    #[error("this join ticket is not known to the streamer")]
    Unknown,
    /// Issued, but used already: a ticket admits one viewer once.
    #[error("this join ticket was used already")]
    Used,
    /// Issued, but not used within its lifetime.
    #[error("this join ticket expired")]
    Expired,
    /// The book is full of live tickets.
    #[error("too many join tickets outstanding")]
    Full,
    /// The system has no randomness to make one.
    #[error("no randomness for a join ticket: {0}")]
    NoRandomness(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    role: ViewerRole,
    expires: Instant,
    used: bool,
}

/// The tickets one streamer issued.
#[derive(Debug, Default)]
pub struct TicketBook {
    entries: HashMap<String, Entry>,
}

impl TicketBook {
    /// An empty book.
    pub fn new() -> TicketBook {
        TicketBook::default()
    }

    /// Issues a fresh ticket for `role` at `now`: 128 random bits as hex.
    pub fn issue(&mut self, role: ViewerRole, now: Instant) -> Result<String, TicketError> {
        self.forget_old(now);
        if self.entries.len() >= MAX_TICKETS {
            return Err(TicketError::Full);
        }
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|err| TicketError::NoRandomness(err.to_string()))?;
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.entries.insert(
            ticket.clone(),
            Entry {
                role,
                expires: now + TICKET_LIFETIME,
                used: false,
            },
        );
        Ok(ticket)
    }

    /// The answer to a control client's `issueTicket` for `role` at `now`: the ticket, or
    /// why there is none.
    pub fn answer_issue(&mut self, role: ViewerRole, now: Instant) -> ControlReply {
        match self.issue(role, now) {
            Ok(ticket) => ControlReply::Ticket {
                ticket,
                expires_in_ms: TICKET_LIFETIME.as_millis() as u64,
            },
            Err(err) => ControlReply::Error {
                message: err.to_string(),
            },
        }
    }

    /// Uses `ticket` at `now`: its role, once.
    pub fn redeem(&mut self, ticket: &str, now: Instant) -> Result<ViewerRole, TicketError> {
        self.forget_old(now);
        let entry = self.entries.get_mut(ticket).ok_or(TicketError::Unknown)?;
        if entry.used {
            return Err(TicketError::Used);
        }
        if now >= entry.expires {
            return Err(TicketError::Expired);
        }
        entry.used = true;
        Ok(entry.role)
    }

    fn forget_old(&mut self, now: Instant) {
        self.entries
            .retain(|_, entry| now < entry.expires + TICKET_MEMORY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_admits_its_role_once() {
        let mut book = TicketBook::new();
        let now = Instant::now();
        let owner = book.issue(ViewerRole::Owner, now).unwrap();
        let spectator = book.issue(ViewerRole::Spectator, now).unwrap();
        assert_eq!(owner.len(), 32);
        assert_ne!(owner, spectator);
        assert_eq!(book.redeem(&spectator, now), Ok(ViewerRole::Spectator));
        assert_eq!(book.redeem(&owner, now), Ok(ViewerRole::Owner));
        assert_eq!(book.redeem(&owner, now), Err(TicketError::Used));
        assert_eq!(book.redeem("0123", now), Err(TicketError::Unknown));
    }

    #[test]
    fn tickets_expire_and_are_forgotten_later() {
        let mut book = TicketBook::new();
        let now = Instant::now();
        let ticket = book.issue(ViewerRole::Owner, now).unwrap();
        let late = now + TICKET_LIFETIME;
        assert_eq!(book.redeem(&ticket, late), Err(TicketError::Expired));
        let much_later = late + TICKET_MEMORY;
        assert_eq!(book.redeem(&ticket, much_later), Err(TicketError::Unknown));
        assert!(book.entries.is_empty(), "old tickets are dropped");
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = TicketBook::new();
        let now = Instant::now();
        for _ in 0..MAX_TICKETS {
            book.issue(ViewerRole::Spectator, now).unwrap();
        }
        assert_eq!(
            book.issue(ViewerRole::Spectator, now),
            Err(TicketError::Full)
        );
        // Once they are past their lifetime and memory, there is room again.
        let later = now + TICKET_LIFETIME + TICKET_MEMORY;
        assert!(book.issue(ViewerRole::Spectator, later).is_ok());
    }
}

//! The slot table: which ids are busy, in what status, and how the last instance of each ended.
//!
//! Pure bookkeeping under the [`super::Instances`] lock; it never blocks and never touches a
//! process, so the id rules (lowest free id first, ids `0..total`) are unit-tested here.

use tokio::sync::watch;

use super::StopReason;
use crate::supervisor::{InstanceStatus, ServerStatus, StatusReport, SupervisorError};

/// One slot.
#[derive(Debug)]
pub(super) enum Slot {
    /// Free.
    Idle {
        /// How the previous instance here ended, until the slot is reused.
        last_exit: Option<String>,
    },
    /// Taken by an instance (launching, initializing, running or stopping).
    Busy(Busy),
}

/// A slot's live instance.
#[derive(Debug)]
pub(super) struct Busy {
    /// `INITIALIZING`, `RUNNING` or `DEINITIALIZING`.
    pub status: InstanceStatus,
    /// Distinguishes successive instances of one slot, so a late update from an old
    /// instance's task can never touch its successor.
    pub generation: u64,
    /// The instance's signaling/control port (loopback).
    pub port: u16,
    /// The instance's control secret, needed for `RESOLUTION`.
    pub secret: String,
    /// The process id (leader of its process group) once launched.
    pub pid: Option<u32>,
    /// Tells the instance's task to stop, and why; set once.
    pub stop: watch::Sender<Option<StopReason>>,
    /// Closes when the instance's task has freed the slot: `STOP` waits on it.
    pub done: watch::Receiver<()>,
}

/// All slots.
#[derive(Debug)]
pub(super) struct SlotTable {
    /// Slot `i` holds instance id `i`.
    slots: Vec<Slot>,
    /// Next [`Busy::generation`].
    next_generation: u64,
}

impl SlotTable {
    /// `total` idle slots.
    pub fn new(total: u32) -> SlotTable {
        SlotTable {
            slots: (0..total).map(|_| Slot::Idle { last_exit: None }).collect(),
            next_generation: 0,
        }
    }

    /// The lowest idle id (the seed's rule for `START`).
    pub fn lowest_free(&self) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Idle { .. }))
            .map(|i| i as u32)
    }

    /// A fresh generation number.
    pub fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// The slot `id`, or "invalid id".
    pub fn get_mut(&mut self, id: u32) -> Result<&mut Slot, SupervisorError> {
        self.slots
            .get_mut(id as usize)
            .ok_or(SupervisorError::InvalidId)
    }

    /// The busy slot `id` if it still holds `generation`.
    pub fn busy_mut(&mut self, id: u32, generation: u64) -> Option<&mut Busy> {
        match self.slots.get_mut(id as usize) {
            Some(Slot::Busy(busy)) if busy.generation == generation => Some(busy),
            _ => None,
        }
    }

    /// Every busy slot.
    pub fn busy_iter_mut(&mut self) -> impl Iterator<Item = &mut Busy> {
        self.slots.iter_mut().filter_map(|slot| match slot {
            Slot::Busy(busy) => Some(busy),
            Slot::Idle { .. } => None,
        })
    }

    /// Puts `busy` into the idle slot `id`.
    pub fn occupy(&mut self, id: u32, busy: Busy) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            debug_assert!(
                matches!(slot, Slot::Idle { .. }),
                "slot {id} occupied twice"
            );
            *slot = Slot::Busy(busy);
        }
    }

    /// Frees slot `id` if it still holds `generation`, remembering how the instance ended.
    pub fn free(&mut self, id: u32, generation: u64, last_exit: String) {
        if self.busy_mut(id, generation).is_some() {
            self.slots[id as usize] = Slot::Idle {
                last_exit: Some(last_exit),
            };
        }
    }

    /// `STATUS` of slot `id`.
    pub fn report(&self, id: u32) -> Result<StatusReport, SupervisorError> {
        match self.slots.get(id as usize) {
            None => Err(SupervisorError::InvalidId),
            Some(Slot::Idle { last_exit }) => Ok(StatusReport {
                status: InstanceStatus::Idle,
                last_exit: last_exit.clone(),
            }),
            Some(Slot::Busy(busy)) => Ok(StatusReport {
                status: busy.status,
                last_exit: None,
            }),
        }
    }

    /// `SERVER_STATUS`.
    pub fn server_status(&self) -> ServerStatus {
        let busy = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Busy(_)))
            .count();
        ServerStatus {
            running: busy as u32,
            total: self.slots.len() as u32,
            next_free: self.lowest_free(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(table: &mut SlotTable) -> (Busy, watch::Sender<()>) {
        let (stop, _) = watch::channel(None);
        let (done_tx, done) = watch::channel(());
        let generation = table.next_generation();
        let busy = Busy {
            status: InstanceStatus::Initializing,
            generation,
            port: 4700,
            secret: "s".into(),
            pid: None,
            stop,
            done,
        };
        (busy, done_tx)
    }

    #[test]
    fn lowest_free_id_first_and_freed_ids_are_reused() {
        let mut table = SlotTable::new(3);
        let mut generations = Vec::new();
        for expected in 0..3 {
            let id = table.lowest_free().unwrap();
            assert_eq!(id, expected);
            let (b, _) = busy(&mut table);
            generations.push(b.generation);
            table.occupy(id, b);
        }
        assert_eq!(table.lowest_free(), None);
        assert_eq!(
            table.server_status(),
            ServerStatus {
                running: 3,
                total: 3,
                next_free: None
            }
        );

        table.free(1, generations[1], "stopped".into());
        table.free(0, generations[0], "crashed".into());
        assert_eq!(table.lowest_free(), Some(0));
        assert_eq!(
            table.report(0).unwrap(),
            StatusReport {
                status: InstanceStatus::Idle,
                last_exit: Some("crashed".into())
            }
        );
        assert_eq!(
            table.report(2).unwrap().status,
            InstanceStatus::Initializing
        );
        assert_eq!(table.report(3), Err(SupervisorError::InvalidId));
        assert_eq!(
            table.server_status(),
            ServerStatus {
                running: 1,
                total: 3,
                next_free: Some(0)
            }
        );
    }

    #[test]
    fn a_stale_generation_cannot_free_its_successor() {
        let mut table = SlotTable::new(1);
        let (first, _) = busy(&mut table);
        let old = first.generation;
        table.occupy(0, first);
        table.free(0, old, "first ended".into());
        let (second, _) = busy(&mut table);
        table.occupy(0, second);
        table.free(0, old, "late update".into());
        assert_eq!(
            table.report(0).unwrap().status,
            InstanceStatus::Initializing
        );
        assert!(table.busy_mut(0, old).is_none());
    }
}

//! Who has the controls: the one viewer whose input reaches the host.
//!
//! At any moment at most one viewer holds the controls; input from everyone else is refused
//! (and counted as `inputRefused`). The rules, all here:
//!
//! - The first owner to join takes them when nobody holds them.
//! - An owner may pass them to any viewer present (a spectator too), and take them back.
//! - Spectators can neither take nor pass them; they only receive them.
//! - When the holder leaves, they go back to the owner who joined first, if one is still
//!   there, else to nobody.
//!
//! [`Controls`] is owned by the control thread. Input arrives on GStreamer's data channel
//! threads, which only read the holder through [`HolderCell`], written here alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use openspace_webrtc_protocol::{ViewerEntry, ViewerRole};

/// The holder, for the input threads: a viewer id, or 0 for nobody (ids start at 1).
#[derive(Debug, Clone, Default)]
pub(crate) struct HolderCell(Arc<AtomicU32>);

impl HolderCell {
    /// Whether `viewer_id` holds the controls now.
    pub(crate) fn holds(&self, viewer_id: u32) -> bool {
        viewer_id != 0 && self.0.load(Ordering::Acquire) == viewer_id
    }

    fn set(&self, holder: Option<u32>) {
        self.0.store(holder.unwrap_or(0), Ordering::Release);
    }
}

/// Why a request about the controls was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlsError {
    /// A spectator asked.
    #[error("only the owner can pass or take the controls")]
    NotOwner,
    /// The viewer to pass them to is not here.
    #[error("viewer {0} is not watching")]
    NoSuchViewer(u32),
}

/// The viewers present and who holds the controls.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    /// Everyone present, by id (ids grow, so this is join order too).
    viewers: BTreeMap<u32, ViewerRole>,
    holder: Option<u32>,
    cell: HolderCell,
}

impl Controls {
    /// The cell the input threads read.
    pub(crate) fn cell(&self) -> HolderCell {
        self.cell.clone()
    }

    /// The viewer holding the controls.
    pub(crate) fn holder(&self) -> Option<u32> {
        self.holder
    }

    /// Everyone present, in join order.
    pub(crate) fn viewers(&self) -> Vec<ViewerEntry> {
        self.viewers
            .iter()
            .map(|(&viewer_id, &role)| ViewerEntry { viewer_id, role })
            .collect()
    }

    /// A viewer joined; returns whether the holder changed.
    pub(crate) fn joined(&mut self, viewer_id: u32, role: ViewerRole) -> bool {
        self.viewers.insert(viewer_id, role);
        if self.holder.is_none() && role == ViewerRole::Owner {
            return self.give(Some(viewer_id));
        }
        false
    }

    /// A viewer left; returns whether the holder changed.
    pub(crate) fn left(&mut self, viewer_id: u32) -> bool {
        self.viewers.remove(&viewer_id);
        if self.holder != Some(viewer_id) {
            return false;
        }
        let first_owner = self
            .viewers
            .iter()
            .find(|(_, role)| **role == ViewerRole::Owner)
            .map(|(&id, _)| id);
        self.give(first_owner)
    }

    /// Owner `by` hands the controls to `to`.
    pub(crate) fn pass(&mut self, by: u32, to: u32) -> Result<bool, ControlsError> {
        self.check_owner(by)?;
        if !self.viewers.contains_key(&to) {
            return Err(ControlsError::NoSuchViewer(to));
        }
        Ok(self.give(Some(to)))
    }

    /// Owner `by` takes the controls back.
    pub(crate) fn take(&mut self, by: u32) -> Result<bool, ControlsError> {
        self.check_owner(by)?;
        Ok(self.give(Some(by)))
    }

    fn check_owner(&self, viewer_id: u32) -> Result<(), ControlsError> {
        match self.viewers.get(&viewer_id) {
            Some(ViewerRole::Owner) => Ok(()),
            _ => Err(ControlsError::NotOwner),
        }
    }

    fn give(&mut self, holder: Option<u32>) -> bool {
        let changed = self.holder != holder;
        self.holder = holder;
        self.cell.set(holder);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ViewerRole::{Owner, Spectator};

    #[test]
    fn the_first_owner_holds_and_exactly_one_viewer_ever_does() {
        let mut controls = Controls::default();
        let cell = controls.cell();
        assert!(!controls.joined(1, Spectator), "spectators never take them");
        assert_eq!(controls.holder(), None);
        assert!(controls.joined(2, Owner));
        assert!(
            !controls.joined(3, Owner),
            "a second owner tab does not steal them"
        );
        assert_eq!(controls.holder(), Some(2));
        assert!(cell.holds(2) && !cell.holds(1) && !cell.holds(3));
        assert!(!cell.holds(0));
    }

    #[test]
    fn owners_pass_and_take_back_spectators_cannot() {
        let mut controls = Controls::default();
        let cell = controls.cell();
        controls.joined(1, Owner);
        controls.joined(2, Spectator);
        controls.joined(3, Spectator);
        assert_eq!(controls.pass(2, 3), Err(ControlsError::NotOwner));
        assert_eq!(controls.take(2), Err(ControlsError::NotOwner));
        assert_eq!(controls.pass(1, 9), Err(ControlsError::NoSuchViewer(9)));
        assert_eq!(controls.pass(1, 2), Ok(true));
        assert!(cell.holds(2) && !cell.holds(1));
        assert_eq!(controls.pass(1, 2), Ok(false), "no change, no news");
        assert_eq!(controls.take(1), Ok(true));
        assert!(cell.holds(1) && !cell.holds(2));
    }

    #[test]
    fn a_departing_holder_returns_them_to_the_first_owner() {
        let mut controls = Controls::default();
        let cell = controls.cell();
        controls.joined(1, Owner);
        controls.joined(2, Spectator);
        controls.joined(3, Owner);
        controls.pass(1, 2).unwrap();
        assert!(!controls.left(3), "someone else leaving changes nothing");
        assert!(controls.left(2));
        assert_eq!(controls.holder(), Some(1));
        assert!(controls.left(1));
        assert_eq!(controls.holder(), None);
        assert!(!cell.holds(1));
        assert_eq!(controls.viewers(), vec![]);
    }
}

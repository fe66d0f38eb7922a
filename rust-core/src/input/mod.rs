//! Input and control events from viewers, queued for the host's main thread.
//!
//! Viewers' data channel messages ([`InputMessage`]) are validated and turned into [`Event`]s
//! on GStreamer's threads; the host drains them with `osw_streamer_poll_event` on its own
//! thread. The queue is bounded: when a host stops draining, the oldest pointer moves are
//! dropped first (they are superseded by later ones anyway) and every drop is counted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use openspace_webrtc_protocol::InputMessage;

/// Most events held before the oldest are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// Largest framebuffer a resize may ask for, per side (8K).
pub const MAX_DIMENSION: u32 = 7680;

/// An event for the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Pointer moved to `(x, y)` within `width × height`.
    PointerMove {
        viewer_id: u32,
        x: f64,
        y: f64,
        width: u32,
        height: u32,
    },
    /// Button pressed or released at `(x, y)`.
    PointerButton {
        viewer_id: u32,
        x: f64,
        y: f64,
        width: u32,
        height: u32,
        button: i32,
        pressed: bool,
        mods: i32,
    },
    /// Scroll.
    Wheel { viewer_id: u32, dx: f64, dy: f64 },
    /// Key change.
    Key {
        viewer_id: u32,
        key: i32,
        action: i32,
        mods: i32,
    },
    /// One typed character.
    Text { viewer_id: u32, codepoint: u32 },
    /// Requested framebuffer size.
    Resize {
        viewer_id: u32,
        width: u32,
        height: u32,
    },
    /// A viewer joined.
    ViewerJoined { viewer_id: u32 },
    /// A viewer left.
    ViewerLeft { viewer_id: u32 },
    /// The controls went to `viewer_id` (0: nobody holds them).
    ControlsChanged { viewer_id: u32 },
}

/// Why an input message was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    /// A coordinate or size was not a finite number in range.
    #[error("{field} out of range: {value}")]
    OutOfRange { field: &'static str, value: String },
    /// The size is zero or larger than [`MAX_DIMENSION`].
    #[error("invalid size {width}x{height}: each side must be 1..={MAX_DIMENSION}")]
    InvalidSize { width: u32, height: u32 },
}

fn finite(field: &'static str, value: f64) -> Result<f64, InputError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(InputError::OutOfRange {
            field,
            value: value.to_string(),
        })
    }
}

/// Validates a requested frame size.
pub fn check_size(width: u32, height: u32) -> Result<(), InputError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(InputError::InvalidSize { width, height });
    }
    Ok(())
}

/// Converts the pointer's reference size to whole pixels, refusing nonsense.
fn reference_size(width: f64, height: f64) -> Result<(u32, u32), InputError> {
    let w = finite("width", width)?;
    let h = finite("height", height)?;
    if !(1.0..=f64::from(MAX_DIMENSION) * 4.0).contains(&w)
        || !(1.0..=f64::from(MAX_DIMENSION) * 4.0).contains(&h)
    {
        return Err(InputError::OutOfRange {
            field: "width/height",
            value: format!("{w}x{h}"),
        });
    }
    Ok((w.round() as u32, h.round() as u32))
}

/// Turns one data channel message into host events (a text message may yield several).
/// Returns `Ok(None)` for messages that are not host events (`keyFrame`, handled by the
/// pipeline). A `resize` is fitted into `limit` by the protocol's one rule.
pub fn events_from_message(
    viewer_id: u32,
    message: InputMessage,
    limit: openspace_webrtc_protocol::StreamLimit,
) -> Result<Option<Vec<Event>>, InputError> {
    let events = match message {
        InputMessage::PointerMove {
            x,
            y,
            width,
            height,
        } => {
            let (width, height) = reference_size(width, height)?;
            vec![Event::PointerMove {
                viewer_id,
                x: finite("x", x)?,
                y: finite("y", y)?,
                width,
                height,
            }]
        }
        InputMessage::PointerButton {
            x,
            y,
            width,
            height,
            button,
            pressed,
            mods,
        } => {
            let (width, height) = reference_size(width, height)?;
            if !(0..8).contains(&button) {
                return Err(InputError::OutOfRange {
                    field: "button",
                    value: button.to_string(),
                });
            }
            vec![Event::PointerButton {
                viewer_id,
                x: finite("x", x)?,
                y: finite("y", y)?,
                width,
                height,
                button,
                pressed,
                mods,
            }]
        }
        InputMessage::Wheel { dx, dy } => {
            vec![Event::Wheel {
                viewer_id,
                dx: finite("dx", dx)?,
                dy: finite("dy", dy)?,
            }]
        }
        InputMessage::Key { key, action, mods } => {
            if !(0..=2).contains(&action) {
                return Err(InputError::OutOfRange {
                    field: "action",
                    value: action.to_string(),
                });
            }
            vec![Event::Key {
                viewer_id,
                key,
                action,
                mods,
            }]
        }
        InputMessage::Text { text } => text
            .chars()
            .map(|c| Event::Text {
                viewer_id,
                codepoint: u32::from(c),
            })
            .collect(),
        InputMessage::Resize { width, height } => {
            // Fitted into the instance's limit and made even here, before the host sees it.
            let (width, height) = openspace_webrtc_protocol::fit_stream_size(width, height, limit)
                .map_err(|_| InputError::InvalidSize { width, height })?;
            vec![Event::Resize {
                viewer_id,
                width,
                height,
            }]
        }
        InputMessage::KeyFrame => return Ok(None),
    };
    Ok(Some(events))
}

/// The keys and buttons one viewer holds down, so that they can be let go for it when it
/// loses the controls or leaves: the host must not be left with a key stuck down because
/// the release came from a page whose input no longer reaches it.
#[derive(Debug, Default)]
pub struct HeldInput {
    keys: std::collections::BTreeSet<i32>,
    /// Each button with where it was pressed (a release needs a position).
    buttons: std::collections::BTreeMap<i32, (f64, f64, u32, u32)>,
}

impl HeldInput {
    /// Notes what `event`, about to reach the host, presses or releases.
    pub fn track(&mut self, event: &Event) {
        match *event {
            Event::Key { key, action, .. } => match action {
                0 => {
                    self.keys.remove(&key);
                }
                1 => {
                    self.keys.insert(key);
                }
                _ => {} // a repeat changes nothing
            },
            Event::PointerButton {
                x,
                y,
                width,
                height,
                button,
                pressed,
                ..
            } => {
                if pressed {
                    self.buttons.insert(button, (x, y, width, height));
                } else {
                    self.buttons.remove(&button);
                }
            }
            _ => {}
        }
    }

    /// The releases of everything held, as events of `viewer_id`; nothing is held after.
    pub fn release_all(&mut self, viewer_id: u32) -> Vec<Event> {
        let keys = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|key| Event::Key {
                viewer_id,
                key,
                action: 0,
                mods: 0,
            });
        let buttons =
            std::mem::take(&mut self.buttons)
                .into_iter()
                .map(|(button, (x, y, width, height))| Event::PointerButton {
                    viewer_id,
                    x,
                    y,
                    width,
                    height,
                    button,
                    pressed: false,
                    mods: 0,
                });
        keys.chain(buttons).collect()
    }
}

/// The bounded queue between GStreamer's threads and the host's main thread.
#[derive(Debug, Default)]
pub struct EventQueue {
    events: Mutex<VecDeque<Event>>,
    dropped: AtomicU64,
}

impl EventQueue {
    /// Appends an event, making room by dropping the oldest pointer move (or, failing that,
    /// the oldest event) when full.
    pub fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= QUEUE_CAPACITY {
            let victim = events
                .iter()
                .position(|e| matches!(e, Event::PointerMove { .. }))
                .unwrap_or(0);
            events.remove(victim);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        events.push_back(event);
    }

    /// Takes the oldest event.
    pub fn pop(&self) -> Option<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Events dropped because the host did not drain the queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn held_keys_and_buttons_are_released_once() {
        let mut held = HeldInput::default();
        let key = |key, action| Event::Key {
            viewer_id: 1,
            key,
            action,
            mods: 0,
        };
        let button = |button, pressed| Event::PointerButton {
            viewer_id: 1,
            x: 10.0,
            y: 20.0,
            width: 640,
            height: 480,
            button,
            pressed,
            mods: 0,
        };
        for event in [
            key(87, 1),
            key(87, 2),
            key(65, 1),
            key(65, 0),
            button(0, true),
        ] {
            held.track(&event);
        }
        let releases = held.release_all(1);
        assert_eq!(releases, vec![key(87, 0), button(0, false)]);
        assert!(held.release_all(1).is_empty(), "nothing is held after");
    }

    use super::*;
    use openspace_webrtc_protocol::StreamLimit;

    #[test]
    fn text_becomes_one_event_per_character() {
        let events = events_from_message(
            3,
            InputMessage::Text { text: "hé".into() },
            StreamLimit::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            events,
            vec![
                Event::Text {
                    viewer_id: 3,
                    codepoint: 'h' as u32
                },
                Event::Text {
                    viewer_id: 3,
                    codepoint: 'é' as u32
                }
            ]
        );
    }

    #[test]
    fn nonsense_is_refused() {
        let nan = InputMessage::PointerMove {
            x: f64::NAN,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert!(events_from_message(1, nan, StreamLimit::default()).is_err());
        let zero = InputMessage::PointerMove {
            x: 0.0,
            y: 0.0,
            width: 0.0,
            height: 10.0,
        };
        assert!(events_from_message(1, zero, StreamLimit::default()).is_err());
        let big = InputMessage::Resize {
            width: 100_000,
            height: 10,
        };
        assert_eq!(
            events_from_message(1, big, StreamLimit::default()),
            Err(InputError::InvalidSize {
                width: 100_000,
                height: 10
            })
        );
        let action = InputMessage::Key {
            key: 65,
            action: 7,
            mods: 0,
        };
        assert!(events_from_message(1, action, StreamLimit::default()).is_err());
        // Too large is fitted into the limit, keeping the aspect ratio; odd becomes even.
        let resize = |width, height| {
            events_from_message(
                1,
                InputMessage::Resize { width, height },
                StreamLimit::default(),
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!(
            resize(7680, 4320),
            vec![Event::Resize {
                viewer_id: 1,
                width: 3840,
                height: 2160
            }]
        );
        assert_eq!(
            resize(641, 64),
            vec![Event::Resize {
                viewer_id: 1,
                width: 640,
                height: 64
            }]
        );
    }

    #[test]
    fn full_queue_drops_oldest_pointer_move_first() {
        let queue = EventQueue::default();
        queue.push(Event::Key {
            viewer_id: 1,
            key: 65,
            action: 1,
            mods: 0,
        });
        for i in 0..QUEUE_CAPACITY {
            queue.push(Event::PointerMove {
                viewer_id: 1,
                x: i as f64,
                y: 0.0,
                width: 1,
                height: 1,
            });
        }
        assert_eq!(queue.dropped(), 1);
        assert_eq!(
            queue.pop(),
            Some(Event::Key {
                viewer_id: 1,
                key: 65,
                action: 1,
                mods: 0
            })
        );
        match queue.pop() {
            Some(Event::PointerMove { x, .. }) => assert_eq!(x, 1.0, "move 0 was the victim"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

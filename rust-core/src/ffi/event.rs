//! The C view of an input or control event.

use crate::input::Event;

/// What an [`OswEvent`] carries. Numbers are fixed forever.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OswEventKind {
    /// No event (the value of a zeroed struct).
    None = 0,
    /// Pointer moved: `x`, `y` within `width` × `height`.
    PointerMove = 1,
    /// Pointer button: `button`, `action` (1 press, 0 release), `mods`, at `x`, `y`.
    PointerButton = 2,
    /// Wheel: `x` horizontal and `y` vertical scroll (GLFW units, +y scrolls up).
    Wheel = 3,
    /// Key: `key` (GLFW code), `action` (0 release, 1 press, 2 repeat), `mods`.
    Key = 4,
    /// One Unicode character typed: `codepoint`.
    Text = 5,
    /// The viewer or the orchestrator asks for a framebuffer of `width` × `height`.
    Resize = 6,
    /// A viewer joined (`viewer_id`).
    ViewerJoined = 7,
    /// A viewer left (`viewer_id`).
    ViewerLeft = 8,
    /// The controls went to `viewer_id` (0: nobody): from now on only its input arrives.
    ControlsChanged = 9,
}

/// One event from the queue, filled by `osw_streamer_poll_event`. Fields that do not apply
/// to `kind` are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OswEvent {
    /// What happened.
    pub kind: OswEventKind,
    /// The viewer the event came from (0 for the orchestrator).
    pub viewer_id: u32,
    /// Pointer position (in `width` × `height` pixels, origin top-left) or wheel delta.
    pub x: f64,
    /// Pointer position (in `width` × `height` pixels, origin top-left) or wheel delta.
    pub y: f64,
    /// For pointer events: the size of the video the coordinates refer to. For resize: the
    /// requested size.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// GLFW mouse button (0 left, 1 right, 2 middle).
    pub button: i32,
    /// GLFW action: 0 release, 1 press, 2 repeat.
    pub action: i32,
    /// GLFW key code (`GLFW_KEY_*`).
    pub key: i32,
    /// GLFW modifier bits: shift 1, control 2, alt 4, super 8.
    pub mods: i32,
    /// Unicode code point of a text event.
    pub codepoint: u32,
}

impl OswEvent {
    const ZERO: OswEvent = OswEvent {
        kind: OswEventKind::None,
        viewer_id: 0,
        x: 0.0,
        y: 0.0,
        width: 0,
        height: 0,
        button: 0,
        action: 0,
        key: 0,
        mods: 0,
        codepoint: 0,
    };
}

impl From<&Event> for OswEvent {
    fn from(event: &Event) -> Self {
        let zero = OswEvent::ZERO;
        match *event {
            Event::PointerMove {
                viewer_id,
                x,
                y,
                width,
                height,
            } => OswEvent {
                kind: OswEventKind::PointerMove,
                viewer_id,
                x,
                y,
                width,
                height,
                ..zero
            },
            Event::PointerButton {
                viewer_id,
                x,
                y,
                width,
                height,
                button,
                pressed,
                mods,
            } => OswEvent {
                kind: OswEventKind::PointerButton,
                viewer_id,
                x,
                y,
                width,
                height,
                button,
                action: i32::from(pressed),
                mods,
                ..zero
            },
            Event::Wheel { viewer_id, dx, dy } => OswEvent {
                kind: OswEventKind::Wheel,
                viewer_id,
                x: dx,
                y: dy,
                ..zero
            },
            Event::Key {
                viewer_id,
                key,
                action,
                mods,
            } => OswEvent {
                kind: OswEventKind::Key,
                viewer_id,
                key,
                action,
                mods,
                ..zero
            },
            Event::Text {
                viewer_id,
                codepoint,
            } => OswEvent {
                kind: OswEventKind::Text,
                viewer_id,
                codepoint,
                ..zero
            },
            Event::Resize {
                viewer_id,
                width,
                height,
            } => OswEvent {
                kind: OswEventKind::Resize,
                viewer_id,
                width,
                height,
                ..zero
            },
            Event::ViewerJoined { viewer_id } => OswEvent {
                kind: OswEventKind::ViewerJoined,
                viewer_id,
                ..zero
            },
            Event::ViewerLeft { viewer_id } => OswEvent {
                kind: OswEventKind::ViewerLeft,
                viewer_id,
                ..zero
            },
            Event::ControlsChanged { viewer_id } => OswEvent {
                kind: OswEventKind::ControlsChanged,
                viewer_id,
                ..zero
            },
        }
    }
}

/// What an [`OswAppRequest`] asks. Numbers are fixed forever.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OswAppRequestKind {
    /// No request (the value of a zeroed struct).
    None = 0,
    /// Run the script in the text (Lua, for OpenSpace).
    RunScript = 1,
    /// Go to the view named by the text (a camera bookmark).
    GoToView = 2,
}

/// An owner's request from the `app` channel, filled by `osw_streamer_poll_app_request`.
/// Answer each with `osw_streamer_reply_app_request(request_id, …)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OswAppRequest {
    /// What to do.
    pub kind: OswAppRequestKind,
    /// The viewer who asked.
    pub viewer_id: u32,
    /// The id to answer with (never 0).
    pub request_id: u64,
}

impl OswAppRequest {
    /// No request.
    pub(crate) fn default_none() -> OswAppRequest {
        OswAppRequest {
            kind: OswAppRequestKind::None,
            viewer_id: 0,
            request_id: 0,
        }
    }
}

impl From<&crate::app::HostRequest> for OswAppRequest {
    fn from(request: &crate::app::HostRequest) -> Self {
        OswAppRequest {
            kind: match request.kind {
                crate::app::HostRequestKind::RunScript => OswAppRequestKind::RunScript,
                crate::app::HostRequestKind::GoToView => OswAppRequestKind::GoToView,
            },
            viewer_id: request.viewer_id,
            request_id: request.request_id,
        }
    }
}

//! The JSON messages spoken on rust-core's signaling endpoint.
//!
//! This crate has no GStreamer and no async runtime on purpose: the orchestrator shares these
//! types with rust-core without linking GStreamer (the way gst-plugins-rs keeps its signalling
//! protocol apart from its elements). The wire format is documented in `rust-core/SIGNALING.md`;
//! every message is a JSON object tagged by `type`, with camelCase fields.
//!
//! The endpoint's rules live here too, as pure code: [`session`] decides what each message on
//! a connection may do (join first and once, who may act as control, what a ticket admits),
//! and [`tickets`] keeps the join tickets a managed streamer issues. rust-core's endpoint and
//! the orchestrator's test double of an instance both run them, so there is one authority.
//!
//! Two kinds of client use the endpoint:
//! - a **viewer** (a browser) negotiates one WebRTC peer: [`ViewerRequest`] in,
//!   [`ViewerReply`] out;
//! - a **control** client (the orchestrator) first proves the per-instance secret with
//!   [`ControlRequest::Hello`], then asks for readiness, stats, a resize or a key frame.
//!
//! Both share one socket type: the first message decides the role ([`ClientMessage`]).

use serde::{Deserialize, Serialize};

pub mod session;
pub mod tickets;

/// Version of this protocol, sent in [`ViewerReply::Welcome`] and [`ControlReply::Welcome`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text message the endpoint accepts, in bytes. SDP offers with many candidates stay
/// well under this; anything larger is refused with an error instead of being buffered.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest side any size request may name (a `resize`, the supervisor's `RESOLUTION`, the
/// web API's resize); larger is refused as nonsense rather than fitted.
pub const MAX_REQUEST_SIDE: u32 = 7680;
/// Smallest side a stream is given.
pub const MIN_STREAM_SIDE: u32 = 16;
/// The largest stream an instance takes from a request by default (`maxWidth` ×
/// `maxHeight` in rust-core's configuration): the orchestrator's virtual display. 7680×4320
/// took the host to 1.8 fps and 535 MB.
pub const DEFAULT_MAX_STREAM_SIZE: StreamLimit = StreamLimit {
    max_width: 3840,
    max_height: 2160,
};

/// The largest stream an instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamLimit {
    /// Widest stream, pixels.
    pub max_width: u32,
    /// Tallest stream, pixels.
    pub max_height: u32,
}

impl Default for StreamLimit {
    fn default() -> Self {
        DEFAULT_MAX_STREAM_SIZE
    }
}

/// A requested size no stream can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSize {
    /// As requested.
    pub width: u32,
    /// As requested.
    pub height: u32,
}

impl std::fmt::Display for InvalidSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid size {}x{}: each side must be 1..={MAX_REQUEST_SIDE}",
            self.width, self.height
        )
    }
}

impl std::error::Error for InvalidSize {}

/// The one rule for what size a requested stream gets: within `limit` (shrunk keeping the
/// aspect ratio), each side even (4:2:0 encoders take nothing else: 641×361 made x264 fail
/// for good) and at least [`MIN_STREAM_SIDE`]. A side of 0 or over [`MAX_REQUEST_SIDE`] is
/// refused.
pub fn fit_stream_size(
    width: u32,
    height: u32,
    limit: StreamLimit,
) -> Result<(u32, u32), InvalidSize> {
    if !(1..=MAX_REQUEST_SIDE).contains(&width) || !(1..=MAX_REQUEST_SIDE).contains(&height) {
        return Err(InvalidSize { width, height });
    }
    let shrink = (f64::from(limit.max_width) / f64::from(width))
        .min(f64::from(limit.max_height) / f64::from(height))
        .min(1.0);
    let side = |n: u32, max: u32| {
        let scaled = (f64::from(n) * shrink).floor() as u32;
        (scaled.min(max) & !1).max(MIN_STREAM_SIDE)
    };
    Ok((side(width, limit.max_width), side(height, limit.max_height)))
}

/// What a join ticket admits: the instance's owner (input accepted) or a spectator (video
/// only, input refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewerRole {
    /// May send input.
    Owner,
    /// Watches; its input is refused.
    Spectator,
}

impl ViewerRole {
    /// The role of a viewer that joined with `viewOnly` as given (after admission decided it).
    pub fn from_view_only(view_only: bool) -> ViewerRole {
        if view_only {
            ViewerRole::Spectator
        } else {
            ViewerRole::Owner
        }
    }

    /// The role's wire name (`owner`, `spectator`).
    pub fn as_str(self) -> &'static str {
        match self {
            ViewerRole::Owner => "owner",
            ViewerRole::Spectator => "spectator",
        }
    }
}

/// The query parameter of the endpoint's URL that carries a join ticket
/// (`ws://127.0.0.1:4700/?ticket=…`): the ticket belongs to the connection, so whoever relays
/// it (the supervisor) never has to read or rewrite the viewer's messages.
pub const TICKET_QUERY_KEY: &str = "ticket";

/// The ticket in a request URL's query string, if it carries one.
pub fn ticket_in_query(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == TICKET_QUERY_KEY && !value.is_empty()).then_some(value)
    })
}

/// Any message a client may send. Parsed as one enum so a single `type` tag decides the role.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ClientMessage {
    /// A viewer's message.
    Viewer(ViewerRequest),
    /// A control client's message.
    Control(ControlRequest),
}

/// Messages a viewer (browser) sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ViewerRequest {
    /// Ask for a stream. The server answers with [`ViewerReply::Welcome`] and then an offer.
    Join {
        /// A view-only viewer receives video but no data channel input is accepted from it.
        #[serde(default)]
        view_only: bool,
    },
    /// The browser's SDP answer to the server's offer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate from the browser.
    Ice {
        /// The candidate line (`candidate:…`); empty means end of candidates.
        candidate: String,
        /// Index of the media line the candidate belongs to.
        #[serde(default)]
        sdp_m_line_index: u32,
    },
    /// The viewer leaves; the server frees its peer and closes the socket.
    Bye,
}

/// Messages the server sends to a viewer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ViewerReply {
    /// The join was accepted; `viewerId` identifies this viewer in input events and stats.
    Welcome {
        /// Server-assigned viewer id (unique for the streamer's lifetime).
        viewer_id: u32,
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The largest stream a `resize` gets; larger requests are fitted into it.
        #[serde(default)]
        limit: StreamLimit,
    },
    /// The server's SDP offer (send-only video plus the `input` data channel).
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate from the server.
    Ice {
        /// The candidate line.
        candidate: String,
        /// Index of the media line the candidate belongs to.
        sdp_m_line_index: u32,
    },
    /// Something went wrong; the connection stays open unless `fatal` is true.
    Error {
        /// Human-readable reason.
        message: String,
        /// True when the server will close the connection after this message.
        #[serde(default)]
        fatal: bool,
    },
    /// The server ends this viewer's session (shutdown, or kicked).
    Bye {
        /// Why the session ended.
        reason: String,
    },
}

/// Messages a control client (the orchestrator) sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ControlRequest {
    /// Prove the per-instance secret (`controlSecret` in the streamer configuration).
    Hello {
        /// The secret.
        secret: String,
    },
    /// Is the streamer ready: endpoint up and the host has delivered at least one frame?
    Ready,
    /// Current stats (same JSON as the C ABI's stats call).
    GetStats,
    /// Ask the host to resize its framebuffer; the stream follows.
    Resize {
        /// New width in pixels.
        width: u32,
        /// New height in pixels.
        height: u32,
    },
    /// Force a key frame on the shared encoder.
    KeyFrame,
    /// Issue a single-use join ticket for one viewer with this role (see [`tickets`]).
    IssueTicket {
        /// What the ticket admits.
        role: ViewerRole,
    },
}

/// Messages the server sends to a control client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ControlReply {
    /// The secret was right; control requests are now accepted.
    Welcome {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// Answer to [`ControlRequest::Ready`].
    Ready {
        /// True once the host delivered its first frame.
        ready: bool,
        /// Size of the last frame delivered (0 before the first).
        width: u32,
        /// Size of the last frame delivered (0 before the first).
        height: u32,
        /// True while frames come out of the encoder (one within the last 2 s): a process
        /// alive is not a stream.
        #[serde(default)]
        frames_flowing: bool,
    },
    /// Answer to [`ControlRequest::GetStats`].
    Stats {
        /// The stats object (see `rust-core/SIGNALING.md`).
        stats: serde_json::Value,
    },
    /// Answer to [`ControlRequest::IssueTicket`]: present it as `?ticket=` when connecting.
    Ticket {
        /// The ticket (hex).
        ticket: String,
        /// It is refused after this many milliseconds, and after its first use.
        expires_in_ms: u64,
    },
    /// A resize or key frame request was queued.
    Ok {
        /// The request this acknowledges (`resize`, `keyFrame`).
        request: String,
    },
    /// The request was refused; the connection stays usable.
    Error {
        /// Human-readable reason.
        message: String,
    },
}

/// Input and control messages a viewer sends on the `input` WebRTC data channel.
///
/// Coordinates are in pixels of the video as the viewer displays it: `(x, y)` from the top-left
/// corner, within `width × height` (the size of the video element's content box), so the host
/// can map them onto its own window whatever the scaling. Key codes are GLFW's (`GLFW_KEY_*`),
/// modifiers GLFW's bit set (shift 1, control 2, alt 4, super 8).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum InputMessage {
    /// The pointer moved.
    PointerMove {
        /// Horizontal position in displayed-video pixels.
        x: f64,
        /// Vertical position in displayed-video pixels.
        y: f64,
        /// Width the coordinates refer to.
        width: f64,
        /// Height the coordinates refer to.
        height: f64,
    },
    /// A pointer button changed state.
    PointerButton {
        /// Horizontal position in displayed-video pixels.
        x: f64,
        /// Vertical position in displayed-video pixels.
        y: f64,
        /// Width the coordinates refer to.
        width: f64,
        /// Height the coordinates refer to.
        height: f64,
        /// GLFW button: 0 left, 1 right, 2 middle.
        button: i32,
        /// True when pressed, false when released.
        pressed: bool,
        /// GLFW modifier bits.
        #[serde(default)]
        mods: i32,
    },
    /// Wheel or trackpad scroll, in GLFW's units (one notch = 1.0; positive y scrolls up).
    Wheel {
        /// Horizontal scroll.
        dx: f64,
        /// Vertical scroll.
        dy: f64,
    },
    /// A key changed state.
    Key {
        /// GLFW key code.
        key: i32,
        /// 0 release, 1 press, 2 repeat (GLFW actions).
        action: i32,
        /// GLFW modifier bits.
        #[serde(default)]
        mods: i32,
    },
    /// Text typed (one or more Unicode characters).
    Text {
        /// The text; each character becomes one event.
        text: String,
    },
    /// Ask the host to render at this size (the viewer's window changed).
    Resize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Ask for a key frame (the decoder lost sync).
    KeyFrame,
}

/// Longest script or view name an `app` request may carry, in bytes.
pub const MAX_APP_TEXT_BYTES: usize = 16 * 1024;

/// Messages a viewer sends on the `app` data channel (the server creates it beside `input`).
/// Every request carries an `id` the viewer chooses; the answer is an [`AppMessage::Reply`]
/// with the same `id`. Only the owner may send them; a spectator's get an error reply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AppRequest {
    /// Run a script in the host (Lua in OpenSpace); the host answers when it ran.
    RunScript {
        /// The viewer's request id.
        id: u64,
        /// The script.
        script: String,
    },
    /// Fly to a view the host knows by name (a camera bookmark).
    GoToView {
        /// The viewer's request id.
        id: u64,
        /// The view's name, as the host's status lists it (`views`).
        view: String,
    },
    /// Hand the controls (whose input reaches the host) to another viewer.
    PassControl {
        /// The viewer's request id.
        id: u64,
        /// Who gets them.
        viewer_id: u32,
    },
    /// Take the controls back.
    TakeControl {
        /// The viewer's request id.
        id: u64,
    },
}

impl AppRequest {
    /// The viewer's request id.
    pub fn id(&self) -> u64 {
        match self {
            AppRequest::RunScript { id, .. }
            | AppRequest::GoToView { id, .. }
            | AppRequest::PassControl { id, .. }
            | AppRequest::TakeControl { id } => *id,
        }
    }
}

/// One viewer as the `app` channel's [`AppMessage::Controls`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerEntry {
    /// Its id (the `viewerId` of its welcome).
    pub viewer_id: u32,
    /// What its ticket (or join) made it.
    pub role: ViewerRole,
}

/// Messages the server sends on the `app` data channel.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AppMessage {
    /// The answer to the request with this `id`: done, or why not.
    Reply {
        /// The request's id.
        id: u64,
        /// Whether it was done.
        ok: bool,
        /// Why not (when `ok` is false), or what the host said (a script's result).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Who is watching and who has the controls; sent when the channel opens and on every
    /// change.
    Controls {
        /// The viewer whose input reaches the host, if any.
        holder: Option<u32>,
        /// Everyone connected.
        viewers: Vec<ViewerEntry>,
    },
    /// The host's own status (a JSON object; by convention `views` lists the views a
    /// `goToView` knows); sent when the channel opens and whenever the host publishes one.
    Status {
        /// As the host published it.
        status: serde_json::Value,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_only_viewer_is_a_spectator_and_roles_have_their_wire_names() {
        assert_eq!(ViewerRole::from_view_only(true), ViewerRole::Spectator);
        assert_eq!(ViewerRole::from_view_only(false), ViewerRole::Owner);
        for role in [ViewerRole::Owner, ViewerRole::Spectator] {
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
    }

    #[test]
    fn stream_sizes_are_fitted_even_and_bounded() {
        let limit = StreamLimit::default();
        assert_eq!(fit_stream_size(1280, 720, limit), Ok((1280, 720)));
        assert_eq!(fit_stream_size(641, 361, limit), Ok((640, 360)));
        assert_eq!(fit_stream_size(7680, 4320, limit), Ok((3840, 2160)));
        // Shrunk keeping the aspect ratio: a tall window stays tall.
        assert_eq!(fit_stream_size(2000, 4000, limit), Ok((1080, 2160)));
        assert_eq!(
            fit_stream_size(1, 1, limit),
            Ok((MIN_STREAM_SIDE, MIN_STREAM_SIDE))
        );
        assert!(fit_stream_size(0, 720, limit).is_err());
        assert!(fit_stream_size(7681, 720, limit).is_err());
        let small = StreamLimit {
            max_width: 640,
            max_height: 480,
        };
        assert_eq!(fit_stream_size(1280, 720, small), Ok((640, 360)));
    }

    #[test]
    fn viewer_join_parses_with_default_fields() {
        let msg: ClientMessage = serde_json::from_str(r#"{"type":"join"}"#).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Viewer(ViewerRequest::Join { view_only: false })
        );
    }

    #[test]
    fn control_hello_is_not_mistaken_for_a_viewer_message() {
        let msg: ClientMessage = serde_json::from_str(r#"{"type":"hello","secret":"s3"}"#).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Control(ControlRequest::Hello {
                secret: "s3".into()
            })
        );
    }

    #[test]
    fn ice_uses_camel_case_on_the_wire() {
        let text = serde_json::to_string(&ViewerReply::Ice {
            candidate: "candidate:1".into(),
            sdp_m_line_index: 0,
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"ice","candidate":"candidate:1","sdpMLineIndex":0}"#
        );
    }

    #[test]
    fn tickets_travel_in_the_query_and_roles_in_lowercase() {
        assert_eq!(ticket_in_query(Some("a=1&ticket=ab12")), Some("ab12"));
        assert_eq!(ticket_in_query(Some("ticket=")), None);
        assert_eq!(ticket_in_query(Some("tickets=ab")), None);
        assert_eq!(ticket_in_query(None), None);
        let text = serde_json::to_string(&ControlRequest::IssueTicket {
            role: ViewerRole::Spectator,
        })
        .unwrap();
        assert_eq!(text, r#"{"type":"issueTicket","role":"spectator"}"#);
        let reply = serde_json::to_string(&ControlReply::Ticket {
            ticket: "ab".into(),
            expires_in_ms: 10_000,
        })
        .unwrap();
        assert_eq!(
            reply,
            r#"{"type":"ticket","ticket":"ab","expiresInMs":10000}"#
        );
    }

    #[test]
    fn app_messages_speak_camel_case() {
        let pass: AppRequest =
            serde_json::from_str(r#"{"type":"passControl","id":3,"viewerId":2}"#).unwrap();
        assert_eq!(
            pass,
            AppRequest::PassControl {
                id: 3,
                viewer_id: 2
            }
        );
        assert_eq!(pass.id(), 3);
        let reply = serde_json::to_string(&AppMessage::Reply {
            id: 3,
            ok: true,
            message: None,
        })
        .unwrap();
        assert_eq!(reply, r#"{"type":"reply","id":3,"ok":true}"#);
        let controls = serde_json::to_string(&AppMessage::Controls {
            holder: Some(1),
            viewers: vec![ViewerEntry {
                viewer_id: 1,
                role: ViewerRole::Owner,
            }],
        })
        .unwrap();
        assert_eq!(
            controls,
            r#"{"type":"controls","holder":1,"viewers":[{"viewerId":1,"role":"owner"}]}"#
        );
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }

    #[test]
    fn input_messages_round_trip() {
        let key: InputMessage =
            serde_json::from_str(r#"{"type":"key","key":87,"action":1,"mods":2}"#).unwrap();
        assert_eq!(
            key,
            InputMessage::Key {
                key: 87,
                action: 1,
                mods: 2
            }
        );
        let wheel: InputMessage =
            serde_json::from_str(r#"{"type":"wheel","dx":0,"dy":-1.5}"#).unwrap();
        assert_eq!(wheel, InputMessage::Wheel { dx: 0.0, dy: -1.5 });
    }
}

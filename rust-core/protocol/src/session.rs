//! Who may say what on a signaling connection: a pure state machine, tested without sockets.
//!
//! The first message fixes the connection's role. Viewers may negotiate a peer; control
//! clients must prove the secret before anything else. Every refusal is an error reply, and
//! the connection stays usable, except a refused join (no valid ticket), which is fatal.
//!
//! A streamer with a control secret is *managed*: it admits a viewer only with a join ticket
//! presented when the connection opened ([`Admission`]), and the ticket, not the viewer,
//! decides whether the viewer may send input (a spectator's `join` is view-only whatever it
//! asks). A streamer without a control secret (a host run by hand) admits anyone who reaches
//! its port, as the viewer asks.

use crate::tickets::TicketError;
use crate::{
    ClientMessage, ControlReply, ControlRequest, MAX_MESSAGE_BYTES, ViewerReply, ViewerRequest,
    ViewerRole,
};

/// What a connection's `join` will be granted, settled when the connection opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// An unmanaged streamer: anyone may join, as they ask.
    Open,
    /// A managed streamer, no ticket presented: a `join` is refused (the control client
    /// connects this way, with the secret instead).
    NoTicket,
    /// A valid ticket was presented: this role.
    Ticket(ViewerRole),
    /// A ticket was presented and refused: why.
    BadTicket(String),
}

impl Admission {
    /// The admission of a connection to a streamer that is `managed` (has a control secret),
    /// given what redeeming its ticket gave, if it presented one.
    pub fn new(managed: bool, redeemed: Option<Result<ViewerRole, TicketError>>) -> Admission {
        match (managed, redeemed) {
            (false, _) => Admission::Open,
            (true, None) => Admission::NoTicket,
            (true, Some(Ok(role))) => Admission::Ticket(role),
            (true, Some(Err(err))) => Admission::BadTicket(format!("{err}; reload the page")),
        }
    }

    /// Whether the connection presented a ticket: it is a viewer's, never a control client's.
    fn presented_ticket(&self) -> bool {
        matches!(self, Admission::Ticket(_) | Admission::BadTicket(_))
    }
}

/// The role a connection has taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No message yet.
    Undecided,
    /// A viewer (it sent `join`, the only message that makes one).
    Viewer,
    /// A control client; `authenticated` once it proved the secret.
    Control { authenticated: bool },
}

/// What the connection should do with one incoming text message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Reply with this viewer message (a refusal), nothing else.
    ReplyViewer(ViewerReply),
    /// Reply with this control message, nothing else.
    ReplyControl(ControlReply),
    /// Carry out a viewer request.
    Viewer(ViewerRequest),
    /// Carry out an (authenticated) control request.
    Control(ControlRequest),
}

/// The per-connection state.
#[derive(Debug)]
pub struct Session {
    role: Role,
    secret: String,
    admission: Admission,
}

fn viewer_error(message: impl Into<String>) -> Decision {
    Decision::ReplyViewer(ViewerReply::Error {
        message: message.into(),
        fatal: false,
    })
}

fn control_error(message: impl Into<String>) -> Decision {
    Decision::ReplyControl(ControlReply::Error {
        message: message.into(),
    })
}

/// Compares secrets in time independent of where they differ.
fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Session {
    /// A new connection; an empty `secret` disables control. `admission` decides its `join`.
    pub fn new(secret: &str, admission: Admission) -> Self {
        Session {
            role: Role::Undecided,
            secret: secret.to_string(),
            admission,
        }
    }

    /// The connection's role so far.
    pub fn role(&self) -> &Role {
        &self.role
    }

    fn refuse(&self, message: String) -> Decision {
        match self.role {
            Role::Control { .. } => control_error(message),
            _ => viewer_error(message),
        }
    }

    /// Decides what to do with one text message.
    pub fn on_text(&mut self, text: &str) -> Decision {
        if text.len() > MAX_MESSAGE_BYTES {
            return self.refuse(format!(
                "message of {} bytes is larger than the limit of {MAX_MESSAGE_BYTES}",
                text.len()
            ));
        }
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(_) => return self.refuse(describe_bad_message(text)),
        };
        match (&self.role, message) {
            (Role::Undecided, ClientMessage::Viewer(ViewerRequest::Join { view_only })) => {
                let view_only = match &self.admission {
                    Admission::Open | Admission::Ticket(ViewerRole::Owner) => view_only,
                    Admission::Ticket(ViewerRole::Spectator) => true,
                    Admission::BadTicket(reason) => {
                        return Decision::ReplyViewer(ViewerReply::Error {
                            message: reason.clone(),
                            fatal: true,
                        });
                    }
                    Admission::NoTicket => {
                        return Decision::ReplyViewer(ViewerReply::Error {
                            message: "this streamer admits viewers only through its \
                                      orchestrator (no join ticket)"
                                .into(),
                            fatal: true,
                        });
                    }
                };
                self.role = Role::Viewer;
                Decision::Viewer(ViewerRequest::Join { view_only })
            }
            (Role::Undecided, ClientMessage::Viewer(_)) => viewer_error("send join first"),
            (Role::Viewer, ClientMessage::Viewer(ViewerRequest::Join { .. })) => {
                viewer_error("already joined")
            }
            (Role::Viewer, ClientMessage::Viewer(request)) => Decision::Viewer(request),
            (Role::Viewer, ClientMessage::Control(_)) => {
                viewer_error("viewers cannot send control messages")
            }
            (Role::Undecided, ClientMessage::Control(_)) if self.admission.presented_ticket() => {
                viewer_error("viewers cannot send control messages")
            }
            (
                Role::Undecided | Role::Control { .. },
                ClientMessage::Control(ControlRequest::Hello { secret }),
            ) => {
                if self.secret.is_empty() {
                    self.role = Role::Control {
                        authenticated: false,
                    };
                    return control_error(
                        "control is disabled on this streamer (no controlSecret)",
                    );
                }
                if secrets_match(&secret, &self.secret) {
                    self.role = Role::Control {
                        authenticated: true,
                    };
                    Decision::ReplyControl(ControlReply::Welcome {
                        protocol: crate::PROTOCOL_VERSION,
                    })
                } else {
                    self.role = Role::Control {
                        authenticated: false,
                    };
                    control_error("wrong secret")
                }
            }
            (Role::Undecided, ClientMessage::Control(_))
            | (
                Role::Control {
                    authenticated: false,
                },
                ClientMessage::Control(_),
            ) => {
                self.role = Role::Control {
                    authenticated: false,
                };
                control_error("send hello with the secret first")
            }
            (
                Role::Control {
                    authenticated: true,
                },
                ClientMessage::Control(request),
            ) => Decision::Control(request),
            (Role::Control { .. }, ClientMessage::Viewer(_)) => {
                control_error("a control connection cannot act as a viewer")
            }
        }
    }
}

/// Explains why a message did not parse, naming its `type` when it has one.
fn describe_bad_message(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(err) => format!("not valid JSON: {err}"),
        Ok(serde_json::Value::Object(object)) => match object.get("type") {
            None => "message has no \"type\" field".to_string(),
            Some(serde_json::Value::String(kind)) => {
                format!("unknown message type {kind:?} or missing/mistyped fields for it")
            }
            Some(_) => "\"type\" must be a string".to_string(),
        },
        Ok(_) => "message must be a JSON object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_viewer_error(decision: &Decision, needle: &str) -> bool {
        matches!(decision, Decision::ReplyViewer(ViewerReply::Error { message, fatal: false }) if message.contains(needle))
    }

    #[test]
    fn viewer_flow() {
        let mut session = Session::new("s", Admission::Open);
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"answer","sdp":"x"}"#),
            "join first"
        ));
        assert_eq!(
            session.on_text(r#"{"type":"join"}"#),
            Decision::Viewer(ViewerRequest::Join { view_only: false })
        );
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"join"}"#),
            "already"
        ));
        assert_eq!(
            session.on_text(r#"{"type":"answer","sdp":"v=0"}"#),
            Decision::Viewer(ViewerRequest::Answer { sdp: "v=0".into() })
        );
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"resize","width":1,"height":1}"#),
            "control"
        ));
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"hello","secret":"s"}"#),
            "control"
        ));
    }

    #[test]
    fn control_needs_the_secret() {
        let mut session = Session::new("s3cret", Admission::Open);
        assert_eq!(
            session.on_text(r#"{"type":"ready"}"#),
            control_error("send hello with the secret first")
        );
        assert_eq!(
            session.on_text(r#"{"type":"hello","secret":"nope"}"#),
            control_error("wrong secret")
        );
        assert_eq!(
            session.on_text(r#"{"type":"getStats"}"#),
            control_error("send hello with the secret first")
        );
        assert!(matches!(
            session.on_text(r#"{"type":"hello","secret":"s3cret"}"#),
            Decision::ReplyControl(ControlReply::Welcome { protocol: 1 })
        ));
        assert_eq!(
            session.on_text(r#"{"type":"keyFrame"}"#),
            Decision::Control(ControlRequest::KeyFrame)
        );
        assert!(matches!(
            session.on_text(r#"{"type":"join"}"#),
            Decision::ReplyControl(ControlReply::Error { .. })
        ));
    }

    #[test]
    fn empty_secret_disables_control() {
        let mut session = Session::new("", Admission::Open);
        assert!(matches!(
            session.on_text(r#"{"type":"hello","secret":""}"#),
            Decision::ReplyControl(ControlReply::Error { message }) if message.contains("disabled")
        ));
    }

    #[test]
    fn a_managed_streamer_admits_by_ticket_only() {
        let join = r#"{"type":"join","viewOnly":false}"#;
        let mut no_ticket = Session::new("s", Admission::new(true, None));
        assert!(matches!(
            no_ticket.on_text(join),
            Decision::ReplyViewer(ViewerReply::Error { message, fatal: true })
                if message.contains("no join ticket")
        ));
        assert_eq!(no_ticket.role(), &Role::Undecided);
        for (err, words) in [
            (TicketError::Used, "used already"),
            (TicketError::Expired, "expired"),
            (TicketError::Unknown, "not known"),
        ] {
            let mut session = Session::new("s", Admission::new(true, Some(Err(err))));
            assert!(matches!(
                session.on_text(join),
                Decision::ReplyViewer(ViewerReply::Error { message, fatal: true })
                    if message.contains(words)
            ));
        }
        let mut spectator =
            Session::new("s", Admission::new(true, Some(Ok(ViewerRole::Spectator))));
        assert_eq!(
            spectator.on_text(join),
            Decision::Viewer(ViewerRequest::Join { view_only: true }),
            "a spectator's ticket never sends input, whatever the join asks"
        );
        let mut owner = Session::new("s", Admission::new(true, Some(Ok(ViewerRole::Owner))));
        assert_eq!(
            owner.on_text(join),
            Decision::Viewer(ViewerRequest::Join { view_only: false })
        );
        // A ticket makes a viewer's connection: no control on it, and the join still works.
        let mut ticketed = Session::new("s", Admission::new(true, Some(Ok(ViewerRole::Owner))));
        assert!(matches!(
            ticketed.on_text(r#"{"type":"hello","secret":"s"}"#),
            Decision::ReplyViewer(ViewerReply::Error { message, fatal: false })
                if message.contains("viewers cannot")
        ));
        assert_eq!(
            ticketed.on_text(join),
            Decision::Viewer(ViewerRequest::Join { view_only: false })
        );
        // The control client of a managed streamer needs no ticket, only the secret.
        let mut control = Session::new("s", Admission::new(true, None));
        assert!(matches!(
            control.on_text(r#"{"type":"hello","secret":"s"}"#),
            Decision::ReplyControl(ControlReply::Welcome { .. })
        ));
        // Unmanaged: anyone, as they ask.
        let mut open = Session::new("", Admission::new(false, None));
        assert_eq!(
            open.on_text(join),
            Decision::Viewer(ViewerRequest::Join { view_only: false })
        );
    }

    #[test]
    fn bad_messages_are_explained() {
        let mut session = Session::new("s", Admission::Open);
        assert!(is_viewer_error(&session.on_text("{nope"), "not valid JSON"));
        assert!(is_viewer_error(&session.on_text("[]"), "JSON object"));
        assert!(is_viewer_error(
            &session.on_text(r#"{"sdp":"x"}"#),
            "no \"type\""
        ));
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"dance"}"#),
            "\"dance\""
        ));
        assert!(is_viewer_error(
            &session.on_text(r#"{"type":"answer","sdp":5}"#),
            "\"answer\""
        ));
        let huge = format!(
            r#"{{"type":"answer","sdp":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(is_viewer_error(&session.on_text(&huge), "larger than"));
        assert_eq!(
            session.role(),
            &Role::Undecided,
            "refusals do not fix a role"
        );
    }
}

//! The `app` channel's host side: owners' requests waiting for the host, and its answers.
//!
//! An owner's `runScript` and `goToView` ([`AppRequest`]) are queued here for the host, which
//! takes them on its main thread (`osw_streamer_poll_app_request`) and answers each
//! (`osw_streamer_reply_app_request`); the answer goes back to the viewer who asked, with the
//! viewer's own request id. The host may also publish a status object for every page
//! (`osw_streamer_publish_app_status`). Requests about the controls never come here: the
//! control thread answers those itself.
//!
//! Bounded both ways: at most [`MAX_QUEUED`] requests wait for the host (more are refused at
//! once), and one the host never answers is answered for it after [`ANSWER_TIMEOUT`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use openspace_webrtc_protocol::{AppMessage, AppRequest, MAX_APP_TEXT_BYTES};

/// Requests waiting for the host, or taken and not yet answered, at most.
pub const MAX_QUEUED: usize = 64;
/// How long a request may go unanswered before the viewer is told the host did not answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a host is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRequestKind {
    /// Run this script.
    RunScript,
    /// Go to the view with this name.
    GoToView,
}

/// One request for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRequest {
    /// The id the host answers with (unique for the streamer's lifetime, never 0).
    pub request_id: u64,
    /// The viewer who asked.
    pub viewer_id: u32,
    /// What to do.
    pub kind: HostRequestKind,
    /// The script, or the view's name.
    pub text: String,
}

/// Why the host's answer went nowhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// Not a request the host has open (answered already, timed out, or never made).
    #[error("no open app request {0}")]
    UnknownRequest(u64),
    /// A status that is not a JSON object.
    #[error("the app status must be a JSON object: {0}")]
    BadStatus(String),
}

/// An answer to send to one viewer's `app` channel.
pub type Delivery = (u32, AppMessage);

#[derive(Debug)]
struct Open {
    viewer_id: u32,
    viewer_request_id: u64,
    since: Instant,
}

#[derive(Debug, Default)]
struct Desk {
    waiting: VecDeque<HostRequest>,
    open: HashMap<u64, Open>,
    next_id: u64,
    status: Option<serde_json::Value>,
}

/// The requests and status shared by the data channels, the control thread and the host.
#[derive(Debug, Default)]
pub struct AppDesk(Mutex<Desk>);

/// The reply refusing request `id`, saying why.
pub(crate) fn refusal(id: u64, message: impl Into<String>) -> AppMessage {
    AppMessage::Reply {
        id,
        ok: false,
        message: Some(message.into()),
    }
}

impl AppDesk {
    fn lock(&self) -> MutexGuard<'_, Desk> {
        // Every change is one push, pop or insert: the desk is consistent after any panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an owner's request for the host. `Err` is the reply to send at once instead.
    pub fn submit(&self, viewer_id: u32, request: AppRequest) -> Result<(), AppMessage> {
        let id = request.id();
        let (kind, text) = match request {
            AppRequest::RunScript { script, .. } => (HostRequestKind::RunScript, script),
            AppRequest::GoToView { view, .. } => (HostRequestKind::GoToView, view),
            AppRequest::PassControl { .. } | AppRequest::TakeControl { .. } => {
                return Err(refusal(id, "the host does not handle the controls"));
            }
        };
        if text.trim().is_empty() {
            return Err(refusal(id, "the script or view name is empty"));
        }
        if text.len() > MAX_APP_TEXT_BYTES {
            return Err(refusal(
                id,
                format!("longer than {MAX_APP_TEXT_BYTES} bytes"),
            ));
        }
        let mut desk = self.lock();
        // `open` holds every request not yet answered, waiting or taken.
        if desk.open.len() >= MAX_QUEUED {
            return Err(refusal(
                id,
                format!("the host has {MAX_QUEUED} requests to answer already; try again"),
            ));
        }
        desk.next_id += 1;
        let request_id = desk.next_id;
        desk.open.insert(
            request_id,
            Open {
                viewer_id,
                viewer_request_id: id,
                since: Instant::now(),
            },
        );
        desk.waiting.push_back(HostRequest {
            request_id,
            viewer_id,
            kind,
            text,
        });
        Ok(())
    }

    /// The next request for the host, if any (its text must fit `capacity` bytes, or it
    /// stays first in line and `Err` says how many it needs).
    pub fn take(&self, capacity: usize) -> Result<Option<HostRequest>, usize> {
        let mut desk = self.lock();
        match desk.waiting.front() {
            None => Ok(None),
            Some(first) if first.text.len() >= capacity => Err(first.text.len() + 1),
            Some(_) => Ok(desk.waiting.pop_front()),
        }
    }

    /// The host's answer to `request_id`: where it goes.
    pub fn answer(
        &self,
        request_id: u64,
        ok: bool,
        message: Option<String>,
    ) -> Result<Delivery, AppError> {
        let open = self
            .lock()
            .open
            .remove(&request_id)
            .ok_or(AppError::UnknownRequest(request_id))?;
        let reply = AppMessage::Reply {
            id: open.viewer_request_id,
            ok,
            message: message.filter(|m| !m.is_empty()),
        };
        Ok((open.viewer_id, reply))
    }

    /// Answers, for the host, every request open longer than [`ANSWER_TIMEOUT`] at `now`.
    pub fn expire(&self, now: Instant) -> Vec<Delivery> {
        let mut desk = self.lock();
        let late: Vec<u64> = desk
            .open
            .iter()
            .filter(|(_, open)| now.duration_since(open.since) >= ANSWER_TIMEOUT)
            .map(|(&id, _)| id)
            .collect();
        desk.waiting
            .retain(|request| !late.contains(&request.request_id));
        late.into_iter()
            .filter_map(|id| desk.open.remove(&id))
            .map(|open| {
                let reply = refusal(
                    open.viewer_request_id,
                    format!(
                        "the host did not answer within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    ),
                );
                (open.viewer_id, reply)
            })
            .collect()
    }

    /// Keeps the host's status (a JSON object) for the pages; returns the message to send.
    pub fn publish_status(&self, json: &str) -> Result<AppMessage, AppError> {
        let status: serde_json::Value =
            serde_json::from_str(json).map_err(|err| AppError::BadStatus(err.to_string()))?;
        if !status.is_object() {
            return Err(AppError::BadStatus("not an object".into()));
        }
        self.lock().status = Some(status.clone());
        Ok(AppMessage::Status { status })
    }

    /// The last status the host published, for a page whose channel just opened.
    pub fn status(&self) -> Option<AppMessage> {
        let status = self.lock().status.clone()?;
        Some(AppMessage::Status { status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(id: u64, text: &str) -> AppRequest {
        AppRequest::RunScript {
            id,
            script: text.into(),
        }
    }

    #[test]
    fn a_request_goes_to_the_host_and_its_answer_back_to_the_viewer() {
        let desk = AppDesk::default();
        desk.submit(4, script(17, "openspace.time.togglePause()"))
            .unwrap();
        desk.submit(
            5,
            AppRequest::GoToView {
                id: 1,
                view: "Earth".into(),
            },
        )
        .unwrap();
        let first = desk.take(1024).unwrap().unwrap();
        assert_eq!(first.kind, HostRequestKind::RunScript);
        assert_eq!(
            (first.viewer_id, first.text.as_str()),
            (4, "openspace.time.togglePause()")
        );
        let second = desk.take(1024).unwrap().unwrap();
        assert_eq!(second.kind, HostRequestKind::GoToView);
        assert_eq!(desk.take(1024), Ok(None));
        let (viewer, reply) = desk
            .answer(first.request_id, true, Some("5".into()))
            .unwrap();
        assert_eq!(viewer, 4);
        assert_eq!(
            reply,
            AppMessage::Reply {
                id: 17,
                ok: true,
                message: Some("5".into())
            }
        );
        assert_eq!(
            desk.answer(first.request_id, true, None),
            Err(AppError::UnknownRequest(first.request_id)),
            "answered once"
        );
    }

    #[test]
    fn a_text_too_long_for_the_buffer_waits_and_says_what_it_needs() {
        let desk = AppDesk::default();
        desk.submit(1, script(1, "abcdef")).unwrap();
        assert_eq!(desk.take(6), Err(7), "six bytes and the NUL");
        assert!(desk.take(7).unwrap().is_some());
    }

    #[test]
    fn the_desk_is_bounded_and_unanswered_requests_time_out() {
        let desk = AppDesk::default();
        for id in 0..MAX_QUEUED as u64 {
            desk.submit(1, script(id, "x")).unwrap();
        }
        assert!(matches!(
            desk.submit(1, script(99, "x")),
            Err(AppMessage::Reply {
                id: 99,
                ok: false,
                ..
            })
        ));
        assert!(desk.expire(Instant::now()).is_empty());
        let late = desk.expire(Instant::now() + ANSWER_TIMEOUT);
        assert_eq!(late.len(), MAX_QUEUED);
        assert!(
            matches!(&late[0].1, AppMessage::Reply { ok: false, message: Some(m), .. } if m.contains("did not answer"))
        );
        assert_eq!(
            desk.take(1024),
            Ok(None),
            "timed-out requests never reach the host"
        );
        assert!(desk.submit(1, script(100, "x")).is_ok());
    }

    #[test]
    fn empty_requests_and_bad_statuses_are_refused() {
        let desk = AppDesk::default();
        assert!(desk.submit(1, script(1, "  ")).is_err());
        assert!(desk.publish_status("[1]").is_err());
        assert!(desk.publish_status("{nope").is_err());
        assert_eq!(desk.status(), None);
        desk.publish_status(r#"{"views":["Earth"]}"#).unwrap();
        assert_eq!(
            desk.status(),
            Some(AppMessage::Status {
                status: serde_json::json!({"views": ["Earth"]})
            })
        );
    }
}

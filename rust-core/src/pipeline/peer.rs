//! One viewer: a queue and a `webrtcbin` behind the tee, plus its `input` data channel.

use std::sync::{Arc, Weak};

use gst::prelude::*;
use gst_webrtc::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCSDPType, WebRTCSessionDescription};
use openspace_webrtc_protocol::InputMessage;

use super::{Codec, Pipeline, PipelineError, make};
use crate::config::StreamerConfig;
use crate::input::{EventQueue, events_from_message};
use crate::stats::Stats;

/// What a peer tells its signaling session.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMessage {
    /// The SDP offer to send to the browser.
    Offer(String),
    /// A local ICE candidate.
    Ice { m_line: u32, candidate: String },
    /// The connection failed; the session should end.
    Failed(String),
}

/// Where a peer sends its messages (the viewer's signaling session).
pub type PeerOutbox = tokio::sync::mpsc::UnboundedSender<PeerMessage>;

/// Packets buffered per viewer before old ones are dropped: a slow viewer must never hold up
/// the encoder or the other viewers.
const VIEWER_QUEUE_BUFFERS: u32 = 200;

pub(super) struct Peer {
    viewer_id: u32,
    queue: gst::Element,
    webrtcbin: gst::Element,
    tee_pad: gst::Pad,
    /// Kept so the channel (and its signal handlers) live as long as the peer.
    _channel: Option<WebRTCDataChannel>,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        config: &StreamerConfig,
        codec: Codec,
        viewer_id: u32,
        view_only: bool,
        outbox: PeerOutbox,
        owner: Weak<Pipeline>,
        events: Arc<EventQueue>,
        stats: Arc<Stats>,
    ) -> Result<Self, PipelineError> {
        let queue = make("queue", Some(&format!("viewer-queue-{viewer_id}")))?;
        queue.set_property("max-size-buffers", VIEWER_QUEUE_BUFFERS);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        queue.set_property_from_str("leaky", "downstream");
        let webrtcbin = make("webrtcbin", Some(&format!("viewer-{viewer_id}")))?;
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        webrtcbin.set_property("latency", 0u32);
        if !config.stun_server.is_empty() {
            webrtcbin.set_property("stun-server", &config.stun_server);
        }
        for turn in &config.turn_servers {
            let _added: bool = webrtcbin.emit_by_name("add-turn-server", &[turn]);
        }
        if !config.ice_addresses.is_empty() {
            let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
            for address in &config.ice_addresses {
                if !ice.emit_add_local_ip_address(&address.to_string()) {
                    tracing::warn!(%address, "ICE agent refused the local address");
                }
            }
        }

        pipeline.add_many([&queue, &webrtcbin])?;
        let tee_pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| PipelineError::Build("tee gave no pad".into()))?;
        let queue_sink = queue
            .static_pad("sink")
            .ok_or_else(|| PipelineError::Build("queue".into()))?;
        let webrtc_sink = webrtcbin
            .request_pad_simple("sink_%u")
            .ok_or_else(|| PipelineError::Build("webrtcbin gave no sink pad".into()))?;
        let queue_src = queue
            .static_pad("src")
            .ok_or_else(|| PipelineError::Build("queue".into()))?;
        queue_src
            .link(&webrtc_sink)
            .map_err(|e| PipelineError::Build(format!("queue → webrtcbin: {e:?}")))?;
        let transceiver = webrtc_sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );
        transceiver.set_property("codec-preferences", codec.rtp_caps());

        Self::connect_signals(&webrtcbin, viewer_id, outbox.clone(), owner.clone());
        queue.sync_state_with_parent()?;
        webrtcbin.sync_state_with_parent()?;
        tee_pad
            .link(&queue_sink)
            .map_err(|e| PipelineError::Build(format!("tee → queue: {e:?}")))?;

        let channel = webrtcbin.emit_by_name::<Option<WebRTCDataChannel>>(
            "create-data-channel",
            &[&"input", &None::<gst::Structure>],
        );
        if let Some(channel) = &channel {
            let owner = owner.clone();
            channel.connect_on_message_string(move |_, text| {
                let Some(text) = text else { return };
                handle_input(viewer_id, view_only, text, &events, &stats, &owner);
            });
        } else {
            tracing::warn!(viewer_id, "no data channel: input disabled for this viewer");
        }
        Self::create_offer(&webrtcbin, outbox);
        Ok(Peer {
            viewer_id,
            queue,
            webrtcbin,
            tee_pad,
            _channel: channel,
        })
    }

    fn connect_signals(
        webrtcbin: &gst::Element,
        viewer_id: u32,
        outbox: PeerOutbox,
        owner: Weak<Pipeline>,
    ) {
        let ice_outbox = outbox.clone();
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let m_line = values.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
            if let Some(candidate) = values.get(2).and_then(|v| v.get::<String>().ok()) {
                let _ = ice_outbox.send(PeerMessage::Ice { m_line, candidate });
            }
            None
        });
        webrtcbin.connect_notify(Some("connection-state"), move |bin, _| {
            let state = bin.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            tracing::info!(viewer_id, ?state, "peer connection state");
            match state {
                gst_webrtc::WebRTCPeerConnectionState::Connected => {
                    // Frames sent before DTLS completed were dropped: start with a key frame.
                    if let Some(pipeline) = owner.upgrade() {
                        pipeline.request_key_frame();
                    }
                }
                gst_webrtc::WebRTCPeerConnectionState::Failed => {
                    let _ = outbox.send(PeerMessage::Failed("WebRTC connection failed".into()));
                }
                _ => {}
            }
        });
    }

    fn create_offer(webrtcbin: &gst::Element, outbox: PeerOutbox) {
        let bin = webrtcbin.downgrade();
        let promise = gst::Promise::with_change_func(move |reply| {
            let Some(bin) = bin.upgrade() else { return };
            let offer = match reply {
                Ok(Some(reply)) => reply.get::<WebRTCSessionDescription>("offer").ok(),
                _ => None,
            };
            let Some(offer) = offer else {
                let _ = outbox.send(PeerMessage::Failed(
                    "webrtcbin could not create an offer".into(),
                ));
                return;
            };
            bin.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
            match offer.sdp().as_text() {
                Ok(sdp) => {
                    let _ = outbox.send(PeerMessage::Offer(sdp));
                }
                Err(err) => {
                    let _ = outbox.send(PeerMessage::Failed(format!("offer SDP: {err}")));
                }
            }
        });
        webrtcbin.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    pub(super) fn set_answer(&self, sdp: &str) -> Result<(), PipelineError> {
        let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| PipelineError::Negotiation("the answer is not valid SDP".into()))?;
        let answer = WebRTCSessionDescription::new(WebRTCSDPType::Answer, message);
        self.webrtcbin
            .emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        Ok(())
    }

    pub(super) fn add_ice(&self, m_line: u32, candidate: &str) {
        if candidate.is_empty() {
            // End of candidates: webrtcbin 1.22 has nothing to do with it.
            return;
        }
        self.webrtcbin
            .emit_by_name::<()>("add-ice-candidate", &[&m_line, &candidate]);
    }

    /// Detaches the viewer from the tee and frees its elements.
    pub(super) fn remove(self, pipeline: &gst::Pipeline, tee: &gst::Element) {
        if let Some(queue_sink) = self.queue.static_pad("sink") {
            let _ = self.tee_pad.unlink(&queue_sink);
        }
        // Releasing the pad deactivates it, which waits for a push in progress to finish.
        tee.release_request_pad(&self.tee_pad);
        let _ = self.webrtcbin.set_state(gst::State::Null);
        let _ = self.queue.set_state(gst::State::Null);
        let _ = pipeline.remove_many([&self.queue, &self.webrtcbin]);
        tracing::info!(viewer_id = self.viewer_id, "viewer removed");
    }
}

/// Validates one data channel message and queues the events for the host.
fn handle_input(
    viewer_id: u32,
    view_only: bool,
    text: &str,
    events: &EventQueue,
    stats: &Stats,
    owner: &Weak<Pipeline>,
) {
    if view_only {
        stats.input_refused();
        return;
    }
    let message = match serde_json::from_str::<InputMessage>(text) {
        Ok(message) => message,
        Err(err) => {
            tracing::debug!(viewer_id, %err, "unreadable input message");
            stats.input_refused();
            return;
        }
    };
    match events_from_message(viewer_id, message) {
        Ok(Some(list)) => {
            for event in list {
                stats.input_accepted();
                events.push(event);
            }
        }
        Ok(None) => {
            if let Some(pipeline) = owner.upgrade() {
                pipeline.request_key_frame();
            }
        }
        Err(err) => {
            tracing::debug!(viewer_id, %err, "input refused");
            stats.input_refused();
        }
    }
}

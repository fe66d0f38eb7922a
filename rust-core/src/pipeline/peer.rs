//! One viewer: its own small pipeline, `appsrc → payloader → webrtcbin`, fed whole encoded
//! frames by its tier, plus its `input` and `app` data channels and, with sound, a second
//! `appsrc → rtpopuspay` branch fed by the shared Opus encoder ([`super::audio`]).
//!
//! Each viewer pipeline shares the main pipeline's clock and base time, so frames keep their
//! running time and RTP timestamps stay continuous when the viewer switches tiers. Joining,
//! leaving or a stuck peer never touches the main pipeline's state.
//!
//! Per viewer: Google Congestion Control (`rtpgccbwe`, webrtcbin's aux sender) fed by
//! transport-wide CC feedback (the TWCC header extension on every packet), NACK with RTX
//! retransmissions, optional ULPFEC/RED, and PLI/FIR passed to the control thread, which asks
//! the viewer's tier for a key frame within its rate limit.

use std::sync::Arc;

use gst::prelude::*;
use gst_rtp::prelude::*;
use gst_webrtc::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCSDPType, WebRTCSessionDescription};
use openspace_webrtc_protocol::{AppMessage, AppRequest, InputMessage, MAX_APP_TEXT_BYTES};

use super::audio::{Audio, ViewerAudio};
use super::control::{Command, ControlSender};
use super::controls::HolderCell;
use super::tier::Consumer;
use super::{Codec, PipelineError, make};
use crate::app::{AppDesk, refusal};
use crate::config::StreamerConfig;
use crate::input::{EventQueue, HeldInput, events_from_message};
use crate::stats::Stats;

/// The transport-wide congestion control header extension.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// Its id in every offer (on every media section: one BUNDLE transport, one id per URI).
pub(super) const TWCC_ID: u32 = 1;

/// What a peer tells its signaling session.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMessage {
    /// The SDP offer to send to the browser.
    Offer(String),
    /// A local ICE candidate.
    Ice { m_line: u32, candidate: String },
    /// A request of the viewer's was refused; the session goes on.
    Error(String),
    /// The connection failed; the session should end.
    Failed(String),
}

/// Where a peer sends its messages (the viewer's signaling session).
pub type PeerOutbox = tokio::sync::mpsc::UnboundedSender<PeerMessage>;

/// Everything a new peer needs from the engine.
pub(super) struct PeerContext<'a> {
    pub(super) config: &'a StreamerConfig,
    pub(super) codec: Codec,
    pub(super) clock: Option<gst::Clock>,
    pub(super) base_time: Option<gst::ClockTime>,
    pub(super) control: ControlSender,
    pub(super) events: Arc<EventQueue>,
    pub(super) stats: Arc<Stats>,
    pub(super) app: Arc<AppDesk>,
    pub(super) holder: HolderCell,
    /// The shared Opus encoder, when the stream has sound.
    pub(super) audio: Option<&'a Audio>,
}

pub(super) struct Peer {
    pub(super) viewer_id: u32,
    pub(super) view_only: bool,
    pipeline: gst::Pipeline,
    webrtcbin: gst::Element,
    /// The offer as sent, once webrtcbin made it; answers are checked against it.
    offer: Arc<std::sync::Mutex<Option<String>>>,
    answered: bool,
    joined_at: std::time::Instant,
    /// Set by webrtcbin's connection-state notifications.
    connected: Arc<std::sync::atomic::AtomicBool>,
    pub(super) consumer: Arc<Consumer>,
    /// The viewer's latest congestion-control estimate.
    pub(super) estimate_kbps: u32,
    pub(super) tier: usize,
    /// Kept so the channel (and its signal handlers) live as long as the peer.
    _channel: Option<WebRTCDataChannel>,
    /// The `app` channel: owners' requests in, answers, the controls and the host's status out.
    app_channel: Option<WebRTCDataChannel>,
    /// This viewer's sound branch; dropping it takes the viewer off the Opus encoder.
    audio: Option<ViewerAudio>,
    /// What this viewer holds down at the host (only a holder's input gets there).
    held: Arc<std::sync::Mutex<HeldInput>>,
}

impl Peer {
    pub(super) fn new(
        context: PeerContext<'_>,
        viewer_id: u32,
        view_only: bool,
        outbox: PeerOutbox,
    ) -> Result<Self, PipelineError> {
        let PeerContext {
            config,
            codec,
            clock,
            base_time,
            control,
            events,
            stats,
            app,
            holder,
            audio,
        } = context;
        let pipeline = gst::Pipeline::with_name(&format!("viewer-{viewer_id}"));
        // The tier's consumer drops whole frames first; this is the backstop.
        let appsrc = super::leaky_appsrc("frames", 16);
        let payloader = make_payloader(codec)?;
        let webrtcbin = make("webrtcbin", Some("webrtc"))?;
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        webrtcbin.set_property("latency", 0u32);
        if !config.stun_server.is_empty() {
            webrtcbin.set_property("stun-server", &config.stun_server);
        }
        for turn in &config.turn_servers {
            let _added: bool = webrtcbin.emit_by_name("add-turn-server", &[turn]);
        }
        let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
        if config.ice_port_max > 0 {
            // Max first: the agent keeps min <= max, and its default max (65535) is above any.
            ice.set_property("max-rtp-port", config.ice_port_max);
            ice.set_property("min-rtp-port", config.ice_port_min);
        }
        if !config.ice_addresses.is_empty() {
            for address in &config.ice_addresses {
                if !ice.emit_add_local_ip_address(&address.to_string()) {
                    tracing::warn!(%address, "ICE agent refused the local address");
                }
            }
        }
        connect_congestion_control(&webrtcbin, config, viewer_id, control.clone());

        pipeline.add_many([appsrc.upcast_ref(), &payloader, &webrtcbin])?;
        appsrc.link(&payloader)?;
        let webrtc_sink = webrtcbin
            .request_pad_simple("sink_%u")
            .ok_or_else(|| PipelineError::Build("webrtcbin gave no sink pad".into()))?;
        let payloader_src = payloader
            .static_pad("src")
            .ok_or_else(|| PipelineError::Build("payloader has no src pad".into()))?;
        payloader_src
            .link(&webrtc_sink)
            .map_err(|e| PipelineError::Build(format!("payloader → webrtcbin: {e:?}")))?;
        let transceiver = webrtc_sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );
        // With sound, the offer names the video's SSRC (and so its msid, see `with_ssrc`),
        // the one the payloader then sends; without, the offer stays as it was.
        let caps = if audio.is_some() {
            let ssrc = new_ssrc();
            payloader.set_property("ssrc", ssrc);
            with_ssrc(codec.rtp_caps(), ssrc)
        } else {
            codec.rtp_caps()
        };
        transceiver.set_property("codec-preferences", caps);
        transceiver.set_property("do-nack", true);
        if config.fec_percentage > 0 {
            transceiver.set_property("fec-type", gst_webrtc::WebRTCFECType::UlpRed);
            transceiver.set_property("fec-percentage", config.fec_percentage);
        }
        forward_key_frame_requests(&payloader, viewer_id, control.clone());
        // After the video transceiver, so the offer's audio section follows the video one.
        let audio = audio
            .map(|audio| ViewerAudio::add(audio, &pipeline, &webrtcbin, viewer_id))
            .transpose()?;
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        connect_signals(
            &webrtcbin,
            viewer_id,
            outbox.clone(),
            control.clone(),
            connected.clone(),
        );

        if let Some(clock) = &clock {
            pipeline.use_clock(Some(clock));
        }
        if let Some(base_time) = base_time {
            pipeline.set_start_time(gst::ClockTime::NONE);
            pipeline.set_base_time(base_time);
        }
        pipeline.set_latency(Some(gst::ClockTime::ZERO));
        if let Some(bus) = pipeline.bus() {
            let stats = stats.clone();
            bus.set_sync_handler(move |_, message| {
                if let gst::MessageView::Error(err) = message.view() {
                    tracing::warn!(viewer_id, error = %err.error(), debug = ?err.debug(), "viewer pipeline error");
                    stats.set_last_error(format!("viewer {viewer_id}: {}", err.error()));
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline.set_state(gst::State::Playing)?;

        let held = Arc::new(std::sync::Mutex::new(HeldInput::default()));
        let channel = webrtcbin.emit_by_name::<Option<WebRTCDataChannel>>(
            "create-data-channel",
            &[&"input", &None::<gst::Structure>],
        );
        if let Some(channel) = &channel {
            let control = control.clone();
            let limit = config.stream_limit();
            let stats = stats.clone();
            let held = held.clone();
            channel.connect_on_message_string(move |_, text| {
                let Some(text) = text else { return };
                let input = Input {
                    holder: &holder,
                    held: &held,
                    events: &events,
                    stats: &stats,
                    control: &control,
                };
                handle_input(viewer_id, text, limit, input);
            });
        } else {
            tracing::warn!(viewer_id, "no data channel: input disabled for this viewer");
        }
        let app_channel = webrtcbin.emit_by_name::<Option<WebRTCDataChannel>>(
            "create-data-channel",
            &[&"app", &None::<gst::Structure>],
        );
        if let Some(channel) = &app_channel {
            let opened = control.clone();
            channel.connect_on_open(move |_| {
                opened.notify(Command::AppOpened { viewer_id });
            });
            let control = control.clone();
            let owner = !view_only;
            channel.connect_on_message_string(move |_, text| {
                let Some(text) = text else { return };
                handle_app(viewer_id, owner, text, &app, &control);
            });
        } else {
            tracing::warn!(viewer_id, "no app channel for this viewer");
        }
        let offer = Arc::new(std::sync::Mutex::new(None));
        create_offer(&webrtcbin, outbox, offer.clone());
        Ok(Peer {
            viewer_id,
            view_only,
            pipeline,
            webrtcbin,
            offer,
            answered: false,
            joined_at: std::time::Instant::now(),
            connected,
            consumer: Arc::new(Consumer::new(viewer_id, appsrc, config.start_bitrate_kbps)),
            estimate_kbps: config.start_bitrate_kbps,
            tier: 0,
            _channel: channel,
            app_channel,
            held,
            audio,
        })
    }

    /// Opus packets handed to this viewer, or null without sound (stats).
    pub(super) fn audio_packets(&self) -> Option<u64> {
        self.audio.as_ref().map(ViewerAudio::packets_sent)
    }

    /// Takes the viewer off the Opus encoder (it left; its pipeline may linger, see
    /// `Controller::retire`).
    pub(super) fn detach_audio(&mut self) {
        self.audio = None;
    }

    /// Applies the viewer's answer once it passed [`super::answer::check_answer`]: webrtcbin
    /// aborts the process on some malformed answers, so it never sees one.
    pub(super) fn set_answer(&mut self, sdp: &str) -> Result<(), PipelineError> {
        if self.answered {
            return Err(PipelineError::Negotiation(
                "the offer was already answered".into(),
            ));
        }
        let offer = self
            .offer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PipelineError::Negotiation("no offer was sent yet".into()))?;
        super::answer::check_answer(&offer, sdp)
            .map_err(|e| PipelineError::Negotiation(e.to_string()))?;
        let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| PipelineError::Negotiation("the answer is not valid SDP".into()))?;
        self.answered = true;
        let answer = WebRTCSessionDescription::new(WebRTCSDPType::Answer, message);
        self.webrtcbin
            .emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
        Ok(())
    }

    /// Releases, at the host, every key and button this viewer holds down (it lost the
    /// controls, or leaves).
    pub(super) fn release_held(&self, events: &EventQueue) {
        let releases = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release_all(self.viewer_id);
        for event in releases {
            events.push(event);
        }
    }

    /// Sends one message on the `app` channel (dropped while the channel is not open yet:
    /// the control thread sends the current state when it opens).
    pub(super) fn send_app(&self, text: &str) {
        if let Some(channel) = &self.app_channel
            && channel.ready_state() == gst_webrtc::WebRTCDataChannelState::Open
            && let Err(err) = channel.send_string_full(Some(text))
        {
            tracing::debug!(viewer_id = self.viewer_id, %err, "app message not sent");
        }
    }

    pub(super) fn add_ice(&self, m_line: u32, candidate: &str) {
        if candidate.is_empty() {
            // End of candidates: webrtcbin 1.22 has nothing to do with it.
            return;
        }
        if is_mdns_candidate(candidate) {
            // A browser hides its address behind an mDNS name (`….local`). Only the
            // browser's own network can resolve it, never a rendering server far away, and
            // libnice's pending resolution kept the viewer's sockets and threads alive after
            // it left (12 fds and 2 threads a viewer). The browser's checks still arrive from
            // its real address, which ICE learns as a peer-reflexive candidate.
            tracing::debug!(viewer_id = self.viewer_id, "mDNS candidate skipped");
            return;
        }
        self.webrtcbin
            .emit_by_name::<()>("add-ice-candidate", &[&m_line, &candidate]);
    }

    /// Why this viewer's negotiation counts as stalled, if it does: no answer within
    /// `timeout` of joining, or not connected within twice that.
    pub(super) fn stalled(&self, timeout: std::time::Duration) -> Option<String> {
        let waited = self.joined_at.elapsed();
        if !self.answered && waited > timeout {
            return Some(format!(
                "no answer to the offer within {:.1} s",
                timeout.as_secs_f64()
            ));
        }
        let connected = self.connected.load(std::sync::atomic::Ordering::Relaxed);
        if !connected && waited > timeout * 2 {
            return Some(format!(
                "the connection was not established within {:.1} s",
                (timeout * 2).as_secs_f64()
            ));
        }
        None
    }

    /// Whether webrtcbin's ICE agent has finished gathering candidates.
    pub(super) fn ice_gathering_done(&self) -> bool {
        self.webrtcbin
            .property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            == gst_webrtc::WebRTCICEGatheringState::Complete
    }

    /// Elements of this viewer's pipeline (leak tests).
    pub(super) fn element_count(&self) -> usize {
        self.pipeline.children().len()
    }

    /// Stops the viewer's pipeline and frees everything it held.
    pub(super) fn remove(mut self) {
        self.detach_audio();
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        tracing::info!(viewer_id = self.viewer_id, "viewer removed");
    }
}

/// A random SSRC (never 0, which webrtcbin refuses).
pub(super) fn new_ssrc() -> u32 {
    gst::glib::random_int().max(1)
}

/// `caps` naming `ssrc`: webrtcbin then writes the section's `a=ssrc:<ssrc> msid:<cname> …`
/// into the offer before any packet has gone out. Every section of one viewer gets the same
/// msid stream (webrtcbin's cname), so the browser puts the video and the sound in one
/// MediaStream, its unit of lip sync; without it the video, whose first frame comes after
/// the offer, had no msid at all and Chromium never synchronised the two.
pub(super) fn with_ssrc(mut caps: gst::Caps, ssrc: u32) -> gst::Caps {
    for structure in caps.make_mut().iter_mut() {
        structure.set("ssrc", ssrc);
    }
    caps
}

/// Whether an ICE candidate line names its address by an mDNS host name (`….local`).
fn is_mdns_candidate(candidate: &str) -> bool {
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
    candidate
        .split_whitespace()
        .nth(4)
        .is_some_and(|address| address.to_ascii_lowercase().ends_with(".local"))
}

fn make_payloader(codec: Codec) -> Result<gst::Element, PipelineError> {
    let payloader = match codec {
        Codec::H264 => {
            let pay = make("rtph264pay", Some("pay"))?;
            pay.set_property("config-interval", -1i32);
            pay.set_property_from_str("aggregate-mode", "zero-latency");
            pay
        }
        Codec::Vp8 => {
            let pay = make("rtpvp8pay", Some("pay"))?;
            pay.set_property_from_str("picture-id-mode", "15-bit");
            pay
        }
    };
    payloader.set_property("pt", 96u32);
    payloader.set_property("mtu", 1200u32);
    // Every packet carries a transport-wide sequence number; the browser's feedback on them
    // is what congestion control estimates from.
    match gst_rtp::RTPHeaderExtension::create_from_uri(TWCC_URI) {
        Some(extension) => {
            extension.set_id(TWCC_ID);
            payloader.emit_by_name::<()>("add-extension", &[&extension]);
        }
        None => tracing::warn!(
            "the TWCC header extension is missing (gst-plugins-good's rtpmanager): \
             congestion control will only see losses"
        ),
    }
    Ok(payloader)
}

/// Hands webrtcbin an `rtpgccbwe` per viewer and reports its estimates to the control thread.
fn connect_congestion_control(
    webrtcbin: &gst::Element,
    config: &StreamerConfig,
    viewer_id: u32,
    control: ControlSender,
) {
    let bwe = match gst::ElementFactory::make("rtpgccbwe").build() {
        Ok(bwe) => bwe,
        Err(_) => {
            tracing::warn!("rtpgccbwe is not registered: no congestion control");
            return;
        }
    };
    bwe.set_property("min-bitrate", config.min_bitrate_kbps.saturating_mul(1000));
    bwe.set_property("max-bitrate", config.bitrate_kbps.saturating_mul(1000));
    bwe.set_property(
        "estimated-bitrate",
        config.start_bitrate_kbps.saturating_mul(1000),
    );
    bwe.connect_notify(Some("estimated-bitrate"), move |bwe, _| {
        let bps = bwe.property::<u32>("estimated-bitrate");
        control.notify(Command::Estimate {
            viewer_id,
            kbps: bps / 1000,
        });
    });
    // Asked once per transport; with max-bundle there is one, and an element can have only
    // one parent, so a second request gets nothing.
    let bwe = std::sync::Mutex::new(Some(bwe));
    webrtcbin.connect("request-aux-sender", false, move |_| {
        let bwe = bwe.lock().unwrap_or_else(|e| e.into_inner()).take();
        bwe.map(|bwe| bwe.to_value())
    });
}

/// A PLI or FIR from the browser reaches the payloader as a force-key-unit event; the tier
/// decides (rate-limited). Upstream of the payloader is only the viewer's own appsrc, so the
/// event never reaches an encoder shared with others.
fn forward_key_frame_requests(payloader: &gst::Element, viewer_id: u32, control: ControlSender) {
    let Some(pad) = payloader.static_pad("sink") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(event) = info.event() else {
            return gst::PadProbeReturn::Ok;
        };
        if gst_video::ForceKeyUnitEvent::is(event) {
            control.notify(Command::KeyFrame {
                viewer_id: Some(viewer_id),
            });
        }
        // The event goes on to this viewer's appsrc, which ignores it: dropping it here made
        // GStreamer unref it twice (a CRITICAL under PLI bursts).
        gst::PadProbeReturn::Ok
    });
}

fn connect_signals(
    webrtcbin: &gst::Element,
    viewer_id: u32,
    outbox: PeerOutbox,
    control: ControlSender,
    connected: Arc<std::sync::atomic::AtomicBool>,
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
                connected.store(true, std::sync::atomic::Ordering::Relaxed);
                // Frames sent before DTLS completed were dropped: start with a key frame.
                control.notify(Command::KeyFrame {
                    viewer_id: Some(viewer_id),
                });
            }
            gst_webrtc::WebRTCPeerConnectionState::Failed => {
                let _ = outbox.send(PeerMessage::Failed("WebRTC connection failed".into()));
            }
            _ => {}
        }
    });
}

fn create_offer(
    webrtcbin: &gst::Element,
    outbox: PeerOutbox,
    sent: Arc<std::sync::Mutex<Option<String>>>,
) {
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
                *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(sdp.clone());
                let _ = outbox.send(PeerMessage::Offer(sdp));
            }
            Err(err) => {
                let _ = outbox.send(PeerMessage::Failed(format!("offer SDP: {err}")));
            }
        }
    });
    webrtcbin.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
}

/// Where a viewer's input goes, and what decides whether it gets there.
struct Input<'a> {
    holder: &'a HolderCell,
    held: &'a std::sync::Mutex<HeldInput>,
    events: &'a EventQueue,
    stats: &'a Stats,
    control: &'a ControlSender,
}

/// Validates one data channel message and queues the events for the host. Only the holder
/// of the controls gets through; everyone else's input is counted as refused.
fn handle_input(
    viewer_id: u32,
    text: &str,
    limit: openspace_webrtc_protocol::StreamLimit,
    input: Input<'_>,
) {
    let Input {
        holder,
        held,
        events,
        stats,
        control,
    } = input;
    let message = match serde_json::from_str::<InputMessage>(text) {
        Ok(message) => message,
        Err(err) => {
            tracing::debug!(viewer_id, %err, "unreadable input message");
            stats.input_refused();
            return;
        }
    };
    let list = match events_from_message(viewer_id, message, limit) {
        Ok(list) => list,
        Err(err) => {
            tracing::debug!(viewer_id, %err, "input refused");
            stats.input_refused();
            return;
        }
    };
    // The holder is checked under `held`'s lock. A handover (or the holder leaving) changes
    // the holder first and then, under this lock, releases what the old holder held, so
    // each press is either refused here or released there: none is left down at the host.
    let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
    if !holder.holds(viewer_id) {
        stats.input_refused();
        return;
    }
    match list {
        Some(list) => {
            for event in list {
                stats.input_accepted();
                held.track(&event);
                events.push(event);
            }
        }
        None => {
            drop(held);
            control.notify(Command::KeyFrame {
                viewer_id: Some(viewer_id),
            });
        }
    }
}

/// Handles one `app` channel message: a host request goes to the [`AppDesk`], a request about
/// the controls to the control thread; a refusal is answered at once. Only owners may ask.
fn handle_app(viewer_id: u32, owner: bool, text: &str, app: &AppDesk, control: &ControlSender) {
    let reply = |message: AppMessage| {
        control.notify(Command::AppSend {
            viewer_id: Some(viewer_id),
            message,
        });
    };
    let refuse = |id: u64, why: String| reply(refusal(id, why));
    if text.len() > MAX_APP_TEXT_BYTES + 1024 {
        return refuse(
            0,
            format!("app messages are limited to {MAX_APP_TEXT_BYTES} bytes of text"),
        );
    }
    let request = match serde_json::from_str::<AppRequest>(text) {
        Ok(request) => request,
        Err(err) => {
            // The id, if the message has one, so the page can match the refusal.
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["id"].as_u64())
                .unwrap_or(0);
            return refuse(id, format!("not an app request: {err}"));
        }
    };
    let id = request.id();
    if !owner {
        return refuse(id, "only the owner can do that; spectators watch".into());
    }
    match request {
        AppRequest::PassControl { viewer_id: to, .. } => {
            control.notify(Command::PassControl {
                by: viewer_id,
                to,
                id,
            });
        }
        AppRequest::TakeControl { .. } => {
            control.notify(Command::TakeControl { by: viewer_id, id });
        }
        request => {
            if let Err(refusal) = app.submit(viewer_id, request) {
                reply(refusal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_mdns_candidate;

    #[test]
    fn mdns_candidates_are_recognised() {
        assert!(is_mdns_candidate(
            "candidate:1 1 udp 2122260223 3f1b6c2e-9a1d-4b7e-8f00-1a2b3c4d5e6f.local 54321 typ host"
        ));
        assert!(is_mdns_candidate(
            "candidate:1 1 UDP 1 abcd.LOCAL 5000 typ host"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host"
        ));
        assert!(!is_mdns_candidate("candidate:1 1 udp"));
    }
}

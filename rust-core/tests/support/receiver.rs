//! A receiving WebRTC peer built from GStreamer's own `webrtcbin`: the test double for a
//! browser. It speaks the viewer side of the signaling protocol over a real WebSocket,
//! decodes the video, counts frames and can send input on the `input` data channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use gst_webrtc::{WebRTCDataChannel, WebRTCSDPType, WebRTCSessionDescription};
use openspace_webrtc_protocol::{ViewerReply, ViewerRequest, ViewerRole};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// What the receiver has seen so far.
#[derive(Default)]
pub struct Received {
    pub frames: AtomicU64,
    pub size: Mutex<Option<(i32, i32)>>,
    pub channel: Mutex<Option<WebRTCDataChannel>>,
    pub viewer_id: Mutex<Option<u32>>,
    pub errors: Mutex<Vec<String>>,
    /// The offer as received and the answer as sent.
    pub offer: Mutex<Option<String>>,
    pub answer: Mutex<Option<String>>,
    /// When each decoded frame arrived (gap measurements).
    pub frame_times: Mutex<Vec<std::time::Instant>>,
    /// The server's trickled ICE candidates.
    pub candidates: Mutex<Vec<String>>,
    /// The `app` data channel, and every message that came on it.
    pub app_channel: Mutex<Option<WebRTCDataChannel>>,
    pub app_messages: Mutex<Vec<serde_json::Value>>,
    /// RTP packets of the sound stream, its `encoding-name`, and the loudest sample decoded
    /// from it (0..=32767).
    pub audio_packets: AtomicU64,
    pub audio_encoding: Mutex<Option<String>>,
    pub audio_peak: AtomicU64,
}

/// A running receiver; dropping it does not close the connection, `leave` does.
pub struct Receiver {
    pub received: Arc<Received>,
    pipeline: gst::Pipeline,
    to_server: mpsc::UnboundedSender<ViewerRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Connects to `ws://127.0.0.1:{port}/` with an owner's ticket and joins with control.
    pub async fn join(port: u16) -> Receiver {
        Self::join_as(port, false).await
    }

    /// Connects and joins, view-only (a spectator) or with control.
    /// The ticket is a spectator's when `view_only`.
    pub async fn join_as(port: u16, view_only: bool) -> Receiver {
        let role = ViewerRole::from_view_only(view_only);
        Self::join_url(&super::viewer_url(port, role).await, view_only).await
    }

    /// Connects to `url` (with whatever ticket it carries) and joins, asking for `view_only`.
    pub async fn join_url(url: &str, view_only: bool) -> Receiver {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to the signaling endpoint");
        let (mut sink, mut stream) = socket.split();
        let received = Arc::new(Received::default());
        let pipeline = gst::Pipeline::new();
        let webrtcbin = gst::ElementFactory::make("webrtcbin")
            .build()
            .expect("webrtcbin");
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
        let _: bool = ice.emit_by_name("add-local-ip-address", &[&"127.0.0.1"]);
        pipeline.add(&webrtcbin).unwrap();

        let (to_server, mut outgoing) = mpsc::unbounded_channel::<ViewerRequest>();
        let ice_tx = to_server.clone();
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let m_line = values[1].get::<u32>().unwrap();
            let candidate = values[2].get::<String>().unwrap();
            let _ = ice_tx.send(ViewerRequest::Ice {
                candidate,
                sdp_m_line_index: m_line,
            });
            None
        });
        let channel_slot = received.clone();
        webrtcbin.connect("on-data-channel", false, move |values| {
            let channel = values[1].get::<WebRTCDataChannel>().unwrap();
            if channel.label().as_deref() == Some("app") {
                let messages = channel_slot.clone();
                channel.connect_on_message_string(move |_, text| {
                    if let Some(value) = text.and_then(|t| serde_json::from_str(t).ok()) {
                        messages.app_messages.lock().unwrap().push(value);
                    }
                });
                *channel_slot.app_channel.lock().unwrap() = Some(channel);
            } else {
                *channel_slot.channel.lock().unwrap() = Some(channel);
            }
            None
        });
        let pipeline_weak = pipeline.downgrade();
        let counts = received.clone();
        webrtcbin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.to_owned()));
            if caps
                .as_ref()
                .and_then(|s| s.get::<String>("media").ok())
                .as_deref()
                == Some("audio")
            {
                add_audio_branch(&pipeline, pad, caps.as_ref(), &counts);
                return;
            }
            let decode = gst::ElementFactory::make("decodebin").build().unwrap();
            let convert = gst::ElementFactory::make("videoconvert").build().unwrap();
            let sink = gst_app::AppSink::builder().sync(false).build();
            pipeline
                .add_many([&decode, &convert, sink.upcast_ref()])
                .unwrap();
            convert.link(&sink).unwrap();
            let convert_weak = convert.downgrade();
            decode.connect_pad_added(move |_, pad| {
                if let Some(convert) = convert_weak.upgrade() {
                    let _ = pad.link(&convert.static_pad("sink").unwrap());
                }
            });
            let counts = counts.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(s) = sample
                            .caps()
                            .and_then(|c| c.structure(0).map(|s| s.to_owned()))
                        {
                            let w = s.get::<i32>("width").unwrap_or(0);
                            let h = s.get::<i32>("height").unwrap_or(0);
                            *counts.size.lock().unwrap() = Some((w, h));
                        }
                        counts.frames.fetch_add(1, Ordering::Relaxed);
                        counts
                            .frame_times
                            .lock()
                            .unwrap()
                            .push(std::time::Instant::now());
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            for element in [&decode, &convert, sink.upcast_ref()] {
                element.sync_state_with_parent().unwrap();
            }
            pad.link(&decode.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();

        let join = serde_json::json!({"type": "join", "viewOnly": view_only}).to_string();
        sink.send(Message::text(join)).await.unwrap();
        let bin = webrtcbin.clone();
        let state = received.clone();
        let answers = to_server.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    incoming = stream.next() => {
                        let Some(Ok(Message::Text(text))) = incoming else { break };
                        match serde_json::from_str::<ViewerReply>(text.as_str()).unwrap() {
                            ViewerReply::Welcome { viewer_id, .. } => {
                                *state.viewer_id.lock().unwrap() = Some(viewer_id);
                            }
                            ViewerReply::Offer { sdp } => {
                                *state.offer.lock().unwrap() = Some(sdp.clone());
                                answer(&bin, &sdp, answers.clone(), state.clone());
                            }
                            ViewerReply::Ice { candidate, sdp_m_line_index } => {
                                state.candidates.lock().unwrap().push(candidate.clone());
                                bin.emit_by_name::<()>("add-ice-candidate", &[&sdp_m_line_index, &candidate]);
                            }
                            ViewerReply::Error { message, .. } => state.errors.lock().unwrap().push(message),
                            ViewerReply::Bye { .. } => break,
                        }
                    }
                    Some(request) = outgoing.recv() => {
                        let bye = request == ViewerRequest::Bye;
                        let text = serde_json::to_string(&request).unwrap();
                        if sink.send(Message::text(text)).await.is_err() || bye { break; }
                    }
                }
            }
            let _ = sink.close().await;
        });
        Receiver {
            received,
            pipeline,
            to_server,
            task,
        }
    }

    /// Waits until at least `frames` frames were decoded, or panics after `timeout`.
    pub async fn wait_frames(&self, frames: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.received.frames.load(Ordering::Relaxed);
            if seen >= frames {
                return seen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "only {seen} of {frames} frames decoded within {timeout:?}; errors: {:?}",
                    self.received.errors.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a text message on the `input` data channel once it is open.
    pub async fn send_input(&self, json: &str) {
        for _ in 0..100 {
            let channel = self.received.channel.lock().unwrap().clone();
            if let Some(channel) = channel
                && channel.ready_state() == gst_webrtc::WebRTCDataChannelState::Open
            {
                let _ = channel.send_string_full(Some(json));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the input data channel never opened");
    }

    /// Sends one message on the `app` data channel, waiting up to 5 s for it to open.
    pub async fn send_app(&self, json: &str) {
        for _ in 0..100 {
            let channel = self.received.app_channel.lock().unwrap().clone();
            if let Some(channel) = channel
                && channel.ready_state() == gst_webrtc::WebRTCDataChannelState::Open
            {
                let _ = channel.send_string_full(Some(json));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the app data channel never opened");
    }

    /// Waits up to 10 s for an `app` message that `matches`, and returns it.
    pub async fn app_message(
        &self,
        what: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..200 {
            let found = self
                .received
                .app_messages
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|m| matches(m))
                .cloned();
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = self.received.app_messages.lock().unwrap().clone();
        panic!("no app message {what}; got {seen:?}");
    }

    /// Says bye and tears the receiver down.
    pub async fn leave(self) {
        let _ = self.to_server.send(ViewerRequest::Bye);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The sound stream: counts its RTP packets, decodes the Opus and keeps the peak level.
fn add_audio_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    caps: Option<&gst::Structure>,
    counts: &Arc<Received>,
) {
    *counts.audio_encoding.lock().unwrap() =
        caps.and_then(|s| s.get::<String>("encoding-name").ok());
    let packets = counts.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        packets.audio_packets.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let depay = gst::ElementFactory::make("rtpopusdepay").build().unwrap();
    let decode = gst::ElementFactory::make("opusdec").build().unwrap();
    let convert = gst::ElementFactory::make("audioconvert").build().unwrap();
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .build(),
        )
        .build();
    let peak = counts.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    let loudest = map
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
                        .max()
                        .unwrap_or(0);
                    peak.audio_peak
                        .fetch_max(u64::from(loudest), Ordering::Relaxed);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let elements = [&depay, &decode, &convert, sink.upcast_ref()];
    pipeline.add_many(elements).unwrap();
    gst::Element::link_many(elements).unwrap();
    for element in elements {
        element.sync_state_with_parent().unwrap();
    }
    pad.link(&depay.static_pad("sink").unwrap()).unwrap();
}

fn answer(
    webrtcbin: &gst::Element,
    sdp: &str,
    to_server: mpsc::UnboundedSender<ViewerRequest>,
    received: Arc<Received>,
) {
    let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("offer SDP parses");
    let offer = WebRTCSessionDescription::new(WebRTCSDPType::Offer, message);
    webrtcbin.emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
    let bin = webrtcbin.downgrade();
    let promise = gst::Promise::with_change_func(move |reply| {
        let Some(bin) = bin.upgrade() else { return };
        let answer = reply
            .ok()
            .flatten()
            .and_then(|r| r.get::<WebRTCSessionDescription>("answer").ok())
            .expect("webrtcbin created an answer");
        bin.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        let sdp = answer.sdp().as_text().unwrap();
        *received.answer.lock().unwrap() = Some(sdp.clone());
        let _ = to_server.send(ViewerRequest::Answer { sdp });
    });
    webrtcbin.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
}

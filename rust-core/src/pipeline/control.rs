//! The control thread: the one owner of viewers and tiers.
//!
//! Everything that creates, negotiates or frees a `webrtcbin`, and every tier decision, runs
//! here, fed by one bounded channel. Signaling tasks and GStreamer's threads only send
//! commands and never wait for GStreamer; the render thread never sees this thread at all.
//! A command that finds the channel full is refused (a join gets an error) or, for soft
//! notices such as estimates, dropped: the next one carries the same information. A viewer
//! whose session ended is freed even if its `Leave` was lost, because every tick sweeps the
//! peers whose signaling session has gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use gst::prelude::*;

use openspace_webrtc_protocol::{AppMessage, ViewerRole};

use super::audio::Audio;
use super::controls::Controls;
use super::peer::{Peer, PeerContext, PeerMessage, PeerOutbox};
use super::policy::{self, Link};
use super::tier::Tier;
use super::{EncoderPlan, PipelineError};
use crate::app::AppDesk;
use crate::config::StreamerConfig;
use crate::input::{Event, EventQueue};
use crate::stats::Stats;

/// Commands waiting for the control thread before new ones are refused.
const CHANNEL_CAPACITY: usize = 1024;
/// How often the thread sweeps, serves held-back key frames and publishes stats.
const TICK: Duration = Duration::from_millis(100);
/// Longest a departed viewer's peer waits for its ICE gathering before it is freed anyway.
const RETIRE_AT_MOST: Duration = Duration::from_secs(3);
/// Shortest time between two tier plans; estimates arrive far more often.
const REPLAN_INTERVAL: Duration = Duration::from_millis(250);

/// What the control thread is asked to do.
pub(crate) enum Command {
    /// Create a viewer's peer; the offer and candidates go to `outbox`.
    Join {
        viewer_id: u32,
        view_only: bool,
        outbox: PeerOutbox,
    },
    /// Apply a viewer's SDP answer.
    Answer { viewer_id: u32, sdp: String },
    /// Add a viewer's ICE candidate.
    Ice {
        viewer_id: u32,
        m_line: u32,
        candidate: String,
    },
    /// Free a viewer.
    Leave { viewer_id: u32 },
    /// A viewer's congestion controller has a new estimate.
    Estimate { viewer_id: u32, kbps: u32 },
    /// A key frame for this viewer's tier (PLI/FIR, data channel), or for every tier.
    KeyFrame { viewer_id: Option<u32> },
    /// An element of this tier posted an error: rebuild the tier.
    TierFailed { tier: usize },
    /// Make tier 0's encoder post an error (tests of the recovery).
    InjectEncoderError,
    /// A viewer's `app` channel opened: send it who has the controls and the host's status.
    AppOpened { viewer_id: u32 },
    /// Send on one viewer's `app` channel, or on everyone's.
    AppSend {
        viewer_id: Option<u32>,
        message: AppMessage,
    },
    /// Owner `by` passes the controls to `to` (its request `id`).
    PassControl { by: u32, to: u32, id: u64 },
    /// Owner `by` takes the controls back (its request `id`).
    TakeControl { by: u32, id: u64 },
    /// Count the elements of every pipeline (leak tests).
    ElementCount(std::sync::mpsc::Sender<usize>),
    /// Free everything and end the thread.
    Stop,
}

/// The sending side, cloned into signaling tasks and GStreamer callbacks.
#[derive(Clone)]
pub(crate) struct ControlSender(SyncSender<Command>);

impl ControlSender {
    /// Sends a command that must not be lost silently: a full channel is an error.
    pub(crate) fn send(&self, command: Command) -> Result<(), PipelineError> {
        self.0.try_send(command).map_err(|err| match err {
            TrySendError::Full(_) => {
                PipelineError::Negotiation("the stream is busy; try again in a moment".into())
            }
            TrySendError::Disconnected(_) => {
                PipelineError::Negotiation("the stream is shutting down".into())
            }
        })
    }

    /// Sends a notice that a later one supersedes; dropped when the channel is full.
    pub(crate) fn notify(&self, command: Command) {
        let _ = self.0.try_send(command);
    }
}

/// A new bounded command channel.
pub(crate) fn channel() -> (ControlSender, Receiver<Command>) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
    (ControlSender(sender), receiver)
}

/// What the control thread works on.
pub(crate) struct Controller {
    pub(crate) pipeline: gst::Pipeline,
    pub(crate) tee: gst::Element,
    pub(crate) plan: EncoderPlan,
    pub(crate) config: StreamerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) events: Arc<EventQueue>,
    /// Owners' requests for the host, and its status.
    pub(crate) app: Arc<AppDesk>,
    /// Who is watching and whose input reaches the host.
    pub(crate) controls: Controls,
    pub(crate) sender: ControlSender,
    pub(crate) tiers: Vec<Tier>,
    pub(crate) peers: HashMap<u32, (Peer, PeerOutbox)>,
    /// Viewers that left while ICE was still gathering, with when they left (see `retire`).
    pub(crate) retiring: Vec<(Peer, Instant)>,
    pub(crate) assignment: HashMap<u32, usize>,
    pub(crate) dirty: bool,
    pub(crate) last_plan: Instant,
    /// The host's real frame rate, for the tiers' bits-per-pixel floor.
    pub(crate) source_rate: SourceRate,
    /// The shared Opus encoder every viewer gets its sound from, if there is sound.
    pub(crate) audio: Option<Arc<Audio>>,
}

/// The frame rate the host really delivers, measured over windows of a second from the
/// frames handed over. A host that renders slower than `fpsCap` (OpenSpace on a software
/// GL renders 5 fps) spends its bits on fewer frames, and judging its tiers by `fpsCap`
/// would shrink a picture that has bits to spare.
#[derive(Debug)]
pub(crate) struct SourceRate {
    since: Instant,
    frames: u64,
    fps: u32,
}

impl SourceRate {
    const WINDOW: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> SourceRate {
        SourceRate {
            since: Instant::now(),
            frames: 0,
            fps: 0,
        }
    }

    /// Takes the total of frames handed over now; returns true when the rate changed.
    fn update(&mut self, frames_total: u64) -> bool {
        let elapsed = self.since.elapsed();
        if elapsed < Self::WINDOW {
            return false;
        }
        let frames = frames_total.saturating_sub(self.frames);
        let fps = (frames as f64 / elapsed.as_secs_f64()).round() as u32;
        self.since = Instant::now();
        self.frames = frames_total;
        let changed = fps != self.fps;
        self.fps = fps;
        changed
    }

    /// The last measured rate; 0 before the first window.
    pub(crate) fn fps(&self) -> u32 {
        self.fps
    }
}

impl Controller {
    /// Runs until `Stop` or until every sender is gone.
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        self.stop();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Join {
                viewer_id,
                view_only,
                outbox,
            } => self.join(viewer_id, view_only, outbox),
            Command::Answer { viewer_id, sdp } => {
                if let Some((peer, outbox)) = self.peers.get_mut(&viewer_id)
                    && let Err(err) = peer.set_answer(&sdp)
                {
                    let _ = outbox.send(PeerMessage::Error(err.to_string()));
                }
            }
            Command::Ice {
                viewer_id,
                m_line,
                candidate,
            } => {
                if let Some((peer, _)) = self.peers.get(&viewer_id) {
                    peer.add_ice(m_line, &candidate);
                }
            }
            Command::Leave { viewer_id } => self.leave(viewer_id),
            Command::Estimate { viewer_id, kbps } => {
                if let Some((peer, _)) = self.peers.get_mut(&viewer_id) {
                    peer.estimate_kbps = kbps;
                    peer.consumer.set_estimate(kbps);
                    self.dirty = true;
                }
            }
            Command::KeyFrame { viewer_id: None } => {
                for tier in &mut self.tiers {
                    tier.request_key_frame();
                }
            }
            Command::KeyFrame {
                viewer_id: Some(viewer_id),
            } => {
                let tier = self.peers.get(&viewer_id).map(|(peer, _)| peer.tier);
                if let Some(tier) = tier.and_then(|t| self.tiers.get_mut(t)) {
                    tier.request_key_frame();
                }
            }
            Command::TierFailed { tier } => self.rebuild_tier(tier),
            Command::InjectEncoderError => {
                if let Some(tier) = self.tiers.first() {
                    tier.inject_encoder_error();
                }
            }
            Command::AppOpened { viewer_id } => {
                let controls = self.controls_message();
                self.send_app(Some(viewer_id), &controls);
                if let Some(status) = self.app.status() {
                    self.send_app(Some(viewer_id), &status);
                }
            }
            Command::AppSend { viewer_id, message } => self.send_app(viewer_id, &message),
            Command::PassControl { by, to, id } => {
                let before = self.controls.holder();
                let result = self.controls.pass(by, to);
                self.answer_controls(by, id, before, result);
            }
            Command::TakeControl { by, id } => {
                let before = self.controls.holder();
                let result = self.controls.take(by);
                self.answer_controls(by, id, before, result);
            }
            Command::ElementCount(reply) => {
                let viewers: usize = self.peers.values().map(|(p, _)| p.element_count()).sum();
                let viewers = viewers
                    + self
                        .retiring
                        .iter()
                        .map(|(p, _)| p.element_count())
                        .sum::<usize>();
                let _ = reply.send(self.pipeline.children().len() + viewers);
            }
            Command::Stop => {}
        }
    }

    /// Sends `message` on one viewer's `app` channel, or on everyone's.
    fn send_app(&self, viewer_id: Option<u32>, message: &AppMessage) {
        let Ok(text) = serde_json::to_string(message) else {
            return;
        };
        match viewer_id {
            Some(id) => {
                if let Some((peer, _)) = self.peers.get(&id) {
                    peer.send_app(&text);
                }
            }
            None => {
                for (peer, _) in self.peers.values() {
                    peer.send_app(&text);
                }
            }
        }
    }

    fn controls_message(&self) -> AppMessage {
        AppMessage::Controls {
            holder: self.controls.holder(),
            viewers: self.controls.viewers(),
        }
    }

    /// Replies to a pass or take, and tells everyone (and the host) when the holder changed;
    /// what the previous holder (`before`) held down is let go first.
    fn answer_controls(
        &mut self,
        by: u32,
        id: u64,
        before: Option<u32>,
        result: Result<bool, super::controls::ControlsError>,
    ) {
        let reply = match &result {
            Ok(_) => AppMessage::Reply {
                id,
                ok: true,
                message: None,
            },
            Err(err) => crate::app::refusal(id, err.to_string()),
        };
        self.send_app(Some(by), &reply);
        if result == Ok(true) {
            if let Some((peer, _)) = before.and_then(|id| self.peers.get(&id)) {
                peer.release_held(&self.events);
            }
            self.controls_changed();
        }
    }

    /// The holder or the viewers changed: every page, the host and the tiers hear of it.
    fn controls_changed(&mut self) {
        let message = self.controls_message();
        self.send_app(None, &message);
        self.events.push(Event::ControlsChanged {
            viewer_id: self.controls.holder().unwrap_or(0),
        });
        tracing::info!(holder = ?self.controls.holder(), "controls changed");
        // Tier 0 follows the holder.
        self.dirty = true;
    }

    /// A viewer joined or left: every page hears the new list, and when the holder changed
    /// with it, the host and the tiers hear that too.
    fn announce_viewers(&mut self, holder_changed: bool) {
        if holder_changed {
            self.controls_changed();
        } else {
            let message = self.controls_message();
            self.send_app(None, &message);
        }
    }

    fn join(&mut self, viewer_id: u32, view_only: bool, outbox: PeerOutbox) {
        let max = self.config.max_viewers;
        let spectators = self.peers.values().filter(|(p, _)| p.view_only).count();
        let spectator_limit = self.config.spectator_limit();
        let refusal = if self.peers.len() >= max as usize {
            Some(PipelineError::Full(max).to_string())
        } else if view_only && spectators >= spectator_limit as usize {
            // The owner keeps its place however many share links are out.
            Some(format!(
                "the stream already has its maximum of {spectator_limit} spectators"
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let _ = outbox.send(PeerMessage::Failed(refusal));
            return;
        }
        let context = PeerContext {
            config: &self.config,
            codec: self.plan.codec,
            clock: self.pipeline.clock(),
            base_time: self.pipeline.base_time(),
            control: self.sender.clone(),
            events: self.events.clone(),
            stats: self.stats.clone(),
            app: self.app.clone(),
            holder: self.controls.cell(),
            audio: self.audio.as_deref(),
        };
        match Peer::new(context, viewer_id, view_only, outbox.clone()) {
            Ok(peer) => {
                self.peers.insert(viewer_id, (peer, outbox));
                self.events.push(Event::ViewerJoined { viewer_id });
                tracing::info!(viewer_id, view_only, "viewer joined");
                let role = ViewerRole::from_view_only(view_only);
                let holder_changed = self.controls.joined(viewer_id, role);
                self.announce_viewers(holder_changed);
                self.replan();
            }
            Err(err) => {
                tracing::warn!(viewer_id, %err, "viewer could not join");
                let _ = outbox.send(PeerMessage::Failed(err.to_string()));
            }
        }
    }

    fn leave(&mut self, viewer_id: u32) {
        let Some((mut peer, _)) = self.peers.remove(&viewer_id) else {
            return;
        };
        // The holder changes before the release, as in a handover (see `handle_input`).
        let holder_changed = self.controls.left(viewer_id);
        peer.release_held(&self.events);
        if let Some(tier) = self.tiers.get_mut(peer.tier) {
            tier.detach(viewer_id);
        }
        peer.detach_audio();
        self.assignment.remove(&viewer_id);
        self.retire(peer);
        self.events.push(Event::ViewerLeft { viewer_id });
        tracing::info!(viewer_id, "viewer left");
        self.announce_viewers(holder_changed);
        self.replan();
    }

    /// Frees a viewer's pipeline. webrtcbin 1.22 never finalizes a peer stopped while its ICE
    /// agent is still gathering (its threads and sockets stay for good: viewers who closed as
    /// soon as the offer arrived leaked that way), so such a peer waits, receiving nothing,
    /// until gathering completes or [`RETIRE_AT_MOST`] has passed.
    fn retire(&mut self, peer: Peer) {
        if peer.ice_gathering_done() {
            peer.remove();
        } else {
            self.retiring.push((peer, Instant::now()));
        }
    }

    fn tick(&mut self) {
        if self.source_rate.update(self.stats.frames_in()) {
            self.dirty = true; // the tiers' floors moved
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|(peer, since)| {
                peer.ice_gathering_done() || since.elapsed() > RETIRE_AT_MOST
            });
        self.retiring = waiting;
        for (peer, _) in done {
            peer.remove();
        }
        let gone: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, (_, outbox))| outbox.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for viewer_id in gone {
            self.leave(viewer_id);
        }
        let timeout = Duration::from_millis(u64::from(self.config.negotiation_timeout_ms));
        let stalled: Vec<(u32, String)> = self
            .peers
            .values()
            .filter_map(|(peer, _)| Some((peer.viewer_id, peer.stalled(timeout)?)))
            .collect();
        for (viewer_id, reason) in stalled {
            tracing::info!(viewer_id, %reason, "dropping a viewer whose negotiation stalled");
            if let Some((_, outbox)) = self.peers.get(&viewer_id) {
                let _ = outbox.send(PeerMessage::Failed(reason));
            }
            self.leave(viewer_id);
        }
        for (viewer_id, reply) in self.app.expire(Instant::now()) {
            self.send_app(Some(viewer_id), &reply);
        }
        if self.dirty && self.last_plan.elapsed() >= REPLAN_INTERVAL {
            self.replan();
        }
        for tier in &mut self.tiers {
            tier.tick();
        }
        self.publish_stats();
    }

    fn new_tier(&self, id: usize) -> Result<Tier, PipelineError> {
        Tier::new(
            id,
            &self.pipeline,
            &self.tee,
            &self.plan,
            &self.config,
            &self.stats,
        )
    }

    /// Replaces a failed tier with a fresh one and moves its viewers over; they resume at
    /// the new encoder's first key frame.
    fn rebuild_tier(&mut self, id: usize) {
        if id >= self.tiers.len() {
            return;
        }
        let mut old = self.tiers.remove(id);
        let consumers = old.detach_all();
        let kbps = old.kbps;
        old.remove(&self.pipeline, &self.tee);
        match self.new_tier(id) {
            Ok(mut tier) => {
                tier.apply(kbps, self.stats.size(), self.source_rate.fps());
                for consumer in consumers {
                    tier.attach(consumer);
                }
                self.tiers.insert(id, tier);
                self.stats.encoder_rebuilt();
                tracing::warn!(tier = id, "tier rebuilt after an error");
            }
            Err(err) => {
                tracing::error!(tier = id, %err, "cannot rebuild the tier");
                self.stats
                    .set_last_error(format!("tier {id} could not be rebuilt: {err}"));
                // Every viewer is placed afresh by the next plan, which starts the missing
                // tiers again.
                drop(consumers);
                for tier in &mut self.tiers {
                    tier.detach_all();
                }
                self.assignment.clear();
                self.dirty = true;
            }
        }
    }

    /// Applies the tier policy to the current estimates.
    fn replan(&mut self) {
        self.dirty = false;
        self.last_plan = Instant::now();
        let links: Vec<Link> = self
            .peers
            .values()
            .map(|(peer, _)| Link {
                viewer_id: peer.viewer_id,
                controls: self.controls.holder() == Some(peer.viewer_id),
                estimate_kbps: peer.estimate_kbps,
            })
            .collect();
        let plan = policy::plan(
            &links,
            self.config.max_encoders as usize,
            self.config.min_bitrate_kbps,
            self.config.bitrate_kbps,
            self.config.fec_percentage,
            &self.assignment,
        );
        while self.tiers.len() < plan.tier_kbps.len() {
            let id = self.tiers.len();
            match self.new_tier(id) {
                Ok(tier) => self.tiers.push(tier),
                Err(err) => {
                    tracing::warn!(tier = id, %err, "cannot start another tier");
                    break;
                }
            }
        }
        let last = self.tiers.len().saturating_sub(1);
        for (peer, _) in self.peers.values_mut() {
            let tier = plan
                .tier_of
                .get(&peer.viewer_id)
                .copied()
                .unwrap_or(0)
                .min(last);
            let attached = self.assignment.contains_key(&peer.viewer_id);
            if !attached || peer.tier != tier {
                if attached && let Some(old) = self.tiers.get_mut(peer.tier) {
                    old.detach(peer.viewer_id);
                }
                if let Some(new) = self.tiers.get_mut(tier) {
                    new.attach(peer.consumer.clone());
                }
                if attached {
                    tracing::info!(
                        viewer_id = peer.viewer_id,
                        from = peer.tier,
                        to = tier,
                        "viewer changed tier"
                    );
                }
                peer.tier = tier;
            }
            self.assignment.insert(peer.viewer_id, tier);
        }
        let source = self.stats.size();
        let fps = self.source_rate.fps();
        for (tier, &kbps) in self.tiers.iter_mut().zip(&plan.tier_kbps) {
            tier.apply(kbps, source, fps);
        }
        // Tiers nobody needs any more (always the highest ones); tier 0 always runs.
        while self.tiers.len() > plan.tier_kbps.len().max(1) {
            if let Some(tier) = self.tiers.pop() {
                tier.remove(&self.pipeline, &self.tee);
            }
        }
        self.stats.set_viewers(self.peers.len());
        self.publish_stats();
    }

    fn publish_stats(&self) {
        self.stats.set_viewers_leaving(self.retiring.len());
        let source = self.stats.size();
        let tiers: Vec<serde_json::Value> =
            self.tiers.iter().map(|tier| tier.to_json(source)).collect();
        let mut peers: Vec<serde_json::Value> = self
            .peers
            .values()
            .map(|(peer, _)| {
                serde_json::json!({
                    "viewerId": peer.viewer_id,
                    "role": ViewerRole::from_view_only(peer.view_only).as_str(),
                    "controls": self.controls.holder() == Some(peer.viewer_id),
                    "tier": peer.tier,
                    "estimateKbps": peer.estimate_kbps,
                    "framesSent": peer.consumer.frames_sent.load(std::sync::atomic::Ordering::Relaxed),
                    "framesDropped": peer.consumer.frames_dropped.load(std::sync::atomic::Ordering::Relaxed),
                    "audioPackets": peer.audio_packets(),
                })
            })
            .collect();
        peers.sort_by_key(|p| p["viewerId"].as_u64());
        self.stats.set_tiers(tiers.into(), peers.into());
    }

    fn stop(&mut self) {
        for (peer, _) in std::mem::take(&mut self.retiring) {
            peer.remove();
        }
        let ids: Vec<u32> = self.peers.keys().copied().collect();
        for viewer_id in ids {
            if let Some((peer, _)) = self.peers.remove(&viewer_id) {
                peer.remove();
            }
        }
        while self.tiers.len() > 1 {
            if let Some(tier) = self.tiers.pop() {
                tier.remove(&self.pipeline, &self.tee);
            }
        }
        self.stats.set_viewers(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_rate_is_measured_over_a_second_of_frames() {
        let mut rate = SourceRate::new();
        assert_eq!(rate.fps(), 0, "nothing measured yet");
        assert!(!rate.update(3), "a window is a second");
        // A second later, 6 frames: 6 fps.
        rate.since -= SourceRate::WINDOW;
        assert!(rate.update(6));
        assert_eq!(rate.fps(), 6);
        // The same rate again is no change; a slower one is.
        rate.since -= SourceRate::WINDOW;
        assert!(!rate.update(12));
        rate.since -= SourceRate::WINDOW;
        assert!(rate.update(14));
        assert_eq!(rate.fps(), 2);
    }
}

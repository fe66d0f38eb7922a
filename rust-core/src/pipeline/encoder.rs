//! Encoder probing and low-latency settings.
//!
//! `auto` takes the best encoder this machine has: NVENC (`nvh264enc`, which takes GL memory
//! straight from the GPU), then x264, OpenH264 and VP8. The nvcodec plugin registers NVENC
//! only where an NVIDIA driver is present, so a factory lookup is an honest probe. The choice
//! and the reason for it are logged and reported in stats.

use gst::prelude::*;

use crate::config::{CaptureMode, EncoderChoice, StreamerConfig};

use super::PipelineError;

/// The codec on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264, constrained baseline (the profile every browser decodes).
    H264,
    /// VP8.
    Vp8,
}

impl Codec {
    /// Name used in SDP and stats.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::Vp8 => "VP8",
        }
    }

    /// Caps of the RTP stream as each viewer's offer names it (the transceiver's codec
    /// preferences), so the offer is complete before the first frame reaches the payloader.
    /// H.264 names constrained baseline with `level-asymmetry-allowed`, which lets the stream
    /// use the higher level a larger size needs. Every offer asks for transport-wide CC
    /// feedback on the TWCC extension (congestion control), NACK (retransmission), PLI and
    /// FIR (key frames).
    pub fn rtp_caps(self) -> gst::Caps {
        let builder = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("clock-rate", 90_000i32)
            .field("payload", 96i32)
            .field("extmap-1", super::TWCC_URI)
            .field("rtcp-fb-transport-cc", true)
            .field("rtcp-fb-nack", true)
            .field("rtcp-fb-nack-pli", true)
            .field("rtcp-fb-ccm-fir", true);
        match self {
            Codec::H264 => builder
                .field("encoding-name", "H264")
                .field("packetization-mode", "1")
                .field("level-asymmetry-allowed", "1")
                .build(),
            Codec::Vp8 => builder.field("encoding-name", "VP8").build(),
        }
    }
}

/// The encoder to use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderPlan {
    /// GStreamer factory name.
    pub factory: &'static str,
    /// Codec it produces.
    pub codec: Codec,
    /// Whether it takes GL memory directly (no download to the CPU).
    pub takes_gl_memory: bool,
    /// Why this encoder was chosen, for logs and stats.
    pub reason: String,
}

const CANDIDATES: &[(EncoderChoice, &str, Codec)] = &[
    (EncoderChoice::Nvh264, "nvh264enc", Codec::H264),
    (EncoderChoice::X264, "x264enc", Codec::H264),
    (EncoderChoice::Openh264, "openh264enc", Codec::H264),
    (EncoderChoice::Vp8, "vp8enc", Codec::Vp8),
];

fn available(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// Picks the encoder for `choice`, using `is_available` to probe factories.
pub fn plan_with(
    choice: EncoderChoice,
    capture: CaptureMode,
    is_available: impl Fn(&str) -> bool,
) -> Result<EncoderPlan, PipelineError> {
    let make = |factory: &'static str, codec: Codec, reason: String| EncoderPlan {
        factory,
        codec,
        takes_gl_memory: factory == "nvh264enc" && capture == CaptureMode::Gl,
        reason,
    };
    if choice != EncoderChoice::Auto {
        let &(_, factory, codec) = CANDIDATES
            .iter()
            .find(|(c, _, _)| *c == choice)
            .ok_or_else(|| PipelineError::NoEncoder("unknown encoder choice".into()))?;
        if !is_available(factory) {
            let hint = if factory == "nvh264enc" {
                " (NVENC needs an NVIDIA GPU and driver; the nvcodec plugin registers it only then)"
            } else {
                " (install the GStreamer plugin package that provides it)"
            };
            return Err(PipelineError::NoEncoder(format!(
                "encoder {factory} was requested but is not available{hint}"
            )));
        }
        return Ok(make(
            factory,
            codec,
            format!("{factory} requested by configuration"),
        ));
    }
    let mut missing = Vec::new();
    for &(_, factory, codec) in CANDIDATES {
        if is_available(factory) {
            let reason = if missing.is_empty() {
                format!("auto: {factory} is the best encoder present")
            } else {
                format!(
                    "auto: {factory} chosen; not present: {}",
                    missing.join(", ")
                )
            };
            return Ok(make(factory, codec, reason));
        }
        missing.push(factory);
    }
    Err(PipelineError::NoEncoder(format!(
        "no usable encoder: none of {} is installed",
        missing.join(", ")
    )))
}

/// Picks the encoder for `choice` from the factories registered in this process.
pub fn plan(choice: EncoderChoice, capture: CaptureMode) -> Result<EncoderPlan, PipelineError> {
    plan_with(choice, capture, available)
}

/// Sets a property from its string form if the element has it. Properties differ between
/// plugin versions; a missing one is logged, never a panic.
fn set(element: &gst::Element, name: &str, value: &str) {
    if element.find_property(name).is_some() {
        element.set_property_from_str(name, value);
    } else {
        tracing::debug!(element = %element.name(), property = name, "property not present");
    }
}

/// Creates the encoder with zero-latency settings: no B-frames, no look-ahead, CBR at the
/// start bitrate (congestion control moves it from there), key frames every
/// `keyFrameInterval` frames and on demand.
pub fn make_encoder(
    plan: &EncoderPlan,
    config: &StreamerConfig,
    name: &str,
) -> Result<gst::Element, PipelineError> {
    let encoder = gst::ElementFactory::make(plan.factory)
        .name(name)
        .build()
        .map_err(|_| PipelineError::MissingElement(plan.factory))?;
    let kbps = config.start_bitrate_kbps.to_string();
    let gop = config.key_frame_interval.to_string();
    match plan.factory {
        "x264enc" => {
            set(&encoder, "tune", "zerolatency");
            set(&encoder, "speed-preset", "ultrafast");
            set(&encoder, "bitrate", &kbps);
            set(&encoder, "vbv-buf-capacity", "120");
            set(
                &encoder,
                "key-int-max",
                if config.key_frame_interval == 0 {
                    "0"
                } else {
                    &gop
                },
            );
            set(&encoder, "bframes", "0");
            set(&encoder, "b-adapt", "false");
            set(&encoder, "rc-lookahead", "0");
            set(&encoder, "sliced-threads", "true");
            set(&encoder, "threads", "2");
            set(&encoder, "aud", "false");
        }
        "openh264enc" => {
            set(
                &encoder,
                "bitrate",
                &(u64::from(config.start_bitrate_kbps) * 1000).to_string(),
            );
            set(&encoder, "rate-control", "bitrate");
            set(&encoder, "complexity", "low");
            set(&encoder, "gop-size", &gop);
            set(&encoder, "multi-thread", "2");
        }
        "vp8enc" => {
            set(&encoder, "deadline", "1");
            set(&encoder, "cpu-used", "8");
            set(
                &encoder,
                "target-bitrate",
                &(u64::from(config.start_bitrate_kbps) * 1000).to_string(),
            );
            set(&encoder, "end-usage", "cbr");
            set(&encoder, "lag-in-frames", "0");
            set(&encoder, "keyframe-max-dist", &gop);
            set(&encoder, "error-resilient", "default");
            set(&encoder, "threads", "2");
            set(&encoder, "buffer-size", "300");
            set(&encoder, "buffer-initial-size", "100");
            set(&encoder, "buffer-optimal-size", "200");
        }
        "nvh264enc" => {
            set(&encoder, "preset", "low-latency-hq");
            set(&encoder, "rc-mode", "cbr");
            set(&encoder, "bitrate", &kbps);
            set(&encoder, "gop-size", &gop);
            set(&encoder, "bframes", "0");
            set(&encoder, "zerolatency", "true");
            set(&encoder, "rc-lookahead", "0");
        }
        _ => {}
    }
    Ok(encoder)
}

/// Changes a running encoder's bitrate. Each of these encoders takes the change while
/// playing (x264 reconfigures in place, vpx and NVENC at the next frame).
pub fn set_bitrate(encoder: &gst::Element, factory: &str, kbps: u32) {
    match factory {
        "x264enc" | "nvh264enc" => encoder.set_property("bitrate", kbps),
        "openh264enc" => encoder.set_property("bitrate", kbps.saturating_mul(1000)),
        "vp8enc" => encoder.set_property("target-bitrate", kbps.saturating_mul(1000) as i32),
        _ => tracing::debug!(factory, "bitrate changes not supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_nvenc_then_x264_and_says_why() {
        let all = |_: &str| true;
        let plan = plan_with(EncoderChoice::Auto, CaptureMode::Gl, all).unwrap();
        assert_eq!(plan.factory, "nvh264enc");
        assert!(plan.takes_gl_memory);
        let no_nvenc = |f: &str| f != "nvh264enc";
        let plan = plan_with(EncoderChoice::Auto, CaptureMode::Gl, no_nvenc).unwrap();
        assert_eq!(plan.factory, "x264enc");
        assert!(!plan.takes_gl_memory);
        assert!(
            plan.reason.contains("not present: nvh264enc"),
            "{}",
            plan.reason
        );
    }

    #[test]
    fn explicit_choice_that_is_missing_is_an_error() {
        let no_nvenc = |f: &str| f != "nvh264enc";
        let err = plan_with(EncoderChoice::Nvh264, CaptureMode::Gl, no_nvenc).unwrap_err();
        assert!(err.to_string().contains("NVIDIA"), "{err}");
        let only_vp8 = |f: &str| f == "vp8enc";
        let plan = plan_with(EncoderChoice::Auto, CaptureMode::Readback, only_vp8).unwrap();
        assert_eq!(plan.codec, Codec::Vp8);
        assert!(plan_with(EncoderChoice::Auto, CaptureMode::Readback, |_| false).is_err());
    }
}

//! The streamer's configuration: JSON from the host, then environment overrides.
//!
//! The host passes JSON (OpenSpace builds it from `ModuleConfigurations.WebRtc`); every field
//! has a default, so `{}` is a valid configuration. Environment variables named in
//! [`ENV_OVERRIDES`] win over the JSON: that is how the orchestrator hands instance N its port
//! and secret without touching the host's own configuration files.

use std::net::IpAddr;

use serde::Deserialize;

/// Which encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    /// The best one present: NVENC (`nvh264enc`), then `x264enc`, `openh264enc`, `vp8enc`.
    Auto,
    /// NVIDIA NVENC H.264.
    Nvh264,
    /// x264, zero-latency tune.
    X264,
    /// Cisco's OpenH264.
    Openh264,
    /// libvpx VP8, realtime deadline.
    Vp8,
}

/// How frames leave the host's GL context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// GPU copy into a GStreamer GL texture whose context shares with the host's.
    Gl,
    /// Asynchronous PBO readback into system memory (hosts whose context cannot be shared).
    Readback,
}

/// Where the stream's sound comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// No sound: offers carry no audio section, as before audio existed.
    None,
    /// A PulseAudio source (`audioDevice`, e.g. a null sink's `.monitor`), on the server that
    /// `PULSE_SERVER` names (libpulse's own lookup otherwise).
    Pulse,
    /// PCM the host hands in (`osw_streamer_submit_audio`).
    Host,
}

impl AudioMode {
    /// Name in configuration and stats.
    pub fn name(self) -> &'static str {
        match self {
            AudioMode::None => "none",
            AudioMode::Pulse => "pulse",
            AudioMode::Host => "host",
        }
    }
}

/// A TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnServer {
    /// `turn://user:password@host:port` as webrtcbin expects it.
    pub url: String,
}

/// Everything a streamer needs. Field names in JSON are camelCase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamerConfig {
    /// Address the signaling endpoint binds to.
    pub listen_address: IpAddr,
    /// Port of the signaling endpoint (0 picks a free one; see stats `signalingPort`).
    pub listen_port: u16,
    /// Encoder choice.
    pub encoder: EncoderChoice,
    /// Highest bitrate an encoder is given, kbit/s. Congestion control moves each encoder
    /// between `minBitrateKbps` and this.
    pub bitrate_kbps: u32,
    /// Lowest bitrate congestion control may ask of an encoder, kbit/s.
    pub min_bitrate_kbps: u32,
    /// Bitrate a new viewer's estimate starts from, kbit/s, before feedback arrives.
    pub start_bitrate_kbps: u32,
    /// Encoders running at most (quality tiers); viewers whose links cannot carry the
    /// controlling viewer's tier share a lower one.
    pub max_encoders: u32,
    /// Share of ULPFEC/RED redundancy for each viewer, percent (0 turns FEC off).
    pub fec_percentage: u32,
    /// Shortest time between two key frames of one tier requested by viewers (PLI/FIR, a
    /// viewer catching up), milliseconds.
    pub key_frame_min_interval_ms: u32,
    /// Frames per second sent at most; frames submitted faster are skipped. Also the rate
    /// the encoder budgets its bitrate for, so set it to the rate the host renders at.
    pub fps_cap: u32,
    /// Viewers served at once; more are refused with an error.
    pub max_viewers: u32,
    /// Widest stream a viewer's or the orchestrator's resize gets (larger is fitted in).
    pub max_width: u32,
    /// Tallest stream a resize gets.
    pub max_height: u32,
    /// Spectators (view-only viewers) served at once; `None` is `maxViewers − 1`, so the
    /// owner always has a place.
    pub max_spectators: Option<u32>,
    /// A viewer that has not answered the offer this long after joining, or is not
    /// connected twice as long after it, is dropped, milliseconds.
    pub negotiation_timeout_ms: u32,
    /// STUN server (`stun://host:port`), empty for none.
    pub stun_server: String,
    /// TURN servers.
    pub turn_servers: Vec<String>,
    /// Capture path.
    pub capture: CaptureMode,
    /// Secret a control client must prove; empty disables control.
    pub control_secret: String,
    /// If set, ICE gathers candidates on these local addresses only (tests pin 127.0.0.1).
    pub ice_addresses: Vec<IpAddr>,
    /// Lowest UDP port ICE gathers on (0 with `icePortMax` 0: any), so a rendering server's
    /// firewall can open one range for media.
    pub ice_port_min: u32,
    /// Highest UDP port ICE gathers on.
    pub ice_port_max: u32,
    /// Key frame interval in frames (0 = only on demand).
    pub key_frame_interval: u32,
    /// Where sound comes from (`none`: no audio section in the offer).
    pub audio: AudioMode,
    /// With `audio: pulse`, the PulseAudio source to capture (empty: the server's default).
    pub audio_device: String,
    /// Bitrate of the one Opus encoder every viewer shares, kbit/s.
    pub audio_bitrate_kbps: u32,
}

impl Default for StreamerConfig {
    fn default() -> Self {
        StreamerConfig {
            listen_address: IpAddr::from([127, 0, 0, 1]),
            listen_port: 4700,
            encoder: EncoderChoice::Auto,
            bitrate_kbps: 8000,
            min_bitrate_kbps: 150,
            start_bitrate_kbps: 2000,
            max_encoders: 2,
            fec_percentage: 0,
            key_frame_min_interval_ms: 500,
            fps_cap: 60,
            max_viewers: 8,
            max_spectators: None,
            max_width: openspace_webrtc_protocol::DEFAULT_MAX_STREAM_SIZE.max_width,
            max_height: openspace_webrtc_protocol::DEFAULT_MAX_STREAM_SIZE.max_height,
            negotiation_timeout_ms: 5000,
            stun_server: String::new(),
            turn_servers: Vec::new(),
            capture: CaptureMode::Readback,
            control_secret: String::new(),
            ice_addresses: Vec::new(),
            ice_port_min: 0,
            ice_port_max: 0,
            key_frame_interval: 120,
            audio: AudioMode::None,
            audio_device: String::new(),
            audio_bitrate_kbps: 64,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON did not parse or had a field of the wrong type.
    #[error("configuration JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An environment override did not parse.
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Environment variables that override the JSON, with the JSON field each one replaces.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("OSW_LISTEN_ADDRESS", "listenAddress"),
    ("OSW_LISTEN_PORT", "listenPort"),
    ("OSW_ENCODER", "encoder"),
    ("OSW_BITRATE_KBPS", "bitrateKbps"),
    ("OSW_MIN_BITRATE_KBPS", "minBitrateKbps"),
    ("OSW_START_BITRATE_KBPS", "startBitrateKbps"),
    ("OSW_MAX_ENCODERS", "maxEncoders"),
    ("OSW_FEC_PERCENTAGE", "fecPercentage"),
    ("OSW_KEY_FRAME_MIN_INTERVAL_MS", "keyFrameMinIntervalMs"),
    ("OSW_FPS_CAP", "fpsCap"),
    ("OSW_MAX_VIEWERS", "maxViewers"),
    ("OSW_MAX_SPECTATORS", "maxSpectators"),
    ("OSW_MAX_WIDTH", "maxWidth"),
    ("OSW_MAX_HEIGHT", "maxHeight"),
    ("OSW_NEGOTIATION_TIMEOUT_MS", "negotiationTimeoutMs"),
    ("OSW_STUN_SERVER", "stunServer"),
    ("OSW_TURN_SERVERS", "turnServers"),
    ("OSW_CAPTURE", "capture"),
    ("OSW_CONTROL_SECRET", "controlSecret"),
    ("OSW_ICE_ADDRESSES", "iceAddresses"),
    ("OSW_ICE_PORT_MIN", "icePortMin"),
    ("OSW_ICE_PORT_MAX", "icePortMax"),
    ("OSW_KEY_FRAME_INTERVAL", "keyFrameInterval"),
    ("OSW_AUDIO", "audio"),
    ("OSW_AUDIO_DEVICE", "audioDevice"),
    ("OSW_AUDIO_BITRATE_KBPS", "audioBitrateKbps"),
];

impl StreamerConfig {
    /// The largest stream a resize gets.
    pub fn stream_limit(&self) -> openspace_webrtc_protocol::StreamLimit {
        openspace_webrtc_protocol::StreamLimit {
            max_width: self.max_width,
            max_height: self.max_height,
        }
    }

    /// Spectators served at once.
    pub fn spectator_limit(&self) -> u32 {
        self.max_spectators
            .unwrap_or(self.max_viewers.saturating_sub(1))
    }

    /// Parses JSON, applies overrides from `env` (a lookup, so tests need not touch the
    /// process environment) and validates the result.
    pub fn from_json_with_env(
        json: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut value: serde_json::Value = if json.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(json)?
        };
        let object = value
            .as_object_mut()
            .ok_or_else(|| ConfigError::Invalid("configuration must be a JSON object".into()))?;
        for &(name, field) in ENV_OVERRIDES {
            let Some(raw) = env(name) else { continue };
            object.insert(field.to_string(), env_value(name, field, &raw)?);
        }
        let config: StreamerConfig = serde_json::from_value(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses JSON with the process environment's overrides.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        Self::from_json_with_env(json, |name| std::env::var(name).ok())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid(what.to_string()))
            }
        };
        check(
            (100..=200_000).contains(&self.bitrate_kbps),
            "bitrateKbps must be 100..=200000",
        )?;
        check(
            (50..=self.bitrate_kbps).contains(&self.min_bitrate_kbps),
            "minBitrateKbps must be 50..=bitrateKbps",
        )?;
        check(
            (self.min_bitrate_kbps..=self.bitrate_kbps).contains(&self.start_bitrate_kbps),
            "startBitrateKbps must lie between minBitrateKbps and bitrateKbps",
        )?;
        check(
            (1..=8).contains(&self.max_encoders),
            "maxEncoders must be 1..=8",
        )?;
        check(self.fec_percentage <= 100, "fecPercentage must be 0..=100")?;
        check(
            (50..=10_000).contains(&self.key_frame_min_interval_ms),
            "keyFrameMinIntervalMs must be 50..=10000",
        )?;
        check((1..=240).contains(&self.fps_cap), "fpsCap must be 1..=240")?;
        check(
            (1..=64).contains(&self.max_viewers),
            "maxViewers must be 1..=64",
        )?;
        check(
            self.max_spectators.is_none_or(|s| s < self.max_viewers),
            "maxSpectators must be less than maxViewers (the owner keeps a place)",
        )?;
        let sides = openspace_webrtc_protocol::MIN_STREAM_SIDE
            ..=openspace_webrtc_protocol::MAX_REQUEST_SIDE;
        check(
            sides.contains(&self.max_width) && sides.contains(&self.max_height),
            "maxWidth and maxHeight must be 16..=7680",
        )?;
        check(
            (500..=120_000).contains(&self.negotiation_timeout_ms),
            "negotiationTimeoutMs must be 500..=120000",
        )?;
        check(
            self.stun_server.is_empty() || self.stun_server.starts_with("stun://"),
            "stunServer must be empty or start with stun://",
        )?;
        check(
            (self.ice_port_min == 0 && self.ice_port_max == 0)
                || (1024..=self.ice_port_max).contains(&self.ice_port_min)
                    && self.ice_port_max <= 65535,
            "icePortMin and icePortMax must both be 0 (any port) or 1024 <= icePortMin <= icePortMax <= 65535",
        )?;
        // Opus's own range.
        check(
            (6..=510).contains(&self.audio_bitrate_kbps),
            "audioBitrateKbps must be 6..=510",
        )?;
        check(
            self.audio_device.len() <= 256 && !self.audio_device.contains('\0'),
            "audioDevice must be a PulseAudio source name of at most 256 bytes",
        )?;
        for turn in &self.turn_servers {
            check(
                turn.starts_with("turn://") || turn.starts_with("turns://"),
                "each of turnServers must start with turn:// or turns://",
            )?;
        }
        Ok(())
    }
}

/// Turns an environment variable's text into the JSON value of its field.
fn env_value(name: &'static str, field: &str, raw: &str) -> Result<serde_json::Value, ConfigError> {
    let bad = |reason: &str| ConfigError::Env {
        name,
        value: raw.to_string(),
        reason: reason.to_string(),
    };
    Ok(match field {
        "listenPort"
        | "bitrateKbps"
        | "minBitrateKbps"
        | "startBitrateKbps"
        | "maxEncoders"
        | "fecPercentage"
        | "keyFrameMinIntervalMs"
        | "fpsCap"
        | "maxViewers"
        | "maxSpectators"
        | "negotiationTimeoutMs"
        | "maxWidth"
        | "maxHeight"
        | "icePortMin"
        | "icePortMax"
        | "keyFrameInterval"
        | "audioBitrateKbps" => {
            let n: u64 = raw
                .trim()
                .parse()
                .map_err(|_| bad("expected a whole number"))?;
            serde_json::Value::from(n)
        }
        "turnServers" | "iceAddresses" => serde_json::Value::from(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        ),
        _ => serde_json::Value::from(raw.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_object_gives_defaults() {
        assert_eq!(
            StreamerConfig::from_json_with_env("{}", no_env).unwrap(),
            StreamerConfig::default()
        );
    }

    #[test]
    fn ice_port_ranges_are_both_set_or_both_any() {
        let parse = |json: &str| StreamerConfig::from_json_with_env(json, no_env);
        let config = parse(r#"{"icePortMin":50000,"icePortMax":50999}"#).unwrap();
        assert_eq!((config.ice_port_min, config.ice_port_max), (50000, 50999));
        for bad in [
            r#"{"icePortMin":50000}"#,
            r#"{"icePortMin":51000,"icePortMax":50999}"#,
            r#"{"icePortMin":80,"icePortMax":90}"#,
            r#"{"icePortMin":60000,"icePortMax":70000}"#,
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("icePortMin"), "{bad}: {err}");
        }
    }

    #[test]
    fn env_overrides_json() {
        let env = |name: &str| match name {
            "OSW_LISTEN_PORT" => Some("4703".to_string()),
            "OSW_CONTROL_SECRET" => Some("abc".to_string()),
            "OSW_ICE_ADDRESSES" => Some("127.0.0.1".to_string()),
            _ => None,
        };
        let config =
            StreamerConfig::from_json_with_env(r#"{"listenPort": 5000, "encoder": "vp8"}"#, env)
                .unwrap();
        assert_eq!(config.listen_port, 4703);
        assert_eq!(config.control_secret, "abc");
        assert_eq!(config.encoder, EncoderChoice::Vp8);
        assert_eq!(config.ice_addresses, vec![IpAddr::from([127, 0, 0, 1])]);
    }

    #[test]
    fn audio_is_off_unless_asked_for_and_the_env_can_turn_it_on() {
        let config = StreamerConfig::from_json_with_env("{}", no_env).unwrap();
        assert_eq!(config.audio, AudioMode::None);
        let config = StreamerConfig::from_json_with_env(r#"{"audio":"host"}"#, no_env).unwrap();
        assert_eq!(config.audio, AudioMode::Host);
        let env = |name: &str| match name {
            "OSW_AUDIO" => Some("pulse".to_string()),
            "OSW_AUDIO_DEVICE" => Some("osw.monitor".to_string()),
            "OSW_AUDIO_BITRATE_KBPS" => Some("96".to_string()),
            _ => None,
        };
        let config = StreamerConfig::from_json_with_env("{}", env).unwrap();
        assert_eq!(config.audio, AudioMode::Pulse);
        assert_eq!(config.audio_device, "osw.monitor");
        assert_eq!(config.audio_bitrate_kbps, 96);
        for bad in [r#"{"audio":"alsa"}"#, r#"{"audioBitrateKbps":1000}"#] {
            assert!(
                StreamerConfig::from_json_with_env(bad, no_env).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_input_is_explained() {
        let err = StreamerConfig::from_json_with_env(r#"{"encoder": "h265"}"#, no_env).unwrap_err();
        assert!(err.to_string().contains("h265"), "{err}");
        let err = StreamerConfig::from_json_with_env(r#"{"fpsCap": 0}"#, no_env).unwrap_err();
        assert!(err.to_string().contains("fpsCap"), "{err}");
        let err = StreamerConfig::from_json_with_env(r#"{"bogus": 1}"#, no_env).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let env = |name: &str| (name == "OSW_LISTEN_PORT").then(|| "http".to_string());
        let err = StreamerConfig::from_json_with_env("{}", env).unwrap_err();
        assert!(err.to_string().contains("OSW_LISTEN_PORT"), "{err}");
        assert!(StreamerConfig::from_json_with_env("[1]", no_env).is_err());
    }
}

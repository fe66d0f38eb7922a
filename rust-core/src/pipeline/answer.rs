//! Structural checks of a viewer's SDP answer against the offer it answers, before webrtcbin
//! sees it.
//!
//! webrtcbin trusts answers: one whose m-lines are reordered (the data channel first), whose
//! video section says `recvonly` the wrong way round, or whose setup role is impossible hits
//! "code should not be reached" in GStreamer's SDP code and aborts the whole host process. So
//! an answer must have exactly the offer's sections, in its order, with the same kinds and
//! mids, a direction and a DTLS role that answer the offer's, a fingerprint and ICE
//! credentials, payload types the offer offered, and sane sizes. Anything else is refused with
//! a reason and the viewer's session goes on.

use gst_sdp::{SDPMediaRef, SDPMessage};

/// Longest answer taken, bytes (a browser's answer is 2–6 KiB).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024;
/// Most lines taken in an answer.
const MAX_LINES: usize = 400;
/// Longest single attribute value taken.
const MAX_ATTRIBUTE_BYTES: usize = 2048;

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the answer was refused: {0}")]
pub struct AnswerError(String);

fn refuse<T>(reason: impl Into<String>) -> Result<T, AnswerError> {
    Err(AnswerError(reason.into()))
}

/// Checks `answer` against `offer` (both SDP text); `offer` is trusted (it is ours).
pub fn check_answer(offer: &str, answer: &str) -> Result<(), AnswerError> {
    if answer.len() > MAX_ANSWER_BYTES {
        return refuse(format!(
            "it is {} bytes, more than {MAX_ANSWER_BYTES}",
            answer.len()
        ));
    }
    if answer.lines().count() > MAX_LINES {
        return refuse(format!("it has more than {MAX_LINES} lines"));
    }
    if answer.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if !answer.starts_with("v=0") {
        return refuse("it does not start with v=0");
    }
    let offer = SDPMessage::parse_buffer(offer.as_bytes())
        .map_err(|_| AnswerError("the offer it answers is unreadable".into()))?;
    let answer = SDPMessage::parse_buffer(answer.as_bytes())
        .map_err(|_| AnswerError("it is not valid SDP".into()))?;
    for attribute in answer.attributes() {
        check_attribute_size(attribute.value())?;
    }
    if offer.medias_len() != answer.medias_len() {
        return refuse(format!(
            "it has {} media sections, the offer {}",
            answer.medias_len(),
            offer.medias_len()
        ));
    }
    for (index, (offered, answered)) in offer.medias().zip(answer.medias()).enumerate() {
        check_media(index, &answer, offered, answered)?;
    }
    if let Some(group) = answer.attribute_val("group") {
        let mut words = group.split_whitespace();
        if words.next() != Some("BUNDLE") {
            return refuse(format!("unsupported group {group:?}"));
        }
        let mids: Vec<&str> = answer
            .medias()
            .filter_map(|m| m.attribute_val("mid"))
            .collect();
        if let Some(unknown) = words.find(|w| !mids.contains(w)) {
            return refuse(format!("BUNDLE names an unknown mid {unknown:?}"));
        }
    }
    Ok(())
}

fn check_attribute_size(value: Option<&str>) -> Result<(), AnswerError> {
    match value {
        Some(value) if value.len() > MAX_ATTRIBUTE_BYTES => refuse(format!(
            "an attribute is longer than {MAX_ATTRIBUTE_BYTES} bytes"
        )),
        _ => Ok(()),
    }
}

/// The attribute in the media section, else at session level.
fn attribute<'a>(session: &'a SDPMessage, media: &'a SDPMediaRef, key: &str) -> Option<&'a str> {
    media
        .attribute_val(key)
        .or_else(|| session.attribute_val(key))
}

fn direction(media: &SDPMediaRef) -> Option<&'static str> {
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|&d| media.attributes().any(|a| a.key() == d))
}

fn check_media(
    index: usize,
    session: &SDPMessage,
    offered: &SDPMediaRef,
    answered: &SDPMediaRef,
) -> Result<(), AnswerError> {
    let kind = offered.media().unwrap_or_default();
    let place = format!("media section {index} ({kind})");
    for attribute in answered.attributes() {
        check_attribute_size(attribute.value())?;
    }
    if answered.media() != offered.media() {
        return refuse(format!(
            "{place} is {:?} in the answer: sections must keep the offer's order and kinds",
            answered.media().unwrap_or_default()
        ));
    }
    if answered.proto() != offered.proto() {
        return refuse(format!(
            "{place} has protocol {:?}, the offer {:?}",
            answered.proto().unwrap_or_default(),
            offered.proto().unwrap_or_default()
        ));
    }
    if answered.port() == 0 {
        return refuse(format!("{place} was rejected (port 0)"));
    }
    if answered.attribute_val("mid") != offered.attribute_val("mid") {
        return refuse(format!(
            "{place} has mid {:?}, the offer {:?}",
            answered.attribute_val("mid"),
            offered.attribute_val("mid")
        ));
    }
    // What the offer sends the answer must receive, and the other way round.
    let expected: &[Option<&str>] = match direction(offered) {
        Some("sendonly") => &[Some("recvonly"), Some("inactive")],
        Some("recvonly") => &[Some("sendonly"), Some("inactive")],
        Some("inactive") => &[Some("inactive")],
        // sendrecv, or none (a data channel section): anything but a one-way contradiction.
        _ => &[
            None,
            Some("sendrecv"),
            Some("sendonly"),
            Some("recvonly"),
            Some("inactive"),
        ],
    };
    let answered_direction = direction(answered);
    if !expected.contains(&answered_direction) {
        return refuse(format!(
            "{place} says {} to an offer that says {}",
            answered_direction.unwrap_or("nothing"),
            direction(offered).unwrap_or("nothing")
        ));
    }
    match attribute(session, answered, "setup") {
        Some("active" | "passive") => {}
        Some(other) => {
            return refuse(format!(
                "{place} has setup {other:?}; an answer to actpass must be active or passive"
            ));
        }
        None => return refuse(format!("{place} has no setup role")),
    }
    match attribute(session, answered, "fingerprint") {
        Some(fingerprint) if is_fingerprint(fingerprint) => {}
        Some(_) => return refuse(format!("{place} has a malformed fingerprint")),
        None => return refuse(format!("{place} has no DTLS fingerprint")),
    }
    // Browsers put ICE credentials in every section; webrtcbin reads them there and fails an
    // assertion when one of the pair is missing, so exactly one of each is required here.
    for key in ["ice-ufrag", "ice-pwd"] {
        let values: Vec<Option<&str>> = answered
            .attributes()
            .filter(|a| a.key() == key)
            .map(|a| a.value())
            .collect();
        match values.as_slice() {
            [Some(value)] if !value.is_empty() && value.len() <= 256 && is_ice_chars(value) => {}
            _ => return refuse(format!("{place} needs exactly one usable {key}")),
        }
    }
    // webrtcbin takes SSRCs as 32-bit, non-zero numbers and fails an assertion otherwise.
    for attribute in answered.attributes().filter(|a| a.key() == "ssrc") {
        let ssrc = attribute
            .value()
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        if ssrc.is_none_or(|ssrc| ssrc == 0) {
            return refuse(format!(
                "{place} has an SSRC that is not a 32-bit number above 0: {:?}",
                attribute.value().unwrap_or_default()
            ));
        }
    }
    // Media sections (the video, and the sound when the stream has it) must take one of
    // the payload types offered; a data channel section has none.
    if kind == "video" || kind == "audio" {
        let offered_formats: Vec<&str> = offered.formats().collect();
        let answered_formats: Vec<&str> = answered.formats().collect();
        if answered_formats.is_empty() {
            return refuse(format!("{place} accepts no payload type"));
        }
        if let Some(unknown) = answered_formats
            .iter()
            .find(|f| !offered_formats.contains(f))
        {
            return refuse(format!(
                "{place} names payload type {unknown} the offer did not"
            ));
        }
    }
    Ok(())
}

fn is_fingerprint(value: &str) -> bool {
    let mut parts = value.split_whitespace();
    let (Some(algorithm), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let known = ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"];
    known.contains(&algorithm.to_ascii_lowercase().as_str())
        && hash
            .split(':')
            .all(|byte| byte.len() == 2 && byte.chars().all(|c| c.is_ascii_hexdigit()))
        && hash.split(':').count() >= 20
}

/// ICE credentials are `ice-char`s: letters, digits, `+` and `/` (RFC 8839).
fn is_ice_chars(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as the engine makes it and an answer as Chromium gives it (trimmed of
    /// candidates, which do not matter here).
    pub(crate) const OFFER: &str = include_str!("../../tests/fixtures/offer.sdp");
    pub(crate) const ANSWER: &str = include_str!("../../tests/fixtures/answer.sdp");
    /// The same with sound (`audio` not `none`): video, audio, data channel.
    const OFFER_AUDIO: &str = include_str!("../../tests/fixtures/offer-audio.sdp");
    const ANSWER_AUDIO: &str = include_str!("../../tests/fixtures/answer-audio.sdp");

    fn init() {
        let _ = gst::init();
    }

    fn refused(answer: &str, needle: &str) {
        let err = check_answer(OFFER, answer).expect_err("must be refused");
        assert!(err.to_string().contains(needle), "{err}");
    }

    #[test]
    fn a_real_answer_passes() {
        init();
        check_answer(OFFER, ANSWER).unwrap();
    }

    /// The answer that aborted the host: data channel first, recvonly, setup active, no
    /// candidates.
    #[test]
    fn the_answer_that_killed_the_host_is_refused() {
        init();
        let (head, rest) = ANSWER.split_at(ANSWER.find("m=video").unwrap());
        let (video, application) = rest.split_at(rest.find("m=application").unwrap());
        let swapped = format!("{head}{application}{video}");
        refused(&swapped, "keep the offer's order");
    }

    #[test]
    fn wrong_directions_roles_and_credentials_are_refused() {
        init();
        refused(&ANSWER.replace("a=recvonly", "a=sendonly"), "says sendonly");
        refused(
            &ANSWER.replace("a=setup:active", "a=setup:actpass"),
            "setup",
        );
        refused(
            &ANSWER
                .lines()
                .filter(|l| !l.starts_with("a=fingerprint"))
                .collect::<Vec<_>>()
                .join("\r\n"),
            "fingerprint",
        );
        refused(&ANSWER.replace("a=mid:video0", "a=mid:other"), "mid");
        refused(
            &ANSWER.replace(
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "m=video 9 UDP/TLS/RTP/SAVPF 96 120",
            ),
            "payload type 120",
        );
        refused(&ANSWER.replace("m=video 9", "m=video 0"), "rejected");
        refused(&format!("{ANSWER}a=x:{}\r\n", "y".repeat(5000)), "longer");
        refused(&"a".repeat(MAX_ANSWER_BYTES + 1), "bytes");
        refused(
            &ANSWER.replace("a=mid:video0", "a=mid:video0\r\na=ssrc:4294967296 cname:x"),
            "SSRC",
        );
        refused(
            &ANSWER.replace("a=mid:video0", "a=mid:video0\r\na=ssrc:0 cname:x"),
            "SSRC",
        );
        check_answer(
            OFFER,
            &ANSWER.replace("a=mid:video0", "a=mid:video0\r\na=ssrc:4294967295 cname:x"),
        )
        .unwrap();
        refused("hello", "v=0");
        refused("v=0\r\n", "0 media sections");
    }

    /// With sound the answer has an audio section between the video and the data channel;
    /// it passes, and the hostile variants of it are refused as the video's are.
    #[test]
    fn an_answer_with_the_audio_section_passes_and_its_hostile_variants_do_not() {
        init();
        check_answer(OFFER_AUDIO, ANSWER_AUDIO).unwrap();
        let refused = |answer: &str, needle: &str| {
            let err = check_answer(OFFER_AUDIO, answer).expect_err("must be refused");
            assert!(err.to_string().contains(needle), "{err}");
        };
        // Audio before video, the data channel before audio, audio left out.
        let (head, rest) = ANSWER_AUDIO.split_at(ANSWER_AUDIO.find("m=video").unwrap());
        let (video, rest) = rest.split_at(rest.find("m=audio").unwrap());
        let (audio, application) = rest.split_at(rest.find("m=application").unwrap());
        refused(
            &format!("{head}{audio}{video}{application}"),
            "keep the offer's order",
        );
        refused(
            &format!("{head}{video}{application}{audio}"),
            "keep the offer's order",
        );
        refused(
            &format!("{head}{video}{application}"),
            "2 media sections, the offer 3",
        );
        // The audio section says sendonly back, is rejected, names a payload type never
        // offered, or another mid.
        let audio_only = |from: &str, to: &str| {
            let replaced = audio.replace(from, to);
            assert_ne!(replaced, audio, "{from} is in the audio section");
            format!("{head}{video}{replaced}{application}")
        };
        refused(&audio_only("a=recvonly", "a=sendonly"), "says sendonly");
        refused(&audio_only("m=audio 9", "m=audio 0"), "rejected");
        refused(
            &audio_only("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 111 0"),
            "payload type 0",
        );
        refused(&audio_only("a=mid:audio1", "a=mid:video0"), "mid");
        refused(
            &audio_only("a=mid:audio1", "a=mid:audio1\r\na=ssrc:0 cname:x"),
            "SSRC",
        );
        refused(&audio_only("a=setup:active", "a=setup:actpass"), "setup");
        // A video answer does not answer an offer with sound.
        refused(ANSWER, "2 media sections, the offer 3");
    }

    /// Seeded mutations of the real answer: reordered, dropped, duplicated and altered lines.
    /// None may panic; everything accepted must still have the offer's shape.
    #[test]
    fn fuzzed_answers_never_panic_and_keep_the_offers_shape() {
        init();
        let lines: Vec<&str> = ANSWER.lines().collect();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            for _ in 0..1 + next(3) {
                let i = next(mutated.len());
                match next(5) {
                    0 => {
                        let j = next(mutated.len());
                        mutated.swap(i, j);
                    }
                    1 => {
                        mutated.remove(i);
                    }
                    2 => {
                        let line = mutated[i].clone();
                        mutated.insert(i, line);
                    }
                    3 => {
                        let mut bytes = mutated[i].clone().into_bytes();
                        if !bytes.is_empty() {
                            let k = next(bytes.len());
                            bytes[k] = b"a=:0 \x7f/\xff"[next(8)];
                        }
                        mutated[i] = String::from_utf8_lossy(&bytes).into_owned();
                    }
                    _ => mutated[i] = mutated[i].replace("video", "application"),
                }
                if mutated.is_empty() {
                    break;
                }
            }
            let text = mutated.join("\r\n") + "\r\n";
            if check_answer(OFFER, &text).is_ok() {
                accepted += 1;
                let answer = SDPMessage::parse_buffer(text.as_bytes()).unwrap();
                let kinds: Vec<_> = answer
                    .medias()
                    .map(|m| m.media().map(str::to_owned))
                    .collect();
                assert_eq!(
                    kinds,
                    vec![Some("video".into()), Some("application".into())],
                    "{text}"
                );
            }
        }
        // Harmless mutations (a duplicated attribute, a swapped pair of lines within a
        // section) are accepted: the check refuses shapes, not noise.
        assert!(accepted > 0);
    }
}

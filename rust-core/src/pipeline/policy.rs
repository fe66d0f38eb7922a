//! The quality-tier policy: which encoder serves which viewer, at what bitrate, size and
//! frame rate. Pure functions, so every rule is unit-tested without GStreamer.
//!
//! # The policy
//!
//! - Every viewer has a congestion-control estimate (Google Congestion Control over TWCC
//!   feedback, per viewer). What an encoder may use of it is [`usable_kbps`]: 90 % of the
//!   estimate (headroom for retransmissions and RTP/RTCP overhead), less the FEC share.
//! - **Tier 0** is driven by the controlling viewer (the first viewer allowed to send input;
//!   with none, the fastest spectator): its bitrate is that viewer's usable rate, capped by
//!   `bitrateKbps`. Nobody else ever lowers it.
//! - **Spectators** are taken fastest first. One shares the highest tier whose bitrate its link
//!   can carry. One that fits none opens the next tier at its own rate while fewer than
//!   `maxEncoders` tiers exist; otherwise it joins the lowest tier, which then runs at the
//!   slowest rate among its members (never tier 0: with `maxEncoders` 1 a slow spectator keeps
//!   tier 0 and loses whole frames on its own link instead).
//! - **Hysteresis**: a viewer stays in its tier while its link carries 85 % of that tier's
//!   bitrate, so estimates wobbling around a boundary do not make it switch streams.
//! - **Below a floor, less picture instead of a broken one** ([`mitigation`]): each tier keeps
//!   at least [`FLOOR_BITS_PER_PIXEL`] bits per pixel per frame by scaling the picture down
//!   (3/4, 1/2, 1/3 of each side), and when even 1/3 would be starved it halves the frame rate.
//!   Stepping back up needs 15 % more than the floor, again against flapping.

use std::collections::HashMap;

/// Bits per pixel per frame an encoder needs for a picture worth watching (x264 at its
/// zero-latency settings): 1280×720 at 30 fps needs about 1.1 Mbit/s, 640×360 about 0.28.
pub const FLOOR_BITS_PER_PIXEL: f64 = 0.04;
/// Share of the estimate an encoder may use; the rest carries retransmissions and overhead.
const ESTIMATE_SHARE: f64 = 0.9;
/// A viewer stays in its tier while its link carries this share of the tier's bitrate.
const STAY_SHARE: f64 = 0.85;
/// Stepping a tier's picture back up needs this much more than the floor.
const STEP_UP_MARGIN: f64 = 1.15;
/// Picture scales tried in order, as (numerator, denominator) of each side.
const SCALES: &[(u32, u32)] = &[(1, 1), (3, 4), (1, 2), (1, 3)];

/// One viewer's link as congestion control sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// The viewer.
    pub viewer_id: u32,
    /// Whether this viewer's input reaches the host (owner role).
    pub controls: bool,
    /// Its current estimate, kbit/s.
    pub estimate_kbps: u32,
}

/// What the policy decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Bitrate of each tier, kbit/s; index = tier id. Never empty when there are viewers.
    pub tier_kbps: Vec<u32>,
    /// Tier of each viewer.
    pub tier_of: HashMap<u32, usize>,
}

/// The bitrate an encoder may use of an estimate, given the FEC share in percent.
pub fn usable_kbps(estimate_kbps: u32, fec_percentage: u32) -> u32 {
    let share = ESTIMATE_SHARE / (1.0 + f64::from(fec_percentage) / 100.0);
    (f64::from(estimate_kbps) * share) as u32
}

/// Assigns viewers to at most `max_tiers` tiers (see the module docs). `previous` is the last
/// plan's assignment (for hysteresis); rates are clamped to `min_kbps..=max_kbps`.
pub fn plan(
    links: &[Link],
    max_tiers: usize,
    min_kbps: u32,
    max_kbps: u32,
    fec_percentage: u32,
    previous: &HashMap<u32, usize>,
) -> Plan {
    let mut plan = Plan::default();
    if links.is_empty() {
        return plan;
    }
    let max_tiers = max_tiers.max(1);
    let rate =
        |link: &Link| usable_kbps(link.estimate_kbps, fec_percentage).clamp(min_kbps, max_kbps);
    let mut rest: Vec<&Link> = links.iter().collect();
    // Fastest first; ties by id so the plan is deterministic.
    rest.sort_by(|a, b| {
        b.estimate_kbps
            .cmp(&a.estimate_kbps)
            .then(a.viewer_id.cmp(&b.viewer_id))
    });
    let driver_index = rest
        .iter()
        .enumerate()
        .filter(|(_, l)| l.controls)
        .min_by_key(|(_, l)| l.viewer_id)
        .map_or(0, |(i, _)| i);
    let driver = rest.remove(driver_index);
    plan.tier_kbps.push(rate(driver));
    plan.tier_of.insert(driver.viewer_id, 0);

    for link in rest {
        let usable = rate(link);
        let fits = |tier: usize, kbps: u32| {
            let needed = if previous.get(&link.viewer_id) == Some(&tier) {
                f64::from(kbps) * STAY_SHARE
            } else {
                f64::from(kbps)
            };
            f64::from(usable) >= needed
        };
        let tier = match (0..plan.tier_kbps.len()).find(|&t| fits(t, plan.tier_kbps[t])) {
            Some(tier) => tier,
            None if plan.tier_kbps.len() < max_tiers => {
                plan.tier_kbps.push(usable);
                plan.tier_kbps.len() - 1
            }
            None => {
                let last = plan.tier_kbps.len() - 1;
                if last > 0 {
                    plan.tier_kbps[last] = plan.tier_kbps[last].min(usable);
                }
                last
            }
        };
        plan.tier_of.insert(link.viewer_id, tier);
    }
    plan
}

/// How a tier spends a low bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mitigation {
    /// Encoded size; equal to the source size when not downscaled.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// 1 for every frame, 2 for every other one.
    pub fps_divisor: u32,
}

impl Mitigation {
    /// No mitigation for a source of this size.
    pub fn none(width: u32, height: u32) -> Self {
        Mitigation {
            width,
            height,
            fps_divisor: 1,
        }
    }

    /// The stats label: `none`, `downscaled`, `reduced-fps` or `downscaled+reduced-fps`.
    pub fn label(&self, source_width: u32, source_height: u32) -> &'static str {
        let scaled = (self.width, self.height) != (source_width, source_height);
        match (scaled, self.fps_divisor > 1) {
            (false, false) => "none",
            (true, false) => "downscaled",
            (false, true) => "reduced-fps",
            (true, true) => "downscaled+reduced-fps",
        }
    }
}

fn scaled(side: u32, (num, den): (u32, u32)) -> u32 {
    // Even sizes: 4:2:0 encoders take nothing else.
    ((side * num / den) & !1).max(16)
}

/// The largest picture (then the highest frame rate) `kbps` can feed at the floor, for a
/// source of `width`×`height` at `fps`. `previous` gives hysteresis: a step back up needs
/// [`STEP_UP_MARGIN`] times the floor.
pub fn mitigation(
    kbps: u32,
    width: u32,
    height: u32,
    fps: u32,
    previous: Option<Mitigation>,
) -> Mitigation {
    let bits = f64::from(kbps) * 1000.0;
    let current_pixels = previous
        .filter(|p| p.width <= width && p.height <= height)
        .map(|p| u64::from(p.width) * u64::from(p.height) * 2 / u64::from(p.fps_divisor));
    let affordable = |w: u32, h: u32, divisor: u32| {
        let pixels_per_second = f64::from(w) * f64::from(h) * f64::from(fps) / f64::from(divisor);
        let margin = match current_pixels {
            // Up from where the tier is now costs the margin; staying or going down does not.
            Some(current) if u64::from(w) * u64::from(h) * 2 / u64::from(divisor) > current => {
                STEP_UP_MARGIN
            }
            _ => 1.0,
        };
        bits >= pixels_per_second * FLOOR_BITS_PER_PIXEL * margin
    };
    for divisor in [1, 2] {
        for &scale in SCALES {
            let (w, h) = if scale == (1, 1) {
                (width, height)
            } else {
                (scaled(width, scale), scaled(height, scale))
            };
            if affordable(w, h, divisor) {
                return Mitigation {
                    width: w,
                    height: h,
                    fps_divisor: divisor,
                };
            }
        }
    }
    let &smallest = SCALES.last().unwrap_or(&(1, 1));
    Mitigation {
        width: scaled(width, smallest),
        height: scaled(height, smallest),
        fps_divisor: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(viewer_id: u32, controls: bool, estimate_kbps: u32) -> Link {
        Link {
            viewer_id,
            controls,
            estimate_kbps,
        }
    }

    fn run(links: &[Link], max_tiers: usize, previous: &HashMap<u32, usize>) -> Plan {
        plan(links, max_tiers, 150, 8000, 0, previous)
    }

    #[test]
    fn the_controlling_viewer_drives_tier_zero() {
        let p = run(
            &[link(2, false, 9000), link(1, true, 3000)],
            2,
            &HashMap::new(),
        );
        assert_eq!(p.tier_kbps[0], usable_kbps(3000, 0));
        assert_eq!(p.tier_of[&1], 0);
        // A faster spectator shares the owner's tier.
        assert_eq!(p.tier_of[&2], 0);
        assert_eq!(p.tier_kbps.len(), 1);
    }

    #[test]
    fn a_slow_spectator_gets_its_own_tier_and_never_lowers_tier_zero() {
        let alone = run(&[link(1, true, 6000)], 2, &HashMap::new());
        let with_slow = run(
            &[link(1, true, 6000), link(2, false, 1000)],
            2,
            &HashMap::new(),
        );
        assert_eq!(alone.tier_kbps[0], with_slow.tier_kbps[0]);
        assert_eq!(with_slow.tier_of[&2], 1);
        assert_eq!(with_slow.tier_kbps[1], usable_kbps(1000, 0));
    }

    #[test]
    fn never_more_tiers_than_encoders_and_the_lowest_tier_takes_the_slowest_rate() {
        let links = [
            link(1, true, 8000),
            link(2, false, 3000),
            link(3, false, 1000),
            link(4, false, 500),
        ];
        let p = run(&links, 2, &HashMap::new());
        assert_eq!(p.tier_kbps.len(), 2);
        assert_eq!(p.tier_kbps[0], usable_kbps(8000, 0));
        assert_eq!(p.tier_kbps[1], usable_kbps(500, 0));
        assert!([2, 3, 4].iter().all(|v| p.tier_of[v] == 1));
        // With one encoder the slow ones share tier 0 without lowering it.
        let p = run(&links, 1, &HashMap::new());
        assert_eq!(p.tier_kbps, vec![usable_kbps(8000, 0)]);
        assert!(p.tier_of.values().all(|&t| t == 0));
    }

    #[test]
    fn without_a_controlling_viewer_the_fastest_drives() {
        let p = run(
            &[link(1, false, 1000), link(2, false, 4000)],
            2,
            &HashMap::new(),
        );
        assert_eq!(p.tier_of[&2], 0);
        assert_eq!(p.tier_kbps[0], usable_kbps(4000, 0));
        assert_eq!(p.tier_of[&1], 1);
    }

    #[test]
    fn hysteresis_keeps_a_viewer_whose_link_wobbles() {
        // Tier 0 runs at 4500; this spectator can carry 4000 of it, which is below 4500 but
        // above 85 % of it (3825).
        assert_eq!(usable_kbps(5000, 0), 4500);
        let spectator = link(2, false, 4445);
        assert_eq!(usable_kbps(4445, 0), 4000);
        let links = [link(1, true, 5000), spectator];
        let fresh = run(&links, 2, &HashMap::new());
        assert_eq!(fresh.tier_of[&2], 1);
        let staying = run(&links, 2, &HashMap::from([(2, 0)]));
        assert_eq!(staying.tier_of[&2], 0);
    }

    #[test]
    fn fec_takes_its_share_from_the_encoder() {
        assert_eq!(usable_kbps(1000, 0), 900);
        assert_eq!(usable_kbps(1000, 50), 600);
        assert_eq!(
            plan(&[link(1, true, 100)], 2, 150, 8000, 0, &HashMap::new()).tier_kbps[0],
            150
        );
    }

    #[test]
    fn mitigation_scales_down_then_halves_the_frame_rate() {
        let full = mitigation(5000, 1280, 720, 30, None);
        assert_eq!(full, Mitigation::none(1280, 720));
        assert_eq!(full.label(1280, 720), "none");
        // 1.5 Mbit/s links leave about 1.2 for the encoder: still the full picture.
        assert_eq!(
            mitigation(1200, 1280, 720, 30, None),
            Mitigation::none(1280, 720)
        );
        let m = mitigation(700, 1280, 720, 30, None);
        assert_eq!((m.width, m.height, m.fps_divisor), (960, 540, 1));
        assert_eq!(m.label(1280, 720), "downscaled");
        let m = mitigation(300, 1280, 720, 30, None);
        assert_eq!((m.width, m.height, m.fps_divisor), (640, 360, 1));
        let m = mitigation(80, 1280, 720, 30, None);
        assert_eq!(m.fps_divisor, 2);
        assert_eq!(m.label(1280, 720), "downscaled+reduced-fps");
        // Sizes stay even for 4:2:0 encoders.
        let odd = mitigation(300, 1282, 722, 30, None);
        assert_eq!((odd.width % 2, odd.height % 2), (0, 0));
    }

    #[test]
    fn mitigation_steps_up_only_with_margin() {
        let down = mitigation(700, 1280, 720, 30, None);
        assert_eq!(down.width, 960);
        // Just over the floor for 1280×720 (1106 kbit/s) is not enough to step back up…
        assert_eq!(mitigation(1150, 1280, 720, 30, Some(down)).width, 960);
        // …15 % over it is.
        assert_eq!(mitigation(1300, 1280, 720, 30, Some(down)).width, 1280);
    }
}

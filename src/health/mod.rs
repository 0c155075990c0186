//! Uplink health, sans-IO: one [`Health`] per uplink, fed with link events, address events and
//! probe outcomes together with the time (µs, [`Micros`]); it answers with state transitions
//! ([`Transition`], to an [`UplinkState`]), the smoothed probe RTT, the loss over the last
//! [`WINDOW`] probes and its next deadline ([`Health::poll_timeout`]). It does no I/O, reads no
//! clock and allocates nothing after [`Health::new`].
//!
//! Rules (the thresholds are the constants below):
//!
//! - **Down at once** when the link is down (no carrier / not running) or the uplink's address
//!   is gone. Outstanding probes are forgotten then (they are not counted as loss).
//! - **Down** after `down_after` consecutive probes unanswered (timed out or failed).
//! - **Up again** after `up_after` consecutive answers, and only while the link is up with its
//!   address. Without probes (no targets) the state follows the link alone: Up as soon as the
//!   link and its address are back.
//! - At start the state is Up if the link is up with its address (optimistic: the converter
//!   works from its first second; a dead uplink is found by `down_after` probes), else Down.
//! - **Degraded** (from Up) when, over the last [`WINDOW`] probes and with at least
//!   [`MIN_SAMPLES`] of them, the loss reaches [`LOSS_DEGRADED_PCT`] %, or when the smoothed
//!   RTT is more than [`RTT_DEGRADED_FACTOR`] times the uplink's own baseline *and* at least
//!   [`RTT_DEGRADED_EXTRA_US`] above it. **Back to Up** when the loss is at most
//!   [`LOSS_RECOVERED_PCT`] % and the RTT at most [`RTT_RECOVERED_FACTOR`] times the baseline
//!   (or within [`RTT_RECOVERED_EXTRA_US`] of it): the gap between the two thresholds is the
//!   hysteresis that keeps a borderline uplink from flapping.
//! - The **baseline** is the lowest RTT seen, which creeps up towards each new sample by
//!   1/[`BASELINE_CREEP`] of the difference (≈ 4 minutes at one probe a second): a lasting new
//!   path delay becomes the new normal instead of degrading the uplink for ever.
//! - The probe **timeout** is RTO-style (RFC 6298): srtt + 4·rttvar, clamped to
//!   [[`RTO_FLOOR_US`], the configured timeout]; before the first answer it is the configured
//!   timeout. An answer after its probe timed out is ignored (the probe was counted lost).
//! - After an uplink went Down and came back Up, the loss window starts empty: the outage is not
//!   loss on a working path.

use crate::engine::{Micros, UplinkState};

/// Probes in the loss window.
pub const WINDOW: u32 = 10;
/// Probes the window must hold before loss or RTT can make an uplink Degraded.
pub const MIN_SAMPLES: u32 = 5;
/// Loss (percent of the window) at which an Up uplink becomes Degraded.
pub const LOSS_DEGRADED_PCT: u32 = 30;
/// Loss (percent of the window) at or below which a Degraded uplink is Up again.
pub const LOSS_RECOVERED_PCT: u32 = 10;
/// srtt above this many times the baseline (and [`RTT_DEGRADED_EXTRA_US`] above it): Degraded.
pub const RTT_DEGRADED_FACTOR: u64 = 4;
/// … and at least this far above the baseline, so that 1 ms → 5 ms is no degradation.
pub const RTT_DEGRADED_EXTRA_US: Micros = 50_000;
/// srtt at most this many times the baseline: the RTT is fine again.
pub const RTT_RECOVERED_FACTOR: u64 = 2;
/// … or at most this far above it.
pub const RTT_RECOVERED_EXTRA_US: Micros = 25_000;
/// The baseline moves 1/BASELINE_CREEP of the way up to each sample above it.
pub const BASELINE_CREEP: u64 = 256;
/// The shortest probe timeout (µs), whatever the RTT (a busy router answers late sometimes).
pub const RTO_FLOOR_US: Micros = 300_000;
/// Probes in flight at most; when full, the oldest counts as lost.
pub const MAX_OUTSTANDING: usize = 8;

/// How an uplink is watched (from its `config uplink` section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Whether probes are sent at all (some target configured and usable).
    pub probing: bool,
    /// Time between two probes.
    pub interval: Micros,
    /// The longest a probe is waited for (the RTO's upper bound).
    pub timeout: Micros,
    /// Consecutive unanswered probes that make the uplink Down.
    pub down_after: u8,
    /// Consecutive answers that bring it Up again.
    pub up_after: u8,
}

/// Why the state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The link lost its carrier or was set down.
    LinkDown,
    /// The uplink's address was removed.
    AddressGone,
    /// Link and address are back (no probes configured).
    LinkUp,
    /// This many consecutive probes went unanswered.
    ProbesUnanswered(u8),
    /// This many consecutive probes were answered.
    ProbesAnswered(u8),
    /// Loss over the window reached [`LOSS_DEGRADED_PCT`].
    Loss,
    /// The smoothed RTT is far above the baseline.
    Rtt,
    /// Loss and RTT are back to normal.
    Recovered,
}

/// A change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: UplinkState,
    pub to: UplinkState,
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outstanding {
    id: u16,
    sent: Micros,
    deadline: Micros,
}

/// The health of one uplink.
#[derive(Clone, Debug)]
pub struct Health {
    cfg: HealthConfig,
    state: UplinkState,
    link_up: bool,
    addr_present: bool,
    srtt: Micros,
    rttvar: Micros,
    /// Lowest RTT seen (creeping up), 0 = none yet.
    baseline: Micros,
    rtt_samples: u32,
    last_rtt: Micros,
    outstanding: [Option<Outstanding>; MAX_OUTSTANDING],
    /// Outcomes of the last probes, newest in bit 0; 1 = lost.
    hist: u32,
    hist_len: u32,
    consec_lost: u8,
    consec_ok: u8,
    next_probe: Micros,
}

impl Health {
    /// A tracker at `now` for a link that is (or is not) up with its address.
    pub fn new(cfg: HealthConfig, now: Micros, link_up: bool, addr_present: bool) -> Health {
        let cfg = HealthConfig {
            interval: cfg.interval.max(1),
            timeout: cfg.timeout.max(1),
            down_after: cfg.down_after.max(1),
            up_after: cfg.up_after.max(1),
            ..cfg
        };
        Health {
            cfg,
            state: if link_up && addr_present {
                UplinkState::Up
            } else {
                UplinkState::Down
            },
            link_up,
            addr_present,
            srtt: 0,
            rttvar: 0,
            baseline: 0,
            rtt_samples: 0,
            last_rtt: 0,
            outstanding: [None; MAX_OUTSTANDING],
            hist: 0,
            hist_len: 0,
            consec_lost: 0,
            consec_ok: 0,
            next_probe: now,
        }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.cfg
    }

    pub fn state(&self) -> UplinkState {
        self.state
    }

    pub fn link_up(&self) -> bool {
        self.link_up
    }

    pub fn addr_present(&self) -> bool {
        self.addr_present
    }

    /// Smoothed probe RTT (µs), 0 before the first answer.
    pub fn srtt(&self) -> Micros {
        self.srtt
    }

    /// RTT variation (µs).
    pub fn rttvar(&self) -> Micros {
        self.rttvar
    }

    /// The RTT of the latest answer (µs), 0 before the first.
    pub fn last_rtt(&self) -> Micros {
        self.last_rtt
    }

    /// The RTT baseline (µs), 0 before the first answer.
    pub fn baseline(&self) -> Micros {
        self.baseline
    }

    /// Consecutive unanswered probes so far.
    pub fn consecutive_lost(&self) -> u8 {
        self.consec_lost
    }

    /// Lost probes and probes in the window.
    pub fn loss_counts(&self) -> (u32, u32) {
        ((self.hist & window_mask()).count_ones(), self.hist_len)
    }

    /// Loss over the window, 0.0..=1.0 (0 with no probe yet).
    pub fn loss(&self) -> f32 {
        let (lost, n) = self.loss_counts();
        if n == 0 {
            0.0
        } else {
            lost as f32 / n as f32
        }
    }

    /// The current probe timeout (µs).
    pub fn rto(&self) -> Micros {
        let floor = RTO_FLOOR_US.min(self.cfg.timeout);
        if self.rtt_samples == 0 {
            return self.cfg.timeout;
        }
        self.srtt
            .saturating_add(self.rttvar.saturating_mul(4))
            .clamp(floor, self.cfg.timeout)
    }

    fn link_ok(&self) -> bool {
        self.link_up && self.addr_present
    }

    /// Whether a probe should be sent now.
    pub fn probe_due(&self, now: Micros) -> bool {
        self.cfg.probing && self.link_ok() && now >= self.next_probe
    }

    /// The next time something is due: a probe to send or one to time out.
    pub fn poll_timeout(&self) -> Option<Micros> {
        let mut t = (self.cfg.probing && self.link_ok()).then_some(self.next_probe);
        for o in self.outstanding.iter().flatten() {
            t = Some(t.map_or(o.deadline, |t| t.min(o.deadline)));
        }
        t
    }

    /// The link's carrier/operstate changed (repeats are harmless).
    pub fn link(&mut self, now: Micros, up: bool) -> Option<Transition> {
        let was = self.link_ok();
        self.link_up = up;
        self.link_changed(now, was)
    }

    /// The uplink's address appeared or went away.
    pub fn address(&mut self, now: Micros, present: bool) -> Option<Transition> {
        let was = self.link_ok();
        self.addr_present = present;
        self.link_changed(now, was)
    }

    fn link_changed(&mut self, now: Micros, was: bool) -> Option<Transition> {
        let ok = self.link_ok();
        if was && !ok {
            self.outstanding = [None; MAX_OUTSTANDING];
            self.consec_ok = 0;
            self.consec_lost = 0;
        } else if !was && ok {
            // Probe at once: the first answers bring it up.
            self.next_probe = now;
            self.consec_ok = 0;
            self.consec_lost = 0;
        }
        let from = self.state;
        self.evaluate(from)
    }

    /// A probe with this id was sent at `now`. A probe still outstanding under the same id is
    /// replaced; when [`MAX_OUTSTANDING`] are in flight the oldest counts as lost.
    pub fn probe_sent(&mut self, now: Micros, id: u16) -> Option<Transition> {
        let from = self.state;
        self.next_probe = now.saturating_add(self.cfg.interval);
        let deadline = now.saturating_add(self.rto());
        let entry = Some(Outstanding {
            id,
            sent: now,
            deadline,
        });
        if let Some(slot) = self
            .outstanding
            .iter_mut()
            .find(|o| matches!(o, Some(x) if x.id == id))
        {
            *slot = entry;
            return None;
        }
        if let Some(slot) = self.outstanding.iter_mut().find(|o| o.is_none()) {
            *slot = entry;
            return None;
        }
        let mut oldest = 0;
        for (i, o) in self.outstanding.iter().enumerate() {
            if let (Some(o), Some(b)) = (o, &self.outstanding[oldest]) {
                if o.sent < b.sent {
                    oldest = i;
                }
            }
        }
        self.outstanding[oldest] = entry;
        self.record(false);
        self.evaluate(from)
    }

    /// The probe with this id was answered at `now` (unknown or already timed-out ids are
    /// ignored).
    pub fn probe_answered(&mut self, now: Micros, id: u16) -> Option<Transition> {
        let o = self.take(id)?;
        let from = self.state;
        let rtt = now.saturating_sub(o.sent);
        self.rtt_sample(rtt);
        self.record(true);
        self.evaluate(from)
    }

    /// The probe with this id failed before its timeout (e.g. unreachable, send error).
    pub fn probe_failed(&mut self, _now: Micros, id: u16) -> Option<Transition> {
        self.take(id)?;
        let from = self.state;
        self.record(false);
        self.evaluate(from)
    }

    /// Time out the probes whose deadline passed. When several changes happen at once, one
    /// transition from the state before to the state after is returned.
    pub fn handle_timeout(&mut self, now: Micros) -> Option<Transition> {
        let from = self.state;
        let mut last = None;
        // Oldest first, so that the consecutive count grows in sending order.
        while let Some(i) = self.oldest_expired(now) {
            self.outstanding[i] = None;
            self.record(false);
            if let Some(t) = self.evaluate(self.state) {
                last = Some(t.reason);
            }
        }
        let reason = last?;
        (self.state != from).then_some(Transition {
            from,
            to: self.state,
            reason,
        })
    }

    /// Ids of the probes in flight, for the I/O layer to drop state of timed-out ones.
    pub fn is_outstanding(&self, id: u16) -> bool {
        self.outstanding
            .iter()
            .any(|o| matches!(o, Some(x) if x.id == id))
    }

    fn oldest_expired(&self, now: Micros) -> Option<usize> {
        let mut best: Option<(usize, Micros)> = None;
        for (i, o) in self.outstanding.iter().enumerate() {
            if let Some(o) = o {
                if o.deadline <= now && best.is_none_or(|(_, s)| o.sent < s) {
                    best = Some((i, o.sent));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    fn take(&mut self, id: u16) -> Option<Outstanding> {
        let slot = self
            .outstanding
            .iter_mut()
            .find(|o| matches!(o, Some(x) if x.id == id))?;
        slot.take()
    }

    fn rtt_sample(&mut self, rtt: Micros) {
        // RFC 6298 §2 with alpha 1/8, beta 1/4.
        if self.rtt_samples == 0 {
            self.srtt = rtt;
            self.rttvar = rtt / 2;
        } else {
            let diff = self.srtt.abs_diff(rtt);
            self.rttvar = (3 * self.rttvar + diff) / 4;
            self.srtt = (7 * self.srtt + rtt) / 8;
        }
        self.rtt_samples = self.rtt_samples.saturating_add(1);
        self.last_rtt = rtt;
        if self.baseline == 0 || rtt < self.baseline {
            self.baseline = rtt.max(1);
        } else {
            self.baseline += (rtt - self.baseline) / BASELINE_CREEP;
        }
    }

    fn record(&mut self, answered: bool) {
        self.hist = (self.hist << 1) | u32::from(!answered);
        self.hist_len = (self.hist_len + 1).min(WINDOW);
        if answered {
            self.consec_ok = self.consec_ok.saturating_add(1);
            self.consec_lost = 0;
        } else {
            self.consec_lost = self.consec_lost.saturating_add(1);
            self.consec_ok = 0;
        }
    }

    fn loss_bad(&self) -> bool {
        let (lost, n) = self.loss_counts();
        n >= MIN_SAMPLES && lost * 100 >= LOSS_DEGRADED_PCT * n
    }

    fn loss_fine(&self) -> bool {
        let (lost, n) = self.loss_counts();
        lost * 100 <= LOSS_RECOVERED_PCT * n.max(1)
    }

    fn rtt_bad(&self) -> bool {
        self.rtt_samples >= MIN_SAMPLES
            && self.baseline > 0
            && self.srtt > self.baseline.saturating_mul(RTT_DEGRADED_FACTOR)
            && self.srtt > self.baseline.saturating_add(RTT_DEGRADED_EXTRA_US)
    }

    fn rtt_fine(&self) -> bool {
        self.srtt <= self.baseline.saturating_mul(RTT_RECOVERED_FACTOR)
            || self.srtt <= self.baseline.saturating_add(RTT_RECOVERED_EXTRA_US)
    }

    /// Apply the rules; return the transition from `from` if the state changed.
    fn evaluate(&mut self, from: UplinkState) -> Option<Transition> {
        let (to, reason) = self.target()?;
        self.state = to;
        if from == UplinkState::Down && to != UplinkState::Down {
            self.hist = 0;
            self.hist_len = 0;
        }
        (to != from).then_some(Transition { from, to, reason })
    }

    /// The state the rules want, if it differs from the current one.
    fn target(&self) -> Option<(UplinkState, Reason)> {
        use UplinkState::*;
        if !self.link_up {
            return (self.state != Down).then_some((Down, Reason::LinkDown));
        }
        if !self.addr_present {
            return (self.state != Down).then_some((Down, Reason::AddressGone));
        }
        if !self.cfg.probing {
            return (self.state != Up).then_some((Up, Reason::LinkUp));
        }
        match self.state {
            Down => (self.consec_ok >= self.cfg.up_after)
                .then_some((Up, Reason::ProbesAnswered(self.consec_ok))),
            Up | Degraded if self.consec_lost >= self.cfg.down_after => {
                Some((Down, Reason::ProbesUnanswered(self.consec_lost)))
            }
            Up if self.loss_bad() => Some((Degraded, Reason::Loss)),
            Up if self.rtt_bad() => Some((Degraded, Reason::Rtt)),
            Degraded if self.loss_fine() && self.rtt_fine() => Some((Up, Reason::Recovered)),
            _ => None,
        }
    }
}

fn window_mask() -> u32 {
    (1u32 << WINDOW) - 1
}

#[cfg(test)]
mod tests;

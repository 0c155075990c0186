use super::*;
use crate::engine::UplinkState::{Degraded, Down, Up};

const MS: Micros = 1000;
const S: Micros = 1_000_000;

fn cfg() -> HealthConfig {
    HealthConfig {
        probing: true,
        interval: S,
        timeout: 2 * S,
        down_after: 3,
        up_after: 2,
    }
}

/// Send a probe at `t` and answer it `rtt` later; returns the transitions.
fn answered(h: &mut Health, id: u16, t: Micros, rtt: Micros) -> Vec<Transition> {
    let mut out = Vec::new();
    out.extend(h.probe_sent(t, id));
    out.extend(h.handle_timeout(t + rtt));
    out.extend(h.probe_answered(t + rtt, id));
    out
}

/// Send a probe at `t` and let it time out.
fn lost(h: &mut Health, id: u16, t: Micros) -> Vec<Transition> {
    let mut out = Vec::new();
    out.extend(h.probe_sent(t, id));
    let d = h.poll_timeout().unwrap();
    out.extend(h.handle_timeout(d));
    out
}

#[test]
fn starts_from_the_link() {
    assert_eq!(Health::new(cfg(), 0, true, true).state(), Up);
    assert_eq!(Health::new(cfg(), 0, false, true).state(), Down);
    assert_eq!(Health::new(cfg(), 0, true, false).state(), Down);
    let h = Health::new(cfg(), 5, true, true);
    assert!(h.probe_due(5));
    assert_eq!(h.poll_timeout(), Some(5));
    assert_eq!(h.srtt(), 0);
    assert_eq!(h.loss(), 0.0);
    assert_eq!(h.rto(), 2 * S, "no sample yet: the configured timeout");
}

#[test]
fn link_down_is_immediate_and_link_up_without_probes_too() {
    let c = HealthConfig {
        probing: false,
        ..cfg()
    };
    let mut h = Health::new(c, 0, true, true);
    assert!(!h.probe_due(0));
    assert_eq!(h.poll_timeout(), None);
    let t = h.link(10, false).unwrap();
    assert_eq!((t.from, t.to, t.reason), (Up, Down, Reason::LinkDown));
    assert_eq!(h.link(11, false), None, "repeats are harmless");
    let t = h.link(20, true).unwrap();
    assert_eq!((t.from, t.to, t.reason), (Down, Up, Reason::LinkUp));
    let t = h.address(30, false).unwrap();
    assert_eq!((t.to, t.reason), (Down, Reason::AddressGone));
    assert_eq!(h.link(31, false), None, "already down");
    assert_eq!(h.address(32, true), None, "link still down");
    assert_eq!(h.link(33, true).unwrap().to, Up);
}

#[test]
fn down_after_consecutive_losses_up_after_answers() {
    let mut h = Health::new(cfg(), 0, true, true);
    assert!(answered(&mut h, 1, 0, 10 * MS).is_empty());
    assert!(lost(&mut h, 2, S).is_empty());
    assert!(lost(&mut h, 3, 4 * S).is_empty());
    assert_eq!(h.consecutive_lost(), 2);
    let t = lost(&mut h, 4, 7 * S);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!((t[0].from, t[0].to), (Up, Down));
    assert_eq!(t[0].reason, Reason::ProbesUnanswered(3));
    // Still probing while down (the link is up).
    assert!(h.probe_due(20 * S));
    assert!(answered(&mut h, 5, 20 * S, 10 * MS).is_empty());
    let t = answered(&mut h, 6, 21 * S, 10 * MS);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].from, t[0].to), (Down, Up));
    assert_eq!(t[0].reason, Reason::ProbesAnswered(2));
    assert_eq!(h.loss_counts(), (0, 0), "the outage is not loss");
}

#[test]
fn an_answer_resets_the_consecutive_count() {
    let mut h = Health::new(cfg(), 0, true, true);
    let mut all = Vec::new();
    for round in 0..10u16 {
        let t0 = Micros::from(round) * 10 * S;
        all.extend(lost(&mut h, round * 3, t0));
        all.extend(lost(&mut h, round * 3 + 1, t0 + 3 * S));
        all.extend(answered(&mut h, round * 3 + 2, t0 + 6 * S, 5 * MS));
    }
    // 2 of 3 lost, never 3 in a row: Degraded by loss, never Down.
    assert!(all.iter().all(|t| t.to != Down), "{all:?}");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(h.state(), Degraded);
}

#[test]
fn link_down_forgets_probes_in_flight_and_link_up_probes_at_once() {
    let mut h = Health::new(cfg(), 0, true, true);
    h.probe_sent(0, 1);
    assert!(h.is_outstanding(1));
    assert_eq!(h.link(100 * MS, false).unwrap().reason, Reason::LinkDown);
    assert!(!h.is_outstanding(1));
    assert_eq!(h.poll_timeout(), None, "nothing due while the link is down");
    assert!(!h.probe_due(10 * S));
    assert_eq!(h.probe_answered(200 * MS, 1), None, "forgotten");
    assert_eq!(h.loss_counts(), (0, 0));
    // Back: still Down until probe_up answers, and a probe is due at once.
    assert_eq!(h.link(5 * S, true), None);
    assert_eq!(h.state(), Down);
    assert!(h.probe_due(5 * S));
    assert!(answered(&mut h, 2, 5 * S, MS).is_empty());
    let t = answered(&mut h, 3, 6 * S, MS);
    assert_eq!(t[0].to, Up);
}

#[test]
fn srtt_and_rto_follow_rfc6298() {
    let mut h = Health::new(cfg(), 0, true, true);
    answered(&mut h, 1, 0, 100 * MS);
    assert_eq!(h.srtt(), 100 * MS);
    assert_eq!(h.rttvar(), 50 * MS);
    assert_eq!(h.rto(), 300 * MS);
    answered(&mut h, 2, S, 200 * MS);
    // rttvar = 3/4·50 + 1/4·100 = 62.5 ms; srtt = 7/8·100 + 1/8·200 = 112.5 ms.
    assert_eq!(h.rttvar(), 62_500);
    assert_eq!(h.srtt(), 112_500);
    assert_eq!(h.rto(), 112_500 + 4 * 62_500);
    assert_eq!(h.last_rtt(), 200 * MS);
    // Floor and ceiling.
    let mut f = Health::new(cfg(), 0, true, true);
    for i in 0..20 {
        answered(&mut f, i, Micros::from(i) * S, 100);
    }
    assert_eq!(f.rto(), RTO_FLOOR_US);
    let mut c = Health::new(cfg(), 0, true, true);
    answered(&mut c, 1, 0, 1900 * MS);
    assert_eq!(c.rto(), 2 * S);
    // A floor above the configured timeout gives way to it.
    let mut short = Health::new(
        HealthConfig {
            timeout: 100 * MS,
            ..cfg()
        },
        0,
        true,
        true,
    );
    answered(&mut short, 1, 0, MS);
    assert_eq!(short.rto(), 100 * MS);
}

#[test]
fn probe_deadline_uses_the_rto() {
    let mut h = Health::new(cfg(), 0, true, true);
    for i in 0..10 {
        answered(&mut h, i, Micros::from(i) * S, 10 * MS);
    }
    let t0 = 20 * S;
    h.probe_sent(t0, 99);
    // The next deadline: the timeout (RTO floor) comes before the next probe.
    assert_eq!(h.poll_timeout(), Some(t0 + RTO_FLOOR_US));
    assert_eq!(h.handle_timeout(t0 + RTO_FLOOR_US - 1), None);
    assert!(h.is_outstanding(99));
    h.handle_timeout(t0 + RTO_FLOOR_US);
    assert!(!h.is_outstanding(99));
    assert_eq!(h.poll_timeout(), Some(t0 + S), "then the next probe");
    assert_eq!(
        h.probe_answered(t0 + RTO_FLOOR_US + 1, 99),
        None,
        "late answers are ignored"
    );
    assert_eq!(h.loss_counts(), (1, 10));
}

#[test]
fn degraded_by_loss_with_hysteresis() {
    let mut h = Health::new(cfg(), 0, true, true);
    let mut t = 0;
    let mut id = 0u16;
    let mut step = |h: &mut Health, ok: bool| {
        id += 1;
        t += 3 * S;
        if ok {
            answered(h, id, t, 10 * MS)
        } else {
            lost(h, id, t)
        }
    };
    for _ in 0..7 {
        assert!(step(&mut h, true).is_empty());
    }
    // 2 lost of 9: 22 % < 30 %.
    step(&mut h, false);
    step(&mut h, true);
    step(&mut h, false);
    assert_eq!(h.state(), Up);
    // 3 of 10 (not consecutive): Degraded.
    step(&mut h, true);
    let tr = step(&mut h, false);
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!(
        (tr[0].from, tr[0].to, tr[0].reason),
        (Up, Degraded, Reason::Loss)
    );
    assert!((h.loss() - 0.3).abs() < 1e-6, "{}", h.loss());
    // Recovers only when at most 1 of 10 is lost.
    let mut rec = Vec::new();
    for _ in 0..10 {
        rec.extend(step(&mut h, true));
    }
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!((rec[0].to, rec[0].reason), (Up, Reason::Recovered));
    assert!(h.loss() <= 0.1);
}

#[test]
fn too_few_samples_do_not_degrade() {
    let mut h = Health::new(
        HealthConfig {
            down_after: 10,
            ..cfg()
        },
        0,
        true,
        true,
    );
    // 2 lost of 2 probes: 100 % but fewer than MIN_SAMPLES.
    lost(&mut h, 1, 0);
    lost(&mut h, 2, 3 * S);
    assert_eq!(h.state(), Up);
    answered(&mut h, 3, 6 * S, MS);
    answered(&mut h, 4, 7 * S, MS);
    let tr = answered(&mut h, 5, 8 * S, MS);
    assert_eq!(tr[0].to, Degraded, "2 of 5 = 40 %");
}

#[test]
fn degraded_by_rtt_above_the_baseline() {
    let mut h = Health::new(cfg(), 0, true, true);
    let mut t = 0;
    for i in 0..10 {
        assert!(answered(&mut h, i, t, 20 * MS).is_empty());
        t += S;
    }
    assert_eq!(h.baseline(), 20 * MS);
    // 60 ms: 3x baseline, not degraded.
    for i in 10..40 {
        assert!(answered(&mut h, i, t, 60 * MS).is_empty(), "{i}");
        t += S;
    }
    // 200 ms: > 4x and > baseline + 50 ms once srtt has risen.
    let mut tr = Vec::new();
    for i in 40..60 {
        tr.extend(answered(&mut h, i, t, 200 * MS));
        t += S;
    }
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!((tr[0].to, tr[0].reason), (Degraded, Reason::Rtt));
    assert_eq!(h.loss(), 0.0);
    // Back to the old delay: Up again.
    let mut tr = Vec::new();
    for i in 60..90 {
        tr.extend(answered(&mut h, i, t, 20 * MS));
        t += S;
    }
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!((tr[0].to, tr[0].reason), (Up, Reason::Recovered));
}

#[test]
fn fast_link_is_not_degraded_by_small_absolute_changes() {
    let mut h = Health::new(cfg(), 0, true, true);
    let mut t = 0;
    for i in 0..10 {
        answered(&mut h, i, t, 200);
        t += S;
    }
    // 0.2 ms → 20 ms is 100x but only 20 ms more: still Up.
    for i in 10..40 {
        assert!(answered(&mut h, i, t, 20 * MS).is_empty());
        t += S;
    }
    assert_eq!(h.state(), Up);
}

#[test]
fn baseline_creeps_up() {
    let mut h = Health::new(cfg(), 0, true, true);
    answered(&mut h, 0, 0, 10 * MS);
    for i in 1..2000u16 {
        answered(&mut h, i, Micros::from(i) * S, 110 * MS);
    }
    assert!(h.baseline() > 100 * MS, "{}", h.baseline());
    assert_eq!(h.state(), Up, "a lasting new delay is the new normal");
}

#[test]
fn full_slots_count_the_oldest_as_lost() {
    let mut h = Health::new(
        HealthConfig {
            down_after: 20,
            ..cfg()
        },
        0,
        true,
        true,
    );
    for i in 0..MAX_OUTSTANDING as u16 {
        assert_eq!(h.probe_sent(Micros::from(i), i), None);
    }
    assert_eq!(h.loss_counts(), (0, 0));
    h.probe_sent(100, 100);
    assert_eq!(h.loss_counts(), (1, 1));
    assert!(!h.is_outstanding(0), "the oldest went");
    assert!(h.is_outstanding(1) && h.is_outstanding(100));
    // Re-using an id replaces its entry without loss.
    h.probe_sent(200, 100);
    assert_eq!(h.loss_counts(), (1, 1));
}

#[test]
fn failed_probes_count_at_once() {
    let mut h = Health::new(cfg(), 0, true, true);
    h.probe_sent(0, 1);
    assert_eq!(h.probe_failed(1, 1), None);
    assert!(!h.is_outstanding(1));
    assert_eq!(h.probe_failed(2, 1), None, "unknown id");
    h.probe_sent(S, 2);
    h.probe_failed(S + 1, 2);
    h.probe_sent(2 * S, 3);
    let t = h.probe_failed(2 * S + 1, 3).unwrap();
    assert_eq!((t.to, t.reason), (Down, Reason::ProbesUnanswered(3)));
}

#[test]
fn several_timeouts_at_once_give_one_transition() {
    let mut h = Health::new(cfg(), 0, true, true);
    for i in 0..3 {
        h.probe_sent(Micros::from(i) * 100 * MS, i);
    }
    let t = h.handle_timeout(100 * S).unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (Up, Down, Reason::ProbesUnanswered(3))
    );
    assert_eq!(h.handle_timeout(101 * S), None);
}

#[test]
fn degraded_goes_down_too() {
    let mut h = Health::new(cfg(), 0, true, true);
    let mut t = 0;
    for i in 0..4 {
        answered(&mut h, i, t, MS);
        t += S;
    }
    for i in 6..8 {
        lost(&mut h, i, t);
        t += 3 * S;
    }
    assert_eq!(h.state(), Degraded);
    let tr = lost(&mut h, 8, t);
    assert_eq!((tr[0].from, tr[0].to), (Degraded, Down));
    assert_eq!(h.link(t + 4 * S, false), None, "already down");
}

#[test]
fn arbitrary_sequences_never_panic() {
    // A small xorshift drives random events, times and ids (including time going backwards).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..50 {
        let c = HealthConfig {
            probing: round % 5 != 0,
            interval: next() % (5 * S),
            timeout: next() % (5 * S),
            down_after: (next() % 5) as u8,
            up_after: (next() % 5) as u8,
        };
        let mut h = Health::new(c, next() % S, next() % 2 == 0, next() % 3 != 0);
        let mut now: Micros = 0;
        for _ in 0..2000 {
            now = now.wrapping_add(next() % (2 * S)).min(Micros::MAX - 10 * S);
            let t = if next() % 50 == 0 { now / 2 } else { now };
            let id = (next() % 12) as u16;
            let tr = match next() % 6 {
                0 => h.link(t, next() % 4 != 0),
                1 => h.address(t, next() % 4 != 0),
                2 => h.probe_sent(t, id),
                3 => h.probe_answered(t, id),
                4 => h.probe_failed(t, id),
                _ => h.handle_timeout(t),
            };
            if let Some(tr) = tr {
                assert_ne!(tr.from, tr.to);
                assert_eq!(tr.to, h.state());
            }
            assert!((0.0..=1.0).contains(&h.loss()));
            if !h.link_up() || !h.addr_present() {
                assert_eq!(h.state(), Down);
            }
            let _ = (h.poll_timeout(), h.probe_due(t), h.rto());
        }
    }
}

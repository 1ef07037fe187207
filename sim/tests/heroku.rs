//! The simulator against a published table: rate_throttle_client's retry rates.
//!
//! Two processes of five threads share a GCRA budget of 4,500 requests an hour for 30 minutes.
//! The published retry rates (zombocom/rate_throttle_client) are about 80% for plain exponential
//! backoff, 41% for exponential increase with gradual decrease, 3.7% for proportional decrease and
//! 3.1% for decrease proportional to the remaining capacity. The simulator must put them in the
//! same order, each within a third of its published value.

use gcbulk_sim::baseline::ThrottleStrategy;
use gcbulk_sim::experiment::ThrottleExperiment;

const PUBLISHED: [(ThrottleStrategy, f64); 4] = [
    (ThrottleStrategy::ExponentialBackoff, 0.80),
    (ThrottleStrategy::GradualDecrease, 0.41),
    (ThrottleStrategy::ProportionalDecrease, 0.037),
    (ThrottleStrategy::ProportionalRemainingDecrease, 0.031),
];

#[test]
fn the_published_retry_rates_are_reproduced_in_order_and_within_a_third() {
    let experiment = ThrottleExperiment::default();
    let mut rates = Vec::new();
    for (strategy, published) in PUBLISHED {
        let result = experiment.run(strategy, 1);
        let rate = result.retry_rate;
        assert!(
            (rate - published).abs() <= published / 3.0,
            "{}: {:.1}% against a published {:.1}%",
            strategy.name(),
            rate * 100.0,
            published * 100.0
        );
        rates.push(rate);
    }
    assert!(
        rates.windows(2).all(|pair| pair[0] > pair[1]),
        "not in the published order: {rates:?}"
    );
}

#[test]
fn every_process_gets_requests_through_and_the_budget_is_not_exceeded() {
    let experiment = ThrottleExperiment::default();
    let result = experiment.run(ThrottleStrategy::ProportionalRemainingDecrease, 2);
    // 30 minutes at 4,500 an hour, from an empty bucket: at most 2,250 accepted.
    let accepted: u64 = result.accepted_by_process.iter().sum();
    assert!((2000..=2251).contains(&accepted), "{accepted}");
    assert!(result.accepted_by_process.iter().all(|&n| n > 100));
}

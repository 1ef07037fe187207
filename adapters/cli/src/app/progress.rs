//! The progress bar: rows done of the total, rate, ETA, and why the run is waiting.

use std::fmt;
use std::time::Duration;

use gcbulk_core::sched::WaitReason;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::Ui;

/// A progress bar on stderr, or nothing when stderr is not a terminal or the run is quiet.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    ui: Ui,
    throttled: u64,
    waiting: Option<String>,
}

impl Progress {
    /// A bar counting `total` items called `unit`, shown if the terminal allows.
    pub(crate) fn new(ui: &Ui, total: u64, unit: &str) -> Self {
        let bar = ui.bars().then(|| {
            let template = format!(
                "{{spinner}} [{{bar:32}}] {{pos}}/{{len}} {unit} · {{rate}} · ETA {{eta}} {{msg}}"
            );
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                })
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if let Some(bar) = &bar
            && let Ok(mut slot) = ui.bar_slot().lock()
        {
            *slot = Some(bar.clone());
        }
        Self {
            bar,
            ui: ui.clone(),
            throttled: 0,
            waiting: None,
        }
    }

    /// One more item done; `throttled` is the run's 429 count so far.
    pub(crate) fn done(&mut self, throttled: u64) {
        self.throttled = throttled;
        self.waiting = None;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.show();
    }

    /// The total grows (an export learns its page count late).
    pub(crate) fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// The run waits `wait` because of `reason`; pacing gaps are too short to mention.
    pub(crate) fn waiting(&mut self, wait: Duration, reason: WaitReason) {
        self.waiting = match reason {
            // The machine names the token's renewal as its next deadline while it waits for
            // answers; that is no pause worth showing.
            WaitReason::TokenRenewal => None,
            WaitReason::Pacing if wait < Duration::from_secs(2) => None,
            _ if wait < Duration::from_millis(500) => None,
            _ => Some(format!(
                "waiting {:.1} s ({})",
                wait.as_secs_f64(),
                describe(reason)
            )),
        };
        self.show();
    }

    /// Takes the bar off the screen.
    pub(crate) fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Ok(mut slot) = self.ui.bar_slot().lock() {
            *slot = None;
        }
    }

    fn show(&self) {
        let Some(bar) = &self.bar else { return };
        let mut message = String::new();
        if self.throttled > 0 {
            message.push_str(&format!("· throttled {} ", self.throttled));
        }
        if let Some(waiting) = &self.waiting {
            message.push_str(&format!("· {waiting}"));
        }
        bar.set_message(message);
    }
}

/// What a wait is for, in words.
pub(crate) fn describe(reason: WaitReason) -> &'static str {
    match reason {
        WaitReason::RetryAfter => "the server asked to retry after a while",
        WaitReason::Throttled => "throttled, backing off",
        WaitReason::RateWindow => "the rate-limit window is used up",
        WaitReason::Pacing => "pacing to the rate limit",
        WaitReason::Backoff => "backing off before a retry",
        WaitReason::RetryBudget => "too many retries lately",
        WaitReason::TokenRenewal => "renewing the token",
        _ => reason.as_str(),
    }
}

//! A request to stop a run, raised from outside it (a Ctrl-C handler, another task).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Raised to ask a run to stop: no new attempt is sent, the ones in flight are awaited and
/// reported, then the run returns.
///
/// Clones share one signal. Raising it wakes the run at once, from any thread, so a run that is
/// waiting out a long `Retry-After` stops without waiting for it. One run at a time may watch a
/// signal: give concurrent runs a signal each.
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run watching this signal to stop.
    pub fn raise(&self) {
        self.inner.raised.store(true, Ordering::Release);
        self.inner.waker.wake();
    }

    /// Whether the signal has been raised.
    pub fn is_raised(&self) -> bool {
        self.inner.raised.load(Ordering::Acquire)
    }

    /// Ready once the signal is raised; registers the task to be woken then.
    pub(crate) fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_raised() {
            return Poll::Ready(());
        }
        self.inner.waker.register(cx.waker());
        // Raised between the first look and the registration: its wake-up may have been missed.
        if self.is_raised() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[test]
    fn raising_from_another_thread_wakes_the_waiting_task() {
        let signal = StopSignal::new();
        let raiser = signal.clone();
        let thread = std::thread::spawn(move || raiser.raise());

        async_io::block_on(poll_fn(|cx| signal.poll_raised(cx)));
        assert!(signal.is_raised());
        thread.join().unwrap();
    }
}

//! The one timer of a client connection. Every wait of the connection with a deadline (the
//! next request head, the real server's response head) goes through it, so a wait that ends
//! in time costs no timer registration: the timer is armed at most `TICK` ahead and is only
//! moved when it fires or when a deadline earlier than its own comes. When it fires before
//! the deadline it is simply armed again, so a deadline is kept exactly, whatever the tick.
//! The timer holds the waker it was polled with until it fires, so a wait polls it only once
//! per arming (and when it has fired), not each time the connection is woken.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How far ahead the timer is armed at most: also how often a waiting connection may look at
/// something else (the engine stopping).
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// How a wait ended.
#[derive(Debug)]
pub(crate) enum Waited<T> {
    Done(T),
    /// The deadline passed first.
    Expired,
    /// The timer fired before the deadline (only for waits that ask for ticks).
    Tick,
}

#[derive(Debug)]
pub(crate) struct Watchdog {
    sleep: Pin<Box<Sleep>>,
    /// When the timer fires; none once it has fired.
    armed: Option<Instant>,
    /// The waker the timer was polled with since it was last armed: it wakes that one when
    /// it fires.
    waker: Option<Waker>,
}

impl Watchdog {
    pub fn new() -> Self {
        let at = Instant::now() + TICK;
        Self { sleep: Box::pin(tokio::time::sleep_until(at)), armed: Some(at), waker: None }
    }

    /// Makes the timer fire no later than `deadline` (and no later than a tick from now).
    fn arm(&mut self, deadline: Instant) {
        // An armed time was at most a tick ahead when it was set, so it still is.
        if self.armed.is_some_and(|a| a <= deadline) {
            return;
        }
        let at = deadline.min(Instant::now() + TICK);
        self.sleep.as_mut().reset(at);
        self.armed = Some(at);
        self.waker = None;
    }

    /// Runs `fut` until it completes or `deadline` passes. With `ticks`, also returns
    /// [`Waited::Tick`] when the timer fires first (at most a tick from now), dropping `fut`.
    pub async fn wait<F: Future>(&mut self, deadline: Instant, ticks: bool, fut: F) -> Waited<F::Output> {
        let mut fut = pin!(fut);
        loop {
            self.arm(deadline);
            let done = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                let registered = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                if registered && !self.sleep.is_elapsed() {
                    return Poll::Pending;
                }
                match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => {
                        if !registered {
                            self.waker = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                }
            })
            .await;
            if let Some(r) = done {
                return Waited::Done(r);
            }
            self.armed = None;
            if Instant::now() >= deadline {
                return Waited::Expired;
            }
            if ticks {
                return Waited::Tick;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_hold_across_ticks() {
        let mut w = Watchdog::new();
        let start = Instant::now();
        let never = std::future::pending::<()>;

        // A deadline beyond several ticks is kept exactly, not rounded to a tick.
        let deadline = start + TICK * 3 + Duration::from_millis(70);
        assert!(matches!(w.wait(deadline, false, never()).await, Waited::Expired));
        assert_eq!(Instant::now(), deadline);

        // A deadline earlier than the armed timer moves it.
        assert!(matches!(w.wait(Instant::now() + TICK * 10, false, async {}).await, Waited::Done(())));
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(matches!(w.wait(deadline, false, never()).await, Waited::Expired));
        assert_eq!(Instant::now(), deadline);

        // With ticks, a wait ends at the first tick.
        let before = Instant::now();
        assert!(matches!(w.wait(before + TICK * 10, true, never()).await, Waited::Tick));
        assert_eq!(Instant::now(), before + TICK);

        // What completes first is returned.
        assert!(matches!(w.wait(Instant::now() + TICK, true, async { 7 }).await, Waited::Done(7)));
    }
}

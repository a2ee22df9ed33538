//! The server's timers: one per-thread wheel instead of a monoio timer
//! per socket.
//!
//! Every socket waits with a deadline (keep-alive, beacon, write stall),
//! and a monoio `Sleep` keeps about 640 bytes of cache-padded state: more
//! than a kilobyte per idle client with its two sockets. A worker thread
//! instead runs [`drive`] beside its listeners: it keeps the thread's
//! deadlines in one ordered map (a few dozen bytes each), sleeps on a
//! single monoio timer until the earliest, and wakes the tasks whose
//! deadlines passed. A [`WheelTimer`] made on a thread without a running
//! wheel (a client's runtime, a test's) uses a monoio `Sleep` of its own.
//!
//! Moving a deadline later (what a busy socket does at every request)
//! touches nothing shared: the registered earlier deadline fires, the task
//! sees its deadline has not come, and registers the new one.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use monoio::time::Sleep;
use psrt_driver::runtime::{SleepTimer, Sleeps, Timer};

use crate::runtime::Monoio;

thread_local! {
    static WHEEL: RefCell<Wheel> = RefCell::new(Wheel::default());
}

/// The deadlines of one thread's tasks.
#[derive(Default)]
struct Wheel {
    /// Registered deadlines, earliest first; the number tells equal
    /// instants apart.
    waiting: BTreeMap<(Instant, u64), Rc<Slot>>,
    next_id: u64,
    /// The task running [`drive`], while it runs.
    driver: Option<Waker>,
    /// The deadline the driver sleeps until.
    target: Option<Instant>,
}

/// One registered deadline, shared by the timer and the wheel.
struct Slot {
    waker: RefCell<Waker>,
    fired: Cell<bool>,
}

/// Fires this thread's deadlines for as long as it is polled: a server
/// worker runs it beside its listeners (it never completes).
pub(crate) async fn drive() {
    let _running = Running;
    let mut sleep: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        let mut cutoff = Instant::now();
        loop {
            let (due, next) = WHEEL.with_borrow_mut(|wheel| {
                match &mut wheel.driver {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    driver => *driver = Some(cx.waker().clone()),
                }
                let mut due = Vec::new();
                while let Some(entry) = wheel.waiting.first_entry() {
                    if entry.key().0 > cutoff {
                        break;
                    }
                    due.push(entry.remove());
                }
                wheel.target = wheel.waiting.keys().next().map(|&(at, _)| at);
                (due, wheel.target)
            });
            // Woken outside the borrow: a wake may drop a finished task,
            // whose timer then unregisters.
            for slot in due {
                slot.fired.set(true);
                slot.waker.borrow().wake_by_ref();
            }
            let Some(next) = next else {
                return Poll::<()>::Pending;
            };
            let sleep = match &mut sleep {
                Some(sleep) => {
                    Monoio::reset(sleep.as_mut(), next);
                    sleep
                }
                slot => slot.insert(Box::pin(Monoio::sleep_until(next))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer says `next` has come, even if the clock lags.
            cutoff = Instant::now().max(next);
        }
    })
    .await
}

/// Marks the wheel driven while [`drive`] lives.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        let _ = WHEEL.try_with(|wheel| {
            if let Ok(mut wheel) = wheel.try_borrow_mut() {
                wheel.driver = None;
                wheel.target = None;
            }
        });
    }
}

/// The monoio runtime's [`Timer`]: an entry in the thread's wheel when
/// [`drive`] runs there, else a monoio `Sleep` of its own.
pub enum WheelTimer {
    /// Registered in the thread's wheel.
    Wheel(Entry),
    /// A timer of its own.
    Own(SleepTimer<Monoio>),
}

impl Default for WheelTimer {
    fn default() -> Self {
        let driven = WHEEL.with_borrow(|wheel| wheel.driver.is_some());
        if driven {
            WheelTimer::Wheel(Entry::default())
        } else {
            WheelTimer::Own(SleepTimer::default())
        }
    }
}

impl Timer for WheelTimer {
    fn set(&mut self, deadline: Option<Instant>) {
        match self {
            WheelTimer::Wheel(entry) => entry.set(deadline),
            WheelTimer::Own(timer) => timer.set(deadline),
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            WheelTimer::Wheel(entry) => entry.poll_fired(cx),
            WheelTimer::Own(timer) => timer.poll_fired(cx),
        }
    }
}

/// A deadline kept in the thread's wheel.
#[derive(Default)]
pub struct Entry {
    deadline: Option<Instant>,
    /// The deadline registered in the wheel (earlier than or equal to
    /// `deadline`) and its slot.
    registered: Option<((Instant, u64), Rc<Slot>)>,
}

impl Entry {
    fn set(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        if let Some(((at, _), _)) = &self.registered
            && deadline.is_none_or(|deadline| deadline < *at)
        {
            self.unregister();
        }
    }

    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.deadline else {
            return Poll::Pending;
        };
        if let Some((_, slot)) = &self.registered {
            if !slot.fired.get() {
                let mut waker = slot.waker.borrow_mut();
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                return Poll::Pending;
            }
            self.registered = None;
        }
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        let slot = Rc::new(Slot {
            waker: RefCell::new(cx.waker().clone()),
            fired: Cell::new(false),
        });
        WHEEL.with_borrow_mut(|wheel| {
            let key = (at, wheel.next_id);
            wheel.next_id += 1;
            wheel.waiting.insert(key, slot.clone());
            if wheel.target.is_none_or(|target| at < target)
                && let Some(driver) = &wheel.driver
            {
                driver.wake_by_ref();
            }
            self.registered = Some((key, slot));
        });
        Poll::Pending
    }

    fn unregister(&mut self) {
        if let Some((key, _)) = self.registered.take() {
            let _ = WHEEL.try_with(|wheel| {
                if let Ok(mut wheel) = wheel.try_borrow_mut() {
                    wheel.waiting.remove(&key);
                }
            });
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Deadlines fire in order through one wheel, a deadline moved later
    /// fires late, and a dropped timer leaves nothing registered.
    #[monoio::test(timer_enabled = true)]
    async fn deadlines_fire_through_the_wheel() {
        monoio::spawn(drive());
        monoio::time::sleep(Duration::from_millis(1)).await;
        let start = Instant::now();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, after_ms) in [("late", 60u64), ("early", 20), ("moved", 10)] {
            let fired = fired.clone();
            tasks.push(monoio::spawn(async move {
                let mut timer = WheelTimer::default();
                assert!(matches!(timer, WheelTimer::Wheel(_)), "on the wheel");
                timer.set(Some(start + Duration::from_millis(after_ms)));
                if name == "moved" {
                    let mut once = true;
                    poll_fn(|cx| {
                        let _ = timer.poll_fired(cx);
                        if std::mem::take(&mut once) {
                            timer.set(Some(start + Duration::from_millis(40)));
                            cx.waker().wake_by_ref();
                        }
                        Poll::Ready(())
                    })
                    .await;
                }
                poll_fn(|cx| timer.poll_fired(cx)).await;
                fired.borrow_mut().push((name, start.elapsed()));
            }));
        }
        for task in tasks {
            task.await;
        }
        let fired = fired.borrow().clone();
        let names: Vec<_> = fired.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["early", "moved", "late"]);
        for ((_, at), want) in fired.iter().zip([20, 40, 60]) {
            assert!(*at >= Duration::from_millis(want), "fired at {at:?}");
        }
        let left = WHEEL.with_borrow(|wheel| wheel.waiting.len());
        assert_eq!(left, 0, "nothing left registered");
        let dropped = {
            let mut timer = WheelTimer::default();
            timer.set(Some(Instant::now() + Duration::from_secs(60)));
            let _ = poll_fn(|cx| Poll::Ready(timer.poll_fired(cx))).await;
            WHEEL.with_borrow(|wheel| wheel.waiting.len())
        };
        assert_eq!(dropped, 1, "registered while it lived");
        assert_eq!(WHEEL.with_borrow(|wheel| wheel.waiting.len()), 0);
    }

    /// Without a running wheel a timer keeps a monoio timer of its own.
    #[monoio::test(timer_enabled = true)]
    async fn without_a_wheel_a_timer_sleeps_alone() {
        let mut timer = WheelTimer::default();
        assert!(matches!(timer, WheelTimer::Own(_)));
        timer.set(Some(Instant::now() + Duration::from_millis(5)));
        poll_fn(|cx| timer.poll_fired(cx)).await;
    }
}

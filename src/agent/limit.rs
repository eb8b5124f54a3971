//! A single-threaded counting semaphore: the global cap on probes in flight.
//! Releasing wakes every waiter (they re-check), so a waiter that gave up at
//! its deadline can never swallow the wake-up meant for another.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

pub struct Limit {
    max: usize,
    used: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
}

pub struct Permit<'a>(&'a Limit);

impl Limit {
    pub fn new(max: usize) -> Self {
        Limit {
            max: max.max(1),
            used: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.get()
    }

    pub async fn acquire(&self) -> Permit<'_> {
        poll_fn(|cx| {
            if self.used.get() < self.max {
                self.used.set(self.used.get() + 1);
                Poll::Ready(Permit(self))
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.used.set(self.0.used.get() - 1);
        for w in self.0.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn caps_and_releases() {
        let l = Limit::new(2);
        block_on(async {
            let a = l.acquire().await;
            let _b = l.acquire().await;
            let mut third = Box::pin(l.acquire());
            assert!(poll_once(&mut third).await.is_none());
            // A waiter that gives up does not block the next one.
            let mut fourth = Box::pin(l.acquire());
            assert!(poll_once(&mut fourth).await.is_none());
            drop(fourth);
            drop(a);
            let got = poll_once(&mut third).await;
            assert!(got.is_some());
            assert_eq!(l.in_use(), 2);
            drop(got);
            assert_eq!(l.in_use(), 1);
        });
    }
}

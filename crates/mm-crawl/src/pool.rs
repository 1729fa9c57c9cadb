//! A fixed number of scoped threads working through a slice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` of every item of `items`, in the order of `items`, computed on
/// `workers` threads at most (the calling thread is one of them). Items are
/// handed out one at a time as threads come free, so a slow item holds up
/// only its own thread.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let r = f(item);
        *slots[i].lock().unwrap() = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 1..workers.min(items.len()) {
            s.spawn(work);
        }
        work();
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every item done"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order_whatever_the_threads() {
        let items: Vec<u32> = (0..100).collect();
        for workers in [0, 1, 3, 200] {
            assert_eq!(
                super::map(&items, workers, |i| i * 2),
                (0..200).step_by(2).collect::<Vec<_>>()
            );
        }
        assert!(super::map(&[] as &[u32], 4, |i| *i).is_empty());
    }
}

//! Reading packages ahead of the tree writer: reading and decompression
//! run on worker threads while the main thread lays packages down
//! and runs their scriptlets strictly in install order.

use std::sync::{Condvar, Mutex};

use crate::payload::Loaded;

/// How many packages may wait decompressed: bounds memory to a few RPMs.
const AHEAD: usize = 3;

/// Calls `each` with packages `0..count`, in order, each loaded by
/// `load`. Loading runs on `workers` threads (no more than [`AHEAD`]) at
/// most [`AHEAD`] packages ahead; the first error (loading or from
/// `each`) stops everything and is returned.
pub fn in_order(
    count: usize,
    workers: usize,
    load: impl Fn(usize) -> anyhow::Result<Loaded> + Sync,
    mut each: impl FnMut(Loaded) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    struct State {
        next: usize,
        consumed: usize,
        stop: bool,
        done: Vec<Option<anyhow::Result<Loaded>>>,
    }
    let state = Mutex::new(State {
        next: 0,
        consumed: 0,
        stop: false,
        done: (0..count).map(|_| None).collect(),
    });
    let cv = Condvar::new();
    std::thread::scope(|s| {
        // More than AHEAD workers could never all be busy.
        for _ in 0..workers.clamp(1, AHEAD) {
            s.spawn(|| loop {
                let i = {
                    let mut st = state.lock().expect("no panics");
                    while !st.stop && st.next < count && st.next >= st.consumed + AHEAD {
                        st = cv.wait(st).expect("no panics");
                    }
                    if st.stop || st.next >= count {
                        return;
                    }
                    st.next += 1;
                    st.next - 1
                };
                let loaded = load(i);
                state.lock().expect("no panics").done[i] = Some(loaded);
                cv.notify_all();
            });
        }
        let result = (|| {
            for i in 0..count {
                let loaded = {
                    let mut st = state.lock().expect("no panics");
                    while st.done[i].is_none() {
                        st = cv.wait(st).expect("no panics");
                    }
                    st.consumed = i + 1;
                    st.done[i].take().expect("present")
                };
                cv.notify_all();
                each(loaded?)?;
            }
            Ok(())
        })();
        state.lock().expect("no panics").stop = true;
        cv.notify_all();
        result
    })
}

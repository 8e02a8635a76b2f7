//! Uploads' disk work off the worker threads: body bytes written (spliced from a pipe, or
//! hashed and written from a buffer), the `fdatasync` before an offset is acknowledged, the
//! whole-file digest check and the publishing rename run on a small pool of threads of their
//! own, so a slow disk stalls none of a worker's other connections. A worker hands a job over
//! with the identity of its connection (`K`) and gets its result (`T`) back in its [`Done`]
//! queue, with a wake-up.

use std::sync::mpsc::{channel, Receiver as Jobs, Sender};
use std::sync::{Arc, Mutex};

/// Threads doing disk work (each blocks on one write or sync at a time).
const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The pool.
#[derive(Debug)]
pub struct Pool {
    jobs: Mutex<Sender<Job>>,
}

/// A worker's results that landed, each under the identity of its connection (`K`), and how
/// to wake the worker when one lands.
pub struct Done<K, T> {
    landed: Mutex<Vec<(K, T)>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl<K, T> std::fmt::Debug for Done<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Done(..)")
    }
}

impl<K: Send + 'static, T: Send + 'static> Done<K, T> {
    /// An empty queue whose worker `wake` wakes.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Arc<Done<K, T>> {
        Arc::new(Done {
            landed: Mutex::new(Vec::new()),
            wake: Box::new(wake),
        })
    }

    /// The results that landed since the last call (the worker's loop drains them).
    pub fn take(&self) -> Vec<(K, T)> {
        std::mem::take(&mut *self.landed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, key: K, result: T) {
        self.landed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, result));
        (self.wake)();
    }
}

impl Pool {
    /// Starts the pool's threads.
    pub fn start() -> std::io::Result<Arc<Pool>> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx: Arc<Mutex<Jobs<Job>>> = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("ringserve-disk{i}"))
                .spawn(move || loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                })?;
        }
        Ok(Arc::new(Pool {
            jobs: Mutex::new(tx),
        }))
    }

    /// Runs `job` on the pool; its result lands in `done` under `key`.
    pub fn run<K: Send + 'static, T: Send + 'static>(
        &self,
        key: K,
        done: &Arc<Done<K, T>>,
        job: impl FnOnce() -> T + Send + 'static,
    ) {
        let done = Arc::clone(done);
        let job: Job = Box::new(move || done.push(key, job()));
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if let Err(e) = sent {
            // The pool is gone (never, while the server runs): run it here rather than lose it.
            (e.0)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_land_under_their_key_and_wake_the_worker() {
        let pool = Pool::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let done = Done::<u32, u64>::new(move || {
            let _ = tx.lock().unwrap().send(());
        });
        for k in 0..4 {
            pool.run(k, &done, move || u64::from(k) * 10);
        }
        let mut got = Vec::new();
        while got.len() < 4 {
            rx.recv().unwrap();
            got.extend(done.take());
        }
        got.sort_unstable();
        assert_eq!(got, vec![(0, 0), (1, 10), (2, 20), (3, 30)]);
    }
}

//! Finishing uploads off the worker threads: the `fdatasync` before an offset is acknowledged,
//! the whole-file digest check and the publishing rename run on a small pool of threads of
//! their own, so a slow disk stalls none of a worker's other connections. A worker hands a
//! [`Receiver`] over and gets its [`Answer`] back in its [`Done`] queue, with a wake-up.

use std::sync::mpsc::{channel, Receiver as Jobs, Sender};
use std::sync::{Arc, Mutex};

use super::{Answer, Receiver};

/// Threads finishing uploads (each blocks on one disk sync at a time).
const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The pool.
#[derive(Debug)]
pub struct Finisher {
    jobs: Mutex<Sender<Job>>,
}

/// A worker's finished uploads, each under the identity of its connection (`K`), and how to
/// wake the worker when one lands.
pub struct Done<K> {
    answers: Mutex<Vec<(K, Answer)>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl<K> std::fmt::Debug for Done<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Done(..)")
    }
}

impl<K: Send + 'static> Done<K> {
    /// An empty queue whose worker `wake` wakes.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Arc<Done<K>> {
        Arc::new(Done {
            answers: Mutex::new(Vec::new()),
            wake: Box::new(wake),
        })
    }

    /// The answers that arrived since the last call (the worker's loop drains them).
    pub fn take(&self) -> Vec<(K, Answer)> {
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, key: K, answer: Answer) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, answer));
        (self.wake)();
    }
}

impl Finisher {
    /// Starts the pool's threads.
    pub fn start() -> std::io::Result<Arc<Finisher>> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx: Arc<Mutex<Jobs<Job>>> = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("ringserve-finish{i}"))
                .spawn(move || loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                })?;
        }
        Ok(Arc::new(Finisher {
            jobs: Mutex::new(tx),
        }))
    }

    /// Finishes `receiver` on the pool; its answer lands in `done` under `key`.
    pub fn finish<K: Send + 'static>(&self, receiver: Box<Receiver>, key: K, done: &Arc<Done<K>>) {
        let done = Arc::clone(done);
        let job: Job = Box::new(move || done.push(key, receiver.finish()));
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if let Err(e) = sent {
            // The pool is gone (never, while the server runs): finish here rather than lose it.
            (e.0)();
        }
    }
}

//! Removes expired uploads off the hot path: a thread of its own wakes once a minute, lists
//! the state directory and deletes what has not been written for `--upload-expire`
//! (unfinished uploads nobody holds) and the records of published ones after that long.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Uploads;

/// How often the state directory is swept.
const PERIOD: Duration = Duration::from_secs(60);

/// Starts the sweeper thread for `uploads`, expiring after `expire`.
pub fn start(uploads: Arc<Uploads>, expire: Duration) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ringserve-sweep".into())
        .spawn(move || loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let removed = sweep(&uploads, expire, now);
            if removed > 0 {
                eprintln!("ringserve: removed {removed} expired upload(s)");
            }
            std::thread::sleep(PERIOD);
        })?;
    Ok(())
}

/// Removes the uploads of `uploads` that expired by `now` (Unix seconds); returns how many.
pub fn sweep(uploads: &Uploads, expire: Duration, now: u64) -> usize {
    let store = uploads.store();
    let Ok(ids) = store.ids() else {
        return 0;
    };
    let mut removed = 0;
    for id in ids {
        let Some(info) = store.info(&id) else {
            continue;
        };
        let last = match store.stored(&id) {
            Ok((_, mtime)) => mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            Err(_) => info.created,
        };
        if last.max(info.created).saturating_add(expire.as_secs()) < now
            && store.remove_unlocked(&id).unwrap_or(false)
        {
            removed += 1;
        }
    }
    removed
}

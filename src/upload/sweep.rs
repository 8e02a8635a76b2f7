//! Removes expired uploads off the hot path: a thread of its own wakes once a minute, lists
//! the state directory and deletes what has not been written for `--upload-expire`
//! (unfinished uploads nobody holds) and the records of published ones after that long.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Uploads;

/// How often the state directory is swept.
const PERIOD: Duration = Duration::from_secs(60);

/// Starts the sweeper thread for `uploads`, expiring after `expire`; `expired` is told how
/// many unfinished uploads each sweep removed (for the metrics).
pub fn start(
    uploads: Arc<Uploads>,
    expire: Duration,
    expired: impl Fn(u64) + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ringserve-sweep".into())
        .spawn(move || loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let removed = sweep(&uploads, expire, now);
            if removed > 0 {
                eprintln!("ringserve: removed {removed} expired upload(s)");
                expired(removed as u64);
            }
            std::thread::sleep(PERIOD);
        })?;
    Ok(())
}

/// Removes the uploads of `uploads` that expired by `now` (Unix seconds), and the records
/// of published ones as old; returns how many unfinished uploads were removed.
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
            && !info.done
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::store::{random_id, Info, Proto};
    use crate::upload::{AuthMode, Settings, SyncMode};

    #[test]
    fn only_unfinished_uploads_count_as_expired() {
        let root = tempfile::tempdir().unwrap();
        let settings = Settings {
            prefixes: vec![String::new()],
            tokens: Vec::new(),
            auth: AuthMode::None,
            max_size: 0,
            expire: Duration::from_secs(60),
            state: None,
            sync: SyncMode::Close,
            overwrite: false,
            dotfiles: false,
        };
        let uploads = Uploads::open(root.path(), &settings).unwrap();
        let store = uploads.store();
        let info = |done| Info {
            proto: Proto::Put,
            length: Some(3),
            prefix: 0,
            name: "x".into(),
            metadata: String::new(),
            created: 1000,
            done,
        };
        let (open, published) = (random_id().unwrap(), random_id().unwrap());
        drop(store.create(&open, &info(false)).unwrap());
        store.write_info(&published, &info(true)).unwrap();
        // The published record is old and goes, uncounted; the part file written just now
        // keeps the unfinished one.
        assert_eq!(sweep(&uploads, settings.expire, 1100), 0);
        assert_eq!(store.ids().unwrap(), std::slice::from_ref(&open));
        let later = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 61;
        assert_eq!(sweep(&uploads, settings.expire, later), 1);
        assert!(store.ids().unwrap().is_empty());
    }
}

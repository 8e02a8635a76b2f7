//! The cache against real files: periods, watches, sidecars, bounds.

use super::*;
use std::fs;

fn setup() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.txt"), "one").unwrap();
    let root = Root::open(dir.path(), false).unwrap();
    (dir, root)
}

fn len_of(f: Found) -> u64 {
    match f {
        Found::File { rep, .. } => rep.len,
        _ => panic!("expected a file"),
    }
}

/// A cache that only trusts entries for `valid`, as where inotify is unavailable.
fn unwatched(max: usize, valid: Duration) -> FileCache {
    FileCache {
        watches: None,
        ..FileCache::new(max, valid)
    }
}

#[test]
fn without_watches_hits_within_valid_period_and_resolves_again_after() {
    let (dir, root) = setup();
    let mut c = unwatched(8, Duration::from_secs(5));
    let t0 = Instant::now();
    let s = &mut Vec::new();
    assert_eq!(len_of(c.lookup(&root, b"/a.txt?x=1", t0, s)), 3);
    fs::write(dir.path().join("a.txt"), "changed").unwrap();
    assert_eq!(
        len_of(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(1), s)),
        3
    );
    assert_eq!(c.stats(), (1, 1));
    assert_eq!(
        len_of(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(6), s)),
        7
    );
    assert_eq!(c.stats(), (1, 2));
}

#[test]
fn a_change_is_seen_at_the_next_drain_whatever_the_period() {
    let (dir, root) = setup();
    fs::create_dir_all(dir.path().join("releases/1")).unwrap();
    fs::create_dir_all(dir.path().join("releases/2")).unwrap();
    fs::write(dir.path().join("releases/1/app"), "v1").unwrap();
    fs::write(dir.path().join("releases/2/app"), "v2!").unwrap();
    std::os::unix::fs::symlink("releases/1", dir.path().join("current")).unwrap();
    let mut c = FileCache::new(8, Duration::from_secs(3600));
    let t0 = Instant::now();
    let s = &mut Vec::new();
    let later = |ms| t0 + Duration::from_millis(ms);
    assert_eq!(len_of(c.lookup(&root, b"/a.txt", t0, s)), 3);
    assert_eq!(len_of(c.lookup(&root, b"/current/app", t0, s)), 2);
    // Replaced by rename: served old until the next drain, then new.
    fs::write(dir.path().join("b.txt"), "three").unwrap();
    fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
    assert_eq!(len_of(c.lookup(&root, b"/a.txt", t0, s)), 3);
    assert_eq!(len_of(c.lookup(&root, b"/a.txt", later(200), s)), 5);
    assert_eq!(len_of(c.lookup(&root, b"/current/app", later(200), s)), 2);
    // A release swapped by renaming a symlink over `current`.
    std::os::unix::fs::symlink("releases/2", dir.path().join("current.new")).unwrap();
    fs::rename(dir.path().join("current.new"), dir.path().join("current")).unwrap();
    assert_eq!(len_of(c.lookup(&root, b"/current/app", later(400), s)), 3);
    // ... and now watched in the release `current` leads to, not the one it led to before.
    fs::write(dir.path().join("releases/1/app"), "v1, changed").unwrap();
    assert_eq!(len_of(c.lookup(&root, b"/current/app", later(500), s)), 3);
    fs::write(dir.path().join("releases/2/app"), "v2, changed").unwrap();
    assert_eq!(len_of(c.lookup(&root, b"/current/app", later(700), s)), 11);
    // Written in place, then deleted.
    fs::write(dir.path().join("a.txt"), "seven!!").unwrap();
    assert_eq!(len_of(c.lookup(&root, b"/a.txt", later(800), s)), 7);
    fs::remove_file(dir.path().join("releases/2/app")).unwrap();
    assert!(matches!(
        c.lookup(&root, b"/current/app", later(900), s),
        Found::NotFound
    ));
    assert_eq!(c.stats(), (3, 7));
}

#[test]
fn changes_to_other_names_keep_entries() {
    let (dir, root) = setup();
    let mut c = FileCache::new(8, Duration::from_secs(3600));
    let t0 = Instant::now();
    let s = &mut Vec::new();
    let Found::File { file: first, .. } = c.lookup(&root, b"/a.txt", t0, s) else {
        panic!("expected a file");
    };
    fs::write(dir.path().join("other.txt"), "x").unwrap();
    fs::remove_file(dir.path().join("other.txt")).unwrap();
    let later = t0 + Duration::from_millis(200);
    let Found::File { file: again, .. } = c.lookup(&root, b"/a.txt", later, s) else {
        panic!("expected a file");
    };
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(c.stats(), (1, 1));
}

#[test]
fn watches_go_with_the_entries_that_need_them() {
    let (dir, root) = setup();
    for d in 0..6 {
        fs::create_dir(dir.path().join(format!("d{d}"))).unwrap();
        fs::write(dir.path().join(format!("d{d}/f")), "x").unwrap();
    }
    let mut c = FileCache::new(2, Duration::from_secs(3600));
    let now = Instant::now();
    for d in 0..6 {
        c.lookup(&root, format!("/d{d}/f").as_bytes(), now, &mut Vec::new());
    }
    // Two entries, each through the root and its own directory.
    assert_eq!(c.map.len(), 2);
    assert_eq!(c.watches.as_ref().expect("inotify").counts(), (3, 4));
    c.reset(2, Duration::from_secs(1));
    assert_eq!(c.watches.as_ref().expect("inotify").counts(), (0, 0));
}

#[test]
fn refusals_are_never_cached_and_drop_stale_entries() {
    let (dir, root) = setup();
    let mut c = FileCache::new(8, Duration::ZERO);
    let t0 = Instant::now();
    let s = &mut Vec::new();
    assert!(matches!(
        c.lookup(&root, b"/a.txt", t0, s),
        Found::File { .. }
    ));
    fs::remove_file(dir.path().join("a.txt")).unwrap();
    assert!(matches!(c.lookup(&root, b"/a.txt", t0, s), Found::NotFound));
    assert!(matches!(
        c.lookup(&root, b"/../a.txt", t0, s),
        Found::BadRequest
    ));
    assert!(c.map.is_empty());
}

#[test]
fn bounded() {
    let (dir, root) = setup();
    for i in 0..20 {
        fs::write(dir.path().join(format!("{i}.txt")), "x").unwrap();
    }
    let mut c = FileCache::new(4, Duration::from_secs(60));
    let now = Instant::now();
    for i in 0..20 {
        c.lookup(&root, format!("/{i}.txt").as_bytes(), now, &mut Vec::new());
    }
    assert_eq!(c.map.len(), 4);
}

#[test]
fn reset_forgets_entries_and_keeps_counting() {
    let (_dir, root) = setup();
    let mut c = FileCache::new(8, Duration::from_secs(60));
    let now = Instant::now();
    let s = &mut Vec::new();
    let Found::File { file: sending, .. } = c.lookup(&root, b"/a.txt", now, s) else {
        panic!("expected a file");
    };
    c.reset(0, Duration::ZERO);
    assert!(c.map.is_empty());
    assert_eq!(sending.metadata().unwrap().len(), 3, "still open");
    c.lookup(&root, b"/a.txt", now, s);
    assert!(c.map.is_empty(), "now disabled");
    assert_eq!(c.stats(), (0, 2));
}

#[test]
fn disabled_cache_holds_nothing() {
    let (_dir, root) = setup();
    let mut c = FileCache::new(0, Duration::from_secs(60));
    let now = Instant::now();
    c.lookup(&root, b"/a.txt", now, &mut Vec::new());
    c.lookup(&root, b"/a.txt", now, &mut Vec::new());
    assert_eq!(c.stats(), (0, 2));
}

#[test]
fn sidecars_cached_apart_from_files() {
    let (dir, root) = setup();
    fs::write(dir.path().join("a.txt.gz"), "zipped").unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::write(dir.path().join("d/index.html.gz"), "index").unwrap();
    fs::write(dir.path().join("d/.gz"), "a dotfile named .gz").unwrap();
    let mut c = FileCache::new(8, Duration::from_secs(60));
    let now = Instant::now();
    let (s, key) = (&mut Vec::new(), &mut Vec::new());
    assert_eq!(
        len_of(c.lookup_sidecar(&root, b"/a.txt", ".gz", now, s, key)),
        6
    );
    assert_eq!(len_of(c.lookup(&root, b"/a.txt", now, s)), 3);
    assert_eq!(
        len_of(c.lookup_sidecar(&root, b"/a.txt?x", ".gz", now, s, key)),
        6
    );
    assert_eq!(c.stats(), (1, 2));
    assert_eq!(
        len_of(c.lookup_sidecar(&root, b"/d/", ".gz", now, s, key)),
        5
    );
    assert!(matches!(
        c.lookup(&root, b"/d/", now, s),
        Found::Directory { .. }
    ));
    assert!(matches!(
        c.lookup_sidecar(&root, b"/a.txt", ".br", now, s, key),
        Found::NotFound
    ));
    assert_eq!(c.map.len(), 3);
}

#[test]
fn an_unchanged_file_is_confirmed_without_being_opened_again() {
    let (dir, root) = setup();
    let mut c = FileCache::new(8, Duration::from_secs(1));
    let t0 = Instant::now();
    let s = &mut Vec::new();
    let file = |f: Found| match f {
        Found::File { file, .. } => file,
        _ => panic!("expected a file"),
    };
    let first = file(c.lookup(&root, b"/a.txt", t0, s));
    // Expired but the same version: the same open file, trusted for another period.
    let again = file(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(2), s));
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(c.stats(), (1, 1));
    // Replaced by rename (another inode): opened anew.
    fs::write(dir.path().join("b.txt"), "one").unwrap();
    fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
    let next = file(c.lookup(&root, b"/a.txt", t0 + Duration::from_secs(4), s));
    assert!(!Arc::ptr_eq(&first, &next));
    assert_eq!(c.stats(), (1, 2));
}

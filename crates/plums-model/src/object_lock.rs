//! The writer lock of a model in an object store: the object `<prefix>/.pmf.lock`, created
//! only if absent (`If-None-Match: *`), holding who took it and until when. One writer at a
//! time saves a model; readers ignore the lock.
//!
//! The holder renews its lease (a conditional overwrite, `If-Match`, every
//! [`RENEW_EVERY`]) while it saves, and deletes the object when done. A lock is taken over
//! (a conditional overwrite of the version read, so that two writers cannot both take it) when
//! its holder is provably gone: on this machine (same host name, boot and process namespace)
//! a process that no longer runs, anywhere a lease that expired more than [`CLOCK_SKEW`] ago;
//! or this very process's (a lock whose delete failed: threads of one process take a model's
//! lock in turn, through a reservation in the process). After taking over a gone writer's lock,
//! a writer waits [`SETTLE`] for the requests that writer sent last, and checks the lock is
//! still its own. A holder that finds its lease taken over stops before committing.
//!
//! Conditional writes are what make this lock, and the commit of a save, safe. A store that
//! ignores them (it accepts a second create-only write of the lock) is refused with a
//! [`StorageErrorKind::NoConditionalWrites`] error, unless the storage option
//! `conditional_writes=false` accepts that the last writer wins (then no lock is taken).
//!
//! Used by writers only.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, LockHolder, Result, StorageErrorKind};
use crate::paths::LOCK_FILE;
use crate::storage::{Remote, WriteMode};

/// How long a lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(60);
/// How often the holder renews it.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How far another machine's clock may be off: a lease is taken over only this long after it
/// expired.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A held lock of a remote model; released (the object deleted) by [`ObjectLock::release`] or
/// when dropped.
pub(crate) struct ObjectLock {
    remote: Remote,
    state: Arc<Held>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
    /// Dropped after the fields above (after the lock object's delete, in `Drop`).
    _reserved: Reservation,
}

struct Held {
    etag: Mutex<Option<String>>,
    lost: AtomicBool,
}

/// The identity of this process, as written in the lock object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Identity {
    pid: u32,
    host: String,
    boot: String,
    pidns: String,
    start: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The start time of process `pid` (clock ticks since boot), if it runs.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on: start is 22.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_owned)
}

impl Identity {
    fn of_this_process() -> Identity {
        let pid = std::process::id();
        Identity {
            pid,
            host: rustix::system::uname().nodename().to_string_lossy().into_owned(),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start: start_time(pid).unwrap_or_default(),
        }
    }

    /// Whether `self` is a process on this machine (same host, boot and pid namespace) that
    /// no longer runs (or whose pid now names another process).
    fn is_gone_from_here(&self, here: &Identity) -> bool {
        let same_machine =
            !self.boot.is_empty() && self.host == here.host && self.boot == here.boot && self.pidns == here.pidns;
        same_machine && start_time(self.pid).is_none_or(|s| s != self.start)
    }
}

/// The text of the lock object.
fn lock_text(me: &Identity, since: u64, expires: u64) -> Vec<u8> {
    format!(
        "pid {} on {} since unix time {since}\nexpires {expires}\nboot {}\npidns {}\nstart {}\n",
        me.pid, me.host, me.boot, me.pidns, me.start
    )
    .into_bytes()
}

/// What a lock object says: its holder, its identity, when its lease expires.
fn parse_lock(text: &str) -> (LockHolder, Identity, Option<u64>) {
    let holder = LockHolder::parse(text);
    let field = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' '))).map(|v| v.trim().to_owned())
    };
    let identity = Identity {
        pid: holder.pid.unwrap_or(0),
        host: holder.host.clone().unwrap_or_default(),
        boot: field("boot").unwrap_or_default(),
        pidns: field("pidns").unwrap_or_default(),
        start: field("start").unwrap_or_default(),
    };
    (holder, identity, field("expires").and_then(|e| e.parse().ok()))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn precondition(e: &Error) -> bool {
    e.storage_kind() == Some(StorageErrorKind::PreconditionFailed)
}

/// How long a writer that took over the lock of a gone writer waits before it relies on it: a
/// request the gone writer sent just before it died (a commit, the delete of its lock) may
/// still reach the store.
const SETTLE: Duration = Duration::from_secs(1);

/// The locks this process holds or is taking (by URL): two threads of one process never save
/// one model at once, and a lock object left by this very process (its delete failed with the
/// store) is known to be stale.
fn reserved_here() -> &'static Mutex<HashSet<String>> {
    static RESERVED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RESERVED.get_or_init(Default::default)
}

/// This process's reservation of one lock URL; given back when dropped.
struct Reservation(String);

impl Reservation {
    /// Reserve `url`, waiting while another thread of this process holds it, until `deadline`.
    fn take(url: String, started: Instant, timeout: Duration, me: &Identity) -> Result<Reservation> {
        let mut pause = Duration::from_millis(5);
        loop {
            if reserved_here().lock().unwrap_or_else(|e| e.into_inner()).insert(url.clone()) {
                return Ok(Reservation(url));
            }
            let waited = started.elapsed();
            if waited >= timeout {
                let holder = LockHolder { pid: Some(me.pid), host: Some(me.host.clone()), since: None };
                return Err(Error::Locked { path: url.into(), holder, waited });
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        reserved_here().lock().unwrap_or_else(|e| e.into_inner()).remove(&self.0);
    }
}

/// Stores (clients) already seen to honour conditional writes in this process.
fn checked_stores() -> &'static Mutex<HashSet<usize>> {
    static CHECKED: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

impl ObjectLock {
    /// Take the lock of the model at `remote`, waiting up to `timeout` for another writer;
    /// `None` when the options accept last-writer-wins (`conditional_writes=false`). A lock
    /// still held after `timeout` is an [`Error::Locked`] naming its holder.
    pub(crate) fn acquire(remote: &Remote, timeout: Duration) -> Result<Option<ObjectLock>> {
        if !remote.options.conditional_writes() {
            return Ok(None);
        }
        let me = Identity::of_this_process();
        let started = Instant::now();
        let reserved = Reservation::take(remote.url_of(LOCK_FILE), started, timeout, &me)?;
        let mut pause = Duration::from_millis(20);
        loop {
            let since = now_secs();
            let text = lock_text(&me, since, since + LEASE.as_secs());
            match remote.put(LOCK_FILE, text.clone(), WriteMode::Create) {
                Ok(etag) => return Self::held(remote, etag, &me, since, reserved).map(Some),
                Err(e) if precondition(&e) => {}
                Err(e) => return Err(e),
            }
            // Held by someone: by whom, and are they gone?
            let Some(found) = remote.head_opt(LOCK_FILE)? else { continue };
            let bytes = match remote.read_small(LOCK_FILE, found.etag.as_deref(), 4096) {
                Ok(b) => b,
                Err(e) if precondition(&e) || e.storage_kind() == Some(StorageErrorKind::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let (holder, identity, expires) = parse_lock(&String::from_utf8_lossy(&bytes));
            // An empty lock object is never a live one (a writer creates its lock whole): a
            // local folder's `.pmf.lock` uploaded with the model.
            let expired = bytes.is_empty() || expires.is_some_and(|t| now_secs() > t + CLOCK_SKEW.as_secs());
            // This very process: a lock whose delete failed (this process holds the reservation).
            let mine = identity == me;
            if let (true, Some(etag)) = (expired || mine || identity.is_gone_from_here(&me), found.etag.as_deref()) {
                match remote.put(LOCK_FILE, text, WriteMode::Update(etag)) {
                    Ok(etag) if mine => return Self::held(remote, etag, &me, since, reserved).map(Some),
                    Ok(etag) => {
                        // What the gone writer sent last may still arrive: wait, then check
                        // that the lock is still the one just written.
                        std::thread::sleep(SETTLE);
                        if remote.head_opt(LOCK_FILE)?.is_some_and(|now| now.etag == etag) {
                            return Self::held(remote, etag, &me, since, reserved).map(Some);
                        }
                        continue;
                    }
                    Err(e) if precondition(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::Locked { path: remote.url_of(LOCK_FILE).into(), holder, waited });
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The lock just written with `etag`: check once per store that a second create-only
    /// write is refused, then start renewing the lease.
    fn held(
        remote: &Remote,
        etag: Option<String>,
        me: &Identity,
        since: u64,
        reserved: Reservation,
    ) -> Result<ObjectLock> {
        let state = Arc::new(Held { etag: Mutex::new(etag), lost: AtomicBool::new(false) });
        let mut lock = ObjectLock { remote: remote.clone(), state, stop: None, renewer: None, _reserved: reserved };
        let store_id = Arc::as_ptr(remote.client()) as *const () as usize;
        if !checked_stores().lock().unwrap_or_else(|e| e.into_inner()).contains(&store_id) {
            match remote.put(LOCK_FILE, lock_text(me, since, since + LEASE.as_secs()), WriteMode::Create) {
                Err(e) if precondition(&e) => {
                    checked_stores().lock().unwrap_or_else(|e| e.into_inner()).insert(store_id);
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    return Err(Error::Storage {
                        location: remote.url.to_string(),
                        operation: "cannot save safely".to_owned(),
                        kind: StorageErrorKind::NoConditionalWrites,
                        message: "the store accepted a create-only write (If-None-Match: *) over an existing object: it ignores conditional writes, so two writers could overwrite each other's saves; set the storage option conditional_writes=false to accept that the last writer wins".to_owned(),
                    });
                }
            }
        }
        let (tx, rx) = mpsc::channel::<()>();
        let (remote2, state2, me2) = (remote.clone(), lock.state.clone(), me.clone());
        lock.renewer = Some(std::thread::spawn(move || renew(&remote2, &state2, &me2, since, &rx)));
        lock.stop = Some(tx);
        Ok(lock)
    }

    /// Whether the lock is still ours (its lease was not taken over).
    pub(crate) fn check(&self) -> Result<()> {
        if self.state.lost.load(Ordering::SeqCst) {
            return Err(Error::ConcurrentChange { path: self.remote.url.to_string().into() });
        }
        Ok(())
    }

    /// Stop renewing and delete the lock object (unless another writer took it over).
    pub(crate) fn release(mut self) -> Result<()> {
        self.stop_renewing();
        if self.state.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.state.lost.store(true, Ordering::SeqCst);
        self.remote.delete(LOCK_FILE)
    }

    fn stop_renewing(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        self.stop_renewing();
        if !self.state.lost.load(Ordering::SeqCst) {
            let _ = self.remote.delete(LOCK_FILE);
        }
    }
}

/// The lock object of the model at `remote` as [`ObjectLock::acquire`] would judge it, without
/// taking it (`pmf gc` and its dry runs): `None` when there is none.
pub(crate) struct LockState {
    /// Who holds it, as the object says.
    pub holder: LockHolder,
    /// The object's size in bytes.
    pub size: u64,
    /// Whether its holder is provably gone: a writer would take the lock over.
    pub gone: bool,
}

/// Read the lock object of the model at `remote` (a `HEAD`, a `GET`; nothing is written).
pub(crate) fn inspect(remote: &Remote) -> Result<Option<LockState>> {
    let me = Identity::of_this_process();
    for _ in 0..3 {
        let Some(found) = remote.head_opt(LOCK_FILE)? else { return Ok(None) };
        let bytes = match remote.read_small(LOCK_FILE, found.etag.as_deref(), 4096) {
            Ok(b) => b,
            Err(e) if precondition(&e) || e.storage_kind() == Some(StorageErrorKind::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let (found_holder, identity, expires) = parse_lock(&String::from_utf8_lossy(&bytes));
        let expired = bytes.is_empty() || expires.is_some_and(|t| now_secs() > t + CLOCK_SKEW.as_secs());
        // This very process's lock is stale unless one of its threads holds it now.
        let reserved = reserved_here().lock().unwrap_or_else(|e| e.into_inner()).contains(&remote.url_of(LOCK_FILE));
        let gone = expired || (identity == me && !reserved) || identity.is_gone_from_here(&me);
        return Ok(Some(LockState { holder: found_holder, size: found.size, gone }));
    }
    // Replaced three times while it was read: a writer renews it.
    Ok(Some(LockState { holder: LockHolder::default(), size: 0, gone: false }))
}

/// Renew the lease every [`RENEW_EVERY`] until told to stop (the sender is dropped); mark the
/// lock lost if another writer took it over, or if it could not be renewed before it expired.
fn renew(remote: &Remote, state: &Held, me: &Identity, since: u64, stop: &mpsc::Receiver<()>) {
    let mut expires = since + LEASE.as_secs();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(RENEW_EVERY) {
        let Some(etag) = state.etag.lock().unwrap_or_else(|e| e.into_inner()).clone() else { continue };
        let next = now_secs() + LEASE.as_secs();
        match remote.put(LOCK_FILE, lock_text(me, since, next), WriteMode::Update(&etag)) {
            Ok(new) => {
                *state.etag.lock().unwrap_or_else(|e| e.into_inner()) = new;
                expires = next;
            }
            Err(e) if precondition(&e) => {
                state.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) if now_secs() >= expires => {
                state.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_text_says_who_and_until_when() {
        let me = Identity::of_this_process();
        let text = String::from_utf8(lock_text(&me, 100, 160)).unwrap();
        let (holder, identity, expires) = parse_lock(&text);
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.since, Some(100));
        assert_eq!(expires, Some(160));
        assert_eq!(identity, me);
        assert!(!identity.is_gone_from_here(&me), "this process runs");
    }

    #[test]
    fn a_finished_process_on_this_machine_is_gone_and_others_are_not_judged() {
        let me = Identity::of_this_process();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or_default();
        child.wait().unwrap();
        let dead = Identity { pid, start, ..me.clone() };
        assert!(dead.is_gone_from_here(&me));
        // A reused pid: another start time.
        let reused = Identity { start: "1".into(), ..me.clone() };
        assert!(reused.is_gone_from_here(&me));
        // Another machine (or a lock written without identity): only its lease can expire.
        assert!(!Identity { host: "elsewhere".into(), ..dead.clone() }.is_gone_from_here(&me));
        assert!(!Identity { boot: String::new(), ..dead }.is_gone_from_here(&me));
    }
}

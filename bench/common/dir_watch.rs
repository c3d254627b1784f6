//! Arrival times of files in a directory, from inotify: what `smtp-sink -d` writes, one file per
//! message, closed at the end of its data.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Watches a directory for files closed after writing (inotify IN_CLOSE_WRITE) and records, for
/// each file name, the monotonic time at which this thread woke up for the event.
pub fn watch_closes(dir: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(String, Instant)>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls on a descriptor this function owns; the buffer outlives each read.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1 failed");
    let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CLOSE_WRITE) };
    assert!(wd >= 0, "inotify_add_watch failed");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd we own.
            if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                continue;
            }
            // SAFETY: reads into our buffer, within its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let at = Instant::now();
            if n <= 0 {
                continue;
            }
            let mut offset = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while offset + header <= n as usize {
                // SAFETY: the kernel wrote a whole event at `offset`; read_unaligned copes with alignment.
                let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[offset..].as_ptr().cast()) };
                let name = &buf[offset + header..offset + header + event.len as usize];
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                seen.push((String::from_utf8_lossy(name).into_owned(), at));
                offset += header + event.len as usize;
            }
        }
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(fd) };
        seen
    })
}

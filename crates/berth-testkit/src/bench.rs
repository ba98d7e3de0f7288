//! What the daemon benchmarks (`svcd-bench`, `collector-bench`, `cluster-bench` in berth-bench)
//! share: the daemon under measure with its scratch directory, and its CPU time and memory.

use std::path::PathBuf;
use std::process::Child;

use anyhow::{Context as _, Result};

/// A daemon a benchmark started and the scratch directory it runs in: on drop the daemon is
/// killed and waited for, and the directory removed.
#[derive(Debug)]
pub struct Daemon {
    /// The daemon.
    pub child: Child,
    /// Its scratch directory.
    pub root: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn process(pid: u32) -> Result<procfs::process::Process> {
    Ok(procfs::process::Process::new(i32::try_from(pid)?)?)
}

/// The CPU time `pid` used (user + system), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = process(pid)?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// The resident memory of `pid` now and at its peak (VmRSS, VmHWM), in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let status = process(pid)?.status()?;
    let rss = status.vmrss.context("no VmRSS")?;
    Ok((rss, status.vmhwm.context("no VmHWM")?))
}

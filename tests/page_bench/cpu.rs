//! CPU time of a browser's processes, sampled from /proc every few
//! milliseconds, so a page load's own cost (the renderer's main thread
//! running) can be told from the machine's (the same thread ready but
//! waiting for a core, which other work on a loaded machine causes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sums over the browser's processes at one moment; times in ms.
#[derive(Clone, Copy, Default, Debug)]
pub struct Sample {
    /// Wall clock, ms since the epoch (as the page's `performance.timeOrigin`).
    pub at: f64,
    /// Renderers' main threads: running, and ready but not running.
    pub main_run: f64,
    pub main_wait: f64,
    /// Every thread of every process (ticks: 10 ms per process).
    pub all: f64,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// The fields of /proc/PID/stat after the command's name.
fn stat(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let tail = &s[s.rfind(')')? + 1..];
    Some(tail.split_whitespace().map(str::to_string).collect())
}

/// Every process descending from `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = stat(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

impl Sampler {
    pub fn start(root: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            // SAFETY: sysconf reads a constant.
            let tick = 1000.0 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            // pid -> (renderer, main run, main wait, all); exited ones keep
            // their last values so the sums never fall.
            let mut known: HashMap<u32, (bool, f64, f64, f64)> = HashMap::new();
            let mut round = 0u32;
            while !s.load(Ordering::Relaxed) {
                if round.is_multiple_of(5) {
                    for pid in descendants(root) {
                        known.entry(pid).or_insert_with(|| {
                            let cmd =
                                std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                            let renderer =
                                String::from_utf8_lossy(&cmd).contains("--type=renderer");
                            (renderer, 0.0, 0.0, 0.0)
                        });
                    }
                }
                round += 1;
                let mut sum = Sample {
                    at: now_ms(),
                    ..Sample::default()
                };
                for (pid, v) in known.iter_mut() {
                    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
                        let f: Vec<f64> = s
                            .split_whitespace()
                            .filter_map(|x| x.parse().ok())
                            .collect();
                        if f.len() >= 2 {
                            (v.1, v.2) = (f[0] / 1e6, f[1] / 1e6);
                        }
                    }
                    if let Some(f) = stat(*pid) {
                        let t =
                            |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
                        v.3 = (t(11) + t(12)) * tick;
                    }
                    if v.0 {
                        sum.main_run += v.1;
                        sum.main_wait += v.2;
                    }
                    sum.all += v.3;
                }
                out.lock().unwrap_or_else(|p| p.into_inner()).push(sum);
                std::thread::sleep(Duration::from_millis(4));
            }
        });
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// The sums at `at` (ms since the epoch): the last sample taken by then.
    pub fn at(&self, at: f64) -> Sample {
        let all = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .take_while(|s| s.at <= at)
            .last()
            .or(all.first())
            .copied()
            .unwrap_or_default()
    }

    /// What the browser spent from `from` to `to` (ms since the epoch).
    pub fn between(&self, from: f64, to: f64) -> Sample {
        let (a, b) = (self.at(from), self.at(to));
        Sample {
            at: b.at - a.at,
            main_run: b.main_run - a.main_run,
            main_wait: b.main_wait - a.main_wait,
            all: b.all - a.all,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

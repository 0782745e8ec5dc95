//! The signals that stop a run early with a checkpoint: Ctrl-C (SIGINT), SIGTERM (what
//! schedulers such as Slurm, Kubernetes and systemd send before SIGKILL) and SIGUSR1
//! (which `mpirun` forwards to every process). Each sets a flag that the training loop
//! reads after every step; a second stop signal exits at once, which loses nothing
//! either, since checkpoints are replaced atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Exit status of a run stopped by SIGTERM (128 + SIGTERM).
pub const TERMINATED: u8 = 143;

/// The flags the stop signals set.
pub struct StopSignals {
    /// Set by any stop signal: the run stops at the next step and saves.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGTERM alone, for the exit status.
    terminated: Arc<AtomicBool>,
}

impl StopSignals {
    /// Installs the handlers. Under `mpirun`, Ctrl-C reaches only the launcher, which
    /// ends every process at once; SIGTERM and SIGUSR1 sent to `mpirun` are forwarded
    /// to every process, which then stop together at the same step.
    pub fn install() -> Result<Self, String> {
        let signals = StopSignals {
            stop: Arc::new(AtomicBool::new(false)),
            terminated: Arc::new(AtomicBool::new(false)),
        };
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGTERM, SIGUSR1};
            use signal_hook::flag;
            let cannot =
                |err: std::io::Error| format!("cannot install the SIGTERM and SIGUSR1 handlers: {err}");
            // Registered before the flag is set, so it fires on the second signal only.
            flag::register_conditional_shutdown(SIGTERM, TERMINATED.into(), signals.stop.clone())
                .map_err(cannot)?;
            flag::register(SIGTERM, signals.terminated.clone()).map_err(cannot)?;
            flag::register(SIGTERM, signals.stop.clone()).map_err(cannot)?;
            flag::register(SIGUSR1, signals.stop.clone()).map_err(cannot)?;
        }
        let stop = signals.stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                eprintln!("interrupted twice: exiting without saving");
                std::process::exit(INTERRUPTED.into());
            }
        })
        .map_err(|err| format!("cannot install the Ctrl-C handler: {err}"))?;
        Ok(signals)
    }

    /// The exit status of a run that a signal paused with a checkpoint: 143 after
    /// SIGTERM on every process, so that a scheduler sees the job ended by its signal;
    /// otherwise 130 for one process (Ctrl-C), and 0 for a data-parallel pause
    /// (SIGUSR1, which `mpirun` then reports without alarm).
    pub fn exit_status(&self, processes: usize) -> u8 {
        if self.terminated.load(Ordering::Relaxed) {
            TERMINATED
        } else if processes == 1 {
            INTERRUPTED
        } else {
            0
        }
    }
}

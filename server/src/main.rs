//! The `strata` binary. See `strata --help`.

use clap::Parser;

/// mimalloc: ingest and queries allocate and free many short-lived buffers of all sizes;
/// the system allocator returns large ones to the kernel and pays page faults to get them
/// back (measured: ~10% of flush CPU in `clear_page`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use strata_server::config::{Cli, Command};
use strata_server::{Node, sql_client, telemetry};

fn main() {
    strata_ingest::process::no_transparent_huge_pages();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Sql(args) => sql_client::main(args).await,
            Command::Keys(command) => strata_server::keys::main(command).await,
        }
    });
    std::process::exit(code);
}

async fn serve(args: strata_server::config::ServeArgs) -> i32 {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    telemetry::init_logging(config.log_format, &config.log_level);
    // Take over SIGINT/SIGTERM before starting: a signal that arrives while the node starts
    // must stop it gracefully too, not kill it with the default action.
    let signals = ShutdownSignals::install();
    // SIGHUP reloads the alerter configuration and the rule files (it would otherwise end
    // the process).
    let mut reloads = ReloadSignal::install();
    raise_fd_limit();
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return 1;
        }
    };
    let shutdown = signals.wait();
    tokio::pin!(shutdown);
    let signal = loop {
        tokio::select! {
            signal = &mut shutdown => break signal,
            () = reloads.recv() => match node.reload().await {
                Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: reload refused; the configuration in force is kept"
                ),
            },
        }
    };
    tracing::info!(
        signal,
        "shutting down: draining requests, flushing the write buffer"
    );
    node.shutdown().await;
    tracing::info!("stopped");
    0
}

/// Raises the soft limit on open files to the hard limit: every client connection is a file
/// descriptor, and the usual soft limit (1,024) is far below what a node serving thousands of
/// exporters holds. Logs the limit in effect.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        if ok && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        if ok {
            tracing::info!(open_files = limit.rlim_cur, "open-file limit");
        }
    }
}

/// SIGINT and SIGTERM handlers, installed when this is created.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for either; returns its name.
    async fn wait(mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.interrupt) => "SIGINT",
                () = recv(&mut self.terminate) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The SIGHUP handler, installed when this is created.
struct ReloadSignal {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl ReloadSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next SIGHUP (never, where there are none).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(hangup) = self.hangup.as_mut()
            && hangup.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

//! Background workers: named, supervised loops with a handle, started by the server's assembly
//! and stopped in order at shutdown.
//!
//! A worker is a function that returns a future running until it is told to stop (its
//! [`CancellationToken`]) or fails. A worker that fails or panics is logged and started again
//! after a growing pause (1 s, doubling to 60 s), so one bad pass never ends monitoring or
//! scaling for good; a clean return ends it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a worker's run returns: `Ok` when it stopped as asked, an error to be restarted.
pub type WorkerResult = Result<(), String>;

type Factory = Box<
    dyn Fn(CancellationToken) -> Pin<Box<dyn Future<Output = WorkerResult> + Send>> + Send + Sync,
>;

/// A running worker.
struct Running {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// The server's workers, stopped in reverse order of their start.
#[derive(Default)]
pub struct Workers {
    running: Vec<Running>,
}

impl Workers {
    /// Starts a supervised worker named `name`; `run` is called again after each failure.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = WorkerResult> + Send + 'static,
    {
        let factory: Factory = Box::new(move |stop| Box::pin(run(stop)));
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(supervise(name, factory, token));
        tracing::info!(worker = name, "worker started");
        self.running.push(Running { name, stop, handle });
    }

    /// The names of the workers, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|r| r.name).collect()
    }

    /// Stops every worker, the last started first, waiting up to `grace` for each.
    pub async fn stop(self, grace: Duration) {
        for w in self.running.into_iter().rev() {
            w.stop.cancel();
            match tokio::time::timeout(grace, w.handle).await {
                Ok(_) => tracing::info!(worker = w.name, "worker stopped"),
                Err(_) => tracing::warn!(worker = w.name, "worker did not stop in time"),
            }
        }
    }
}

async fn supervise(name: &'static str, factory: Factory, stop: CancellationToken) {
    let mut pause = Duration::from_secs(1);
    loop {
        let run = tokio::spawn(factory(stop.clone()));
        let outcome = tokio::select! {
            r = run => r,
            // Told to stop: give the run a moment to end by itself, then leave it.
            _ = stop.cancelled() => return,
        };
        match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::error!(
                worker = name,
                "worker failed: {e}; restarting in {}s",
                pause.as_secs()
            ),
            Err(e) => tracing::error!(
                worker = name,
                "worker panicked: {e}; restarting in {}s",
                pause.as_secs()
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// Runs `tick` every `period` until `stop` is cancelled; a tick's error is logged and the loop
/// goes on (a failing pass is retried at the next tick). The shape of most workers.
pub async fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    stop: CancellationToken,
    mut tick: F,
) -> WorkerResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), crate::core::CoreError>>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is immediate; workers start their work one period in.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return Ok(()),
        }
        if let Err(e) = tick().await {
            tracing::warn!(worker = name, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_failing_worker_is_restarted_and_all_stop_in_order() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut workers = Workers::default();
        let r = runs.clone();
        workers.spawn("flaky", move |stop| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err("boom".to_string());
                }
                stop.cancelled().await;
                Ok(())
            }
        });
        workers.spawn("panicky", |_stop| async {
            panic!("a bug");
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "failed twice, then ran");
        assert_eq!(workers.names(), ["flaky", "panicky"]);
        workers.stop(Duration::from_secs(1)).await;
    }
}

//! One loopback HTTP listener that can be taken down and brought back on the same port, so
//! tests see real refused connections rather than an error page.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub(crate) struct Listener {
    pub addr: SocketAddr,
    router: Router,
    running: Mutex<Option<Running>>,
}

impl Listener {
    /// Serves `router` on an already bound listener (binding first lets the caller learn the
    /// address before building routers that embed it).
    pub(crate) fn serve(listener: TcpListener, router: Router) -> Self {
        let addr = listener.local_addr().unwrap();
        let me = Self {
            addr,
            router,
            running: Mutex::new(None),
        };
        me.spawn(listener);
        me
    }

    fn spawn(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = self.router.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { stop, task });
    }

    /// Stops accepting and closes idle keep-alive connections (graceful shutdown does both),
    /// so a client's pooled connection cannot keep talking to a "down" server.
    pub(crate) async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Running { stop, mut task }) = running {
            let _ = stop.send(());
            // In-flight requests may finish; anything slower is cut off.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn start(&self) {
        if self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        // The port was ours a moment ago; retry briefly in case the OS holds it.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.spawn(listener);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(running) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = running.stop.send(());
            running.task.abort();
        }
    }
}

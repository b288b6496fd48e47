//! A loopback TCP proxy in front of PostgreSQL that a test can take down and bring back, to
//! see how the relay behaves when its database disappears.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub(crate) struct DbProxy {
    pub port: u16,
    /// Cancelled when the proxy goes down; replaced by a fresh token when it comes back.
    epoch: Arc<Mutex<Option<CancellationToken>>>,
    /// Cancelled to black-hole the connections opened under it: open, but silent.
    stall: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl DbProxy {
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let epoch = Arc::new(Mutex::new(Some(CancellationToken::new())));
        let stall = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let accept_epoch = epoch.clone();
        let accept_stall = stall.clone();
        let accept_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = accept_stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => continue,
                    },
                };
                let current = accept_epoch.lock().unwrap().clone();
                let Some(token) = current else {
                    drop(client);
                    continue;
                };
                let stalled = accept_stall.lock().unwrap().clone();
                tokio::spawn(pipe(client, target, token, stalled));
            }
        });
        Self {
            port,
            epoch,
            stall,
            stop,
        }
    }

    /// Every open connection stops passing data but stays open, like a peer that vanished
    /// without a FIN; connections opened afterwards work.
    pub(crate) fn stall(&self) {
        let mut stall = self.stall.lock().unwrap();
        stall.cancel();
        *stall = CancellationToken::new();
    }

    /// Drops every open connection and refuses new ones.
    pub(crate) fn down(&self) {
        if let Some(token) = self.epoch.lock().unwrap().take() {
            token.cancel();
        }
    }

    pub(crate) fn up(&self) {
        let mut epoch = self.epoch.lock().unwrap();
        if epoch.is_none() {
            *epoch = Some(CancellationToken::new());
        }
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.down();
        self.stop.cancel();
    }
}

async fn pipe(
    mut client: TcpStream,
    target: SocketAddr,
    token: CancellationToken,
    stalled: CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = token.cancelled() => {}
        _ = stalled.cancelled() => token.cancelled().await,
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}

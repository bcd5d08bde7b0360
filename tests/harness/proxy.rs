//! A TCP relay between a worker process and its coordinator that can be cut, so a
//! network partition can be staged on 127.0.0.1 the way `docker network disconnect`
//! stages one between containers.
//!
//! While cut, nothing moves either way but every socket stays open: like a real
//! partition, no FIN or RST tells either side, so each must notice the silence itself.
//! New connections are accepted and then ignored. Healing drops every connection that
//! lived through the cut (the peer's late packets would meet a RST) and relays new
//! ones again.

use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    cut: watch::Sender<bool>,
    _runtime: std::thread::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port and relays to `target`. It runs on its own
    /// thread so that a test blocked in a child process's `wait` never stalls it.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, cut_rx) = watch::channel(false);
        let runtime = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut_rx.has_changed().is_err() {
                        return; // the Proxy was dropped
                    }
                    tokio::spawn(relay(client, target, cut_rx.clone()));
                }
            });
        });
        Proxy {
            port,
            cut,
            _runtime: runtime,
        }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    if *cut.borrow_and_update() {
        // Accepted during the cut: hold it silently until the heal, then drop it.
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.shutdown().await;
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let pipe = async {
        tokio::select! {
            _ = tokio::io::copy(&mut client_read, &mut upstream_write) => {}
            _ = tokio::io::copy(&mut upstream_read, &mut client_write) => {}
        }
    };
    let cut_happened = tokio::select! {
        _ = pipe => false,
        _ = cut.wait_for(|c| *c) => true,
    };
    if cut_happened {
        // Stop relaying but keep both sockets open until the heal.
        let _ = cut.wait_for(|c| !*c).await;
    }
}

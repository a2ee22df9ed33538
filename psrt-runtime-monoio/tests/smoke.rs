//! The monoio server over real loopback sockets: login, subscribe,
//! publish, delivery, graceful stop, Unix-socket cleanup.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use psrt_proto::broker::AuthConfig;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_monoio::server::Server;

fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read");
    buf
}

#[test]
fn publish_is_delivered_over_loopback() {
    let dir = std::env::temp_dir().join(format!("psrt-monoio-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("psrt.sock");
    let mut spec = ServerSpec::open("127.0.0.1:0".parse().unwrap());
    spec.unix = vec![socket_path.clone()];
    let server = Server::bind(spec).unwrap();
    let addr = server.addrs().tcp[0];
    let handle = server.handle();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(server.run()));

    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let mut control = connect();
    control
        .write_all(&[0xEE, 0xAA, 0x00, 1, 0, 0, 0, 0])
        .unwrap();
    let reply = read_exact(&mut control, 36);
    assert_eq!(&reply[..4], &[0xEE, 0xAA, 0x01, 0x00]);
    let token = &reply[4..];

    let mut data = connect();
    data.write_all(&[0xEE, 0xAB, 0x00]).unwrap();
    data.write_all(token).unwrap();
    data.write_all(&[5]).unwrap();
    assert_eq!(read_exact(&mut data, 5), vec![0xEE, 0xAB, 0x01, 0x00, 0x01]);

    control
        .write_all(&[0x02, 3, 0, 0, 0, b'a', b'/', b'#'])
        .unwrap();
    assert_eq!(read_exact(&mut control, 1), vec![0x01]);
    let mut publish = vec![0x01, 0x7F, 8, 0, 0, 0];
    publish.extend_from_slice(b"a/b\0xyzw");
    control.write_all(&publish).unwrap();
    assert_eq!(read_exact(&mut control, 1), vec![0x01]);
    let mut expected = vec![0x01, 0x7F, 8, 0, 0, 0];
    expected.extend_from_slice(b"a/b\0xyzw");
    assert_eq!(read_exact(&mut data, expected.len()), expected);

    control.write_all(&[0xFF]).unwrap();
    assert_eq!(read_exact(&mut control, 1), vec![0x01]);
    assert!(socket_path.exists(), "unix socket created");
    handle.stop();
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server stops within the drain timeout")
        .expect("server ran");
    assert!(!socket_path.exists(), "unix socket removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn taken_port_fails_to_bind() {
    let first = Server::bind(ServerSpec::open("127.0.0.1:0".parse().unwrap())).unwrap();
    let taken = first.addrs().tcp[0];
    assert!(Server::bind(ServerSpec::open(taken)).is_err());
}

#[monoio::test(timer_enabled = true)]
async fn async_reload_applies_rules_or_reports_the_error() {
    let mut spec = ServerSpec::open("127.0.0.1:0".parse().unwrap());
    spec.reload = Some(Arc::new(|| Ok(AuthConfig::open())));
    let server = Server::bind(spec).unwrap();
    assert_eq!(server.handle().reload().await, Ok(()));

    let mut spec = ServerSpec::open("127.0.0.1:0".parse().unwrap());
    spec.reload = Some(Arc::new(|| Err(String::from("acl.yml: bad mask"))));
    let server = Server::bind(spec).unwrap();
    assert_eq!(
        server.handle().reload().await,
        Err(String::from("acl.yml: bad mask"))
    );
}

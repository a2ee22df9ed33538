//! Reload and graceful stop.

use super::subscriber;
use crate::Start;
use crate::client::{CONTROL, Conn, ERR_ACCESS, IO_TIMEOUT, OK, Session, login_frame};
use crate::fixture::{Server, SwappableAuth, auth, loopback, spec};

/// After a reload that removes a user, that user's live session gets
/// ERR_ACCESS on publish and a new login is refused.
pub fn reload_revokes_publish(start: Start) {
    let before = "
_: {pub: ['#'], sub: ['#']}
u: {pub: ['#'], sub: ['#']}
";
    let rules = SwappableAuth::new(auth(true, before, &[("u", "pw")]));
    let mut spec = spec();
    spec.auth = auth(true, before, &[("u", "pw")]);
    spec.reload = Some(rules.reloader());
    let server = Server::start(start, spec);
    let mut user = Session::login(server.tcp(), "u", "pw");
    assert_eq!(user.publish("r/x", b"1"), OK, "publish before reload");
    rules.set(auth(true, "_: {pub: ['#'], sub: ['#']}", &[("u", "pw")]));
    server.reload();
    assert_eq!(
        user.publish("r/x", b"2"),
        ERR_ACCESS,
        "publish after reload"
    );
    let mut again = Conn::tcp(server.tcp());
    again.greet(CONTROL);
    again.send(&login_frame("u", "pw"));
    again.expect_closed(IO_TIMEOUT, "login of a removed user");
}

/// Messages of the graceful-stop case and their size.
const STOP_MESSAGES: usize = 50;
const STOP_PAYLOAD: usize = 64 * 1024;

/// Messages accepted before a graceful stop still reach a live
/// subscriber that reads only after the stop began.
pub fn graceful_stop_delivers_accepted(start: Start) {
    let server = Server::start(start, spec());
    let (mut sub, mut data) = subscriber(&server);
    assert_eq!(sub.subscribe(&["g/x"]), OK, "subscribe");
    let mut publisher = Session::anonymous(server.tcp());
    for i in 0..STOP_MESSAGES {
        let payload = vec![u8::try_from(i).expect("small"); STOP_PAYLOAD];
        assert_eq!(publisher.publish("g/x", &payload), OK, "publish {i}");
    }
    let stopper = std::thread::spawn(move || server.stop());
    for i in 0..STOP_MESSAGES {
        let Some(got) = data.try_next() else {
            panic!("data socket closed after {i} of {STOP_MESSAGES} accepted messages");
        };
        let expected = vec![u8::try_from(i).expect("small"); STOP_PAYLOAD];
        assert!(got.payload == expected, "message {i} delivered in order");
    }
    stopper.join().expect("stop thread");
    data.conn
        .expect_closed_skipping(IO_TIMEOUT, "data socket after stop", &[0x00]);
}

/// Restarts of the restart case.
const RESTARTS: usize = 8;

/// A server stopped while a client holds subscriptions frees its
/// addresses at once: a new server binds the same TCP, UDP and stats
/// addresses right after, eight times in a row, and between the two no
/// connection is accepted by the stopped one. (On io_uring the ring's
/// operations used to keep the old listener alive after exit.)
pub fn restart_binds_at_once(start: Start) {
    let mut spec = spec();
    spec.udp = vec![loopback()];
    spec.stats = Some(loopback());
    let mut server = Server::start(start, spec.clone());
    let bound = server.addrs().clone();
    spec.tcp = vec![bound.tcp];
    spec.udp = bound.udp.into_iter().collect();
    spec.stats = bound.stats;
    for round in 1..=RESTARTS {
        let (mut sub, data) = subscriber(&server);
        assert_eq!(
            sub.subscribe(&["r/#", "s/+/x"]),
            OK,
            "subscribe, round {round}"
        );
        server.stop();
        assert!(
            std::net::TcpStream::connect(bound.tcp).is_err(),
            "round {round}: the stopped server still accepts connections"
        );
        eprintln!("restart {round} of {RESTARTS}");
        server = Server::start(start, spec.clone());
        drop((sub, data));
    }
    let mut client = Session::anonymous(server.tcp());
    assert_eq!(client.nop(), OK, "the last server serves");
}

//! What only the monoio server needs checked: binding a taken port fails
//! (monoio sets SO_REUSEPORT by default, which would let it succeed), and
//! the async reload (besides `reload_blocking`, which the conformance
//! suite uses) applies rules or reports the error.

use std::sync::Arc;

use psrt_proto::broker::AuthConfig;
use psrt_proto::spec::ServerSpec;
use psrt_runtime_monoio::server::Server;

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

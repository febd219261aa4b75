//! The PROXY protocol (HAProxy's; v2 binary and v1 text) on connections from the load
//! balancers `http.proxy_protocol_from` names.
//!
//! HAProxy in TCP mode passes TLS through untouched (client certificates keep identifying
//! agencies), so without this header every client would seem to come from the balancer: one
//! sign-in limit shared by everybody, audit records and logs that name HAProxy. Only the
//! addresses named may send the header, and from them it is required, so that a client can
//! neither forge its address by sending a header itself nor bypass the balancer unnoticed.
//!
//! The framing (how many bytes to take, never one of the TLS handshake behind it) is here;
//! the parsing is the `ppp` crate's.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// The most a v2 header may carry after its first 16 bytes: the addresses (216 bytes at most,
/// for UNIX sockets) and the TLVs HAProxy adds when asked (a unique id, TLS details).
const V2_MAX_PAYLOAD: usize = 2048;

/// Why a connection from a load balancer was dropped before TLS.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The connection ended or failed while the header was read.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The connection does not start with a PROXY header.
    #[error(
        "no PROXY header, yet the connection comes from an address http.proxy_protocol_from names (set `send-proxy-v2` on HAProxy's server lines, or remove the address)"
    )]
    Missing,
    /// Over the bounds above.
    #[error("the PROXY header is longer than the protocol allows")]
    TooLong,
    /// `ppp` could not read it.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
}

/// Whether a connection from `ip` must start with a PROXY header: `ip` is in one of `from`
/// (`http.proxy_protocol_from`).
pub fn expected_from(from: &[ipnet::IpNet], ip: IpAddr) -> bool {
    // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
    let ip = ip.to_canonical();
    from.iter().any(|net| net.contains(&ip))
}

/// Reads the PROXY header at the start of `tcp`, and nothing after it, and returns the
/// client's address it names; `peer` itself for a v2 LOCAL connection (HAProxy's own health
/// check) or an UNKNOWN one. The caller bounds the time it may take.
pub async fn read_header(tcp: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    // Both versions' shortest header ("PROXY UNKNOWN\r\n", 15 bytes; v2, 16) is longer than
    // this: these 12 bytes are the header's whatever it is.
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await?;
    if head == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        tcp.read_exact(&mut fixed).await?;
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if len > V2_MAX_PAYLOAD {
            return Err(ProxyError::TooLong);
        }
        let mut header = Vec::with_capacity(16 + len);
        header.extend_from_slice(&head);
        header.extend_from_slice(&fixed);
        header.resize(16 + len, 0);
        tcp.read_exact(&mut header[16..]).await?;
        return v2_source(&header, peer);
    }
    if !head.starts_with(b"PROXY ") {
        return Err(ProxyError::Missing);
    }
    let mut line = head.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyError::TooLong);
        }
        line.push(tcp.read_u8().await?);
    }
    v1_source(&line, peer)
}

fn v2_source(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    use ppp::v2::{Addresses, Command, Header};
    let h = Header::try_from(header).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    Ok(match (h.command, h.addresses) {
        (Command::Local, _) => peer,
        (_, Addresses::IPv4(a)) => SocketAddr::from((a.source_address, a.source_port)),
        (_, Addresses::IPv6(a)) => SocketAddr::from((a.source_address, a.source_port)),
        _ => peer,
    })
}

fn v1_source(line: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    use ppp::v1::{Addresses, Header};
    let text = std::str::from_utf8(line)
        .map_err(|_| ProxyError::Malformed("a v1 header is ASCII text".into()))?;
    let h = Header::try_from(text).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    Ok(match h.addresses {
        Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
        Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
        Addresses::Unknown => peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Sends `bytes` to a fresh loopback connection and reads its PROXY header, leaving what
    /// follows in the stream (returned too).
    async fn through(bytes: Vec<u8>) -> (Result<SocketAddr, ProxyError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&bytes).await.unwrap();
        });
        let (mut tcp, peer) = listener.accept().await.unwrap();
        let got = read_header(&mut tcp, peer).await;
        sender.await.unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
        (got, rest)
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[tokio::test]
    async fn a_v2_header_gives_the_client_address_and_leaves_the_tls_bytes_behind_it() {
        let mut bytes = v2(
            0x21,
            0x11,
            &[192, 0, 2, 7, 10, 0, 0, 1, 0xC3, 0x50, 0x01, 0xBB],
        );
        bytes.extend_from_slice(b"\x16\x03\x01hello");
        let (got, rest) = through(bytes).await;
        assert_eq!(got.unwrap(), "192.0.2.7:50000".parse().unwrap());
        assert_eq!(rest, b"\x16\x03\x01hello");
    }

    #[tokio::test]
    async fn a_v2_local_connection_keeps_the_balancers_own_address() {
        let (got, _) = through(v2(0x20, 0x00, &[])).await;
        assert_eq!(got.unwrap().ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[tokio::test]
    async fn a_v1_header_gives_the_client_address_and_nothing_more_is_read() {
        let mut bytes = b"PROXY TCP6 2001:db8::5 2001:db8::1 40000 443\r\n".to_vec();
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (got, rest) = through(bytes).await;
        assert_eq!(got.unwrap(), "[2001:db8::5]:40000".parse().unwrap());
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn a_connection_without_a_header_or_with_a_broken_one_is_refused() {
        let (got, _) =
            through(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00rest".to_vec()).await;
        assert!(matches!(got, Err(ProxyError::Missing)), "{got:?}");
        let (got, _) = through(b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n".to_vec()).await;
        assert!(matches!(got, Err(ProxyError::Malformed(_))), "{got:?}");
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(300, b'1');
        let (got, _) = through(long).await;
        assert!(matches!(got, Err(ProxyError::TooLong)), "{got:?}");
        let mut huge = v2(0x21, 0x11, &[]);
        huge[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        let (got, _) = through(huge).await;
        assert!(matches!(got, Err(ProxyError::TooLong)), "{got:?}");
        // Cut short: the connection's end is an error, not a hang.
        let (got, _) = through(V2_SIGNATURE[..8].to_vec()).await;
        assert!(matches!(got, Err(ProxyError::Io(_))), "{got:?}");
    }

    #[test]
    fn a_header_is_expected_from_the_networks_named_and_mapped_v4_matches() {
        let from: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/24".parse().unwrap(), "::1/128".parse().unwrap()];
        assert!(expected_from(&from, "10.0.0.9".parse().unwrap()));
        assert!(expected_from(&from, "::ffff:10.0.0.9".parse().unwrap()));
        assert!(!expected_from(&from, "10.0.1.9".parse().unwrap()));
        assert!(expected_from(&from, "::1".parse().unwrap()));
        assert!(!expected_from(&[], "::1".parse().unwrap()));
    }
}

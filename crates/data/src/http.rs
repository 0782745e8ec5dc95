//! A minimal HTTP/1.1 GET over `std::net`, enough to fetch dataset files from a plain
//! HTTP mirror (integrity comes from the pinned SHA-256, not the transport): redirects
//! to other `http://` URLs, `Content-Length` or chunked bodies, timeouts, and a
//! progress callback. A connection that ends early is an error, never a short file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches `url`, calling `progress(received, total)` as bytes arrive.
pub fn get(url: &str, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<Vec<u8>, String> {
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&url, progress)? {
            Response::Body(body) => return Ok(body),
            Response::Redirect(location) => url = location,
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

enum Response {
    Body(Vec<u8>),
    Redirect(String),
}

/// Splits `http://host[:port]/path` into its parts.
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("only http:// URLs are supported, got {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| format!("bad port in {url}"))?),
        None => (authority, 80),
    };
    Ok((host.to_string(), port, if path.is_empty() { "/".into() } else { path.into() }))
}

fn get_once(url: &str, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<Response, String> {
    let (host, port, path) = split_url(url)?;
    let address = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|err| err.to_string())?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(|err| err.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kiln-data\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|err| err.to_string())?;
    let mut reader = BufReader::new(stream);

    let status_line = read_line(&mut reader)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut location = None;
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<u64>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "location" => location = Some(value.to_string()),
                _ => {}
            }
        }
    }
    match status {
        200 => {}
        301 | 302 | 303 | 307 | 308 => {
            let location = location.ok_or("redirect without a Location header")?;
            return Ok(Response::Redirect(if location.starts_with('/') {
                format!("http://{host}:{port}{location}")
            } else {
                location
            }));
        }
        _ => return Err(format!("server answered {status_line}")),
    }
    let body = if chunked {
        read_chunked(&mut reader, progress)?
    } else {
        read_body(&mut reader, length, progress)?
    };
    Ok(Response::Body(body))
}

fn read_line(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    let n = reader.read_line(&mut line).map_err(|err| err.to_string())?;
    if n == 0 {
        return Err("connection closed in the middle of the headers".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a body of `length` bytes (or up to the end of the connection when unknown).
fn read_body(
    reader: &mut impl Read,
    length: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(length.unwrap_or(0) as usize);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buffer).map_err(|err| format!("after {} bytes: {err}", body.len()))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..n]);
        progress(body.len() as u64, length);
    }
    match length {
        Some(expected) if body.len() as u64 != expected => {
            Err(format!("connection closed after {} of {expected} bytes", body.len()))
        }
        _ => Ok(body),
    }
}

/// Reads a `Transfer-Encoding: chunked` body.
fn read_chunked(
    reader: &mut impl BufRead,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|err| format!("after {start} bytes: {err}"))?;
        read_line(reader)?;
        progress(body.len() as u64, None);
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("http://example.org/a/b.gz").unwrap(),
            ("example.org".into(), 80, "/a/b.gz".into())
        );
        assert_eq!(split_url("http://127.0.0.1:8080").unwrap(), ("127.0.0.1".into(), 8080, "/".into()));
        assert!(split_url("https://example.org/").unwrap_err().contains("only http://"));
    }
}

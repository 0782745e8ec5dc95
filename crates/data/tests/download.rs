//! The download path against an HTTP server this test runs on 127.0.0.1: good files,
//! a file with the wrong content, a connection that drops midway, and no server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;
use kiln_data::locate::{SearchPaths, download, locate_or_download};
use kiln_data::{DataError, DatasetFile, sha256_hex};

/// What the test server does for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with these bytes.
    Serve(Vec<u8>),
    /// Announces `length` bytes, sends `sent` of them, then closes.
    DropAfter { length: usize, sent: usize },
}

/// Serves `routes` for `connections` requests, then stops. Returns the base URL.
fn serve(routes: Vec<(&'static str, Reply)>, connections: usize) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/data", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let mut stream = stream.unwrap();
            let mut request = String::new();
            BufReader::new(&stream).read_line(&mut request).unwrap();
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let reply = routes.iter().find(|(p, _)| path.ends_with(p)).map(|(_, r)| r.clone());
            let response = match reply {
                Some(Reply::Serve(body)) => {
                    let mut r =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                    r.extend(body);
                    r
                }
                Some(Reply::DropAfter { length, sent }) => {
                    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").into_bytes();
                    r.extend(vec![7u8; sent]);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    (url, handle)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A scratch root for one test, removed with everything in it when dropped; the test's
/// directories are paths under it that do not exist yet.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kiln-data-download-").tempdir().unwrap()
}

/// Two small files and their pinned digests (leaked so they are `'static` like the real list).
fn files(a: &[u8], b: &[u8]) -> [DatasetFile; 2] {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    [
        DatasetFile { name: "a-ubyte.gz", sha256: leak(sha256_hex(a)) },
        DatasetFile { name: "b-ubyte.gz", sha256: leak(sha256_hex(b)) },
    ]
}

#[test]
fn good_files_are_downloaded_and_verified() {
    let scratch = scratch();
    let (a, b) = (b"first file".to_vec(), vec![42u8; 100_000]);
    let (url, server) =
        serve(vec![("a-ubyte.gz", Reply::Serve(gzip(&a))), ("b-ubyte.gz", Reply::Serve(gzip(&b)))], 2);
    let dir = scratch.path().join("good");
    download(&url, &dir, &files(&a, &b)).unwrap();
    server.join().unwrap();
    assert_eq!(kiln_data::idx::read_maybe_gzip(&dir.join("a-ubyte.gz"), 1 << 20).unwrap(), a);
    assert_eq!(kiln_data::idx::read_maybe_gzip(&dir.join("b-ubyte.gz"), 1 << 20).unwrap(), b);
    assert!(!dir.join("a-ubyte.gz.part").exists());
}

#[test]
fn a_file_with_the_wrong_hash_is_rejected_and_removed() {
    let scratch = scratch();
    let (a, b) = (b"expected".to_vec(), b"other".to_vec());
    let (url, server) = serve(vec![("a-ubyte.gz", Reply::Serve(gzip(b"tampered")))], 1);
    let dir = scratch.path().join("hash");
    let err = download(&url, &dir, &files(&a, &b)).unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, DataError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&format!("expected {}", sha256_hex(&a))), "{err}");
    assert!(!dir.join("a-ubyte.gz").exists() && !dir.join("a-ubyte.gz.part").exists());
}

#[test]
fn a_connection_dropped_midway_leaves_nothing_behind() {
    let scratch = scratch();
    let (url, server) = serve(vec![("a-ubyte.gz", Reply::DropAfter { length: 10_000, sent: 100 })], 1);
    let dir = scratch.path().join("drop");
    let err = download(&url, &dir, &files(b"x", b"y")).unwrap_err();
    server.join().unwrap();
    assert!(err.to_string().contains("connection closed after 100 of 10000 bytes"), "{err}");
    assert!(!dir.join("a-ubyte.gz").exists() && !dir.join("a-ubyte.gz.part").exists());
}

#[test]
fn offline_error_lists_every_place_and_the_ways_out() {
    let scratch = scratch();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let paths = SearchPaths {
        explicit: None,
        env: None,
        cache: Some(scratch.path().join("offline-cache")),
        system: scratch.path().join("offline-system"),
    };
    let err = locate_or_download(&paths, &url, &files(b"x", b"y")).unwrap_err().to_string();
    assert!(err.contains(&paths.cache.unwrap().display().to_string()), "{err}");
    assert!(err.contains(&paths.system.display().to_string()), "{err}");
    assert!(err.contains("apt-get install dataset-fashion-mnist") && err.contains("--data-dir"), "{err}");
}

#[test]
fn search_order_explicit_then_cache_then_system() {
    let scratch = scratch();
    let set = files(b"x", b"y");
    let populated = |test: &str| {
        let dir = scratch.path().join(test);
        std::fs::create_dir_all(&dir).unwrap();
        set.iter().for_each(|f| std::fs::write(dir.join(f.name), b"").unwrap());
        dir
    };
    let (cache, system) = (populated("order-cache"), populated("order-system"));
    let mut paths =
        SearchPaths { explicit: None, env: None, cache: Some(cache.clone()), system: system.clone() };
    assert_eq!(locate_or_download(&paths, "http://unused/", &set).unwrap(), cache);
    paths.cache = Some(scratch.path().join("order-empty-cache"));
    assert_eq!(locate_or_download(&paths, "http://unused/", &set).unwrap(), system);
    paths.explicit = Some(scratch.path().join("order-missing"));
    let err = locate_or_download(&paths, "http://unused/", &set).unwrap_err().to_string();
    assert!(err.contains("--data-dir lacks a-ubyte.gz, b-ubyte.gz"), "{err}");
}
